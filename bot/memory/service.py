"""Wire per-person memory into the app: `attach(services)` is called by `bot.app` at start."""

from __future__ import annotations

import logging
from typing import Any

from bot.embeddings import create_embedder
from bot.memory import MemoryService, llm_summarizer

log = logging.getLogger("switchboard.memory")


async def attach(services: Any) -> None:
    """Set `services.memory` (and the shared `services.embedder` if nobody set it yet)."""
    if services.embedder is None:
        services.embedder = create_embedder(services.config.knowledge.embedding)
    llm = services.llm
    summarize = llm_summarizer(llm) if llm is not None and llm.configured() else None
    services.memory = MemoryService.from_config(services.store.pool, services.config, services.embedder,
                                                summarize=summarize)
    log.info("memory attached", extra={"embedder": services.embedder.name, "summaries": summarize is not None})
