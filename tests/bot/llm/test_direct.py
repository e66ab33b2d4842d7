"""The direct transport: `openai/` models over our own HTTP client, same behaviour as litellm, no litellm.

The shared behaviour (retries, fallbacks, timeouts, streaming, tool calls, accounting) is specified in
test_client.py, which runs against both transports; this module covers what is particular to the
direct one: when it is chosen, what goes on the wire, SSE parsing, pricing without litellm, and that
litellm is never imported for it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import ValidationError

from bot.config import LLMSection, ModelAlias
from bot.llm import LLM, LLMError, LLMTimeout
from bot.llm.direct import _proxy_for, sse_data
from bot.llm.models import TransportKind
from bot.llm.pricing import price_file
from tests.fakes.openai import Error, FakeOpenAI, Hang, Text, ToolCalls

KEY = "sk-direct-0123456789abcdef"
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_fake(fake: FakeOpenAI) -> None:
    fake.reset()


def make_llm(fake: FakeOpenAI, **aliases: ModelAlias) -> LLM:
    models = {"fake": ModelAlias(model="openai/fake-model", api_base=fake.base_url, api_key=KEY, max_retries=1)}
    return LLM(LLMSection(default="fake", timeout=10, models={**models, **aliases}), backoff_base=0.01)


def user(text: str) -> list[dict]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


def went_direct(fake: FakeOpenAI) -> bool:
    """Our client says `switchboard`; the openai SDK under litellm says `AsyncOpenAI/Python ...`."""
    return fake.calls[-1].headers.get("user-agent") == "switchboard"


async def collect(pieces: list[str], piece: str) -> None:
    pieces.append(piece)


# ---------------------------------------------------------------- which transport a model uses


def test_auto_means_direct_for_openai_models_and_litellm_for_every_other_provider() -> None:
    section = LLMSection(
        default="openai/gpt-4o-mini",
        models={
            "local": ModelAlias(model="ollama/llama3"),
            "proxy": ModelAlias(model="openai/house", api_base="http://proxy/v1"),
            "forced": ModelAlias(model="openai/house", transport="litellm"),
            "vllm": ModelAlias(model="hosted_vllm/qwen", api_base="http://gpu:8000/v1", transport="direct"),
        },
    )
    llm = LLM(section, prefetch=False)

    assert llm.resolve().transport is TransportKind.DIRECT
    assert llm.resolve("proxy").transport is TransportKind.DIRECT
    assert llm.resolve("local").transport is TransportKind.LITELLM
    assert llm.resolve("forced").transport is TransportKind.LITELLM
    assert llm.resolve("vllm").transport is TransportKind.DIRECT
    assert llm.resolve("anthropic/claude-3-5-haiku-latest").transport is TransportKind.LITELLM
    assert LLM(LLMSection(default="openai/x", transport="litellm"), prefetch=False).resolve().transport == "litellm"
    with pytest.raises(ValidationError):
        LLMSection(transport="fastest")


def test_litellm_is_loaded_at_start_up_only_when_a_configured_model_needs_it() -> None:
    direct_only = LLMSection(
        default="main",
        models={"main": ModelAlias(model="openai/a", fallbacks=["openai/b"]), "b": ModelAlias(model="openai/c")},
    )
    with_fallback = LLMSection(default="main", models={"main": ModelAlias(model="openai/a", fallbacks=["ollama/x"])})

    assert LLM(direct_only, prefetch=False).transports_in_use() == {TransportKind.DIRECT}
    assert LLM(with_fallback, prefetch=False).transports_in_use() == {TransportKind.DIRECT, TransportKind.LITELLM}
    assert LLM(LLMSection(), prefetch=False).transports_in_use() == set()


@pytest.mark.slow  # imports litellm (~5 s idle, ~20 s on a busy machine) when no test before did
async def test_transport_litellm_still_goes_through_litellm(fake: FakeOpenAI) -> None:
    llm = make_llm(
        fake,
        via_litellm=ModelAlias(model="openai/fake-model", api_base=fake.base_url, api_key=KEY, transport="litellm"),
    )

    answer = await llm.complete(user("which way"), model="via_litellm")

    assert answer.text == "echo: which way"
    assert not went_direct(fake)
    await llm.complete(user("and now"))
    assert went_direct(fake)


# ---------------------------------------------------------------- the wire


async def test_a_plain_call_is_one_openai_shaped_post(fake: FakeOpenAI) -> None:
    llm = make_llm(
        fake,
        tuned=ModelAlias(
            model="openai/tuned-model",
            api_base=fake.base_url + "/",
            api_key=KEY,
            params={"seed": 7, "extra_headers": {"x-team": "ops"}, "input_cost_per_token": 0.0},
        ),
    )

    answer = await llm.complete(user("hello"), model="tuned", temperature=0.3, max_tokens=20)

    assert (answer.text, answer.finish_reason, answer.attempts) == ("echo: hello", "stop", 1)
    sent = fake.calls[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["x-team"] == "ops"
    assert sent.body == {
        "seed": 7,
        "messages": user("hello"),
        "temperature": 0.3,
        "max_tokens": 20,
        "model": "tuned-model",
    }
    assert went_direct(fake)


async def test_streamed_deltas_arrive_in_order_with_usage_from_the_final_chunk(fake: FakeOpenAI) -> None:
    llm = make_llm(fake)
    fake.script(Text("alpha beta gamma delta", chunk_delay=0.05))
    pieces: list[str] = []

    answer = await llm.complete(user("stream"), on_delta=lambda p: collect(pieces, p))

    assert pieces == ["alpha ", "beta ", "gamma ", "delta"]
    assert answer.text == "alpha beta gamma delta"
    body = fake.requests[-1]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert answer.usage.tokens_out == 4 and answer.usage.tokens_in > 0


async def test_tool_calls_plain_and_streamed_with_bad_json_kept_raw(fake: FakeOpenAI) -> None:
    llm = make_llm(fake)
    calls = [("calculator", {"expression": "6*7"}), ("lookup", '{"q": "unterminated')]
    fake.script(ToolCalls(calls), ToolCalls(calls, text="Checking."))
    tools = [{"type": "function", "function": {"name": "calculator", "parameters": {"type": "object"}}}]
    pieces: list[str] = []

    plain = await llm.complete(user("compute"), tools=tools, tool_choice="auto")
    streamed = await llm.complete(user("compute"), tools=tools, on_delta=lambda p: collect(pieces, p))

    for answer in (plain, streamed):
        calc, lookup = answer.tool_calls
        assert (calc.name, calc.arguments, calc.valid) == ("calculator", {"expression": "6*7"}, True)
        assert (lookup.name, lookup.arguments, lookup.raw_arguments) == ("lookup", {}, '{"q": "unterminated')
        assert not lookup.valid and calc.id.startswith("call_")
        assert answer.finish_reason == "tool_calls"
    assert "".join(pieces) == "Checking." == streamed.text
    assert fake.requests[0]["tools"] == tools and fake.requests[0]["tool_choice"] == "auto"


async def test_tool_results_are_sent_back_unchanged_and_empty_tool_lists_are_left_out(fake: FakeOpenAI) -> None:
    llm = make_llm(fake)
    fake.script(ToolCalls([("clock", {})]), Text("It is noon."))
    history = user("time?")

    first = await llm.complete(history, tools=[], tool_choice="auto")
    history += [
        first.as_message(),
        {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": '{"time": "12:00"}'},
    ]
    second = await llm.complete(history)

    assert second.text == "It is noon."
    assert fake.requests[-1]["messages"] == history
    # OpenAI rejects `tools: []` (and a tool_choice without tools).
    assert "tools" not in fake.requests[0] and "tool_choice" not in fake.requests[0]


# ---------------------------------------------------------------- failures: same semantics as litellm


async def test_a_429_with_retry_after_is_waited_for_and_retried(fake: FakeOpenAI) -> None:
    llm = make_llm(fake)
    fake.script(Error(status=429, retry_after=0.3), Text("after the pause"))

    started = time.monotonic()
    answer = await llm.complete(user("hi"))

    assert (answer.text, answer.attempts, len(fake.requests)) == ("after the pause", 2, 2)
    assert time.monotonic() - started >= 0.3


async def test_a_500_goes_to_the_fallback_once_retries_are_used_up(fake: FakeOpenAI) -> None:
    llm = make_llm(
        fake,
        primary=ModelAlias(
            model="openai/primary", api_base=fake.base_url, api_key=KEY, max_retries=0, fallbacks=["fake"]
        ),
    )
    fake.script(Error(status=500), Text("from the fallback"))

    answer = await llm.complete(user("hi"), model="primary")

    assert (answer.text, answer.model, answer.fallbacks_used) == ("from the fallback", "openai/fake-model", 1)
    assert llm.usage_today()["openai/primary"]["failures"] == 1


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_a_hanging_model_is_an_llm_timeout(fake: FakeOpenAI, stream: bool) -> None:
    llm = make_llm(
        fake, slow=ModelAlias(model="openai/slow", api_base=fake.base_url, api_key=KEY, timeout=0.3, max_retries=0)
    )
    fake.script(Hang(30))

    with pytest.raises(LLMTimeout) as caught:
        on_delta = (lambda piece: collect([], piece)) if stream else None
        await asyncio.wait_for(llm.complete(user("hi"), model="slow", on_delta=on_delta), 5)

    assert caught.value.retryable and "0.3 s" in str(caught.value)


async def test_a_401_says_to_check_the_key_and_never_shows_it(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_key = "sk-from-env-abcdef0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", env_key)
    llm = make_llm(fake, env=ModelAlias(model="openai/fake-model", api_base=fake.base_url, fallbacks=["fake"]))
    fake.script(Error(status=401, message=f"Incorrect API key provided: {env_key}.", code="invalid_api_key"))

    with pytest.raises(LLMError) as caught:
        await llm.complete(user("hi"), model="env")

    message = str(caught.value)
    assert message.startswith("openai/fake-model: the provider refused the credentials (HTTP 401); check the API key")
    assert env_key not in message and "abcdef0123456789" not in message
    assert (caught.value.status, caught.value.retryable, len(fake.requests)) == (401, False, 1)
    assert fake.calls[-1].headers["authorization"] == f"Bearer {env_key}"


async def test_a_non_openai_provider_forced_direct_needs_an_endpoint() -> None:
    llm = LLM(
        LLMSection(default="m", models={"m": ModelAlias(model="anthropic/claude", transport="direct")}),
        prefetch=False,
    )

    with pytest.raises(LLMError, match="direct transport needs an OpenAI-compatible endpoint") as caught:
        await llm.complete(user("hi"))
    assert not caught.value.retryable


# ---------------------------------------------------------------- tokens and cost, priced without litellm


async def test_usage_comes_from_the_response_and_cost_from_litellms_bundled_price_map(fake: FakeOpenAI) -> None:
    llm = make_llm(fake, priced=ModelAlias(model="openai/gpt-4o-mini", api_base=fake.base_url, api_key=KEY))
    path = price_file()
    assert path is not None and path.name == "model_prices_and_context_window_backup.json"
    prices = json.loads(path.read_text())["gpt-4o-mini"]

    plain = await llm.complete(user("what does it cost"), model="priced")
    streamed = await llm.complete(user("streamed cost"), model="priced", on_delta=lambda p: collect([], p))
    unknown = await llm.complete(user("no price"))

    for answer in (plain, streamed):
        usage = answer.usage
        assert usage.tokens_in > 0 and usage.tokens_out > 0
        expected = usage.tokens_in * prices["input_cost_per_token"] + usage.tokens_out * prices["output_cost_per_token"]
        assert usage.cost == pytest.approx(expected) and usage.cost > 0
    assert unknown.usage.cost == 0.0
    assert llm.usage_today()["openai/gpt-4o-mini"]["cost"] == pytest.approx(plain.usage.cost + streamed.usage.cost)


def test_a_direct_bot_never_imports_litellm_nor_openai() -> None:
    code = """
