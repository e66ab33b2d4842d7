"""PostgreSQL storage: one psycopg 3 async pool, migrations at start, one repository per concept.

The embedded PostgreSQL (bundled with pgvector) is the default; `DATABASE_URL` or
`database.url` points at any PostgreSQL that has the pgvector extension.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg_pool import AsyncConnectionPool

from bot.store import migrations
from bot.store.history import HistoryStore
from bot.store.journal import PostgresEventJournal
from bot.store.people import PeopleStore
from bot.store.runs import RunStore

log = logging.getLogger("switchboard.store")

__all__ = ["Store", "StoreError", "resolve_database_url"]


class StoreError(RuntimeError):
    pass


def resolve_database_url(url: str, data_dir: Path) -> tuple[str, bool]:
    """The URL to connect to and whether it is the embedded server."""
    if url:
        return url, False
    from bot.store.embedded import start_embedded

    return start_embedded(data_dir), True


@dataclass
class Store:
    pool: AsyncConnectionPool
    url: str
    embedded: bool
    journal: PostgresEventJournal
    runs: RunStore
    people: PeopleStore
    history: HistoryStore

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        data_dir: Path,
        pool_min: int = 2,
        pool_max: int = 10,
        migrate: bool = True,
        synchronous_commit: bool = False,
    ) -> Store:
        """Connect (starting the embedded server when `url` is empty) and apply migrations.

        `synchronous_commit=False` (the default) lets run steps and history commit without waiting
        for the WAL flush: a Switchboard crash loses nothing (PostgreSQL has every commit), only an
        OS crash or power loss can lose the last ~0.6 s of steps. Accepting an event is always
        synchronous (see journal.py). True makes every write wait for its flush (~3 ms each here).
        """
        conninfo, embedded = resolve_database_url(url, data_dir)

        async def configure(conn: psycopg.AsyncConnection) -> None:
            if not synchronous_commit:
                await conn.execute("SET synchronous_commit = off")

        pool = AsyncConnectionPool(
            conninfo,
            min_size=pool_min,
            max_size=pool_max,
            kwargs={"autocommit": True},
            configure=configure,
            open=False,
            name="switchboard",
        )
        try:
            await pool.open(wait=True, timeout=15)
        except Exception as exc:
            await pool.close()
            where = "the embedded PostgreSQL" if embedded else _redact(conninfo)
            raise StoreError(f"cannot connect to {where}: {exc}") from exc
        store = cls(
            pool=pool,
            url=conninfo,
            embedded=embedded,
            journal=PostgresEventJournal(pool),
            runs=RunStore(pool),
            people=PeopleStore(pool),
            history=HistoryStore(pool),
        )
        if migrate:
            await store.migrate()
        return store

    async def migrate(self) -> list[migrations.Migration]:
        async with self.pool.connection() as conn:
            try:
                return await migrations.migrate(conn)
            except psycopg.errors.FeatureNotSupported as exc:
                raise StoreError(f"migration failed: {exc}") from exc
            except psycopg.errors.UndefinedFile as exc:
                raise StoreError(
                    "this PostgreSQL has no pgvector extension (CREATE EXTENSION vector failed). "
                    "Install pgvector on it, or unset DATABASE_URL to use the embedded server."
                ) from exc

    async def migration_status(self) -> list[migrations.MigrationState]:
        async with self.pool.connection() as conn:
            return await migrations.status(conn)

    async def close(self) -> None:
        await self.journal.aclose()
        await self.pool.close()


def _redact(conninfo: str) -> str:
    """A connection string without its password, for error messages and logs."""
    from bot.logging import redact_url

    return redact_url(conninfo)
