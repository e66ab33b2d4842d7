"""Collections and documents: the rows around the chunks (names, embedder, hashes, counts)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import AsyncConnectionPool

from bot.embeddings import Embedder

DEFAULT_COLLECTION = "default"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# The migration creates the HNSW index for the offline embedder's dimension; others are made on demand.
_PREMADE_INDEX_DIMS = frozenset({256})


class KnowledgeError(ValueError):
    """A knowledge request that cannot be served as asked; the message says what to do instead."""


class UnknownCollection(KnowledgeError):
    pass


@dataclass(frozen=True, slots=True)
class Collection:
    id: int
    name: str
    embedder: str
    dim: int
    documents: int = 0
    chunks: int = 0
    bytes: int = 0
    created_at: datetime | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name, "embedder": self.embedder, "dim": self.dim, "documents": self.documents,
            "chunks": self.chunks, "bytes": self.bytes,
            "created_at": self.created_at.isoformat(timespec="seconds") if self.created_at else None,
        }


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    id: int
    source: str
    format: str
    title: str
    bytes: int
    chunks: int
    content_hash: str
    ingested_at: datetime


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise KnowledgeError(
            f"invalid collection name {name!r}: use letters, digits, '.', '_' or '-' "
            "(at most 63, starting with a letter or digit)"
        )
    return name


class Collections:
    def __init__(self, pool: AsyncConnectionPool, embedder: Embedder) -> None:
        self._pool = pool
        self._embedder = embedder

    async def get(self, name: str) -> Collection | None:
        async with self._pool.connection() as conn:
            row = await (
                await conn.execute("SELECT id, name, embedder, dim, created_at FROM kb_collections WHERE name = %s",
                                   (name,))
            ).fetchone()
        return Collection(row[0], row[1], row[2], row[3], created_at=row[4]) if row else None

    async def require(self, name: str) -> Collection:
        found = await self.get(name)
        if found is None:
            names = [c.name for c in await self.list()]
            known = f" (collections: {', '.join(names)})" if names else " (there are no collections yet: ingest files)"
            raise UnknownCollection(f"no collection named {name!r}{known}")
        self.check_embedder(found)
        return found

    def check_embedder(self, collection: Collection) -> None:
        if collection.embedder != self._embedder.name or collection.dim != self._embedder.dim:
            raise KnowledgeError(
                f"collection {collection.name!r} was embedded with {collection.embedder} ({collection.dim}-d) but the "
                f"configured embedder is {self._embedder.name} ({self._embedder.dim}-d): configure the same embedder, "
                f"or delete the collection and ingest again"
            )

    async def ensure(self, name: str) -> Collection:
        """The collection, created for the configured embedder if it does not exist yet."""
        check_name(name)
        existing = await self.get(name)
        if existing is not None:
            self.check_embedder(existing)
            return existing
        await self._ensure_index(self._embedder.dim)
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO kb_collections (name, embedder, dim) VALUES (%s, %s, %s) ON CONFLICT (name) DO NOTHING",
                (name, self._embedder.name, self._embedder.dim),
            )
        created = await self.get(name)
        assert created is not None
        self.check_embedder(created)
        return created

    async def _ensure_index(self, dim: int) -> None:
        if dim in _PREMADE_INDEX_DIMS:
            return
        if not 1 <= dim <= 4000:
            raise KnowledgeError(
                f"pgvector's halfvec HNSW index takes at most 4000 dimensions; this embedder has {dim}"
            )
        async with self._pool.connection() as conn:
            await conn.execute(
                f"CREATE INDEX IF NOT EXISTS kb_chunks_hnsw_{dim:d} ON kb_chunks USING hnsw "
                f"((embedding::halfvec({dim:d})) halfvec_cosine_ops) WITH (m = 16, ef_construction = 64) "
                f"WHERE dim = {dim:d}"
            )

    async def list(self) -> list[Collection]:
        async with self._pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT c.id, c.name, c.embedder, c.dim, count(d.id), coalesce(sum(d.chunks), 0), "
                    "coalesce(sum(d.bytes), 0), c.created_at FROM kb_collections c "
                    "LEFT JOIN kb_documents d ON d.collection_id = c.id GROUP BY c.id ORDER BY c.name"
                )
            ).fetchall()
        return [Collection(r[0], r[1], r[2], r[3], int(r[4]), int(r[5]), int(r[6]), r[7]) for r in rows]

    async def documents(self, name: str) -> list[DocumentInfo]:
        collection = await self.require(name)
        async with self._pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT id, source, format, title, bytes, chunks, content_hash, ingested_at FROM kb_documents "
                    "WHERE collection_id = %s ORDER BY source",
                    (collection.id,),
                )
            ).fetchall()
        return [DocumentInfo(*r) for r in rows]

    async def delete(self, name: str) -> bool:
        """Drop a collection with its documents and chunks; False when there was none."""
        async with self._pool.connection() as conn:
            # Documents and their chunks go with it (ON DELETE CASCADE).
            cur = await conn.execute("DELETE FROM kb_collections WHERE name = %s", (name,))
        return bool(cur.rowcount)

    async def delete_document(self, name: str, source: str) -> bool:
        collection = await self.require(name)
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM kb_documents WHERE collection_id = %s AND source = %s", (collection.id, source)
            )
        return bool(cur.rowcount)

