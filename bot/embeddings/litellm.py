"""Embeddings from any litellm provider (OpenAI, Azure, Ollama, Cohere, ...), chosen in config.

litellm is imported on first use, never at start: it costs ~5 s and ~185 MiB, and offline it
tries to fetch a cost map unless `LITELLM_LOCAL_MODEL_COST_MAP` is set before the import.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
from types import ModuleType
from typing import Any

from bot.embeddings.base import Embedder, EmbeddingError

log = logging.getLogger("switchboard.embeddings")

_module: ModuleType | None = None
_import_lock = threading.Lock()


def _load_litellm() -> ModuleType:
    global _module
    with _import_lock:
        if _module is None:
            os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
            import litellm

            litellm.suppress_debug_info = True
            litellm.turn_off_message_logging = True
            _module = litellm
    return _module


class LiteLLMEmbedder(Embedder):
    """`model` is a litellm model string (`openai/text-embedding-3-small`, `ollama/nomic-embed-text`)."""

    def __init__(
        self,
        model: str,
        dim: int,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        batch_size: int = 128,
        timeout: float = 60.0,
        send_dimensions: bool = False,
    ) -> None:
        if not model:
            raise ValueError("an embedding model name is required (e.g. openai/text-embedding-3-small)")
        if not 1 <= dim <= 4000:
            raise ValueError(
                f"embedding dim must be between 1 and 4000 (pgvector's halfvec HNSW limit), found {dim}"
            )
        self.name = model
        self.dim = dim
        self._api_base = api_base
        self._api_key = api_key
        self._batch_size = max(1, batch_size)
        self._timeout = timeout
        self._send_dimensions = send_dimensions

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        litellm = _module or await asyncio.to_thread(_load_litellm)
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            batch = [t if t.strip() else " " for t in texts[start:start + self._batch_size]]
            kwargs: dict[str, Any] = {"model": self.name, "input": batch, "timeout": self._timeout}
            if self._api_base:
                kwargs["api_base"] = self._api_base
            if self._api_key:
                kwargs["api_key"] = self._api_key
            if self._send_dimensions:
                kwargs["dimensions"] = self.dim
            try:
                response = await litellm.aembedding(**kwargs)
            except Exception as exc:
                # The provider's message, never the key (litellm does not echo it).
                raise EmbeddingError(f"embedding with {self.name} failed: {type(exc).__name__}: {exc}") from exc
            data = sorted(_items(response), key=lambda item: item["index"])
            if len(data) != len(batch):
                raise EmbeddingError(f"{self.name} returned {len(data)} vectors for {len(batch)} texts")
            for item in data:
                vectors.append(_normalised(item["embedding"], self.dim, self.name))
        return vectors


def _items(response: Any) -> list[dict[str, Any]]:
    data = response["data"] if isinstance(response, dict) else response.data
    return [d if isinstance(d, dict) else {"index": d.index, "embedding": d.embedding} for d in data]


def _normalised(vector: Any, dim: int, model: str) -> list[float]:
    if isinstance(vector, str):
        raise EmbeddingError(f"{model} returned base64 vectors; expected floats")
    values = [float(v) for v in vector]
    if len(values) != dim:
        raise EmbeddingError(
            f"{model} returned {len(values)}-dimensional vectors but the config says dim: {dim}; fix `dim`"
        )
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]
