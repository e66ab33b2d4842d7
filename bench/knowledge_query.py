"""Query latency at >= 100,000 chunks, HNSW recall@10 against exact search, memory recall per turn.

    python bench/knowledge_query.py [--mb 50] [--chunk-size 500] [--queries 200]

Ingests real text from this machine (bench/corpus.py) with the offline embedder into a fresh
embedded PostgreSQL, then times `KnowledgeBase.search` (query embedding included) in each mode,
compares the HNSW top 10 with an exact scan for the same query vectors, and times
`MemoryService.prompt_context` for a person with 200 memories (what an llm node adds to a turn).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import build_corpus, fresh_dir
from bot.embeddings.offline import WordLlamaEmbedder
from bot.events import Sender
from bot.knowledge import KnowledgeBase, SearchMode
from bot.knowledge.search import vector_literal
from bot.memory import MemoryService
from bot.store import Store
from bot.store.embedded import start_embedded


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def timed(calls: int, fn) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for i in range(calls):
        t0 = time.perf_counter()
        await fn(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def show(name: str, ms: list[float]) -> None:
    print(f"{name}: p50 {percentile(ms, 50):.1f} ms, p99 {percentile(ms, 99):.1f} ms, "
          f"mean {statistics.mean(ms):.1f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=50.0)
    parser.add_argument("--chunk-size", type=int, default=500)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--data", help="reuse this folder from an earlier run (skips building and ingesting)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    rng = random.Random(7)

    reuse = bool(args.data)
    work = Path(args.data) if reuse else Path(tempfile.mkdtemp(prefix="sb-bench-query-"))
    os.chmod(work, 0o755)
    print(f"data folder: {work}")
    url = start_embedded(work / "pg")
    store = await Store.open(url, data_dir=work, pool_min=1, pool_max=4)
    embedder = WordLlamaEmbedder()
    try:
        kb = KnowledgeBase(store.pool, embedder, chunk_size=args.chunk_size, chunk_overlap=50)
        if not reuse:
            corpus = fresh_dir(work / "corpus")
            files, size = build_corpus(corpus, args.mb)
            report = await kb.ingest([str(corpus)], collection="bench")
            print(f"corpus: {files} files, {size / 1e6:.1f} MB -> {report.chunks} chunks "
                  f"(ingested in {report.seconds:.0f} s, {report.megabytes / report.seconds * 60:.0f} MB/min)")
        (collection,) = [c for c in await kb.collections.list() if c.name == "bench"]
        print(f"collection: {collection.chunks} chunks, {collection.bytes / 1e6:.1f} MB")
        async with store.pool.connection() as conn:
            await conn.execute("VACUUM ANALYZE kb_chunks")
            rows = await (await conn.execute(
                "SELECT content FROM kb_chunks TABLESAMPLE SYSTEM (2) REPEATABLE (7) LIMIT %s", (args.queries * 3,)
            )).fetchall()
        queries = []
        for (text,) in rows:
            words = [w for w in text.split() if w.isalpha()]
            if len(words) >= 8:
                start = rng.randrange(0, len(words) - 6)
                queries.append(" ".join(words[start:start + rng.randint(3, 6)]))
        queries = queries[: args.queries]
        print(f"queries: {len(queries)} phrases of 3-6 words sampled from the chunks")

        for mode in (SearchMode.HYBRID, SearchMode.VECTOR, SearchMode.TEXT):
            await timed(20, lambda i, m=mode: kb.search(queries[i % len(queries)], collection="bench", top_k=10,
                                                          mode=m))
            ms = await timed(len(queries), lambda i, m=mode: kb.search(queries[i], collection="bench", top_k=10,
                                                                        mode=m))
            show(f"{mode} query (top 10, query embedding included)", ms)

        vectors = embedder.embed_sync(queries)
        for ef in (40, 100, 200):
            recalls, strict = [], []
            for vector in vectors:
                literal = vector_literal(vector)
                async with store.pool.connection() as conn, conn.transaction():
                    await conn.execute(f"SET LOCAL hnsw.ef_search = {ef}")
                    approx = await (await conn.execute(
                        "SELECT id, embedding <=> %s::vector FROM kb_chunks WHERE dim = 256 "
                        "ORDER BY embedding::halfvec(256) <=> %s::halfvec(256) LIMIT 10",
                        (literal, literal))).fetchall()
                    await conn.execute("SET LOCAL enable_indexscan = off")
                    await conn.execute("SET LOCAL enable_bitmapscan = off")
                    exact = await (await conn.execute(
                        "SELECT id, embedding <=> %s::vector AS d FROM kb_chunks WHERE dim = 256 ORDER BY d LIMIT 10",
                        (literal,))).fetchall()
                # The corpus repeats texts (the same licence in many packages): equal distances are ties,
                # so a hit counts when it is as close as the 10th exact neighbour (ann-benchmarks' rule).
                cutoff = exact[-1][1] + 1e-6
                recalls.append(sum(1 for _, d in approx if d <= cutoff) / 10)
                strict.append(len({r[0] for r in approx} & {r[0] for r in exact}) / 10)
            print(f"HNSW (halfvec, m=16, ef_construction=64, ef_search={ef}) recall@10 vs exact full-precision scan: "
                  f"{statistics.mean(recalls):.3f} by distance, {statistics.mean(strict):.3f} by id, "
                  f"over {len(recalls)} queries")

        memory = MemoryService(store.pool, embedder)
        person = await store.people.resolve(Sender("bench", "u1", "Bench"))
        facts = [f"Fact {i}: " + " ".join(rng.sample(queries[i % len(queries)].split() * 3, 3)) for i in range(200)]
        for fact in facts:
            await memory.memories.remember(person.id, fact)
        await timed(20, lambda i: memory.prompt_context(person.id, queries[i % len(queries)], recall=5))
        ms = await timed(len(queries), lambda i: memory.prompt_context(person.id, queries[i], recall=5))
        show("memory recall per turn (200 memories, top 5, embedding included)", ms)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