import asyncio, sys, time
from bot.config import LLMSection, ModelAlias
from bot.llm import LLM
from tests.fakes.openai import FakeOpenAI

async def main():
    async with FakeOpenAI() as fake:
        alias = ModelAlias(model="openai/gpt-4o-mini", api_base=fake.base_url, api_key="sk-x", fallbacks=["other"])
        other = ModelAlias(model="openai/other", api_base=fake.base_url, api_key="sk-x")
        llm = LLM(LLMSection(default="main", models={"main": alias, "other": other}))
        await llm.warm_up()
        plain = await llm.complete([{"role": "user", "content": "hi"}])
        async def ignore(piece):
            pass
        streamed = await llm.complete([{"role": "user", "content": "hi"}], on_delta=ignore)
        await llm.aclose()
        assert plain.text == streamed.text == "echo: hi" and plain.usage.cost > 0, (plain, streamed)

asyncio.run(main())
time.sleep(0.3)  # room for a background import, if one had been started
print("litellm" in sys.modules, "openai" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]
    assert "Unclosed" not in result.stderr


# ---------------------------------------------------------------- servers that bend the format


class RawServer:
    """An HTTP server answering chat completions with exactly the bytes queued, for odd providers."""

    def __init__(self) -> None:
        self.answers: deque[tuple[int, str, bytes]] = deque()
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    def queue(self, body: bytes, content_type: str = "text/event-stream", status: int = 200) -> None:
        self.answers.append((status, content_type, body))

    async def _chat(self, request: web.Request) -> web.Response:
        await request.read()
        status, content_type, body = self.answers.popleft()
        return web.Response(status=status, body=body, content_type=content_type)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture(scope="module")
