"""Flow runs and their steps, written as a run goes so a crash leaves an exact record.

Each node's step row and the run's resumable state are written in one transaction (pipelined,
one round trip), so after a crash the run resumes at exactly the node after the last one recorded.
"""

from __future__ import annotations

import asyncio
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


@dataclass(frozen=True, slots=True)
class NewRun:
    flow: str
    event_id: str | None
    conversation: str
    person_id: int | None


@dataclass(frozen=True, slots=True)
class Triage:
    """What the runtime must know before handling an event, fetched in one round trip."""

    person: tuple[int, str, str] | None  # (id, display name, role) when the sender is known
    previous: RunRecord | None  # a run this very event already started (a redelivery)
    waiting: RunRecord | None  # a run in this conversation parked on the person's answer


_RUN_AS_TEXT = ", ".join(f"{c}::text" for c in _RUN_COLUMNS.split(", "))

_TRIAGE = f"""
SELECT
  (SELECT ARRAY[p.id::text, p.display_name, p.role] FROM identities i JOIN people p ON p.id = i.person_id
    WHERE i.channel = %(channel)s AND i.user_id = %(user)s),
  (SELECT ARRAY[{_RUN_AS_TEXT}]
    FROM runs WHERE event_id = %(event)s ORDER BY started_at DESC LIMIT 1),
  (SELECT ARRAY[{_RUN_AS_TEXT}]
    FROM runs WHERE conversation = %(conversation)s AND status = 'waiting' ORDER BY updated_at DESC LIMIT 1)
"""


def _run_from_text(values: list[str | None]) -> RunRecord:
    """A run row fetched as text[] (so three lookups fit one query) back into a RunRecord."""
    import json
    from datetime import datetime as dt

    (
        rid,
        flow,
        event_id,
        conversation,
        person_id,
        status,
        next_node,
        state,
        steps,
        tokens_in,
        tokens_out,
        cost,
        error,
        started_at,
        finished_at,
    ) = values
    return RunRecord(
        id=str(rid),
        flow=str(flow),
        event_id=event_id,
        conversation=str(conversation),
        person_id=int(person_id) if person_id else None,
        status=RunStatus(status),
        next_node=next_node,
        state=json.loads(state) if state else {},
        steps=int(steps or 0),
        tokens_in=int(tokens_in or 0),
        tokens_out=int(tokens_out or 0),
        cost=float(cost or 0),
        error=error,
        started_at=dt.fromisoformat(str(started_at)),
        finished_at=dt.fromisoformat(finished_at) if finished_at else None,
    )


_OPEN = (RunStatus.RUNNING, RunStatus.WAITING, RunStatus.INTERRUPTED)

_MAX_STEP_BATCH = 500

_STEP_KEYS = (
    "run_id",
    "seq",
    "node_id",
    "kind",
    "step_status",
    "attempts",
    "inputs",
    "outputs",
    "step_error",
    "started_at",
    "duration_ms",
    "tokens_in",
    "tokens_out",
    "cost",
    "flow",
    "event_id",
    "conversation",
    "person_id",
    "status",
    "next_node",
    "state",
    "error",
    "finished",
)

