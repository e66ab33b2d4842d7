"""`knowledge_search`: search the knowledge base (bot/knowledge) and return cited passages."""

from __future__ import annotations

from typing import Any

from bot.tools.base import ToolContext, ToolError
from bot.tools.decorator import tool


@tool(timeout=20)
async def knowledge_search(ctx: ToolContext, query: str, collection: str = "default", top_k: int = 5) -> Any:
    """Search the team's knowledge base (ingested documents) and return the best passages with their sources.

    Args:
        query: what to look for, in words.
        collection: the document collection to search.
        top_k: how many passages to return (1-10).
    """
    knowledge = getattr(ctx.services, "knowledge", None)
    if knowledge is None:
        raise ToolError("the knowledge base is not configured on this bot; answer without it")
    try:
        hits = await knowledge.search(query, collection=collection, top_k=max(1, min(top_k, 10)))
    except ValueError as exc:  # an unknown collection, or one embedded with another model
        raise ToolError(str(exc)) from None
    if not hits:
        return "No passages matched."
    return [{"source": h.citation, "heading": h.heading, "text": h.text} for h in hits]
