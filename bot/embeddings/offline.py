"""The offline default: WordLlama static token embeddings, pooled by mean, no network, no API key.

WordLlama's weights (32k tokens × 256 dims, 16 MB) and tokenizer ship inside its wheel. Its own
loader looks in the wrong folder and then tries the network, so we point it at the package folder
with downloads disabled. Embedding is the same maths as `WordLlama.embed(norm=True)` (mean of
token vectors, then L2 norm) but without padding every text of a batch to the longest one: the
token ids are concatenated and summed per text with `np.add.reduceat` in small slices that stay in
cache, about 1.6× faster on 1,000-character chunks. See docs/knowledge.md for why this model.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from pathlib import Path
from typing import Any

from bot.embeddings.base import Embedder, EmbeddingError

# Texts summed per numpy slice: small enough that the gathered token vectors stay in cache.
_SLICE = 8


class WordLlamaEmbedder(Embedder):
    name = "wordllama/l2_supercat-256"
    dim = 256

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                try:
                    import wordllama
                    from wordllama import WordLlama
                except ImportError as exc:  # pragma: no cover - a dependency of the package
                    raise EmbeddingError("the offline embedder needs the `wordllama` package") from exc
                folder = Path(wordllama.__file__).parent
                try:
                    model = WordLlama.load(cache_dir=folder, disable_download=True)
                except Exception as exc:
                    raise EmbeddingError(f"cannot load the WordLlama weights bundled in {folder}: {exc}") from exc
                model.tokenizer.no_padding()
                self._model = model
            return self._model

    def embed_sync(self, texts: list[str]) -> Any:
        """Embed in the calling thread; returns a float32 numpy array (n, 256) of unit rows."""
        import numpy as np

        model = self._load()
        table = model.embedding
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encoded = model.tokenizer.encode_batch(texts, add_special_tokens=False)
        for start in range(0, len(encoded), _SLICE):
            ids_lists = [e.ids for e in encoded[start:start + _SLICE]]
            lengths = np.fromiter((len(ids) for ids in ids_lists), dtype=np.int64, count=len(ids_lists))
            total = int(lengths.sum())
            if total == 0:
                continue
            ids = np.fromiter(itertools.chain.from_iterable(ids_lists), dtype=np.int32, count=total)
            np.clip(ids, 0, table.shape[0] - 1, out=ids)
            offsets = np.zeros(len(lengths), dtype=np.int64)
            np.cumsum(lengths[:-1], out=offsets[1:])
            present = lengths > 0
            sums = np.add.reduceat(np.take(table, ids, axis=0), offsets[present], axis=0, dtype=np.float32)
            out[start:start + len(ids_lists)][present] = sums / lengths[present, None]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        out /= norms
        return out

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        # Tokenising and pooling release the GIL for the heavy parts: keep the loop free.
        array = await asyncio.to_thread(self.embed_sync, list(texts))
        return array.tolist()

    async def embed_array(self, texts: list[str]) -> Any:
        return await asyncio.to_thread(self.embed_sync, list(texts))
