"""End to end through the real App: memory and knowledge are attached at start and reach the model.

Say a fact in one conversation, ask in another — and after a restart — and the fact is in the
prompt the model receives; a document in the `default` collection is retrieved and numbered for
citation. Real bus, store, litellm, and the fake OpenAI server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.console import ConsoleAdapter
from bot.app import App
from bot.events import ConversationRef
from tests.apps import make_config
from tests.fakes.openai import FakeOpenAI, Text

pytestmark = pytest.mark.slow  # two App starts and the litellm import

FLOW = """
name: chat
description: Answers with what it knows about you and from the documents.
triggers:
  - default: true
nodes:
  - id: docs
    kind: retrieve
    top_k: 2
  - id: answer
    kind: llm
    system: |
      Be brief. Cite passages as [n].
      {{ docs.context }}
    memory: {recall: 3}
    reply: true
"""


class Sink:
    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


@pytest.fixture(scope="module")
async def fake_llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("flows")
    (folder / "chat.yaml").write_text(FLOW)
    return folder


async def start(database_url: str, data: Path, flows: Path, fake: FakeOpenAI) -> tuple[App, ConsoleAdapter]:
    config = make_config(database_url, data, llm_base_url=fake.base_url, flow_dirs=[flows],
                         llm={"timeout": 5, "max_retries": 0})
    console = ConsoleAdapter(user="ada", out=Sink(), stream=False)  # type: ignore[arg-type]
    app = App(config, with_server=False, adapters=[console])
    await app.start()
    return app, console


async def say(console: ConsoleAdapter, text: str) -> list[str]:
    before = len(console.replies)
    event_id = await console.say(text)
    assert await console.wait_turn(event_id, 20)
    return [r.text for r in console.replies[before:]]


async def test_memory_holds_across_conversations_and_restarts(database_url: str, flows: Path,
                                                              tmp_path: Path, fake_llm: FakeOpenAI) -> None:
    app, console = await start(database_url, tmp_path, flows, fake_llm)
    try:
        assert app.services.memory is not None and app.services.knowledge is not None
        (noted,) = await say(console, "/sb remember I am vegetarian")
        assert noted.startswith("Noted")
        console.conversation = ConversationRef("console", room="a-new-conversation")
        fake_llm.script(Text("Try a mushroom risotto."))
        assert await say(console, "suggest a dinner recipe with meat or vegetables") == ["Try a mushroom risotto."]
        assert "- I am vegetarian" in fake_llm.requests[-1]["messages"][0]["content"]
    finally:
        await app.stop()

    app, console = await start(database_url, tmp_path, flows, fake_llm)
    try:
        console.conversation = ConversationRef("console", room="after-restart")
        fake_llm.script(Text("A lentil curry."))
        await say(console, "what should I cook tonight, meat or vegetables?")
        assert "- I am vegetarian" in fake_llm.requests[-1]["messages"][0]["content"]
    finally:
        await app.stop()


async def test_documents_in_the_default_collection_are_retrieved_for_citation(
    database_url: str, flows: Path, tmp_path: Path, fake_llm: FakeOpenAI
) -> None:
    doc = tmp_path / "policy.md"
    doc.write_text("# Remote work\n\nEmployees may work remotely up to three days a week.")
    app, console = await start(database_url, tmp_path, flows, fake_llm)
    try:
        report = await app.services.knowledge.ingest([str(doc)])
        assert report.files == 1
        fake_llm.script(Text("Up to three days a week [1]."))
        await say(console, "how many days can I work remotely?")
        system = fake_llm.requests[-1]["messages"][0]["content"]
        assert f"[1] {doc}#0 — Remote work\n" in system and "three days a week" in system
    finally:
        await app.stop()
