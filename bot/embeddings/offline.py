"""The offline default: WordLlama static token embeddings, pooled by mean, no network, no API key.

WordLlama's weights (32k tokens × 256 dims, 16 MB) and tokenizer ship inside its wheel. Its own
loader looks in the wrong folder and then tries the network, so we point it at the package folder
with downloads disabled.

The vector is WordLlama's (mean of the token vectors, then L2 norm), computed faster:
- its tokenizer has no pre-tokenizer, so BPE runs over a whole 1,500-character chunk at once and
  dominates the cost; we tokenise each whitespace-separated word once (Llama's normaliser makes
  `word` and ` word` the same `▁word` pieces) and cache its ids, so a corpus is tokenised at the
  speed of dict look-ups;
- whitespace itself (runs of spaces, newlines) is not embedded: those tokens carry no meaning but
  dominate the mean of indented text;
- no padding of a batch to its longest text: the token vectors of a few texts are gathered at
  once and summed per text as contiguous blocks, in slices that stay in the CPU cache.
See docs/knowledge.md for the measured speed and why this model.
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
# Distinct words whose token ids are remembered (~100 bytes each); past it the cache starts over.
_CACHE_WORDS = 500_000


class WordLlamaEmbedder(Embedder):
    name = "wordllama/l2_supercat-256"
    dim = 256

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[int, ...]] = {}

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
        words = [text.split() for text in texts]
        with self._lock:
            ids_of = self._word_ids(model, words)
            for start in range(0, len(words), _SLICE):
                ids_lists = [list(itertools.chain.from_iterable(ids_of[w] for w in ws))
                             for ws in words[start:start + _SLICE]]
                lengths = np.fromiter((len(ids) for ids in ids_lists), dtype=np.int64, count=len(ids_lists))
                total = int(lengths.sum())
                if total == 0:
                    continue
                ids = np.fromiter(itertools.chain.from_iterable(ids_lists), dtype=np.int32, count=total)
                np.clip(ids, 0, table.shape[0] - 1, out=ids)
                vectors = np.take(table, ids, axis=0)
                end = 0
                for row, length in enumerate(lengths.tolist(), start=start):
                    if length:
                        # A contiguous row-block sum; np.add.reduceat on 2-D input is ~8x slower.
                        out[row] = vectors[end:end + length].sum(axis=0) / length
                        end += length
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        out /= norms
        return out

    def _word_ids(self, model: Any, words: list[list[str]]) -> dict[str, tuple[int, ...]]:
        """Token ids per word, tokenising only words not seen before (call with the lock held)."""
        cache = self._cache
        missing = list({w for ws in words for w in ws if w not in cache})
        if missing:
            if len(cache) + len(missing) > _CACHE_WORDS:
                cache.clear()
            for word, encoded in zip(missing, model.tokenizer.encode_batch(missing, add_special_tokens=False),
                                     strict=True):
                cache[word] = tuple(encoded.ids)
        return cache

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        # Tokenising and pooling release the GIL for the heavy parts: keep the loop free.
        array = await asyncio.to_thread(self.embed_sync, list(texts))
        return array.tolist()

    async def embed_array(self, texts: list[str]) -> Any:
        return await asyncio.to_thread(self.embed_sync, list(texts))
