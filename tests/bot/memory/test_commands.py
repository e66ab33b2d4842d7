"""`/sb remember`, `/sb memory`, `/sb forget`, `/sb link` as a person uses them."""

from __future__ import annotations

import json

import pytest

from bot.commands import CommandContext, parse_command
from bot.embeddings import offline_embedder
from bot.events import ConversationRef, Event, EventKind, Sender
from bot.memory import MemoryService
from bot.memory.commands import forget_command, link_command, memory_command, remember_command
from bot.store import Store


@pytest.fixture(scope="module")
def memory(store: Store) -> MemoryService:
    return MemoryService(store.pool, offline_embedder())


async def run(store: Store, memory: MemoryService | None, sender: Sender, text: str) -> str:
    parsed = parse_command(text)
    assert parsed is not None
    person = await store.people.resolve(sender)
    event = Event(id=f"{sender.channel}:{text}", kind=EventKind.COMMAND, channel=sender.channel,
                  conversation=ConversationRef(sender.channel, "room"), sender=sender, text=text, command=parsed)

    async def reply(_: str) -> None:
        raise AssertionError("these commands answer by returning text")

    ctx = CommandContext(event=event, person=person, args=parsed.args, text=parsed.text, reply=reply,
                         services={"memory": memory} if memory else {})
    handler = {"remember": remember_command, "memory": memory_command, "forget": forget_command,
               "link": link_command}[parsed.name]
    answer = await handler(ctx)
    assert answer
    return answer


ADA = Sender("slack", "U-ada", "Ada")


async def test_remember_list_and_forget_one(store: Store, memory: MemoryService) -> None:
    answer = await run(store, memory, ADA, "/sb remember I prefer tea over coffee")
    assert answer.startswith("Noted (#") and answer.endswith("I prefer tea over coffee")
    await run(store, memory, ADA, "/sb remember preference: answers in French")
    listing = await run(store, memory, ADA, "/sb memory")
    assert "I remember 2 things about you:" in listing
    assert "answers in French (preference)" in listing
    memory_id = answer.split("#")[1].split(")")[0]
    assert await run(store, memory, ADA, f"/sb forget #{memory_id}") == f"Forgot #{memory_id}."
    assert "I prefer tea" not in await run(store, memory, ADA, "/sb memory")
    assert "no memory #999999" in await run(store, memory, ADA, "/sb forget #999999")


async def test_forget_by_words_and_everything(store: Store, memory: MemoryService) -> None:
    grace = Sender("telegram", "7", "Grace")
    await run(store, memory, grace, "/sb remember my cat is called Pixel")
    await run(store, memory, grace, "/sb remember I run on Tuesdays")
    assert "Forgot 1 memory:" in await run(store, memory, grace, "/sb forget pixel")
    assert "Nothing I remember" in await run(store, memory, grace, "/sb forget unicorns")
    assert "(1 memory)" in await run(store, memory, grace, "/sb forget everything")
    assert "don't remember anything" in await run(store, memory, grace, "/sb memory")


async def test_export_is_json_in_a_code_block(store: Store, memory: MemoryService) -> None:
    eve = Sender("discord", "9", "Eve")
    await run(store, memory, eve, "/sb remember I am on the SRE team")
    answer = await run(store, memory, eve, "/sb memory export")
    assert answer.startswith("```json\n") and answer.endswith("\n```")
    data = json.loads(answer[len("```json\n"):-len("\n```")])
    assert [m["content"] for m in data["memories"]] == ["I am on the SRE team"]


async def test_link_gives_a_code_and_the_code_joins_the_other_account(store: Store, memory: MemoryService) -> None:
    on_slack = Sender("slack", "U-lin", "Lin")
    on_email = Sender("email", "lin@example.com", "Lin")
    await run(store, memory, on_slack, "/sb remember my desk is 4B")
    answer = await run(store, memory, on_slack, "/sb link")
    code = answer.split("Your link code is ")[1].split(".")[0]
    assert f"`/sb link {code}`" in answer and "10 minutes" in answer
    linked = await run(store, memory, on_email, f"/sb link {code}")
    assert linked.startswith("Linked.") and "email" in linked and "slack" in linked
    assert "my desk is 4B" in await run(store, memory, on_email, "/sb memory")
    assert "Could not link: that link code is unknown" in await run(store, memory, on_email, f"/sb link {code}")


async def test_without_memory_the_commands_say_so(store: Store) -> None:
    assert await run(store, None, ADA, "/sb remember x") == "Memory is not enabled on this bot."


async def test_empty_requests_get_usage_hints(store: Store, memory: MemoryService) -> None:
    assert "Tell me what to remember" in await run(store, memory, ADA, "/sb remember")
    assert "Say what to forget" in await run(store, memory, ADA, "/sb forget")
