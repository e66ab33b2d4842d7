"""`/sb kb ...` for admins: list, search, ingest confined to the allowed folders, delete."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.commands import CommandContext, parse_command
from bot.embeddings.base import Embedder
from bot.events import ConversationRef, Event, EventKind, Sender
from bot.knowledge import KnowledgeBase
from bot.knowledge.commands import kb_command
from bot.store import Store
from bot.store.people import Role


@pytest.fixture(scope="module")
def allowed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("allowed")
    (root / "faq.md").write_text("# FAQ\n\nThe office opens at 8:30 and closes at 18:00.")
    return root


@pytest.fixture(scope="module")
def kb(store: Store, embedder: Embedder, allowed: Path) -> KnowledgeBase:
    return KnowledgeBase(store.pool, embedder, allowed_roots=[allowed])


async def kb_says(store: Store, kb: KnowledgeBase, text: str) -> str:
    sender = Sender("slack", "U-admin", "Admin")
    parsed = parse_command(text)
    assert parsed is not None and parsed.name == "kb"
    person = await store.people.resolve(sender)

    async def reply(_: str) -> None:
        raise AssertionError("kb answers by returning text")

    event = Event(id=f"slack:{text}", kind=EventKind.COMMAND, channel="slack",
                  conversation=ConversationRef("slack", "C1"), sender=sender, text=text, command=parsed)
    ctx = CommandContext(event=event, person=person, args=parsed.args, text=parsed.text, reply=reply,
                         services={"knowledge": kb})
    return await kb_command(ctx)


def test_kb_is_for_admins() -> None:
    assert kb_command.__switchboard_command__.min_role is Role.ADMIN  # type: ignore[attr-defined]


async def test_ingest_search_list_and_delete_from_chat(store: Store, kb: KnowledgeBase, allowed: Path) -> None:
    assert "No collections yet" in await kb_says(store, kb, "/sb kb list")
    answer = await kb_says(store, kb, f"/sb kb ingest {allowed} --collection office")
    assert answer.startswith("1 files ingested into 'office'")
    found = await kb_says(store, kb, "/sb kb search when does the office open --collection office")
    assert found.startswith(f"[1] {allowed}/faq.md#0") and "8:30" in found
    assert "office: 1 documents" in await kb_says(store, kb, "/sb kb list")
    assert await kb_says(store, kb, "/sb kb delete office") == "Deleted collection 'office'."
    assert "no collection named 'office'" in await kb_says(store, kb, "/sb kb search hours -c office")


async def test_paths_outside_the_allowed_folders_are_refused(store: Store, kb: KnowledgeBase) -> None:
    answer = await kb_says(store, kb, "/sb kb ingest /etc/passwd")
    assert answer.startswith("Refused: /etc/passwd is outside the allowed folders")
    assert "No collections yet" in await kb_says(store, kb, "/sb kb list")


async def test_unknown_actions_show_the_usage(store: Store, kb: KnowledgeBase) -> None:
    assert "Usage: kb list" in await kb_says(store, kb, "/sb kb frobnicate")
