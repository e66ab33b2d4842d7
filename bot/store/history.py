"""Conversation history: what each side said, newest last."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool


@dataclass(frozen=True, slots=True)
class Turn:
    role: str
    content: str


class HistoryStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def add(
        self,
        conversation: str,
        role: str,
        content: str,
        *,
        person_id: int | None = None,
        event_id: str | None = None,
        run_id: str | None = None,
    ) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO messages (conversation, person_id, role, content, event_id, run_id) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (conversation, person_id, role, content, event_id, run_id),
            )

    async def recent(self, conversation: str, limit: int, *, before_event: str | None = None) -> list[Turn]:
        """The last `limit` turns, oldest first (excluding the turn of `before_event`)."""
        if limit <= 0:
            return []
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT role, content FROM messages WHERE conversation = %s "
                "AND (%s::text IS NULL OR event_id IS DISTINCT FROM %s OR role <> 'user') "
                "ORDER BY id DESC LIMIT %s",
                (conversation, before_event, before_event, limit),
            )
            rows = await cur.fetchall()
        return [Turn(r[0], r[1]) for r in reversed(rows)]
