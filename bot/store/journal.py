"""`EventJournal` on PostgreSQL: accepted events, durable dedupe and crash replay.

Accepting an event is the one write that must be durable before the platform is acknowledged, so
`record` commits synchronously even when the pool runs with `synchronous_commit = off`. To keep
that affordable, records are group-committed: concurrent `record` calls wait together for one
INSERT of all pending events, sharing one WAL flush (~3 ms here) instead of paying one each.
"""

from __future__ import annotations

import asyncio
import contextlib

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from bot.bus.base import EventJournal
from bot.events import Event

_MAX_BATCH = 500

_INSERT_BATCH = """
INSERT INTO events (id, conversation, payload)
SELECT * FROM unnest(%s::text[], %s::text[], %s::jsonb[])
ON CONFLICT (id) DO NOTHING
RETURNING id
"""


_COMPLETE_BATCH = """
UPDATE events SET status = v.status, error = NULLIF(v.error, ''), completed_at = now()
FROM unnest(%s::text[], %s::text[], %s::text[]) AS v(id, status, error)
WHERE events.id = v.id
"""


class PostgresEventJournal(EventJournal):
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool
        self._pending: list[tuple[Event, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._completions: list[tuple[str, str, str, asyncio.Future[None]]] = []
        self._completer: asyncio.Task[None] | None = None

    async def record(self, event: Event) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((event, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_all(), name="journal-flush")
        return await future

    async def _flush_all(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:_MAX_BATCH], self._pending[_MAX_BATCH:]
            try:
                inserted = await self._insert(batch)
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
                if not isinstance(exc, Exception):
                    raise
                continue
            claimed: set[str] = set()
            for event, future in batch:
                new = event.id in inserted and event.id not in claimed
                claimed.add(event.id)
                if not future.done():
                    future.set_result(new)

    async def _insert(self, batch: list[tuple[Event, asyncio.Future[bool]]]) -> set[str]:
        ids, conversations, payloads = [], [], []
        for event, _ in batch:
            ids.append(event.id)
            conversations.append(event.conversation.key)
            payloads.append(Jsonb(event.to_dict()))
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = on")
            cur = await conn.execute(_INSERT_BATCH, (ids, conversations, payloads))
            return {row[0] for row in await cur.fetchall()}

    async def complete(self, event_id: str, *, failed: bool = False, error: str = "") -> None:
        # Batched like `record`, but without waiting for the WAL flush: an event whose completion
        # is lost is replayed and then dropped, because its run is already recorded as finished.
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._completions.append((event_id, "dead" if failed else "done", error, future))
        if self._completer is None or self._completer.done():
            self._completer = asyncio.create_task(self._complete_all(), name="journal-complete")
        await future

    async def _complete_all(self) -> None:
        while self._completions:
            batch, self._completions = self._completions[:_MAX_BATCH], self._completions[_MAX_BATCH:]
            try:
                async with self._pool.connection() as conn:
                    await conn.execute(
                        _COMPLETE_BATCH, ([b[0] for b in batch], [b[1] for b in batch], [b[2] for b in batch])
                    )
            except Exception as exc:
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for *_, future in batch:
                if not future.done():
                    future.set_result(None)

    async def pending(self) -> list[Event]:
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT payload FROM events WHERE status = 'pending' ORDER BY received_at, id")
            return [Event.from_dict(row[0]) for row in await cur.fetchall()]

    async def dead(self, limit: int = 50) -> list[tuple[Event, str]]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT payload, coalesce(error, '') FROM events WHERE status = 'dead' "
                "ORDER BY completed_at DESC LIMIT %s",
                (limit,),
            )
            return [(Event.from_dict(p), e) for p, e in await cur.fetchall()]

    async def aclose(self) -> None:
        for task in (self._flusher, self._completer):
            if task is not None:
                with contextlib.suppress(Exception):
                    await task
