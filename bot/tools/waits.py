"""Human waits: a question (`ask`) or an approval that parks a run until a person answers.

The run itself is persisted as WAITING by the engine; this table adds who may answer, the choices,
the deadline and how it ended. A timer publishes a `timeout` action into the run's conversation
when a deadline passes, so a waiting run resumes (and ends its wait) even across restarts. Anyone
deciding out of band (an admin's `/sb approve`) publishes a `decided` action the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from bot.events import Button, ConversationRef, Event, EventKind, Sender

log = logging.getLogger("switchboard.tools.waits")

WAKE_ACTION = "switchboard:wake"  # meta["action"] of the events that resume a run after a timeout or decision


class WaitKind(StrEnum):
    ASK = "ask"
    APPROVAL = "approval"


class WaitStatus(StrEnum):
    PENDING = "pending"
    ANSWERED = "answered"
    APPROVED = "approved"
    DENIED = "denied"
    TIMED_OUT = "timed_out"


@dataclass(slots=True)
class HumanWait:
    id: str
    run_id: str | None
    node_id: str
    kind: WaitKind
    tool: str
    arguments: dict[str, Any]
    conversation: ConversationRef
    requester: Sender
    approvers: str
    status: WaitStatus
    answer: str | None
    decided_by: str | None
    deadline: datetime | None

    @property
    def short_id(self) -> str:
        return self.id[:8]


_COLUMNS = ("id, run_id, node_id, kind, tool, arguments, conversation, requester, approvers, status, answer, "
            "decided_by, deadline")


def _wait(row: Sequence[Any]) -> HumanWait:
    return HumanWait(str(row[0]), str(row[1]) if row[1] else None, row[2], WaitKind(row[3]), row[4], row[5] or {},
                     ConversationRef.from_dict(row[6]), Sender.from_dict(row[7]), row[8], WaitStatus(row[9]),
                     row[10], row[11], row[12])


class HumanWaits:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def open(self, *, run_id: str, node_id: str, kind: WaitKind, conversation: ConversationRef,
                   requester: Sender, tool: str = "", arguments: dict[str, Any] | None = None,
                   approvers: str = "requester", expires_in: float | None = None) -> HumanWait:
        wait_id = str(uuid.uuid4())
        deadline = datetime.now(UTC) + timedelta(seconds=expires_in) if expires_in else None
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO human_waits (id, run_id, node_id, kind, tool, arguments, conversation, requester, "
                "approvers, deadline) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (wait_id, run_id or None, node_id, str(kind), tool, Jsonb(arguments or {}),
                 Jsonb(_conversation_dict(conversation)), Jsonb(_sender_dict(requester)), approvers, deadline))
        return HumanWait(wait_id, run_id or None, node_id, kind, tool, arguments or {}, conversation, requester,
                         approvers, WaitStatus.PENDING, None, None, deadline)

    async def get(self, wait_id: str) -> HumanWait | None:
        async with self._pool.connection() as conn:
            row = await (await conn.execute(f"SELECT {_COLUMNS} FROM human_waits WHERE id = %s",
                                            (wait_id,))).fetchone()
        return _wait(row) if row else None

    async def find(self, short_id: str) -> HumanWait | None:
        """A pending wait by the first characters of its id (what `/sb approve <id>` takes)."""
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(
                f"SELECT {_COLUMNS} FROM human_waits WHERE id::text LIKE %s AND status = 'pending' LIMIT 2",
                (short_id.lower().strip() + "%",))).fetchall()
        return _wait(rows[0]) if len(rows) == 1 else None

    async def decide(self, wait_id: str, status: WaitStatus, *, answer: str | None = None,
                     decided_by: str = "") -> HumanWait | None:
        """End a pending wait. Returns the wait as it now stands (another decision may have won a race)."""
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE human_waits SET status = %s, answer = %s, decided_by = %s, decided_at = now() "
                "WHERE id = %s AND status = 'pending'", (str(status), answer, decided_by or None, wait_id))
        return await self.get(wait_id)

    async def expire_due(self) -> list[HumanWait]:
        """Mark every wait past its deadline timed out; each is returned once, whichever process wins."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"UPDATE human_waits SET status = 'timed_out', decided_at = now() "
                f"WHERE status = 'pending' AND deadline IS NOT NULL AND deadline <= now() RETURNING {_COLUMNS}")
            return [_wait(r) for r in await cur.fetchall()]

    async def pending(self) -> list[HumanWait]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(f"SELECT {_COLUMNS} FROM human_waits WHERE status = 'pending' "
                                     "ORDER BY created_at")
            return [_wait(r) for r in await cur.fetchall()]


def wake_event(wait: HumanWait, reason: str) -> Event:
    """The event that resumes the run parked on `wait` (sent as the requester, into their conversation)."""
    return Event(
        id=f"switchboard:wake:{wait.id}:{reason}",
        kind=EventKind.ACTION,
        channel=wait.conversation.channel,
        conversation=wait.conversation,
        sender=wait.requester,
        text="",
        meta={"action": WAKE_ACTION, "wait_id": wait.id, "reason": reason},
    )


def is_wake_for(event: Event | None, wait_id: str) -> bool:
    return bool(event is not None and event.meta.get("action") == WAKE_ACTION and event.meta.get("wait_id") == wait_id)


def match_choice(event: Event, buttons: Sequence[Button]) -> Button | None:
    """Which button an answer means: a press carries the value; a text answer may be the number,
    the label or the value (channels without buttons show a numbered list)."""
    action = event.meta.get("action")
    if event.kind is EventKind.ACTION and action:
        for button in buttons:
            if button.value == action:
                return button
    text = (event.text or "").strip().strip(".").strip()
    if not text:
        return None
    if text.isdigit():
        index = int(text)
        return buttons[index - 1] if 1 <= index <= len(buttons) else None
    folded = text.casefold()
    for button in buttons:
        if folded in (button.label.casefold(), button.value.casefold()):
            return button
    return None


class WaitTimer:
    """Wakes runs whose wait passed its deadline. One per process; the UPDATE makes each fire once."""

    def __init__(self, waits: HumanWaits, bus: Any, *, interval: float = 1.0) -> None:
        self.waits = waits
        self.bus = bus
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="human-wait-timer")

    async def tick(self) -> int:
        expired = await self.waits.expire_due()
        for wait in expired:
            log.info("a human wait timed out",
                     extra={"wait_id": wait.id, "run_id": wait.run_id, "kind": str(wait.kind)})
            await self.bus.publish(wake_event(wait, "timeout"))
        return len(expired)

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("human wait timer failed; retrying")
            await asyncio.sleep(self.interval)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None


def _conversation_dict(ref: ConversationRef) -> dict[str, str]:
    return {"channel": ref.channel, "room": ref.room, "space": ref.space, "thread": ref.thread}


def _sender_dict(sender: Sender) -> dict[str, Any]:
    return {"channel": sender.channel, "id": sender.id, "name": sender.name, "is_bot": sender.is_bot}
