"""People and their channel identities."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from psycopg_pool import AsyncConnectionPool

from bot.events import Sender


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class Person:
    id: int
    display_name: str
    role: Role

    def as_template(self) -> dict[str, object]:
        return {"id": self.id, "name": self.display_name, "role": str(self.role)}


class PeopleStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def resolve(self, sender: Sender, *, owner: bool = False) -> Person:
        """The person behind a channel identity, created on first sight.

        `owner` promotes the person (owners are named in config; the local console user is one).
        """
        async with self._pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT p.id, p.display_name, p.role FROM identities i JOIN people p ON p.id = i.person_id "
                    "WHERE i.channel = %s AND i.user_id = %s",
                    (sender.channel, sender.id),
                )
            ).fetchone()
            if row is None:
                async with conn.transaction():
                    row = await (
                        await conn.execute(
                            "INSERT INTO people (display_name, role) VALUES (%s, %s) RETURNING id, display_name, role",
                            (sender.name or sender.id, Role.OWNER if owner else Role.MEMBER),
                        )
                    ).fetchone()
                    assert row is not None
                    inserted = await conn.execute(
                        "INSERT INTO identities (channel, user_id, person_id, display_name) VALUES (%s, %s, %s, %s) "
                        "ON CONFLICT (channel, user_id) DO NOTHING",
                        (sender.channel, sender.id, row[0], sender.name),
                    )
                    if inserted.rowcount == 0:  # another worker created it first
                        await conn.execute("DELETE FROM people WHERE id = %s", (row[0],))
                        return await self.resolve(sender, owner=owner)
            elif owner and row[2] != Role.OWNER:
                await conn.execute("UPDATE people SET role = 'owner' WHERE id = %s", (row[0],))
                row = (row[0], row[1], Role.OWNER)
            return Person(row[0], row[1], Role(row[2]))

    async def set_role(self, person_id: int, role: Role) -> None:
        async with self._pool.connection() as conn:
            await conn.execute("UPDATE people SET role = %s WHERE id = %s", (str(role), person_id))
