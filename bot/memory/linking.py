"""Join a person's identities on several channels with a one-time code.

`/sb link` on one channel gives a short code; `/sb link CODE` from another identity merges the two
people into one, so memories, history and runs follow the person. The older person row is kept
(its id may already be named in config or logs), the higher role of the two wins, and every row of
any table that points at the other person is moved over, including tables later features add.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

import psycopg
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger("switchboard.memory")

# No 0/O, 1/I/L: codes are read off one screen and typed into another.
_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_CODE_LENGTH = 8
_ROLE_RANK = {"blocked": 0, "member": 1, "admin": 2, "owner": 3}


class LinkError(ValueError):
    """The code cannot be used (unknown, expired, same person); the message says what to do."""


@dataclass(frozen=True, slots=True)
class LinkResult:
    person_id: int  # the person that remains
    merged_person_id: int  # the person that was folded into it
    identities: list[tuple[str, str]]  # (channel, user id) of the person now


def normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def display_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


class IdentityLinker:
    def __init__(self, pool: AsyncConnectionPool, *, ttl_seconds: float = 600.0) -> None:
        self._pool = pool
        self.ttl_seconds = ttl_seconds

    async def create_code(self, person_id: int, channel: str) -> str:
        """A fresh one-time code for this person (earlier unused codes stop working)."""
        code = "".join(secrets.choice(_ALPHABET) for _ in range(_CODE_LENGTH))
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("DELETE FROM link_codes WHERE person_id = %s OR expires_at < now()", (person_id,))
            await conn.execute(
                "INSERT INTO link_codes (code, person_id, channel, expires_at) "
                "VALUES (%s, %s, %s, now() + make_interval(secs => %s))",
                (code, person_id, channel, self.ttl_seconds),
            )
        return display_code(code)

    async def redeem(self, code: str, person_id: int) -> LinkResult:
        """Use a code from another identity: the two people become one. The code is spent either way."""
        wanted = normalise_code(code)
        async with self._pool.connection() as conn, conn.transaction():
            row = await (
                await conn.execute(
                    "DELETE FROM link_codes WHERE code = %s RETURNING person_id, expires_at > now()", (wanted,)
                )
            ).fetchone()
            if row is None:
                raise LinkError("that link code is unknown or was already used: run `link` again to get a new one")
            owner, fresh = row
            if not fresh:
                raise LinkError("that link code has expired: run `link` again on your other account for a new one")
            if owner == person_id:
                raise LinkError("that code is yours on this account: send it from your other account")
            keep, drop = sorted((owner, person_id))
            await _merge(conn, keep, drop)
            identities = await (
                await conn.execute("SELECT channel, user_id FROM identities WHERE person_id = %s ORDER BY channel",
                                   (keep,))
            ).fetchall()
        log.info("linked identities", extra={"person_id": keep, "merged_person_id": drop})
        return LinkResult(keep, drop, [(c, u) for c, u in identities])


async def _merge(conn: psycopg.AsyncConnection, keep: int, drop: int) -> None:
    people = await (
        await conn.execute("SELECT id, role FROM people WHERE id = ANY(%s) FOR UPDATE", ([keep, drop],))
    ).fetchall()
    roles = dict(people)
    if keep not in roles or drop not in roles:
        raise LinkError("one of the two accounts no longer exists")
    best = max((roles[keep], roles[drop]), key=lambda r: _ROLE_RANK.get(r, 1))
    # Memories: the same fact kept by both people stays once.
    await conn.execute(
        "DELETE FROM memories d WHERE d.person_id = %s AND EXISTS "
        "(SELECT 1 FROM memories k WHERE k.person_id = %s AND lower(k.content) = lower(d.content))",
        (drop, keep),
    )
    for table, column in await _references_to_people(conn):
        try:
            async with conn.transaction():  # a savepoint: one table's conflict must not undo the rest
                await conn.execute(
                    f'UPDATE "{table}" SET "{column}" = %s WHERE "{column}" = %s',  # names from the catalog
                    (keep, drop),
                )
        except psycopg.errors.UniqueViolation:
            log.warning("rows not moved while linking", extra={"table": table, "column": column})
    await conn.execute("UPDATE people SET role = %s WHERE id = %s", (best, keep))
    await conn.execute("DELETE FROM people WHERE id = %s", (drop,))


async def _references_to_people(conn: psycopg.AsyncConnection) -> list[tuple[str, str]]:
    """Every (table, column) with a single-column foreign key to people(id), from the catalog."""
    rows = await (
        await conn.execute(
            """
            SELECT c.conrelid::regclass::text, a.attname
            FROM pg_constraint c
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
            WHERE c.contype = 'f' AND c.confrelid = 'people'::regclass AND array_length(c.conkey, 1) = 1
            ORDER BY 1, 2
            """
        )
    ).fetchall()
    return [(t.strip('"'), col) for t, col in rows]
