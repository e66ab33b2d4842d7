"""`retrieve`: hybrid search of a knowledge collection; outputs passages numbered for citation.

    - id: docs
      kind: retrieve
      collection: default        # a missing or empty collection gives no hits, not an error
      top_k: 5
      filters: {format: pdf}

Later nodes use `{{ docs.context }}` (numbered passages for the prompt), `{{ docs.sources }}`
(the matching `[n] source#chunk` lines to cite) and `{{ docs.hits }}` (source, chunk, score, text).
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field

from flows.context import RunContext
from flows.nodes.base import Node, NodeKind, NodeOptions, NodeResult, node_kind

log = logging.getLogger("switchboard.flows")


class RetrieveOptions(NodeOptions):
    query: str = "{{ event.text }}"
    collection: str = "default"
    top_k: int = Field(5, ge=1, le=50)
    min_score: float = Field(0.0, ge=0.0, le=1.0)
    filters: dict[str, Any] = Field(default_factory=dict)


def _empty(query: str) -> NodeResult:
    return NodeResult(outputs={"hits": [], "context": "", "sources": "", "count": 0, "found": False},
                      inputs={"query": query})


@node_kind(NodeKind.RETRIEVE, options=RetrieveOptions, summary="Search a knowledge collection")
class RetrieveNode(Node[RetrieveOptions]):
    async def run(self, ctx: RunContext) -> NodeResult:
        from bot.knowledge import UnknownCollection, format_context, format_sources

        query = ctx.render(self.options.query).strip()
        knowledge = ctx.services.knowledge
        if knowledge is None or not query:
            return _empty(query)
        try:
            hits = await knowledge.search(query, collection=self.options.collection, top_k=self.options.top_k,
                                          filters=self.options.filters or None, min_score=self.options.min_score)
        except UnknownCollection:
            return _empty(query)
        return NodeResult(
            outputs={
                "hits": [h.as_dict() for h in hits],
                "context": format_context(hits),
                "sources": format_sources(hits),
                "count": len(hits),
                "found": bool(hits),
            },
            inputs={"query": query, "collection": self.options.collection},
        )

    def templates(self) -> dict[str, str]:
        return {"query": self.options.query}
