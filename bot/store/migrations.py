"""Versioned SQL migrations, applied in order at start inside one transaction each.

Files are `NNNN_name.sql` in `bot/store/migrations/`. Later issues add files; a file, once
released, is never edited. An advisory lock makes concurrent starts apply each file once.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

log = logging.getLogger("switchboard.store")

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_ID = 0x5357_4442  # "SWDB"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class MigrationState:
    migration: Migration
    applied_at: str | None
    checksum_ok: bool


def bundled_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("bot.store").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


async def migrate(conn: psycopg.AsyncConnection) -> list[Migration]:
    """Apply every pending migration; return the ones applied now."""
    applied_now = []
    await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
    try:
        await conn.execute(_BOOKKEEPING)
        rows = await (await conn.execute("SELECT version FROM schema_migrations")).fetchall()
        done = {r[0] for r in rows}
        for migration in bundled_migrations():
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
            log.info("applied migration", extra={"version": migration.version, "migration": migration.name})
            applied_now.append(migration)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now


async def status(conn: psycopg.AsyncConnection) -> list[MigrationState]:
    await conn.execute(_BOOKKEEPING)
    rows = await (await conn.execute("SELECT version, checksum, applied_at FROM schema_migrations")).fetchall()
    applied = {r[0]: (r[1], r[2]) for r in rows}
    out = []
    for m in bundled_migrations():
        if m.version in applied:
            checksum, at = applied[m.version]
            out.append(MigrationState(m, at.isoformat(timespec="seconds"), checksum == m.checksum))
        else:
            out.append(MigrationState(m, None, True))
    return out
