"""Conversation history that fits a token budget: newest turns verbatim, older ones summarised.

Dropping old turns silently makes a bot forget what was agreed an hour ago; instead the turns that
no longer fit are folded into a running summary by the configured model, stored per conversation,
and only new overflow is summarised on later turns. Without a model the old turns are dropped and
the window says how many. Token counts are estimated (≈ 4 characters per token, the usual rule for
English with BPE tokenisers), which is close enough to keep a prompt inside its budget.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import AsyncConnectionPool

log = logging.getLogger("switchboard.memory")

Summarize = Callable[[str], Awaitable[str]]

# Turns read from the database per request, at most (a budget never needs more).
_MAX_SCAN = 400
SUMMARY_INSTRUCTIONS = (
    "Summarise the conversation below for the assistant's own later use. Keep names, decisions, numbers, "
    "open questions and what the person asked for; drop greetings and small talk. At most 200 words."
)


def estimate_tokens(text: str) -> int:
    return len(text) // 4 + 1


@dataclass(frozen=True, slots=True)
class HistoryTurn:
    id: int
    role: str
    content: str

    @property
    def tokens(self) -> int:
        return estimate_tokens(self.content) + 4  # role and separators


@dataclass(slots=True)
class HistoryWindow:
    turns: list[HistoryTurn] = field(default_factory=list)
    summary: str = ""
    dropped: int = 0  # older turns left out without a summary (no model configured)

    def messages(self) -> list[dict[str, Any]]:
        """Chat messages: the summary (as a system note) then the recent turns."""
        out: list[dict[str, Any]] = []
        if self.summary:
            out.append({"role": "system", "content": f"Summary of the earlier conversation:\n{self.summary}"})
        out.extend({"role": t.role, "content": t.content} for t in self.turns)
        return out


def split_by_budget(turns: list[HistoryTurn], budget: int) -> tuple[list[HistoryTurn], list[HistoryTurn]]:
    """(older turns that do not fit, newest turns that do), both oldest first."""
    used = 0
    keep_from = len(turns)
    for index in range(len(turns) - 1, -1, -1):
        cost = turns[index].tokens
        if used + cost > budget:
            break
        used += cost
        keep_from = index
    return turns[:keep_from], turns[keep_from:]


def transcript(turns: list[HistoryTurn]) -> str:
    return "\n".join(f"{t.role}: {t.content}" for t in turns)


async def summarise_overflow(previous: str, overflow: list[HistoryTurn], summarize: Summarize) -> str:
    """Fold turns into the running summary with one model call."""
    parts = [SUMMARY_INSTRUCTIONS]
    if previous:
        parts.append(f"Summary so far:\n{previous}")
    parts.append(f"Conversation:\n{transcript(overflow)}")
    return (await summarize("\n\n".join(parts))).strip()


class ConversationHistory:
    """History windows over the `messages` table, with summaries kept in `conversation_summaries`."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def window(self, conversation: str, *, budget: int, summarize: Summarize | None = None,
                     before_event: str | None = None) -> HistoryWindow:
        """The turns that fit `budget` tokens, with older turns summarised when `summarize` is given."""
        async with self._pool.connection() as conn:
            row = await (
                await conn.execute("SELECT summary, through_id FROM conversation_summaries WHERE conversation = %s",
                                   (conversation,))
            ).fetchone()
            summary, through = (row[0], row[1]) if row else ("", 0)
            rows = await (
                await conn.execute(
                    "SELECT id, role, content FROM messages WHERE conversation = %s AND id > %s "
                    "AND (%s::text IS NULL OR event_id IS DISTINCT FROM %s OR role <> 'user') "
                    "ORDER BY id DESC LIMIT %s",
                    (conversation, through, before_event, before_event, _MAX_SCAN),
                )
            ).fetchall()
        turns = [HistoryTurn(r[0], r[1], r[2]) for r in reversed(rows)]
        summary_cost = estimate_tokens(summary) if summary else 0
        overflow, recent = split_by_budget(turns, max(0, budget - summary_cost))
        if not overflow:
            return HistoryWindow(recent, summary)
        if summarize is None:
            return HistoryWindow(recent, summary, dropped=len(overflow))
        try:
            summary = await summarise_overflow(summary, overflow, summarize)
        except Exception:
            # The answer matters more than the summary: go on with the recent turns, retry next time.
            log.warning("history summary failed", extra={"conversation": conversation}, exc_info=True)
            return HistoryWindow(recent, summary, dropped=len(overflow))
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO conversation_summaries (conversation, summary, through_id) VALUES (%s, %s, %s) "
                "ON CONFLICT (conversation) DO UPDATE SET summary = EXCLUDED.summary, "
                "through_id = EXCLUDED.through_id, updated_at = now()",
                (conversation, summary, overflow[-1].id),
            )
        return HistoryWindow(recent, summary)

    async def summary(self, conversation: str) -> str:
        async with self._pool.connection() as conn:
            row = await (
                await conn.execute("SELECT summary FROM conversation_summaries WHERE conversation = %s",
                                   (conversation,))
            ).fetchone()
        return row[0] if row else ""
