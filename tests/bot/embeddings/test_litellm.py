"""The litellm embedder through the real litellm code path to a local OpenAI-compatible fake."""

from __future__ import annotations

import math

import pytest

from bot.embeddings import EmbeddingError
from bot.embeddings.litellm import LiteLLMEmbedder
from tests.fakes.openai import Error, FakeOpenAI

pytestmark = pytest.mark.slow  # the first litellm import takes ~5 s


async def test_vectors_come_back_in_order_normalised_and_batched() -> None:
    async with FakeOpenAI(embedding_dim=64) as fake:
        embedder = LiteLLMEmbedder("openai/text-embedding-3-small", 64, api_base=fake.base_url, api_key="sk-test",
                                   batch_size=2)
        vectors = await embedder.embed(["alpha release notes", "beta test plan", "gamma rays"])
        assert len(vectors) == 3 and all(len(v) == 64 for v in vectors)
        assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-5) for v in vectors)
        assert [r["input"] for r in fake.embedding_requests] == [["alpha release notes", "beta test plan"],
                                                                 ["gamma rays"]]
        assert vectors[0] != vectors[1]


async def test_a_wrong_dimension_or_a_provider_error_is_a_clear_embedding_error() -> None:
    async with FakeOpenAI(embedding_dim=32) as fake:
        wrong = LiteLLMEmbedder("openai/text-embedding-3-small", 64, api_base=fake.base_url, api_key="sk-test")
        with pytest.raises(EmbeddingError, match="returned 32-dimensional vectors but the config says dim: 64"):
            await wrong.embed(["x"])
        fake.script(Error(400, message="input too long"))  # not retried, unlike a 5xx
        right = LiteLLMEmbedder("openai/text-embedding-3-small", 32, api_base=fake.base_url, api_key="sk-test")
        with pytest.raises(EmbeddingError, match="embedding with openai/text-embedding-3-small failed"):
            await right.embed(["x"])
