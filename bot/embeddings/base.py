"""The embedder contract: text in, unit-length vectors out, with a fixed dimension and a stable name.

The name and dimension are stored beside every vector, so a collection embedded with one model is
never searched with another (the scores would be meaningless).
"""

from __future__ import annotations

import abc
from typing import Any


class EmbeddingError(RuntimeError):
    """The embedder could not produce vectors (model missing, provider down, bad answer)."""


class Embedder(abc.ABC):
    #: Identifies the model: stored with each vector (`wordllama/l2_supercat-256`, `openai/text-embedding-3-small`).
    name: str
    #: Length of every vector this embedder returns.
    dim: int

    @abc.abstractmethod
    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One L2-normalised vector per text, in order. An empty list gives an empty list."""

    async def embed_one(self, text: str) -> list[float]:
        return (await self.embed([text]))[0]

    async def embed_array(self, texts: list[str]) -> Any:
        """The same vectors as a float32 numpy array (n, dim): the bulk path for ingestion."""
        import numpy as np

        vectors = await self.embed(texts)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)
