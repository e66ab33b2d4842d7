"""Wire knowledge collections into the app: `attach(services)` is called by `bot.app` at start."""

from __future__ import annotations

import logging
from typing import Any

from bot.embeddings import create_embedder
from bot.knowledge import KnowledgeBase

log = logging.getLogger("switchboard.knowledge")


async def attach(services: Any) -> None:
    """Set `services.knowledge` (and the shared `services.embedder` if nobody set it yet)."""
    if services.embedder is None:
        services.embedder = create_embedder(services.config.knowledge.embedding)
    services.knowledge = KnowledgeBase.from_config(services.store.pool, services.config, services.embedder)
    log.info("knowledge attached", extra={"embedder": services.embedder.name})
