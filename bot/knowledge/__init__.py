"""Knowledge: collections of documents, ingested into pgvector + full-text and searched hybridly.

`KnowledgeBase` is the one object the app, the CLI, the `retrieve` node and the `/sb kb` commands
use; the modules beside it each do one step (loaders, chunking, ingest, search, collections).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool

from bot.embeddings import Embedder
from bot.knowledge.collections import (
    DEFAULT_COLLECTION,
    Collection,
    Collections,
    DocumentInfo,
    KnowledgeError,
    UnknownCollection,
)
from bot.knowledge.ingest import Ingestor, IngestReport, PathNotAllowed, ProgressCallback, check_allowed
from bot.knowledge.search import Hit, SearchMode, hybrid_search


class KnowledgeBase:
    def __init__(self, pool: AsyncConnectionPool, embedder: Embedder, *, chunk_size: int = 1500,
                 chunk_overlap: int = 150, allowed_roots: Iterable[Path | str] = ()) -> None:
        self.pool = pool
        self.embedder = embedder
        self.collections = Collections(pool, embedder)
        self.allowed_roots = [Path(r) for r in allowed_roots]
        self._ingestor = Ingestor(pool, embedder, chunk_size=chunk_size, chunk_overlap=chunk_overlap)

    @classmethod
    def from_config(cls, pool: AsyncConnectionPool, config: Any, embedder: Embedder | None = None) -> KnowledgeBase:
        from bot.embeddings import create_embedder

        section = config.knowledge
        return cls(
            pool,
            embedder or create_embedder(section.embedding),
            chunk_size=section.chunk_size,
            chunk_overlap=section.chunk_overlap,
            allowed_roots=[config.resolve(r) for r in section.allowed_roots],
        )

    async def ingest(self, paths: Iterable[str | os.PathLike[str]], *, collection: str = DEFAULT_COLLECTION,
                     metadata: dict[str, Any] | None = None, on_file: ProgressCallback | None = None,
                     from_chat: bool = False) -> IngestReport:
        """Ingest files/folders. `from_chat` confines reads to `allowed_roots` (a chat user is not the operator)."""
        paths = [os.fspath(p) for p in paths]  # sources are stored as the paths given, as text
        if from_chat:
            for given in paths:  # refuse the whole request before touching anything
                check_allowed(Path(given), self.allowed_roots)
        target = await self.collections.ensure(collection)
        return await self._ingestor.ingest(target, paths, metadata=metadata, on_file=on_file,
                                           allowed_roots=self.allowed_roots if from_chat else None)

    async def search(self, query: str, *, collection: str | Iterable[str] = DEFAULT_COLLECTION, top_k: int = 5,
                     filters: dict[str, Any] | None = None, min_score: float = 0.0, min_similarity: float = -1.0,
                     mode: SearchMode = SearchMode.HYBRID, ef_search: int = 100) -> list[Hit]:
        names = [collection] if isinstance(collection, str) else list(collection)
        targets = [await self.collections.require(n) for n in names]
        if not query.strip() or not targets or top_k <= 0:
            return []
        vector = await self.embedder.embed_one(query) if mode is not SearchMode.TEXT else None
        return await hybrid_search(
            self.pool, query_text=query, query_vector=vector, dim=self.embedder.dim,
            collection_ids=[t.id for t in targets], top_k=top_k, filters=filters, min_score=min_score,
            min_similarity=min_similarity, mode=mode, ef_search=ef_search,
        )

    async def has_documents(self, collection: str = DEFAULT_COLLECTION) -> bool:
        found = await self.collections.get(collection)
        if found is None:
            return False
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT EXISTS (SELECT 1 FROM kb_documents WHERE collection_id = %s)",
                                            (found.id,))).fetchone()
        return bool(row and row[0])


def format_context(hits: list[Hit]) -> str:
    """Numbered passages for a prompt; the numbers match `format_sources`, so the model can cite [n]."""
    blocks = []
    for number, hit in enumerate(hits, start=1):
        title = f" — {hit.heading}" if hit.heading else ""
        blocks.append(f"[{number}] {hit.citation}{title}\n{hit.text}")
    return "\n\n".join(blocks)


def format_sources(hits: list[Hit]) -> str:
    return "\n".join(f"[{n}] {hit.citation}" for n, hit in enumerate(hits, start=1))


__all__ = [
    "DEFAULT_COLLECTION",
    "Collection",
    "DocumentInfo",
    "Hit",
    "IngestReport",
    "KnowledgeBase",
    "KnowledgeError",
    "PathNotAllowed",
    "SearchMode",
    "UnknownCollection",
    "format_context",
    "format_sources",
]
