"""Finding people for `/sb users`: by number (`12`, `#12`) or by a channel identity (`slack:U123`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from psycopg_pool import AsyncConnectionPool

from bot.store.people import Role


@dataclass(slots=True)
class PersonInfo:
    id: int
    name: str
    role: Role
    created_at: datetime
    identities: list[str] = field(default_factory=list)  # channel:user id


_SELECT = (
    "SELECT p.id, p.display_name, p.role, p.created_at, "
    "coalesce(array_agg(i.channel || ':' || i.user_id ORDER BY i.first_seen) FILTER (WHERE i.channel IS NOT NULL), "
    "'{}') FROM people p LEFT JOIN identities i ON i.person_id = p.id "
)


class Directory:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def find(self, who: str) -> PersonInfo | None:
        who = who.strip()
        async with self._pool.connection() as conn:
            number = who.removeprefix("#")
            if number.isdigit():
                cur = await conn.execute(_SELECT + "WHERE p.id = %s GROUP BY p.id", (int(number),))
            else:
                channel, _, user = who.partition(":")
                if not user:
                    return None
                cur = await conn.execute(
                    _SELECT + "WHERE p.id = (SELECT person_id FROM identities WHERE channel = %s AND user_id = %s) "
                    "GROUP BY p.id", (channel, user))
            row = await cur.fetchone()
        return PersonInfo(row[0], row[1], Role(row[2]), row[3], list(row[4])) if row else None

    async def recent(self, limit: int = 20) -> list[PersonInfo]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(_SELECT + "GROUP BY p.id ORDER BY p.id DESC LIMIT %s", (limit,))
            return [PersonInfo(r[0], r[1], Role(r[2]), r[3], list(r[4])) for r in await cur.fetchall()]
