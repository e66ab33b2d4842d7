"""Flow runs and their steps, written as a run goes so a crash leaves an exact record.

Each node's step row and the run's resumable state are written in one transaction (pipelined,
one round trip), so after a crash the run resumes at exactly the node after the last one recorded.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool


class RunStatus(StrEnum):
    RUNNING = "running"
    WAITING = "waiting"  # parked on human input (ask / approval)
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # the process stopped mid-run; resumed at the next start
    CANCELLED = "cancelled"


class StepStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEFAULTED = "defaulted"  # failed, and on_error supplied a default value
    SKIPPED = "skipped"


@dataclass(slots=True)
class StepRecord:
    node_id: str
    kind: str
    status: StepStatus
    started_at: datetime
    duration_ms: float
    attempts: int = 1
    inputs: Any = None
    outputs: Any = None
    error: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0


@dataclass(slots=True)
class RunRecord:
    id: str
    flow: str
    event_id: str | None
    conversation: str
    person_id: int | None
    status: RunStatus
    next_node: str | None
    state: dict[str, Any]
    steps: int
    tokens_in: int
    tokens_out: int
    cost: float
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    step_records: list[StepRecord] = field(default_factory=list)


_RUN_COLUMNS = (
    "id, flow, event_id, conversation, person_id, status, next_node, state, steps, tokens_in, tokens_out, "
    "cost, error, started_at, finished_at"
)


def _run(row: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        id=str(row[0]),
        flow=row[1],
        event_id=row[2],
        conversation=row[3],
        person_id=row[4],
        status=RunStatus(row[5]),
        next_node=row[6],
        state=row[7] or {},
        steps=row[8],
        tokens_in=row[9],
        tokens_out=row[10],
        cost=row[11],
        error=row[12],
        started_at=row[13],
        finished_at=row[14],
    )


class RunStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def create(
        self,
        *,
        flow: str,
        event_id: str | None,
        conversation: str,
        person_id: int | None,
        next_node: str,
        state: dict[str, Any],
    ) -> str:
        run_id = str(uuid.uuid4())
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO runs (id, flow, event_id, conversation, person_id, status, next_node, state) "
                "VALUES (%s, %s, %s, %s, %s, 'running', %s, %s)",
                (run_id, flow, event_id, conversation, person_id, next_node, Jsonb(state)),
            )
        return run_id

    async def record_step(
        self,
        run_id: str,
        seq: int,
        step: StepRecord,
        *,
        next_node: str | None,
        state: dict[str, Any],
        finish: RunStatus | None = None,
        error: str | None = None,
    ) -> None:
        """Write one step and the run's state after it, atomically. `finish` ends the run too."""
        async with self._pool.connection() as conn, conn.transaction(), conn.pipeline():
            await conn.execute(
                "INSERT INTO run_steps (run_id, seq, node_id, kind, status, attempts, inputs, outputs, error, "
                "started_at, duration_ms, tokens_in, tokens_out, cost) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, NULLIF(%s, ''), %s, %s, %s, %s, %s)",
                (
                    run_id, seq, step.node_id, step.kind, str(step.status), step.attempts,
                    Jsonb(step.inputs), Jsonb(step.outputs), step.error, step.started_at,
                    step.duration_ms, step.tokens_in, step.tokens_out, step.cost,
                ),
            )
            await conn.execute(
                "UPDATE runs SET next_node = %s, state = %s, steps = %s, "
                "tokens_in = tokens_in + %s, tokens_out = tokens_out + %s, cost = cost + %s, "
                "status = coalesce(%s, status), error = coalesce(%s, error), updated_at = now(), "
                "finished_at = CASE WHEN %s::text IS NULL THEN NULL ELSE now() END WHERE id = %s",
                (
                    next_node, Jsonb(state), seq, step.tokens_in, step.tokens_out, step.cost,
                    str(finish) if finish else None, error, str(finish) if finish else None, run_id,
                ),
            )

    async def finish(self, run_id: str, status: RunStatus, *, error: str | None = None) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE runs SET status = %s, error = coalesce(%s, error), updated_at = now(), "
                "finished_at = CASE WHEN %s IN ('running', 'waiting', 'interrupted') THEN NULL ELSE now() END "
                "WHERE id = %s",
                (str(status), error, str(status), run_id),
            )

    async def get(self, run_id: str, *, with_steps: bool = False) -> RunRecord | None:
        async with self._pool.connection() as conn:
            row = await (await conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = %s", (run_id,))).fetchone()
            if row is None:
                return None
            run = _run(row)
            if with_steps:
                cur = await conn.execute(
                    "SELECT node_id, kind, status, started_at, duration_ms, attempts, inputs, outputs, "
                    "coalesce(error, ''), tokens_in, tokens_out, cost FROM run_steps WHERE run_id = %s ORDER BY seq",
                    (run_id,),
                )
                run.step_records = [
                    StepRecord(r[0], r[1], StepStatus(r[2]), r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11])
                    for r in await cur.fetchall()
                ]
            return run

    async def for_event(self, event_id: str) -> RunRecord | None:
        """The latest run started by an event (to resume it when the event is handed out again)."""
        async with self._pool.connection() as conn:
            row = await (
                await conn.execute(
                    f"SELECT {_RUN_COLUMNS} FROM runs WHERE event_id = %s ORDER BY started_at DESC LIMIT 1",
                    (event_id,),
                )
            ).fetchone()
            return _run(row) if row else None

    async def waiting_in(self, conversation: str) -> RunRecord | None:
        """The newest run of a conversation parked on the person's answer (ask / approval)."""
        async with self._pool.connection() as conn:
            row = await (
                await conn.execute(
                    f"SELECT {_RUN_COLUMNS} FROM runs WHERE conversation = %s AND status = 'waiting' "
                    "ORDER BY updated_at DESC LIMIT 1",
                    (conversation,),
                )
            ).fetchone()
            return _run(row) if row else None

    async def recent(self, limit: int = 20, *, conversation: str | None = None) -> list[RunRecord]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE %s::text IS NULL OR conversation = %s "
                "ORDER BY started_at DESC LIMIT %s",
                (conversation, conversation, limit),
            )
            return [_run(r) for r in await cur.fetchall()]

    async def mark_interrupted(self, run_ids: list[str]) -> None:
        if not run_ids:
            return
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE runs SET status = 'interrupted', updated_at = now() WHERE id = ANY(%s) AND status = 'running'",
                (run_ids,),
            )