_RECORD_STEPS = """
WITH step AS (
    INSERT INTO run_steps (run_id, seq, node_id, kind, status, attempts, inputs, outputs, error, started_at,
                           duration_ms, tokens_in, tokens_out, cost)
    SELECT * FROM unnest(%(run_id)s::uuid[], %(seq)s::int[], %(node_id)s::text[], %(kind)s::text[],
                         %(step_status)s::text[], %(attempts)s::int[], %(inputs)s::jsonb[], %(outputs)s::jsonb[],
                         %(step_error)s::text[], %(started_at)s::timestamptz[], %(duration_ms)s::float8[],
                         %(tokens_in)s::int[], %(tokens_out)s::int[], %(cost)s::float8[])
)
INSERT INTO runs (id, flow, event_id, conversation, person_id, status, next_node, state, steps, tokens_in,
                  tokens_out, cost, error, finished_at)
SELECT r.id, r.flow, r.event_id, r.conversation, r.person_id, r.status, r.next_node, r.state, r.steps, r.tokens_in,
       r.tokens_out, r.cost, r.error, CASE WHEN r.finished THEN now() END
FROM unnest(%(run_id)s::uuid[], %(flow)s::text[], %(event_id)s::text[], %(conversation)s::text[],
            %(person_id)s::bigint[], %(status)s::text[], %(next_node)s::text[], %(state)s::jsonb[], %(seq)s::int[],
            %(tokens_in)s::int[], %(tokens_out)s::int[], %(cost)s::float8[], %(error)s::text[], %(finished)s::bool[])
     AS r(id, flow, event_id, conversation, person_id, status, next_node, state, steps, tokens_in, tokens_out, cost,
          error, finished)
ON CONFLICT (id) DO UPDATE SET
    status = EXCLUDED.status, next_node = EXCLUDED.next_node, state = EXCLUDED.state, steps = EXCLUDED.steps,
    tokens_in = runs.tokens_in + EXCLUDED.tokens_in, tokens_out = runs.tokens_out + EXCLUDED.tokens_out,
    cost = runs.cost + EXCLUDED.cost, error = coalesce(EXCLUDED.error, runs.error), updated_at = now(),
    finished_at = EXCLUDED.finished_at
"""


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class RunStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool
        self._pending_steps: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._step_writer: asyncio.Task[None] | None = None

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
        header: NewRun,
        next_node: str | None,
        state: dict[str, Any],
        finish: RunStatus | None = None,
        error: str | None = None,
    ) -> None:
        """Write one step and the run's state after it, atomically; return once it is committed.

        The run row is upserted with the step (created by the first step), so a run that crashed
        before its first step committed leaves nothing behind and simply starts again. `finish`
        ends the run too. Steps of concurrent runs are group-committed: whoever arrives while a
        batch is being written joins the next one, one statement for all of them.
        """
        status = str(finish) if finish else str(RunStatus.RUNNING)
        params = {
            "run_id": run_id,
            "seq": seq,
            "node_id": step.node_id,
            "kind": step.kind,
            "step_status": str(step.status),
            "attempts": step.attempts,
            "inputs": Jsonb(step.inputs),
            "outputs": Jsonb(step.outputs),
            "step_error": step.error or None,
            "started_at": step.started_at,
            "duration_ms": step.duration_ms,
            "tokens_in": step.tokens_in,
            "tokens_out": step.tokens_out,
            "cost": step.cost,
            "flow": header.flow,
            "event_id": header.event_id,
            "conversation": header.conversation,
            "person_id": header.person_id,
            "status": status,
            "next_node": next_node,
            "state": Jsonb(state),
            "error": error,
            "finished": finish is not None and finish not in _OPEN,
        }
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending_steps.append((params, future))
        if self._step_writer is None or self._step_writer.done():
            self._step_writer = asyncio.create_task(self._write_steps(), name="run-steps-writer")
        await future

    async def _write_steps(self) -> None:
        while self._pending_steps:
            batch, self._pending_steps = self._pending_steps[:_MAX_STEP_BATCH], self._pending_steps[_MAX_STEP_BATCH:]
            try:
                await self._insert_steps([params for params, _ in batch])
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0][1], exc)
                    continue
                # One bad step must not fail its neighbours: write them one by one.
                for params, future in batch:
                    try:
                        await self._insert_steps([params])
                    except Exception as one:
                        _settle(future, one)
                    else:
                        _settle(future, None)
                continue
            for _, future in batch:
                _settle(future, None)

    async def _insert_steps(self, rows: list[dict[str, Any]]) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(_RECORD_STEPS, {key: [row[key] for row in rows] for key in _STEP_KEYS})

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

    async def triage(
        self, *, event_id: str, conversation: str, channel: str, user_id: str, check_waiting: bool = True
    ) -> Triage:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                _TRIAGE,
                {
                    "channel": channel,
                    "user": user_id,
                    "event": event_id,
                    "conversation": conversation if check_waiting else None,
                },
            )
            row = await cur.fetchone()
        assert row is not None
        person = (int(row[0][0]), row[0][1], row[0][2]) if row[0] else None
        return Triage(person, _run_from_text(row[1]) if row[1] else None, _run_from_text(row[2]) if row[2] else None)

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
