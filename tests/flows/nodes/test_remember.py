"""The `remember` node keeps facts per person; the llm node's `memory:` option brings them back later."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from bot.config import Config
from bot.embeddings import offline_embedder
from bot.events import ConversationRef, Event, EventKind, Sender
from bot.llm import LLM
from bot.memory import MemoryService
from bot.store import Store
from flows.context import RunContext, Services
from flows.model import FlowSpec, NodeSpec
from flows.nodes.llm import build_messages
from flows.nodes.remember import RememberNode, RememberOptions, parse_facts
from tests.fakes.openai import FakeOpenAI, Text


def run_context(store: Store, sender: Sender, room: str, text: str, person: Any, *, llm: LLM | None = None,
                memory: Any = None, knowledge: Any = None) -> RunContext:
    config = Config()
    services = Services(store=store, llm=llm or LLM(config.llm), bus=None, config=config,  # type: ignore[arg-type]
                        memory=memory, knowledge=knowledge)
    event = Event(id=f"{sender.channel}:{uuid.uuid4().hex}", kind=EventKind.MESSAGE, channel=sender.channel,
                  conversation=ConversationRef(sender.channel, room), sender=sender, text=text)
    flow = FlowSpec(name="test", description="", triggers=[], nodes=[])
    return RunContext(run_id=str(uuid.uuid4()), flow=flow, event=event, person=person, services=services)


def node(cls: Any, options: Any) -> Any:
    return cls(NodeSpec(id="n", kind=cls.kind, options={}), options)


@pytest.fixture(scope="module")
def memory(store: Store) -> MemoryService:
    return MemoryService(store.pool, offline_embedder())


async def test_a_fact_told_in_one_conversation_reaches_the_prompt_in_another(store: Store,
                                                                              memory: MemoryService) -> None:
    ada = Sender("slack", "U-ada", "Ada")
    person = await store.people.resolve(ada)
    first = run_context(store, ada, "C-general", "I am vegetarian", person, memory=memory)
    result = await node(RememberNode, RememberOptions(text="{{ event.text }}")).run(first)
    assert result.outputs["count"] == 1 and result.outputs["text"] == "I am vegetarian"

    later = run_context(store, ada, "D-direct-message", "suggest a dinner recipe with meat or vegetables", person,
                        memory=memory)
    messages = await build_messages(later, "You are helpful.", "{{ event.text }}", 0, {"recall": 3})
    assert messages[0]["role"] == "system"
    assert "You are helpful." in messages[0]["content"] and "- I am vegetarian" in messages[0]["content"]
    assert messages[-1] == {"role": "user", "content": "suggest a dinner recipe with meat or vegetables"}


@pytest.mark.slow  # imports litellm (~5 s)
async def test_extract_lets_the_model_pick_the_durable_facts(store: Store, memory: MemoryService) -> None:
    from bot.config import LLMSection

    grace = Sender("telegram", "42", "Grace")
    person = await store.people.resolve(grace)
    async with FakeOpenAI() as fake:
        fake.script(Text('```json\n["Grace works in the Lisbon office", "Grace prefers email over calls"]\n```'))
        section = LLMSection.model_validate({"default": "fake", "max_retries": 0, "models": {"fake": {
            "model": "openai/gpt-test", "api_base": fake.base_url, "api_key": "sk-test"}}})
        ctx = run_context(store, grace, "chat", "hi! I'm in the Lisbon office, and please email me rather than call",
                          person, llm=LLM(section), memory=memory)
        result = await node(RememberNode, RememberOptions(extract=True)).run(ctx)
        assert "please email me" in fake.requests[-1]["messages"][0]["content"]
    assert result.outputs["count"] == 2
    assert {m.content for m in await memory.memories.list(person.id)} == {
        "Grace works in the Lisbon office", "Grace prefers email over calls"}


def test_the_models_fact_list_is_read_leniently() -> None:
    assert parse_facts('Sure! ["a", "b"]') == ["a", "b"]
    assert parse_facts("[]") == []
    assert parse_facts("no list here") == []
    assert parse_facts("[not json]") == []


async def test_without_memory_the_node_fails_clearly(store: Store) -> None:
    sender = Sender("slack", "U-x", "X")
    ctx = run_context(store, sender, "r", "hi", await store.people.resolve(sender))
    with pytest.raises(RuntimeError, match="memory, which is not enabled"):
        await node(RememberNode, RememberOptions()).run(ctx)
