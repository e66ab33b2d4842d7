"""Ingest files into a collection: read, hash, parse, chunk, embed, store — skipping what is unchanged.

The SHA-256 of a file's bytes is kept per (collection, source). Re-ingesting an unchanged file
costs one hash and does nothing; a changed file's old chunks are replaced in the same transaction
that writes the new ones, so a search never sees a half-updated document. Parsing and embedding of
the next file overlap with the database write of the previous one (PostgreSQL's HNSW and GIN
upkeep runs in its own process, i.e. on the other core).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg.types import TypeInfo
from psycopg_pool import AsyncConnectionPool

from bot.embeddings import Embedder
from bot.knowledge.chunking import Chunk, chunk_text
from bot.knowledge.collections import Collection
from bot.knowledge.loaders import SUFFIXES, LoadError, detect_format, load_bytes

log = logging.getLogger("switchboard.knowledge")

ProgressCallback = Callable[["FileOutcome"], None]

# Prepared documents waiting for their database write (bounds memory on big trees).
_QUEUE_DEPTH = 8
# Concurrent database writers: HNSW upkeep is the bottleneck and each writer's backend is its own
# PostgreSQL process, so two writers use both cores while the embedder is waiting for them.
_WRITERS = 2


class PathNotAllowed(PermissionError):
    """A path outside the folders chat users may ingest from."""


@dataclass(frozen=True, slots=True)
class FileOutcome:
    source: str
    status: str  # ingested | unchanged | skipped
    chunks: int = 0
    bytes: int = 0
    reason: str = ""


@dataclass(slots=True)
class IngestReport:
    collection: str
    files: int = 0  # ingested (new or changed)
    unchanged: int = 0
    chunks: int = 0
    bytes: int = 0  # bytes of the files ingested now
    seconds: float = 0.0
    skipped: list[FileOutcome] = field(default_factory=list)

    @property
    def megabytes(self) -> float:
        return self.bytes / 1_000_000

    def summary(self) -> str:
        rate = f", {self.megabytes / self.seconds * 60:.1f} MB/min" if self.seconds > 0 and self.bytes else ""
        text = (f"{self.files} files ingested into {self.collection!r} ({self.chunks} chunks, {self.megabytes:.2f} MB) "
                f"in {self.seconds:.1f} s{rate}; {self.unchanged} unchanged, {len(self.skipped)} skipped")
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection, "files": self.files, "unchanged": self.unchanged, "chunks": self.chunks,
            "bytes": self.bytes, "seconds": round(self.seconds, 3),
            "skipped": [{"source": s.source, "reason": s.reason} for s in self.skipped],
        }


def check_allowed(path: Path, roots: Iterable[Path]) -> Path:
    """The resolved path if it lies inside one of `roots` (symlinks resolved first), else PathNotAllowed."""
    resolved = path.expanduser().resolve()
    allowed = [Path(r).expanduser().resolve() for r in roots]
    if not allowed:
        raise PathNotAllowed("ingesting from chat is off: no knowledge.allowed_roots are configured")
    for root in allowed:
        if resolved == root or resolved.is_relative_to(root):
            return resolved
    raise PathNotAllowed(f"{path} is outside the allowed folders ({', '.join(str(r) for r in allowed)})")


def expand_paths(paths: Iterable[str]) -> Iterator[tuple[str, Path | None, str]]:
    """(source as given, path, problem): folders are walked (hidden entries skipped), sorted."""
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            for folder, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if name.startswith("."):
                        continue
                    full = Path(folder) / name
                    source = os.path.join(given, os.path.relpath(full, path))
                    if full.suffix.lower() not in SUFFIXES:
                        yield source, None, f"unsupported file type {full.suffix or '(none)'!r}"
                    else:
                        yield source, full, ""
        elif path.exists():
            yield given, path, ""
        else:
            yield given, None, "no such file or folder"


@dataclass(slots=True)
class _Prepared:
    source: str
    digest: str
    size: int
    fmt: str
    title: str
    chunks: list[Chunk]
    vectors: Any  # numpy (n, dim)


class Ingestor:
    def __init__(self, pool: AsyncConnectionPool, embedder: Embedder, *, chunk_size: int = 1500,
                 chunk_overlap: int = 150, embed_batch: int = 256) -> None:
        self._pool = pool
        self._embedder = embedder
        self._chunk_size = chunk_size
        self._chunk_overlap = chunk_overlap
        self._embed_batch = embed_batch
        self._vector_info: TypeInfo | None = None

    async def ingest(
        self,
        collection: Collection,
        paths: Iterable[str],
        *,
        metadata: dict[str, Any] | None = None,
        on_file: ProgressCallback | None = None,
        allowed_roots: Iterable[Path] | None = None,
    ) -> IngestReport:
        """Ingest files and folders; problems with single files are reported in the result, never raised."""
        started = time.perf_counter()
        report = IngestReport(collection.name)
        roots = list(allowed_roots) if allowed_roots is not None else None
        known = await self._known_hashes(collection.id)
        queue: asyncio.Queue[_Prepared | FileOutcome | None] = asyncio.Queue(maxsize=_QUEUE_DEPTH)

        def done(outcome: FileOutcome) -> None:
            if outcome.status == "ingested":
                report.files += 1
                report.chunks += outcome.chunks
                report.bytes += outcome.bytes
            elif outcome.status == "unchanged":
                report.unchanged += 1
            else:
                report.skipped.append(outcome)
                log.warning("skipped a file", extra={"source": outcome.source, "reason": outcome.reason})
            if on_file is not None:
                on_file(outcome)

        async def produce() -> None:
            try:
                for source, path, problem in expand_paths(paths):
                    outcome_or_doc = await self._prepare(source, path, problem, known, roots)
                    await queue.put(outcome_or_doc)
            finally:
                for _ in range(_WRITERS):
                    await queue.put(None)

        async def write() -> None:
            while (item := await queue.get()) is not None:
                if isinstance(item, FileOutcome):
                    done(item)
                    continue
                await self._write(collection, item, metadata or {})
                done(FileOutcome(item.source, "ingested", len(item.chunks), item.size))

        tasks = [asyncio.create_task(produce()), *(asyncio.create_task(write()) for _ in range(_WRITERS))]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
        report.seconds = time.perf_counter() - started
        log.info("ingested", extra=report.as_dict() | {"skipped": len(report.skipped)})
        return report

    async def _known_hashes(self, collection_id: int) -> dict[str, str]:
        async with self._pool.connection() as conn:
            rows = await (
                await conn.execute("SELECT source, content_hash FROM kb_documents WHERE collection_id = %s",
                                   (collection_id,))
            ).fetchall()
        return dict(rows)

    async def _prepare(self, source: str, path: Path | None, problem: str, known: dict[str, str],
                       roots: list[Path] | None) -> _Prepared | FileOutcome:
        if path is None:
            return FileOutcome(source, "skipped", reason=problem)
        try:
            if roots is not None:
                check_allowed(path, roots)
            fmt = detect_format(path)
            data = await asyncio.to_thread(path.read_bytes)
        except (PathNotAllowed, LoadError) as exc:
            return FileOutcome(source, "skipped", reason=str(exc))
        except OSError as exc:
            return FileOutcome(source, "skipped", reason=f"cannot read: {exc.strerror or exc}")
        digest = hashlib.sha256(data).hexdigest()
        if known.get(source) == digest:
            return FileOutcome(source, "unchanged", bytes=len(data))
        try:
            document, chunks = await asyncio.to_thread(self._parse, data, fmt, source)
        except LoadError as exc:
            return FileOutcome(source, "skipped", reason=str(exc))
        except Exception as exc:  # a parser bug on one odd file must not stop the rest
            log.exception("parser failed", extra={"source": source})
            return FileOutcome(source, "skipped", reason=f"cannot parse: {type(exc).__name__}: {exc}")
        if not chunks:
            return FileOutcome(source, "skipped", reason="no text found")
        vectors = await self._embed([_embedding_input(c) for c in chunks])
        return _Prepared(source, digest, len(data), str(document.format), document.title, chunks, vectors)

    def _parse(self, data: bytes, fmt: Any, source: str) -> tuple[Any, list[Chunk]]:
        document = load_bytes(data, fmt, name=source)
        chunks: list[Chunk] = []
        heading = ""
        for part in document.parts:
            more = chunk_text(part.text, size=self._chunk_size, overlap=self._chunk_overlap, page=part.page,
                              start_index=len(chunks), heading=heading)
            if more:
                heading = more[-1].heading
            chunks.extend(more)
        return document, chunks

    async def _embed(self, texts: list[str]) -> Any:
        import numpy as np

        batches = [await self._embedder.embed_array(texts[i:i + self._embed_batch])
                   for i in range(0, len(texts), self._embed_batch)]
        return np.concatenate(batches) if len(batches) > 1 else batches[0]

    async def _write(self, collection: Collection, doc: _Prepared, metadata: dict[str, Any]) -> None:
        from pgvector.psycopg.vector import register_vector_info

        dim = self._embedder.dim
        async with self._pool.connection() as conn:
            if self._vector_info is None:
                self._vector_info = await TypeInfo.fetch(conn, "vector")
            register_vector_info(conn, self._vector_info)
            async with conn.transaction():
                # Re-runnable (hashes): a crash losing the last commits is harmless, so skip the fsync wait.
                await conn.execute("SET LOCAL synchronous_commit = off")
                await conn.execute("DELETE FROM kb_documents WHERE collection_id = %s AND source = %s",
                                   (collection.id, doc.source))
                row = await (
                    await conn.execute(
                        "INSERT INTO kb_documents (collection_id, source, content_hash, format, title, bytes, chunks, "
                        "metadata) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb) RETURNING id",
                        (collection.id, doc.source, doc.digest, doc.fmt, doc.title, doc.size, len(doc.chunks),
                         json.dumps(metadata)),
                    )
                ).fetchone()
                assert row is not None
                document_id = row[0]
                base_meta = {"format": doc.fmt, **metadata}
                async with conn.cursor().copy(
                    "COPY kb_chunks (document_id, collection_id, chunk_index, heading, content, metadata, dim, "
                    "embedding) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(["int8", "int8", "int4", "text", "text", "jsonb", "int4", "vector"])
                    for chunk, vector in zip(doc.chunks, doc.vectors, strict=True):
                        meta = base_meta if chunk.page is None else {**base_meta, "page": chunk.page}
                        await copy.write_row((document_id, collection.id, chunk.index, chunk.heading,
                                              _clean(chunk.text), meta, dim, vector))


def _embedding_input(chunk: Chunk) -> str:
    # The heading path tells the embedder what a chunk is about when its body does not say.
    if chunk.heading and not chunk.text.lstrip("# ").startswith(chunk.heading.rsplit(" > ", 1)[-1]):
        return f"{chunk.heading}\n{chunk.text}"
    return chunk.text


def _clean(text: str) -> str:
    # PostgreSQL text cannot hold NUL; PDFs sometimes carry them.
    return text.replace("\x00", "")
