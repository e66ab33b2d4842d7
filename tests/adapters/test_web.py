"""The web channel: any OpenAI client can talk to a flow; the JSON/SSE API and the chat page work;
bad requests get clear JSON errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from bot.app import App
from tests.apps import make_config
from tests.fakes.openai import FakeOpenAI, Text


@pytest.fixture(scope="module")
async def app(database_url: str, tmp_path_factory: pytest.TempPathFactory, fake_llm: FakeOpenAI) -> AsyncIterator[App]:
    config = make_config(
        database_url,
        tmp_path_factory.mktemp("data"),
        llm_base_url=fake_llm.base_url,
        server={"max_message_bytes": 4096},
    )
    application = App(config)
    await application.start()
    yield application
    await application.stop()


@pytest.fixture
async def http(app: App) -> AsyncIterator[httpx.AsyncClient]:
    assert app.server is not None
    async with httpx.AsyncClient(base_url=app.server.url, timeout=30) as client:
        yield client


@pytest.fixture
def client(app: App) -> openai.AsyncOpenAI:
    assert app.server is not None
    return openai.AsyncOpenAI(base_url=f"{app.server.url}/v1", api_key="unused", max_retries=0)


async def test_the_openai_client_lists_flows_as_models(client: openai.AsyncOpenAI) -> None:
    models = {m.id async for m in client.models.list()}
    assert {"assistant", "help"} <= models


async def test_the_openai_client_gets_a_flow_answer(client: openai.AsyncOpenAI, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Text("Hello from the assistant flow."))
    completion = await client.chat.completions.create(
        model="assistant",
        messages=[
            {"role": "system", "content": "ignored by the flow's own system prompt"},
            {"role": "user", "content": "My favourite colour is teal."},
            {"role": "assistant", "content": "Noted: teal."},
            {"role": "user", "content": "What is my favourite colour?"},
        ],
    )
    assert completion.choices[0].message.content == "Hello from the assistant flow."
    sent = [m["content"] for m in fake_llm.requests[-1]["messages"]]
    assert "My favourite colour is teal." in sent and "Noted: teal." in sent  # the client's history is honoured
    assert sent[-1] == "What is my favourite colour?"


async def test_the_openai_client_can_stream(client: openai.AsyncOpenAI, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Text("one two three four five six seven eight", delay=0.0))
    stream = await client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "count"}], stream=True
    )
    pieces = [chunk.choices[0].delta.content or "" async for chunk in stream]
    assert "".join(pieces) == "one two three four five six seven eight"


async def test_an_unknown_model_is_a_404_in_openai_format(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert "not a flow" in str(info.value)


async def test_the_message_api_returns_the_replies_as_json(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/v1/messages", json={"user": "grace", "conversation": "c1", "text": "help"})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "succeeded" and body["run_id"]
    assert "Hi grace!" in body["replies"][0]["text"]


async def test_the_message_api_streams_server_sent_events(http: httpx.AsyncClient, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Text("streamed answer with several words in it"))
    events = []
    async with http.stream(
        "POST",
        "/api/v1/messages",
        headers={"Accept": "text/event-stream"},
        json={"user": "grace", "conversation": "c2", "text": "stream please"},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                events.append(line.removeprefix("event: "))
            elif line.startswith("data: ") and events[-1] == "reply":
                final = json.loads(line.removeprefix("data: "))
    assert events[0] == "accepted" and events[-1] == "done" and "reply" in events
    assert final["text"] == "streamed answer with several words in it"


async def test_malformed_json_is_a_400_with_a_json_error(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/v1/messages", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    missing = await http.post("/api/v1/messages", json={"user": "x"})
    assert missing.status_code == 400 and "`text` is required" in missing.json()["error"]["message"]


async def test_a_message_over_the_size_limit_is_a_413(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/v1/messages", json={"user": "x", "text": "a" * 10_000})
    assert response.status_code == 413
    assert "limit" in response.json()["error"]["message"]


async def test_health_and_chat_page(http: httpx.AsyncClient) -> None:
    health = await http.get("/healthz")
    assert health.status_code == 200 and health.json()["checks"]["database"]["ok"] is True
    page = await http.get("/")
    assert page.status_code == 200 and "<title>Switchboard</title>" in page.text
    assert "/api/v1/messages" in page.text
