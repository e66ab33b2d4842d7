"""Ingestion throughput with the offline embedder: MB/min and chunks/s on a >= 50 MB corpus.

    python bench/knowledge_ingest.py [--mb 60] [--chunk-size 1500]

Builds the corpus from text on this machine (bench/corpus.py), starts a fresh embedded PostgreSQL
(pgvector HNSW + GIN full text), runs the same ingestion as `switchboard kb ingest`, then re-runs it
to show that unchanged files cost only their hash. Also times the embedder alone.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import build_corpus, fresh_dir
from bot.embeddings.offline import WordLlamaEmbedder
from bot.knowledge import KnowledgeBase
from bot.knowledge.chunking import chunk_text
from bot.store import Store
from bot.store.embedded import start_embedded


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=60.0)
    parser.add_argument("--chunk-size", type=int, default=1500)
    parser.add_argument("--overlap", type=int, default=150)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    work = Path(tempfile.mkdtemp(prefix="sb-bench-ingest-"))
    os.chmod(work, 0o755)
    corpus = fresh_dir(work / "corpus")
    started = time.perf_counter()
    files, size = build_corpus(corpus, args.mb)
    print(f"corpus: {files} files, {size / 1e6:.1f} MB (built in {time.perf_counter() - started:.1f} s)")

    embedder = WordLlamaEmbedder()
    sample = []
    for path in sorted(corpus.iterdir())[:400]:
        sample += [c.text for c in chunk_text(path.read_text(errors="replace"), size=args.chunk_size,
                                               overlap=args.overlap)]
    sample = sample[:4000]
    embedder.embed_sync(sample[:10])
    t0 = time.perf_counter()
    embedder.embed_sync(sample)
    dt = time.perf_counter() - t0
    chars = sum(len(s) for s in sample)
    print(f"embedder alone: {len(sample) / dt:.0f} chunks/s, {chars / 1e6 / dt * 60:.0f} MB/min of chunk text")

    url = start_embedded(work / "pg")
    store = await Store.open(url, data_dir=work, pool_min=1, pool_max=4)
    try:
        kb = KnowledgeBase(store.pool, embedder, chunk_size=args.chunk_size, chunk_overlap=args.overlap)
        report = await kb.ingest([str(corpus)], collection="bench")
        print(f"ingest: {report.files} files, {report.chunks} chunks, {report.megabytes:.1f} MB, "
              f"{report.seconds:.1f} s, skipped {len(report.skipped)}")
        print(f"ingest throughput: {report.megabytes / report.seconds * 60:.1f} MB/min, "
              f"{report.chunks / report.seconds:.0f} chunks/s")
        again = await kb.ingest([str(corpus)], collection="bench")
        print(f"re-ingest unchanged: {again.unchanged} files unchanged, {again.files} re-ingested, "
              f"{again.seconds:.1f} s")
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
