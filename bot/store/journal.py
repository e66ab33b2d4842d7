"""`EventJournal` on PostgreSQL: accepted events, durable dedupe and crash replay."""

from __future__ import annotations

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from bot.bus.base import EventJournal
from bot.events import Event


class PostgresEventJournal(EventJournal):
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def record(self, event: Event) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO events (id, conversation, payload) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (event.id, event.conversation.key, Jsonb(event.to_dict())),
            )
            return cur.rowcount == 1

    async def complete(self, event_id: str, *, failed: bool = False, error: str = "") -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE events SET status = %s, error = NULLIF(%s, ''), completed_at = now() WHERE id = %s",
                ("dead" if failed else "done", error, event_id),
            )

    async def pending(self) -> list[Event]:
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT payload FROM events WHERE status = 'pending' ORDER BY received_at, id")
            return [Event.from_dict(row[0]) for row in await cur.fetchall()]

    async def dead(self, limit: int = 50) -> list[tuple[Event, str]]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT payload, coalesce(error, '') FROM events WHERE status = 'dead' ORDER BY completed_at DESC LIMIT %s",
                (limit,),
            )
            return [(Event.from_dict(p), e) for p, e in await cur.fetchall()]
