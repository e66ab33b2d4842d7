"""Pluggable text embedders: the offline default (WordLlama) or any litellm embedding model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.embeddings.base import Embedder, EmbeddingError

if TYPE_CHECKING:
    from bot.config import EmbeddingSection

OFFLINE = "offline"

_offline: Embedder | None = None


def offline_embedder() -> Embedder:
    """The process-wide offline embedder (its 16 MB table is loaded once, on first use)."""
    global _offline
    if _offline is None:
        from bot.embeddings.offline import WordLlamaEmbedder

        _offline = WordLlamaEmbedder()
    return _offline


def create_embedder(section: EmbeddingSection | None = None) -> Embedder:
    """The embedder the config names; raises ValueError for a model without its `dim`."""
    if section is None or section.model in (OFFLINE, "wordllama", ""):
        return offline_embedder()
    if section.dim is None:
        raise ValueError(
            f"knowledge.embedding.dim is required for {section.model!r} (e.g. 1536 for openai/text-embedding-3-small)"
        )
    from bot.embeddings.litellm import LiteLLMEmbedder

    return LiteLLMEmbedder(
        section.model,
        section.dim,
        api_base=section.api_base,
        api_key=section.api_key,
        batch_size=section.batch_size,
        send_dimensions=section.send_dimensions,
    )


__all__ = ["OFFLINE", "Embedder", "EmbeddingError", "create_embedder", "offline_embedder"]
