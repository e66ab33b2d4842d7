"""Scheduled jobs in PostgreSQL: the one source of truth every Switchboard process shares.

A firing is claimed by compare-and-set on `next_run_at`, so even two processes that both believe
they lead cannot fire the same occurrence twice. Every change bumps `revision` and sends a NOTIFY
so the leading process picks it up at once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from bot.events import ConversationRef, Sender
from bot.scheduler.timing import Timing, TriggerKind

CHANNEL = "switchboard_jobs"  # NOTIFY channel


class JobKind(StrEnum):
    REMINDER = "reminder"  # send `text` into the conversation
    FLOW = "flow"  # publish a schedule event that runs `flow` in the conversation


class JobSource(StrEnum):
    PERSON = "person"  # made with /sb remind or /sb schedule
    FLOW = "flow"  # from a flow's `schedule:` trigger; kept in step with the flow files


class JobStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    DONE = "done"  # a one-off that has fired
    MISSED = "missed"  # a one-off whose time passed by more than the misfire grace


@dataclass(slots=True)
class Job:
    id: str
    kind: JobKind
    source: JobSource
    flow: str | None
    text: str
    timing: Timing
    conversation: ConversationRef
    sender: Sender | None
    person_id: int | None
    status: JobStatus
    next_run_at: datetime | None
    last_run_at: datetime | None
    run_count: int
    revision: int

    def what(self) -> str:
        return f"run flow {self.flow}" if self.kind is JobKind.FLOW else f"remind: {self.text}"


_COLUMNS = ("id, kind, source, flow, text, trigger_kind, trigger_expr, timezone, anchor, conversation, sender, "
            "person_id, status, next_run_at, last_run_at, run_count, revision")


def _job(row: tuple[Any, ...]) -> Job:
    return Job(
        id=row[0], kind=JobKind(row[1]), source=JobSource(row[2]), flow=row[3], text=row[4],
        timing=Timing(TriggerKind(row[5]), row[6], row[7], row[8]),
        conversation=ConversationRef.from_dict(row[9]), sender=Sender.from_dict(row[10]) if row[10] else None,
        person_id=row[11], status=JobStatus(row[12]), next_run_at=row[13], last_run_at=row[14],
        run_count=row[15], revision=row[16],
    )


def _conversation(ref: ConversationRef) -> Jsonb:
    return Jsonb({"channel": ref.channel, "space": ref.space, "room": ref.room, "thread": ref.thread})


def new_job_id() -> str:
    return secrets.token_hex(4)


class JobStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def add(self, *, kind: JobKind, timing: Timing, conversation: ConversationRef, sender: Sender | None,
                  person_id: int | None, flow: str | None = None, text: str = "",
                  source: JobSource = JobSource.PERSON, job_id: str | None = None) -> Job:
        job_id = job_id or new_job_id()
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"INSERT INTO scheduled_jobs (id, kind, source, flow, text, trigger_kind, trigger_expr, timezone, "
                f"anchor, conversation, sender, person_id, next_run_at) "
                f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
                (job_id, str(kind), str(source), flow, text, str(timing.kind), timing.expr, timing.timezone,
                 timing.anchor, _conversation(conversation),
                 Jsonb({"channel": sender.channel, "id": sender.id, "name": sender.name}) if sender else None,
                 person_id, timing.first()),
            )
            row = await cur.fetchone()
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, job_id))
        assert row is not None
        return _job(row)

    async def get(self, job_id: str) -> Job | None:
        async with self._pool.connection() as conn:
            row = await (await conn.execute(f"SELECT {_COLUMNS} FROM scheduled_jobs WHERE id = %s",
                                            (job_id,))).fetchone()
        return _job(row) if row else None

    async def list(self, *, person_id: int | None = None, include_finished: bool = False) -> list[Job]:
        """Jobs of one person (None: everyone's), soonest first."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM scheduled_jobs WHERE (%(person)s::bigint IS NULL OR person_id = %(person)s) "
                "AND (%(all)s OR status IN ('active', 'paused')) ORDER BY next_run_at NULLS LAST, id",
                {"person": person_id, "all": include_finished},
            )
            return [_job(r) for r in await cur.fetchall()]

    async def active(self) -> list[Job]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(f"SELECT {_COLUMNS} FROM scheduled_jobs WHERE status = 'active'")
            return [_job(r) for r in await cur.fetchall()]

    async def set_status(self, job_id: str, status: JobStatus) -> Job | None:
        """Pause or resume; resuming recomputes the next fire time from now (missed ones are not caught up)."""
        job = await self.get(job_id)
        if job is None:
            return None
        next_run = job.next_run_at
        resuming = status is JobStatus.ACTIVE and job.status is not JobStatus.ACTIVE
        if resuming and job.timing.kind is not TriggerKind.DATE:
            next_run = job.timing.after(datetime.now(UTC))
        async with self._pool.connection() as conn:
            row = await (await conn.execute(
                f"UPDATE scheduled_jobs SET status = %s, next_run_at = %s, revision = revision + 1 WHERE id = %s "
                f"RETURNING {_COLUMNS}", (str(status), next_run, job_id))).fetchone()
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, job_id))
        return _job(row) if row else None

    async def remove(self, job_id: str) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute("DELETE FROM scheduled_jobs WHERE id = %s", (job_id,))
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, job_id))
            return cur.rowcount > 0

    async def claim(self, job_id: str, *, expected: datetime, next_run: datetime | None) -> Job | None:
        """Take one occurrence: move `next_run_at` from `expected` on. None: another process took it,
        or the job was paused, removed or changed meanwhile."""
        async with self._pool.connection() as conn:
            row = await (await conn.execute(
                f"UPDATE scheduled_jobs SET next_run_at = %(next)s, last_run_at = now(), run_count = run_count + 1, "
                f"status = CASE WHEN %(next)s::timestamptz IS NULL THEN 'done' ELSE status END "
                f"WHERE id = %(id)s AND status = 'active' AND next_run_at = %(expected)s RETURNING {_COLUMNS}",
                {"id": job_id, "expected": expected, "next": next_run},
            )).fetchone()
        return _job(row) if row else None

    async def skip(self, job_id: str, *, expected: datetime, next_run: datetime | None) -> None:
        """Record that an occurrence was missed (past the misfire grace) without running it."""
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE scheduled_jobs SET next_run_at = %(next)s, "
                "status = CASE WHEN %(next)s::timestamptz IS NULL THEN 'missed' ELSE status END "
                "WHERE id = %(id)s AND status = 'active' AND next_run_at = %(expected)s",
                {"id": job_id, "expected": expected, "next": next_run},
            )

    async def sync_flow_jobs(self, wanted: dict[str, tuple[str, Timing, ConversationRef]]) -> tuple[int, int]:
        """Make the flow-trigger jobs match `wanted` (job id → (flow, timing, conversation)).

        An unchanged job keeps its next fire time (a reload does not reset cron or interval clocks);
        a changed one is rescheduled; jobs of flows that lost their trigger (or were disabled) go.
        Returns (added or changed, removed).
        """
        changed = removed = 0
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT id, flow, trigger_kind, trigger_expr, timezone, conversation, status "
                "FROM scheduled_jobs WHERE source = 'flow' FOR UPDATE")
            existing = {r[0]: r for r in await cur.fetchall()}
            for job_id in existing:
                if job_id not in wanted:
                    await conn.execute("DELETE FROM scheduled_jobs WHERE id = %s", (job_id,))
                    removed += 1
            for job_id, (flow, timing, ref) in wanted.items():
                row = existing.get(job_id)
                same = row is not None and (row[1], row[2], row[3], row[4], ConversationRef.from_dict(row[5])) == (
                    flow, str(timing.kind), timing.expr, timing.timezone, ref)
                if same:
                    continue
                await conn.execute(
                    "INSERT INTO scheduled_jobs (id, kind, source, flow, trigger_kind, trigger_expr, timezone, anchor, "
                    "conversation, next_run_at) VALUES (%s, 'flow', 'flow', %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (id) DO UPDATE SET flow = EXCLUDED.flow, trigger_kind = EXCLUDED.trigger_kind, "
                    "trigger_expr = EXCLUDED.trigger_expr, timezone = EXCLUDED.timezone, anchor = EXCLUDED.anchor, "
                    "conversation = EXCLUDED.conversation, next_run_at = EXCLUDED.next_run_at, status = 'active', "
                    "revision = scheduled_jobs.revision + 1",
                    (job_id, flow, str(timing.kind), timing.expr, timing.timezone, timing.anchor,
                     _conversation(ref), timing.first()),
                )
                changed += 1
            if changed or removed:
                await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, "*"))
        return changed, removed

    async def release(self, job_id: str, *, taken: datetime | None, back_to: datetime) -> None:
        """Undo a claim whose delivery failed, so the occurrence fires again (within the misfire grace)."""
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE scheduled_jobs SET next_run_at = %(back)s, run_count = greatest(run_count - 1, 0), "
                "status = 'active' WHERE id = %(id)s AND next_run_at IS NOT DISTINCT FROM %(taken)s",
                {"id": job_id, "taken": taken, "back": back_to},
            )