async def raw() -> AsyncIterator[RawServer]:
    server = RawServer()
    await server.start()
    yield server
    await server.stop()


def raw_llm(raw: RawServer) -> LLM:
    alias = ModelAlias(model="openai/odd", api_base=raw.base_url, api_key=KEY, max_retries=0)
    return LLM(LLMSection(default="odd", models={"odd": alias}))


def event(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\r\n\r\n"


def delta(text: str) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


async def test_a_stream_without_usage_is_estimated_and_keep_alive_comments_are_skipped(raw: RawServer) -> None:
    raw.queue(b": keep-alive\r\n\r\n" + event(delta("Hello ")) + b"event: ping\r\n\r\n" + event(delta("world")))
    pieces: list[str] = []

    answer = await raw_llm(raw).complete(user("hi"), on_delta=lambda p: collect(pieces, p))

    assert pieces == ["Hello ", "world"]
    assert (answer.text, answer.finish_reason) == ("Hello world", "stop")
    assert answer.usage.tokens_in > 0 and answer.usage.tokens_out == 3  # ~4 characters a token


async def test_a_server_that_ignores_stream_true_still_answers_in_one_piece(raw: RawServer) -> None:
    message = {"role": "assistant", "content": "all at once"}
    payload = {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}], "usage": {}}
    raw.queue(json.dumps(payload).encode(), content_type="application/json")
    pieces: list[str] = []

    answer = await raw_llm(raw).complete(user("hi"), on_delta=lambda p: collect(pieces, p))

    assert pieces == ["all at once"] and answer.text == "all at once"


