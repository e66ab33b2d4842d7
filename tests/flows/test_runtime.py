"""A message in, a flow run, a reply out — through the real bus, store and LLM layer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.console import ConsoleAdapter
from bot.app import App
from bot.events import ConversationRef, Event, EventKind, Sender
from bot.store.runs import RunStatus
from tests.apps import NullOutput, make_config
from tests.fakes.openai import Error, FakeOpenAI, Hang, Text, ToolCalls


@pytest.fixture(scope="module")
async def app(database_url: str, tmp_path_factory: pytest.TempPathFactory, fake_llm: FakeOpenAI) -> AsyncIterator[App]:
    config = make_config(
        database_url,
        tmp_path_factory.mktemp("data"),
        llm_base_url=fake_llm.base_url,
        llm={"timeout": 2, "max_retries": 0},
    )
    console = ConsoleAdapter(user="ada", out=NullOutput(), stream=False)
    application = App(config, with_server=False, adapters=[console])
    await application.start()
    yield application
    await application.stop()


def console_of(app: App) -> ConsoleAdapter:
    adapter = app.live_adapters[0]
    assert isinstance(adapter, ConsoleAdapter)
    return adapter


async def say(app: App, text: str) -> list[str]:
    console = console_of(app)
    before = len(console.replies)
    event_id = await console.say(text)
    assert await console.wait_turn(event_id, 15)
    return [r.text for r in console.replies[before:]]


async def test_free_text_is_answered_by_the_configured_model(app: App, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Text("Paris is the capital of France."))
    assert await say(app, "What is the capital of France?") == ["Paris is the capital of France."]
    prompt = fake_llm.requests[-1]["messages"]
    assert prompt[0]["role"] == "system" and "ada" in prompt[0]["content"]
    assert prompt[-1] == {"role": "user", "content": "What is the capital of France?"}
    # The default assistant is an agent with the safe built-in tools.
    offered = [t["function"]["name"] for t in fake_llm.requests[-1]["tools"]]
    assert offered == ["current_time", "calculator", "knowledge_search", "remember", "recall"]


async def test_the_default_assistant_can_use_a_safe_tool_before_answering(app: App, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(ToolCalls([("calculator", {"expression": "1234 * 5678"})]), Text("1234 × 5678 = 7006652."))
    assert await say(app, "What is 1234 times 5678?") == ["1234 × 5678 = 7006652."]
    tool_turn = fake_llm.requests[-1]["messages"][-1]
    assert tool_turn["role"] == "tool" and tool_turn["content"] == "7006652"


async def test_the_conversation_history_reaches_the_model(app: App, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Text("Nice to meet you, Ada."), Text("You told me your name is Ada."))
    await say(app, "My name is Ada.")
    await say(app, "What is my name?")
    contents = [m["content"] for m in fake_llm.requests[-1]["messages"]]
    assert "My name is Ada." in contents and "Nice to meet you, Ada." in contents
    assert contents[-1] == "What is my name?"


async def test_help_lists_what_the_bot_can_do_without_a_model(app: App) -> None:
    (text,) = await say(app, "help")
    assert "assistant" in text and "/sb help" in text
    (again,) = await say(app, "/sb help")
    assert again == text


async def test_a_model_error_gives_a_short_apology_and_the_next_message_works(app: App, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Error(status=500), Error(status=500), Error(status=500), Error(status=500))
    (apology,) = await say(app, "this will fail")
    assert apology.startswith("Sorry") and "Traceback" not in apology
    run = (await app.store.runs.recent(1))[0]
    assert run.status is RunStatus.FAILED and run.error
    fake_llm.reset()
    fake_llm.script(Text("Back to normal."))
    assert await say(app, "and now?") == ["Back to normal."]


async def test_a_model_that_hangs_times_out_and_is_recorded(app: App, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Hang(30), Hang(30))
    (apology,) = await say(app, "slow question")
    assert "Sorry" in apology
    run = await app.store.runs.get((await app.store.runs.recent(1))[0].id, with_steps=True)
    assert run is not None and run.status is RunStatus.FAILED
    failed = next(s for s in run.step_records if s.node_id == "answer")
    assert failed.attempts == 2 and failed.error
    fake_llm.reset()


async def test_every_step_of_a_run_is_persisted(app: App, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Text("Recorded."))
    await say(app, "record this")
    run = await app.store.runs.get((await app.store.runs.recent(1))[0].id, with_steps=True)
    assert run is not None and run.status is RunStatus.SUCCEEDED and run.flow == "assistant"
    assert [s.node_id for s in run.step_records] == ["has_model", "docs", "answer", "cited"]
    answer = run.step_records[2]
    assert answer.outputs["text"] == "Recorded." and answer.tokens_in > 0 and answer.duration_ms > 0


async def test_a_redelivered_event_runs_once(app: App, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Text("Only once."))
    event = Event(
        id="console:redelivered-1",
        kind=EventKind.MESSAGE,
        channel="console",
        conversation=ConversationRef("console", "ada"),
        sender=Sender("console", "ada", "ada"),
        text="once please",
    )
    assert await app.bus.publish(event) is True
    assert await app.bus.publish(event) is False
    await asyncio.sleep(0.5)
    runs = [r for r in await app.store.runs.recent(5) if r.event_id == event.id]
    assert len(runs) == 1


async def test_an_interrupted_run_resumes_at_its_next_node_instead_of_starting_over(
    app: App, fake_llm: FakeOpenAI
) -> None:
    """A crash after `has_model` committed: the redelivered event continues at `answer`."""
    runtime = app.runtime
    assert runtime is not None
    flow = runtime.registry.get("assistant")
    assert flow is not None
    event = Event(
        id="console:crashed-1",
        kind=EventKind.MESSAGE,
        channel="console",
        conversation=ConversationRef("console", "crash"),
        sender=Sender("console", "ada", "ada"),
        text="survive a crash",
    )
    person = await app.store.people.resolve(event.sender)
    run_id = await app.store.runs.create(
        flow="assistant",
        event_id=event.id,
        conversation=event.conversation.key,
        person_id=person.id,
        next_node="answer",
        state={"values": {"has_model": {"branch": "else"}}, "vars": {}, "seq": 1},
    )
    await app.store.runs.finish(run_id, RunStatus.INTERRUPTED)
    fake_llm.script(Text("Resumed where I left off."))
    await app.bus.publish(event)
    for _ in range(100):
        run = await app.store.runs.get(run_id, with_steps=True)
        if run and run.status is RunStatus.SUCCEEDED:
            break
        await asyncio.sleep(0.05)
    assert run is not None and run.status is RunStatus.SUCCEEDED
    assert [s.node_id for s in run.step_records] == ["answer", "cited"]  # has_model was not run again


async def test_without_a_model_free_text_explains_how_to_configure_one(database_url: str, tmp_path: Path) -> None:
    config = make_config(database_url, tmp_path)
    console = ConsoleAdapter(user="bob", out=NullOutput(), stream=False)
    async with App(config, with_server=False, adapters=[console]) as no_model_app:
        (text,) = await say(no_model_app, "hello?")
    assert "no language model is configured" in text
    assert "SWITCHBOARD_MODEL=openai/gpt-4o-mini" in text


async def test_answers_from_the_default_collection_cite_their_sources(
    app: App, fake_llm: FakeOpenAI, tmp_path: Path
) -> None:
    handbook = tmp_path / "handbook.md"
    handbook.write_text("# On-call\n\nThe on-call engineer rotates every Monday at 09:00 UTC.\n")
    assert app.services is not None and app.services.knowledge is not None
    await app.services.knowledge.ingest([handbook], collection="default")
    fake_llm.script(Text("On-call rotates every Monday at 09:00 UTC [1]."))
    answer, sources = await say(app, "When does the on-call rotation change?")
    assert answer == "On-call rotates every Monday at 09:00 UTC [1]."
    assert sources.startswith("Sources:\n[1]") and "handbook.md" in sources
    system = fake_llm.requests[-1]["messages"][0]["content"]
    assert "rotates every Monday" in system  # the passage reached the prompt, numbered for citation
