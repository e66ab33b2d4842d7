"""The offline embedder: no network, unit vectors, the same maths as WordLlama's own `embed`."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from bot.config import EmbeddingSection
from bot.embeddings import create_embedder, offline_embedder
from bot.embeddings.offline import WordLlamaEmbedder


async def test_vectors_are_unit_length_and_of_the_declared_dimension() -> None:
    embedder = offline_embedder()
    vectors = await embedder.embed(["deploy the service", "", "ünïcödé ✓"])
    assert len(vectors) == 3 and all(len(v) == embedder.dim == 256 for v in vectors)
    assert math.isclose(sum(x * x for x in vectors[0]), 1.0, rel_tol=1e-5)
    assert all(x == 0 for x in vectors[1])  # nothing to embed: a zero vector, not NaN
    assert await embedder.embed([]) == []


async def test_single_spaced_prose_gets_exactly_wordllamas_vector() -> None:
    import wordllama

    long = ("a much longer text, with commas; and (brackets) " * 30).strip()
    texts = ["The build server lives in Frankfurt.", "short", long]
    reference = wordllama.WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
    expected = reference.embed(texts, norm=True)
    ours = WordLlamaEmbedder().embed_sync(texts)
    assert np.allclose(ours, expected, atol=1e-5)


async def test_whitespace_runs_do_not_change_the_meaning() -> None:
    embedder = WordLlamaEmbedder()
    plain, indented = embedder.embed_sync(["def main(): return run(args)",
                                           "def main():\n        return run(args)\n\n\n"])
    assert np.allclose(plain, indented, atol=1e-6)


async def test_related_texts_are_closer_than_unrelated_ones() -> None:
    embedder = offline_embedder()
    query, near, far = await embedder.embed(["how do I reset my password",
                                             "password reset instructions", "canteen lunch menu"])
    assert np.dot(query, near) > np.dot(query, far) + 0.2


def test_config_chooses_the_embedder() -> None:
    assert create_embedder(EmbeddingSection()) is offline_embedder()
    remote = create_embedder(EmbeddingSection(model="openai/text-embedding-3-small", dim=1536))
    assert (remote.name, remote.dim) == ("openai/text-embedding-3-small", 1536)
    try:
        create_embedder(EmbeddingSection(model="openai/text-embedding-3-small"))
    except ValueError as exc:
        assert "knowledge.embedding.dim is required" in str(exc)
    else:
        raise AssertionError("a remote model without dim must be refused")