async def test_an_error_event_mid_stream_and_a_non_json_answer_are_clear_retryable_errors(raw: RawServer) -> None:
    raw.queue(event({"error": {"message": "upstream overloaded", "type": "server_error"}}))
    raw.queue(b"<html>gateway</html>", content_type="text/html")
    llm = raw_llm(raw)

    with pytest.raises(LLMError, match="reported an error during the answer \\(upstream overloaded\\)") as mid:
        await llm.complete(user("hi"), on_delta=lambda p: collect([], p))
    with pytest.raises(LLMError, match="not OpenAI-shaped JSON") as html:
        await llm.complete(user("hi"))

    assert mid.value.retryable and html.value.retryable


async def test_sse_events_are_parsed_across_arbitrary_chunk_boundaries() -> None:
    stream = b'data: {"a": 1}\n\n: comment\n\ndata: line one\r\ndata: line two\r\n\r\nid: 3\ndata: [DONE]\n\ndata: tail'

    for size in (1, 3, 7, len(stream)):

        async def chunks(size: int = size) -> AsyncIterator[bytes]:
            for start in range(0, len(stream), size):
                yield stream[start : start + size]

        assert [d async for d in sse_data(chunks())] == [b'{"a": 1}', b"line one\nline two", b"[DONE]", b"tail"]


def test_the_environments_proxy_settings_apply_per_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "llm.internal")
    _proxy_for.cache_clear()
    try:
        assert _proxy_for("https://api.openai.com/v1/chat/completions") == "http://proxy.internal:3128"
        assert _proxy_for("https://llm.internal/v1/chat/completions") is None
    finally:
        _proxy_for.cache_clear()
