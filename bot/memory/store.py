"""Long-term memories of one person: facts and preferences with embeddings, recalled by meaning.

Recall is an exact cosine scan over one person's rows (people keep tens to hundreds of memories):
exact is both faster and more accurate here than an HNSW index that would have to post-filter
every other person's rows away.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from psycopg_pool import AsyncConnectionPool

from bot.embeddings import Embedder

MAX_MEMORY_CHARS = 2000


class MemoryKind(StrEnum):
    FACT = "fact"
    PREFERENCE = "preference"
    NOTE = "note"


class MemoryRequestError(ValueError):
    """A memory request that cannot be done as asked (empty text, too long); the message says why."""


@dataclass(frozen=True, slots=True)
class Memory:
    id: int
    kind: MemoryKind
    content: str
    created_at: datetime
    source: str = ""
    similarity: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": str(self.kind), "content": self.content,
                               "created_at": self.created_at.isoformat(timespec="seconds"), "source": self.source}
        if self.similarity is not None:
            out["similarity"] = round(self.similarity, 4)
        return out


_COLUMNS = "id, kind, content, created_at, source"


def _memory(row: tuple[Any, ...], similarity: float | None = None) -> Memory:
    return Memory(row[0], MemoryKind(row[1]), row[2], row[3], row[4], similarity)


def _literal(vector: list[float]) -> str:
    return "[" + ",".join(f"{v:.7g}" for v in vector) + "]"


class MemoryStore:
    def __init__(self, pool: AsyncConnectionPool, embedder: Embedder) -> None:
        self._pool = pool
        self._embedder = embedder

    async def remember(self, person_id: int, content: str, *, kind: MemoryKind = MemoryKind.FACT,
                       source: str = "") -> Memory:
        """Keep a memory; saying the same thing again (any case) refreshes it instead of duplicating it."""
        content = " ".join(content.split())
        if not content:
            raise MemoryRequestError("there is nothing to remember: give the fact after the command")
        if len(content) > MAX_MEMORY_CHARS:
            raise MemoryRequestError(
                f"a memory holds at most {MAX_MEMORY_CHARS} characters; this one has {len(content)}"
            )
        vector = await self._embedder.embed_one(content)
        async with self._pool.connection() as conn:
            row = await (
                await conn.execute(
                    "INSERT INTO memories (person_id, kind, content, embedding, dim, embedder, source) "
                    "VALUES (%s, %s, %s, %s::vector, %s, %s, %s) "
                    "ON CONFLICT (person_id, lower(content)) DO UPDATE SET kind = EXCLUDED.kind, "
                    "content = EXCLUDED.content, updated_at = now() "
                    f"RETURNING {_COLUMNS}",
                    (person_id, str(kind), content, _literal(vector), self._embedder.dim, self._embedder.name, source),
                )
            ).fetchone()
        assert row is not None
        return _memory(row)

    async def recall(self, person_id: int, query: str, *, k: int = 5, min_similarity: float = 0.2) -> list[Memory]:
        """The `k` memories closest in meaning to `query`, best first."""
        if k <= 0 or not query.strip():
            return []
        vector = _literal(await self._embedder.embed_one(query))
        async with self._pool.connection() as conn:
            rows = await (
                await conn.execute(
                    f"SELECT {_COLUMNS}, 1 - (embedding <=> %s::vector) AS similarity FROM memories "
                    "WHERE person_id = %s AND embedder = %s AND dim = %s ORDER BY embedding <=> %s::vector LIMIT %s",
                    (vector, person_id, self._embedder.name, self._embedder.dim, vector, k),
                )
            ).fetchall()
        return [_memory(r, float(r[5])) for r in rows if float(r[5]) >= min_similarity]

    async def list(self, person_id: int, *, limit: int = 1000) -> list[Memory]:
        async with self._pool.connection() as conn:
            rows = await (
                await conn.execute(f"SELECT {_COLUMNS} FROM memories WHERE person_id = %s ORDER BY id LIMIT %s",
                                   (person_id, limit))
            ).fetchall()
        return [_memory(r) for r in rows]

    async def delete(self, person_id: int, memory_id: int) -> bool:
        """Delete one memory of this person (someone else's id deletes nothing)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute("DELETE FROM memories WHERE id = %s AND person_id = %s", (memory_id, person_id))
        return bool(cur.rowcount)

    async def forget_matching(self, person_id: int, text: str) -> list[Memory]:
        """Delete the memories that contain `text` (case-insensitive); returns what was deleted."""
        needle = " ".join(text.split())
        if not needle:
            return []
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        async with self._pool.connection() as conn:
            rows = await (
                await conn.execute(
                    f"DELETE FROM memories WHERE person_id = %s AND content ILIKE %s RETURNING {_COLUMNS}",
                    (person_id, pattern),
                )
            ).fetchall()
        return [_memory(r) for r in rows]

    async def forget_all(self, person_id: int) -> int:
        async with self._pool.connection() as conn:
            cur = await conn.execute("DELETE FROM memories WHERE person_id = %s", (person_id,))
        return cur.rowcount

    async def export(self, person_id: int) -> dict[str, Any]:
        """Everything we keep about a person's memory, as JSON-ready data (their right to see it)."""
        async with self._pool.connection() as conn:
            person = await (
                await conn.execute("SELECT id, display_name, role, created_at FROM people WHERE id = %s", (person_id,))
            ).fetchone()
            identities = await (
                await conn.execute(
                    "SELECT channel, user_id, display_name, first_seen FROM identities WHERE person_id = %s "
                    "ORDER BY first_seen", (person_id,))
            ).fetchall()
        memories = await self.list(person_id)
        return {
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "person": None if person is None else {
                "id": person[0], "name": person[1], "role": person[2],
                "created_at": person[3].isoformat(timespec="seconds"),
            },
            "identities": [
                {"channel": c, "user_id": u, "name": n, "first_seen": f.isoformat(timespec="seconds")}
                for c, u, n, f in identities
            ],
            "memories": [m.as_dict() for m in memories],
        }
