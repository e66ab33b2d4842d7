"""Hybrid search: pgvector HNSW nearest neighbours and PostgreSQL full-text, fused by reciprocal rank.

Each half returns its best `candidates` chunks; a chunk's fused score is the sum over the halves
of 1 / (RRF_K + rank) (Cormack et al., 2009), so a chunk both halves like wins, and either half
alone can still surface what the other misses: exact names and codes (full text) or paraphrases
(vectors). Scores are scaled so that first place in both lists is 1.0; `min_score` cuts there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from psycopg_pool import AsyncConnectionPool

RRF_K = 60
# Matching rows ranked per full-text tier (see `_sql`).
MATCH_CAP = 2000
_MAX_RRF = 2.0 / (RRF_K + 1)


class SearchMode(StrEnum):
    HYBRID = "hybrid"
    VECTOR = "vector"
    TEXT = "text"


@dataclass(frozen=True, slots=True)
class Hit:
    source: str
    chunk: int
    score: float
    text: str
    heading: str = ""
    page: int | None = None
    title: str = ""
    collection: str = ""
    similarity: float | None = None  # cosine similarity, when the vector half found it
    vector_rank: int | None = None
    text_rank: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def citation(self) -> str:
        """How an answer names this hit: `docs/install.md#3` or `guide.pdf#7 (p. 2)`."""
        where = f"{self.source}#{self.chunk}"
        return f"{where} (p. {self.page})" if self.page else where

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "chunk": self.chunk, "score": round(self.score, 6), "text": self.text,
            "heading": self.heading, "page": self.page, "title": self.title, "collection": self.collection,
            "similarity": None if self.similarity is None else round(self.similarity, 6),
            "vector_rank": self.vector_rank, "text_rank": self.text_rank, "citation": self.citation,
            "metadata": self.metadata,
        }


def any_word(query: str) -> bool:
    """Plain questions match chunks with any of their words (ranked by how many and how close).

    Chunks with every word still rank first. websearch syntax alone ANDs every word, which misses a
    chunk that lacks one filler word; a query that uses the syntax on purpose (quotes, `-word`, `or`)
    keeps its exact meaning.
    """
    lowered = f" {query.lower()} "
    return '"' not in query and " -" not in lowered and " or " not in lowered


def vector_literal(vector: Any) -> str:
    return "[" + ",".join(f"{float(v):.7g}" for v in vector) + "]"


def _sql(dim: int, mode: SearchMode) -> str:
    vec = f"""
    vec AS MATERIALIZED (
        SELECT id, row_number() OVER (ORDER BY dist) AS rank, 1 - dist AS similarity FROM (
            SELECT c.id, c.embedding::halfvec({dim}) <=> %(q)s::halfvec({dim}) AS dist
            FROM kb_chunks c
            WHERE c.dim = {dim} AND c.collection_id = ANY(%(collections)s) AND c.metadata @> %(filter)s::jsonb
            ORDER BY c.embedding::halfvec({dim}) <=> %(q)s::halfvec({dim})
            LIMIT %(candidates)s
        ) nearest
        WHERE 1 - dist >= %(min_similarity)s
    )"""
    # Full text in two tiers: chunks with every word first (websearch semantics), then, only when those
    # are too few, chunks with any word. Each tier ranks at most MATCH_CAP matching rows: GIN cannot
    # return rows in rank order, and ranking every chunk that contains a common word would cost
    # hundreds of milliseconds at 100k chunks.
    txt = f"""
    q AS MATERIALIZED (
        SELECT websearch_to_tsquery('english', %(text)s) AS every,
               replace(websearch_to_tsquery('english', %(text)s)::text, ' & ', ' | ')::tsquery AS some
    ),
    txt_all AS MATERIALIZED (
        SELECT m.id, ts_rank_cd(m.tsv, q.every, 32) AS r FROM (
            SELECT c.id, c.tsv FROM kb_chunks c, q
            WHERE c.tsv @@ q.every AND c.collection_id = ANY(%(collections)s) AND c.metadata @> %(filter)s::jsonb
            LIMIT {MATCH_CAP}
        ) m, q
        ORDER BY r DESC LIMIT %(candidates)s
    ),
    txt_any AS MATERIALIZED (
        SELECT m.id, ts_rank_cd(m.tsv, q.some, 32) AS r FROM (
            SELECT c.id, c.tsv FROM kb_chunks c, q
            WHERE %(any_word)s AND (SELECT count(*) FROM txt_all) < %(candidates)s
              AND c.tsv @@ q.some AND c.collection_id = ANY(%(collections)s) AND c.metadata @> %(filter)s::jsonb
            LIMIT {MATCH_CAP}
        ) m, q
        WHERE m.id NOT IN (SELECT id FROM txt_all)
        ORDER BY r DESC LIMIT %(candidates)s
    ),
    txt AS MATERIALIZED (
        SELECT id, row_number() OVER (ORDER BY tier, r DESC, id) AS rank FROM (
            SELECT id, r, 0 AS tier FROM txt_all UNION ALL SELECT id, r, 1 AS tier FROM txt_any
        ) tiers
    )"""
    empty_vec = "vec AS (SELECT NULL::bigint AS id, NULL::bigint AS rank, NULL::float8 AS similarity WHERE false)"
    empty_txt = "q AS (SELECT 1), txt AS (SELECT NULL::bigint AS id, NULL::bigint AS rank WHERE false)"
    parts = [vec if mode is not SearchMode.TEXT else empty_vec, txt if mode is not SearchMode.VECTOR else empty_txt]
    return f"""
    WITH {parts[0]}, {parts[1]},
    fused AS (
        SELECT coalesce(vec.id, txt.id) AS id, vec.rank AS vrank, txt.rank AS trank, vec.similarity,
               coalesce(1.0 / ({RRF_K} + vec.rank), 0) + coalesce(1.0 / ({RRF_K} + txt.rank), 0) AS rrf
        FROM vec FULL OUTER JOIN txt ON vec.id = txt.id
    )
    SELECT d.source, c.chunk_index, f.rrf, c.content, c.heading, c.metadata, d.title, f.similarity, f.vrank, f.trank,
           col.name
    FROM fused f
    JOIN kb_chunks c ON c.id = f.id
    JOIN kb_documents d ON d.id = c.document_id
    JOIN kb_collections col ON col.id = c.collection_id
    ORDER BY f.rrf DESC, f.similarity DESC NULLS LAST, c.id
    LIMIT %(top)s
    """


async def hybrid_search(
    pool: AsyncConnectionPool,
    *,
    query_text: str,
    query_vector: Any,
    dim: int,
    collection_ids: list[int],
    top_k: int = 5,
    filters: dict[str, Any] | None = None,
    min_score: float = 0.0,
    min_similarity: float = -1.0,
    candidates: int | None = None,
    ef_search: int = 100,
    mode: SearchMode = SearchMode.HYBRID,
) -> list[Hit]:
    """The best `top_k` chunks of the given collections for a query (text and its embedding)."""
    pool_size = candidates or max(top_k * 4, 40)
    scale = 1.0 if mode is SearchMode.HYBRID else 2.0  # one half alone: its first place is 1.0 too
    params = {
        "q": vector_literal(query_vector) if mode is not SearchMode.TEXT else None,
        "text": query_text,
        "any_word": any_word(query_text),
        "collections": collection_ids,
        "filter": json.dumps(filters or {}),
        "candidates": pool_size,
        "min_similarity": min_similarity,
        "top": top_k,
    }
    async with pool.connection() as conn, conn.transaction():
        # Iterative scans keep going when filters (collection, metadata) reject the nearest rows. JIT off:
        # compiling costs more than this statement runs when its estimate crosses jit_above_cost.
        await conn.execute(
            "SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', 'relaxed_order', true), "
            "set_config('jit', 'off', true)",
            (str(max(ef_search, pool_size)),),
        )
        # Never a prepared statement: PostgreSQL would switch to a generic plan after five runs, and
        # without the actual query terms and vector that plan is 50x slower.
        rows = await (await conn.execute(_sql(dim, mode), params, prepare=False)).fetchall()
    hits = []
    for source, index, rrf, text, heading, metadata, title, similarity, vrank, trank, collection in rows:
        score = min(1.0, float(rrf) * scale / _MAX_RRF)
        if score < min_score:
            continue
        meta = dict(metadata or {})
        page = meta.pop("page", None)
        hits.append(Hit(source, index, score, text, heading, page, title, collection,
                        None if similarity is None else float(similarity), vrank, trank, meta))
    return hits
