"""The `retrieve` node: numbered passages and citations for the prompt; no collection, no hits."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.embeddings import offline_embedder
from bot.events import Sender
from bot.knowledge import KnowledgeBase
from bot.store import Store
from flows.nodes.retrieve import RetrieveNode, RetrieveOptions
from tests.flows.nodes.test_remember import node, run_context


@pytest.fixture(scope="module")
async def kb(store: Store, tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    root = tmp_path_factory.mktemp("kb")
    (root / "travel.md").write_text("# Travel policy\n\nBook flights through Egencia at least 14 days ahead.")
    (root / "security.md").write_text("# Security\n\nReport lost badges to reception the same day.")
    base = KnowledgeBase(store.pool, offline_embedder())
    await base.ingest([str(root / "travel.md"), str(root / "security.md")])
    return base


async def test_hits_come_with_numbered_context_and_sources_to_cite(store: Store, kb: KnowledgeBase) -> None:
    sender = Sender("slack", "U-r", "R")
    ctx = run_context(store, sender, "room", "how early must I book a flight?", await store.people.resolve(sender),
                      knowledge=kb)
    result = await node(RetrieveNode, RetrieveOptions(top_k=1)).run(ctx)
    (hit,) = result.outputs["hits"]
    assert Path(hit["source"]).name == "travel.md" and hit["chunk"] == 0 and "Egencia" in hit["text"]
    assert result.outputs["context"].startswith(f"[1] {hit['source']}#0 — Travel policy\n")
    assert result.outputs["sources"] == f"[1] {hit['source']}#0"
    assert result.outputs["found"] is True and result.inputs == {"query": "how early must I book a flight?",
                                                                "collection": "default"}


async def test_a_missing_collection_or_no_knowledge_gives_no_hits(store: Store, kb: KnowledgeBase) -> None:
    sender = Sender("slack", "U-r", "R")
    person = await store.people.resolve(sender)
    missing = await node(RetrieveNode, RetrieveOptions(collection="nope")).run(
        run_context(store, sender, "room", "flights", person, knowledge=kb))
    assert missing.outputs == {"hits": [], "context": "", "sources": "", "count": 0, "found": False}
    disabled = await node(RetrieveNode, RetrieveOptions()).run(run_context(store, sender, "room", "flights", person))
    assert disabled.outputs["found"] is False


async def test_filters_and_the_query_template(store: Store, kb: KnowledgeBase) -> None:
    sender = Sender("slack", "U-r", "R")
    ctx = run_context(store, sender, "room", "badge", await store.people.resolve(sender), knowledge=kb)
    options = RetrieveOptions(query="lost {{ event.text }}", filters={"format": "pdf"})
    assert (await node(RetrieveNode, options).run(ctx)).outputs["count"] == 0
    found = await node(RetrieveNode, RetrieveOptions(query="lost {{ event.text }}", top_k=1)).run(ctx)
    assert Path(found.outputs["hits"][0]["source"]).name == "security.md"
