"""`/sb link`: one person across channels; memories, history and runs follow the person."""

from __future__ import annotations

import pytest

from bot.embeddings import offline_embedder
from bot.events import Sender
from bot.memory import LinkError, MemoryService
from bot.store import Store
from bot.store.people import Role


@pytest.fixture(scope="module")
def memory(store: Store) -> MemoryService:
    return MemoryService(store.pool, offline_embedder(), link_code_ttl=60)


async def test_a_code_from_one_channel_sent_from_another_joins_the_two(store: Store, memory: MemoryService) -> None:
    on_slack = await store.people.resolve(Sender("slack", "U1", "Ada"))
    on_telegram = await store.people.resolve(Sender("telegram", "99", "ada_t"))
    await store.people.set_role(on_telegram.id, Role.ADMIN)
    await memory.memories.remember(on_slack.id, "My timezone is Europe/Lisbon")
    await memory.memories.remember(on_telegram.id, "I prefer short answers")
    await memory.memories.remember(on_telegram.id, "my timezone is europe/lisbon")  # same fact on both sides
    await store.history.add("telegram::99:", "user", "hello from telegram", person_id=on_telegram.id)

    code = await memory.linker.create_code(on_slack.id, "slack")
    assert len(code) == 9 and code[4] == "-"
    result = await memory.linker.redeem(code.lower().replace("-", " "), on_telegram.id)  # forgiving typing

    assert result.person_id == min(on_slack.id, on_telegram.id)
    assert sorted(result.identities) == [("slack", "U1"), ("telegram", "99")]
    again_slack = await store.people.resolve(Sender("slack", "U1", "Ada"))
    again_telegram = await store.people.resolve(Sender("telegram", "99", "ada_t"))
    assert again_slack.id == again_telegram.id == result.person_id
    assert again_slack.role is Role.ADMIN  # the higher role of the two
    contents = sorted(m.content for m in await memory.memories.list(result.person_id))
    assert contents == ["I prefer short answers", "My timezone is Europe/Lisbon"]
    context = await memory.prompt_context(again_telegram.id, "what time is it for me?")
    assert "Europe/Lisbon" in context
    async with store.pool.connection() as conn:
        cur = await conn.execute("SELECT person_id FROM messages WHERE conversation = 'telegram::99:'")
        row = await cur.fetchone()
    assert row == (result.person_id,)


async def test_a_code_works_once(store: Store, memory: MemoryService) -> None:
    a = await store.people.resolve(Sender("slack", "U2", "Bob"))
    b = await store.people.resolve(Sender("discord", "77", "bob_d"))
    c = await store.people.resolve(Sender("email", "bob@example.com", "Bob"))
    code = await memory.linker.create_code(a.id, "slack")
    await memory.linker.redeem(code, b.id)
    with pytest.raises(LinkError, match="unknown or was already used"):
        await memory.linker.redeem(code, c.id)


async def test_a_code_cannot_link_a_person_to_themselves(store: Store, memory: MemoryService) -> None:
    a = await store.people.resolve(Sender("slack", "U3", "Cy"))
    code = await memory.linker.create_code(a.id, "slack")
    with pytest.raises(LinkError, match="from your other account"):
        await memory.linker.redeem(code, a.id)


async def test_an_expired_code_is_refused(store: Store) -> None:
    short = MemoryService(store.pool, offline_embedder(), link_code_ttl=0.001)
    a = await store.people.resolve(Sender("slack", "U4", "Di"))
    b = await store.people.resolve(Sender("telegram", "44", "di"))
    code = await short.linker.create_code(a.id, "slack")
    async with store.pool.connection() as conn:
        await conn.execute("SELECT pg_sleep(0.01)")
    with pytest.raises(LinkError, match="expired"):
        await short.linker.redeem(code, b.id)
    assert (await store.people.resolve(Sender("telegram", "44", "di"))).id == b.id  # nothing merged


async def test_a_new_code_replaces_the_previous_one(store: Store, memory: MemoryService) -> None:
    a = await store.people.resolve(Sender("slack", "U5", "Ed"))
    b = await store.people.resolve(Sender("telegram", "55", "ed"))
    old = await memory.linker.create_code(a.id, "slack")
    new = await memory.linker.create_code(a.id, "slack")
    with pytest.raises(LinkError):
        await memory.linker.redeem(old, b.id)
    assert (await memory.linker.redeem(new, b.id)).person_id == min(a.id, b.id)
