"""Long-term memories: kept per person, recalled by meaning in any conversation and after a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.embeddings import offline_embedder
from bot.events import Sender
from bot.memory import MemoryKind, MemoryRequestError, MemoryService
from bot.store import Store
from bot.store.people import Person


@pytest.fixture(scope="module")
def memory(store: Store) -> MemoryService:
    return MemoryService(store.pool, offline_embedder())


async def person(store: Store, name: str, channel: str = "slack") -> Person:
    return await store.people.resolve(Sender(channel, f"U-{name}", name))


async def test_a_fact_said_once_is_recalled_by_meaning_later(store: Store, memory: MemoryService) -> None:
    ada = await person(store, "ada")
    await memory.memories.remember(ada.id, "My favourite programming language is Rust", source="slack")
    await memory.memories.remember(ada.id, "I live in Lisbon", kind=MemoryKind.FACT)
    await memory.memories.remember(ada.id, "Answer me in short bullet points", kind=MemoryKind.PREFERENCE)
    (best, *_) = await memory.memories.recall(ada.id, "which city does she live in?", k=3)
    assert best.content == "I live in Lisbon" and best.similarity is not None
    context = await memory.prompt_context(ada.id, "what language should I write the parser in?", recall=1)
    assert context.startswith("What you know about this person")
    assert "- My favourite programming language is Rust" in context


async def test_memories_survive_a_restart(database_url: str, tmp_path: Path) -> None:
    first = await Store.open(database_url, data_dir=tmp_path, pool_min=1, pool_max=2)
    grace = await first.people.resolve(Sender("telegram", "42", "grace"))
    await MemoryService(first.pool, offline_embedder()).memories.remember(grace.id, "I am allergic to peanuts")
    await first.close()

    second = await Store.open(database_url, data_dir=tmp_path, pool_min=1, pool_max=2)
    try:
        again = await second.people.resolve(Sender("telegram", "42", "grace"))
        assert again.id == grace.id
        context = await MemoryService(second.pool, offline_embedder()).prompt_context(
            again.id, "can you suggest a snack with peanuts?")
        assert "I am allergic to peanuts" in context
    finally:
        await second.close()


async def test_memories_are_private_to_their_person(store: Store, memory: MemoryService) -> None:
    alan = await person(store, "alan")
    bob = await person(store, "bob")
    secret = await memory.memories.remember(alan.id, "My locker code is 4711")
    assert await memory.memories.recall(bob.id, "locker code") == []
    assert await memory.memories.delete(bob.id, secret.id) is False
    assert [m.content for m in await memory.memories.list(alan.id)] == ["My locker code is 4711"]


async def test_saying_the_same_thing_twice_keeps_one_memory(store: Store, memory: MemoryService) -> None:
    cid = await person(store, "cid")
    first = await memory.memories.remember(cid.id, "I work  on the payments team")
    second = await memory.memories.remember(cid.id, "i work on the Payments team")
    assert first.id == second.id
    assert len(await memory.memories.list(cid.id)) == 1


async def test_forgetting_by_id_by_words_and_everything(store: Store, memory: MemoryService) -> None:
    dee = await person(store, "dee")
    coffee = await memory.memories.remember(dee.id, "I drink coffee black")
    await memory.memories.remember(dee.id, "I like green tea")
    await memory.memories.remember(dee.id, "My manager is Eve")
    await memory.memories.remember(dee.id, "My dog is called 100%_sure")
    assert await memory.memories.delete(dee.id, coffee.id) is True
    assert [m.content for m in await memory.memories.forget_matching(dee.id, "TEA")] == ["I like green tea"]
    assert await memory.memories.forget_matching(dee.id, "%") != []  # a literal percent sign, not a wildcard
    assert await memory.memories.forget_all(dee.id) == 1
    assert await memory.memories.list(dee.id) == []
    assert await memory.prompt_context(dee.id, "who is my manager?") == ""


async def test_export_is_json_with_identities_and_memories(store: Store, memory: MemoryService) -> None:
    eve = await person(store, "eve", channel="discord")
    await memory.memories.remember(eve.id, "Prefers metric units", kind=MemoryKind.PREFERENCE)
    data = json.loads(json.dumps(await memory.memories.export(eve.id)))
    assert data["person"]["name"] == "eve"
    assert data["identities"] == [{"channel": "discord", "user_id": "U-eve", "name": "eve",
                                   "first_seen": data["identities"][0]["first_seen"]}]
    assert [(m["kind"], m["content"]) for m in data["memories"]] == [("preference", "Prefers metric units")]


async def test_empty_or_oversized_memories_are_refused(store: Store, memory: MemoryService) -> None:
    fay = await person(store, "fay")
    with pytest.raises(MemoryRequestError, match="nothing to remember"):
        await memory.memories.remember(fay.id, "   ")
    with pytest.raises(MemoryRequestError, match="at most 2000 characters"):
        await memory.memories.remember(fay.id, "x" * 2001)
