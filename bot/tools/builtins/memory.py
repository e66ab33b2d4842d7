"""`remember` / `recall`: the person's long-term memory (bot/memory), scoped to who is talking."""

from __future__ import annotations

from typing import Any

from bot.tools.base import ToolContext, ToolError
from bot.tools.decorator import tool


def _memories(ctx: ToolContext) -> Any:
    service = getattr(ctx.services, "memory", None)
    if service is None:
        raise ToolError("long-term memory is not configured on this bot")
    if ctx.person is None:
        raise ToolError("there is no person to remember things for")
    return getattr(service, "memories", service)


@tool(timeout=20)
async def remember(ctx: ToolContext, fact: str) -> str:
    """Keep a fact or preference about the person you are talking to, for later conversations.

    Args:
        fact: one short self-contained sentence, e.g. "Prefers answers in French".
    """
    memory = await _memories(ctx).remember(ctx.person.id, fact, source=f"run:{ctx.run_id}")  # type: ignore[union-attr]
    return f"Remembered: {memory.content}"


@tool(timeout=20)
async def recall(ctx: ToolContext, query: str, limit: int = 5) -> Any:
    """Look up what you remember about the person you are talking to.

    Args:
        query: what you want to know, e.g. "preferred language".
        limit: how many memories to return (1-20).
    """
    found = await _memories(ctx).recall(ctx.person.id, query, k=max(1, min(limit, 20)))  # type: ignore[union-attr]
    return [m.content for m in found] if found else "Nothing remembered about that."
