"""Per-person memory: linked identities, long-term memories recalled by meaning, and history windows.

`MemoryService` is what the app hands to flows (`ctx.services.memory`) and commands: the llm node
calls `prompt_context()` to put what we know about the person (and the conversation's summary)
into its system prompt.
"""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool

from bot.embeddings import Embedder
from bot.memory.history import ConversationHistory, HistoryWindow, Summarize
from bot.memory.linking import IdentityLinker, LinkError, LinkResult
from bot.memory.store import Memory, MemoryKind, MemoryRequestError, MemoryStore

# Static embeddings score related short sentences from ~0.15: recall generously, a stray memory costs little.
DEFAULT_MIN_SIMILARITY = 0.1


class MemoryService:
    def __init__(self, pool: AsyncConnectionPool, embedder: Embedder, *, summarize: Summarize | None = None,
                 link_code_ttl: float = 600.0, default_recall: int = 5, history_tokens: int = 3000) -> None:
        self.memories = MemoryStore(pool, embedder)
        self.linker = IdentityLinker(pool, ttl_seconds=link_code_ttl)
        self.history = ConversationHistory(pool)
        self.summarize = summarize
        self.default_recall = default_recall
        self.history_tokens = history_tokens

    @classmethod
    def from_config(cls, pool: AsyncConnectionPool, config: Any, embedder: Embedder,
                    summarize: Summarize | None = None) -> MemoryService:
        section = config.memory
        return cls(pool, embedder, summarize=summarize, link_code_ttl=section.link_code_ttl,
                   default_recall=section.recall, history_tokens=section.history_tokens)

    async def prompt_context(
        self,
        person_id: int,
        query: str,
        *,
        recall: int | bool | None = None,
        summary: bool = False,
        conversation: str | None = None,
        min_similarity: float = DEFAULT_MIN_SIMILARITY,
    ) -> str:
        """Text for the system prompt: memories relevant to `query` and, if asked, the conversation summary.

        `recall` is how many memories (True/None: the configured default, 0/False: none).
        """
        k = self.default_recall if recall is None or recall is True else int(recall)
        blocks = []
        recalled = await self.memories.recall(person_id, query, k=k, min_similarity=min_similarity) if k else []
        if recalled:
            lines = "\n".join(f"- {m.content}" for m in recalled)
            blocks.append(f"What you know about this person from earlier conversations:\n{lines}")
        if summary and conversation:
            text = await self.history.summary(conversation)
            if text:
                blocks.append(f"Summary of the earlier conversation:\n{text}")
        return "\n\n".join(blocks)

    async def history_window(self, conversation: str, *, budget: int | None = None,
                             before_event: str | None = None) -> HistoryWindow:
        return await self.history.window(conversation, budget=budget or self.history_tokens,
                                         summarize=self.summarize, before_event=before_event)


def llm_summarizer(llm: Any, model: str | None = None) -> Summarize:
    """A `summarize(text)` that asks the configured model (`bot.llm.LLM.complete`)."""

    async def summarize(text: str) -> str:
        completion = await llm.complete([{"role": "user", "content": text}], model=model,
                                        metadata={"purpose": "history-summary"})
        return str(completion.text)

    return summarize


__all__ = [
    "HistoryWindow",
    "IdentityLinker",
    "LinkError",
    "LinkResult",
    "Memory",
    "MemoryKind",
    "MemoryRequestError",
    "MemoryService",
    "MemoryStore",
    "llm_summarizer",
]
