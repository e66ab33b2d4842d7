"""The LLM layer against a local fake OpenAI-compatible server, through both transports.

Every behaviour here (answers, streaming, tool calls, retries, fallbacks, timeouts, errors, accounting)
must be the same whether a call goes through the direct transport or through litellm's real code path,
so each test runs once per transport.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import LLMSection, ModelAlias
from bot.llm import LLM, NOT_CONFIGURED_MESSAGE, LLMError, LLMTimeout, ModelNotConfigured
from tests.conftest import free_port
from tests.fakes.openai import Error, FakeOpenAI, Hang, Text, ToolCalls

ALIAS_KEY = "sk-alias-0123456789abcdef"
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module", params=["direct", "litellm"])
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


# The transport of the test being run (set by `_fresh_fake`), for the sections the tests build.
_TRANSPORT = ["direct"]


@pytest.fixture(autouse=True)
def _fresh_fake(fake: FakeOpenAI, transport: str) -> None:
    fake.reset()
    _TRANSPORT[0] = transport


def section(**settings: Any) -> LLMSection:
    """`llm:` settings, with the transport under test."""
    return LLMSection(transport=_TRANSPORT[0], **settings)


def make_llm(fake: FakeOpenAI, **aliases: ModelAlias) -> LLM:
    models = {
        "fake": ModelAlias(model="openai/fake-model", api_base=fake.base_url, api_key=ALIAS_KEY, max_retries=1),
        **aliases,
    }
    # Tiny backoff so retry tests take milliseconds; the policy itself is what is under test.
    return LLM(section(default="fake", timeout=10, max_retries=2, models=models), backoff_base=0.01)


def user(text: str) -> list[dict]:
    return [{"role": "system", "content": "You are terse."}, {"role": "user", "content": text}]


# ---------------------------------------------------------------- plain, streamed, tool calls


async def test_plain_completion_goes_through_litellm_to_the_configured_endpoint(fake: FakeOpenAI) -> None:
    llm = make_llm(fake)

    answer = await llm.complete(user("hello there"), temperature=0.2, max_tokens=50)

    assert answer.text == "echo: hello there"
    assert answer.model == "openai/fake-model"
    assert answer.requested == "fake"
    assert answer.finish_reason == "stop"
    assert answer.tool_calls == []
    assert answer.attempts == 1
    assert answer.latency_ms > 0
    sent = fake.calls[-1]
    assert sent.body["model"] == "fake-model"
    assert sent.body["messages"][-1] == {"role": "user", "content": "hello there"}
    assert sent.body["temperature"] == 0.2
    assert sent.body["max_tokens"] == 50
    assert sent.headers["authorization"] == f"Bearer {ALIAS_KEY}"


async def test_streamed_text_arrives_piece_by_piece_in_order_and_reassembles(fake: FakeOpenAI) -> None:
    llm = make_llm(fake)
    fake.script(Text("one two three four five", chunk_delay=0.1))
    pieces: list[str] = []
    arrivals: list[float] = []

    async def on_delta(piece: str) -> None:
        pieces.append(piece)
        arrivals.append(time.monotonic())

    answer = await llm.complete(user("count"), on_delta=on_delta)

    assert pieces == ["one ", "two ", "three ", "four ", "five"]
    # The server waits 0.1 s between pieces (0.4 s in all): handed over as they arrive, they are spread
    # out; read to the end first, they would all come at once. (Loose bound: a busy machine compresses it.)
    assert arrivals[-1] - arrivals[0] >= 0.1
    assert answer.text == "one two three four five"
    assert fake.requests[-1]["stream"] is True
    # The final usage chunk was asked for and counted.
    assert fake.requests[-1]["stream_options"] == {"include_usage": True}
    assert answer.usage.tokens_out == 5


async def test_tool_calls_are_parsed_and_invalid_json_arguments_are_kept_raw(fake: FakeOpenAI) -> None:
    llm = make_llm(fake)
    tools = [{"type": "function", "function": {"name": "calculator", "parameters": {"type": "object"}}}]
    fake.script(ToolCalls([("calculator", {"expression": "2+2"}), ("lookup", '{"q": "unterminated')]))

    answer = await llm.complete(user("what is 2+2?"), tools=tools, tool_choice="auto")

    assert answer.finish_reason == "tool_calls"
    calc, lookup = answer.tool_calls
    assert (calc.name, calc.arguments, calc.valid) == ("calculator", {"expression": "2+2"}, True)
    assert calc.id.startswith("call_")
    assert (lookup.name, lookup.arguments, lookup.raw_arguments) == ("lookup", {}, '{"q": "unterminated')
    assert not lookup.valid
    assert fake.requests[-1]["tools"] == tools
    assert fake.requests[-1]["tool_choice"] == "auto"
    # The assistant turn can go straight back into the history for the tool results.
    assert answer.as_message()["tool_calls"][0]["function"] == {"name": "calculator", "arguments": calc.raw_arguments}


async def test_streamed_tool_calls_are_reassembled_from_fragments(fake: FakeOpenAI) -> None:
    llm = make_llm(fake)
    fake.script(ToolCalls([("calculator", {"expression": "12*(3+4)"}), ("clock", {})], text="Let me check."))
    pieces: list[str] = []

    async def on_delta(piece: str) -> None:
        pieces.append(piece)

    answer = await llm.complete(user("compute"), tools=[], on_delta=on_delta)

    assert "".join(pieces) == "Let me check." == answer.text
    assert [(c.name, c.arguments) for c in answer.tool_calls] == [
        ("calculator", {"expression": "12*(3+4)"}),
        ("clock", {}),
    ]
    assert answer.finish_reason == "tool_calls"


async def test_tool_results_go_back_to_the_model_in_openai_shape(fake: FakeOpenAI) -> None:
    llm = make_llm(fake)
    fake.script(ToolCalls([("calculator", {"expression": "2+2"})]), Text("It is 4."))
    history = user("what is 2+2?")

    first = await llm.complete(history, tools=[])
    history += [first.as_message(), {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "4"}]
    second = await llm.complete(history, tools=[])

    assert second.text == "It is 4."
    sent = fake.requests[-1]["messages"]
    assert sent[-2]["tool_calls"][0]["id"] == first.tool_calls[0].id
    assert sent[-1] == {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "4"}


# ---------------------------------------------------------------- retries, fallbacks, timeouts


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_a_429_is_retried_after_the_retry_after_delay_then_succeeds(fake: FakeOpenAI, stream: bool) -> None:
    llm = make_llm(fake)
    fake.script(Error(status=429, retry_after=0.3), Text("after the pause"))

    async def ignore(piece: str) -> None:
        pass

    started = time.monotonic()
    answer = await llm.complete(user("hi"), on_delta=ignore if stream else None)

    assert answer.text == "after the pause"
    assert time.monotonic() - started >= 0.3
    assert answer.attempts == 2
    # litellm and the openai SDK did not retry on their own: exactly our two attempts reached the server.
    assert len(fake.requests) == 2


async def test_a_500_is_retried_then_the_fallback_alias_answers(fake: FakeOpenAI) -> None:
    llm = make_llm(
        fake,
        primary=ModelAlias(
            model="openai/primary-model", api_base=fake.base_url, api_key=ALIAS_KEY, max_retries=1, fallbacks=["fake"]
        ),
    )
    fake.script(Error(status=500), Error(status=503), Text("from the fallback"))

    answer = await llm.complete(user("hi"), model="primary")

    assert answer.text == "from the fallback"
    assert answer.model == "openai/fake-model"
    assert (answer.attempts, answer.fallbacks_used, answer.requested) == (3, 1, "primary")
    assert [r["model"] for r in fake.requests] == ["primary-model", "primary-model", "fake-model"]
    usage = llm.usage_today()
    assert usage["openai/primary-model"]["failures"] == 1
    assert usage["openai/primary-model"]["attempts"] == 2
    assert usage["openai/fake-model"]["calls"] == 1


async def test_when_every_model_fails_the_error_names_them_and_is_retryable(fake: FakeOpenAI) -> None:
    llm = make_llm(
        fake,
        primary=ModelAlias(
            model="openai/primary-model", api_base=fake.base_url, api_key=ALIAS_KEY, max_retries=0, fallbacks=["fake"]
        ),
    )
    fake.script(*[Error(status=502)] * 3)

    with pytest.raises(LLMError) as caught:
        await llm.complete(user("hi"), model="primary")

    error = caught.value
    assert error.retryable and error.status == 502
    assert error.model == "openai/fake-model"
    assert "openai/primary-model" in str(error)
    assert error.attempts == 3


@pytest.mark.parametrize(
    ("status", "message", "code"),
    [
        (400, "This model's maximum context length is 8192 tokens.", "context_length_exceeded"),
        (401, f"Incorrect API key provided: {ALIAS_KEY}.", "invalid_api_key"),
        (404, "The model `nope` does not exist.", "model_not_found"),
    ],
)
async def test_non_retryable_errors_fail_at_once_without_fallbacks_or_secrets(
    fake: FakeOpenAI, status: int, message: str, code: str
) -> None:
    llm = make_llm(
        fake,
        primary=ModelAlias(model="openai/primary-model", api_base=fake.base_url, api_key=ALIAS_KEY, fallbacks=["fake"]),
    )
    fake.script(Error(status=status, message=message, code=code))

    with pytest.raises(LLMError) as caught:
        await llm.complete(user("hi"), model="primary")

    assert caught.value.status == status
    assert not caught.value.retryable
    assert ALIAS_KEY not in str(caught.value)
    assert str(caught.value).startswith("openai/primary-model: ")
    assert len(fake.requests) == 1


async def test_a_hanging_model_raises_llm_timeout_within_the_alias_timeout(fake: FakeOpenAI) -> None:
    llm = make_llm(
        fake,
        slow=ModelAlias(
            model="openai/slow-model", api_base=fake.base_url, api_key=ALIAS_KEY, timeout=0.4, max_retries=0
        ),
    )
    fake.script(Hang(30))

    started = time.monotonic()
    with pytest.raises(LLMTimeout) as caught:
        await llm.complete(user("hi"), model="slow")

    assert time.monotonic() - started < 5.0  # the model hangs for 30 s; we gave up long before
    assert caught.value.retryable
    assert "0.4 s" in str(caught.value)


async def test_the_timeout_argument_overrides_the_alias_timeout_and_bounds_a_stream(fake: FakeOpenAI) -> None:
    llm = make_llm(
        fake,
        slow=ModelAlias(
            model="openai/slow-model", api_base=fake.base_url, api_key=ALIAS_KEY, timeout=30, max_retries=0
        ),
    )
    fake.script(Hang(30))

    async def on_delta(piece: str) -> None:  # never called: nothing arrives
        raise AssertionError(piece)

    with pytest.raises(LLMTimeout):
        await asyncio.wait_for(llm.complete(user("hi"), model="slow", timeout=0.3, on_delta=on_delta), 5)


async def test_a_failing_delta_consumer_is_not_retried_and_its_error_propagates(fake: FakeOpenAI) -> None:
    llm = make_llm(fake)

    async def on_delta(piece: str) -> None:
        raise ConnectionResetError("browser went away")

    with pytest.raises(ConnectionResetError, match="browser went away"):
        await llm.complete(user("hello"), on_delta=on_delta)
    assert len(fake.requests) == 1


async def test_a_stream_that_breaks_before_any_text_is_retried(fake: FakeOpenAI) -> None:
    llm = make_llm(fake)
    fake.script(Text("lost", break_after=0), Text("second try works"))
    pieces: list[str] = []

    async def on_delta(piece: str) -> None:
        pieces.append(piece)

    answer = await llm.complete(user("hi"), on_delta=on_delta)

    assert (answer.text, answer.attempts) == ("second try works", 2)
    assert "".join(pieces) == "second try works"


async def test_a_stream_that_breaks_after_text_was_shown_is_not_retried(fake: FakeOpenAI) -> None:
    llm = make_llm(fake)
    fake.script(Text("one two three four", break_after=2), Text("never asked for"))
    pieces: list[str] = []

    async def on_delta(piece: str) -> None:
        pieces.append(piece)

    with pytest.raises(LLMError) as caught:
        await llm.complete(user("hi"), on_delta=on_delta)

    # The person saw "one two " once; a retry would have shown a second, different beginning.
    assert pieces == ["one ", "two "]
    assert "broke off after it had started" in str(caught.value)
    assert len(fake.requests) == 1


# ---------------------------------------------------------------- configuration and accounting


async def test_with_no_model_configured_the_error_says_how_to_set_one() -> None:
    llm = LLM(section())

    assert llm.default_model == ""
    assert not llm.configured()
    assert llm.describe() == "no model configured"
    with pytest.raises(ModelNotConfigured) as caught:
        await llm.complete(user("hi"))
    assert str(caught.value) == NOT_CONFIGURED_MESSAGE
    assert "SWITCHBOARD_MODEL=openai/gpt-4o-mini" in str(caught.value)
    assert "llm.default in config/switchboard.yaml" in str(caught.value)


async def test_aliases_carry_their_own_endpoint_and_key_and_describe_never_shows_the_key(fake: FakeOpenAI) -> None:
    llm = make_llm(
        fake,
        other=ModelAlias(model="openai/other-model", api_base=fake.base_url, api_key="sk-other-key-987654321"),
        fallbacking=ModelAlias(model="openai/other-model", api_base="http://127.0.0.1:1/v1", fallbacks=["fake"]),
    )

    assert llm.configured("other") and llm.configured("fake")
    assert llm.describe("other") == f"openai/other-model via {fake.base_url}"
    assert llm.describe("fallbacking") == (
        f"openai/other-model via http://127.0.0.1:1/v1 (fallbacks: openai/fake-model via {fake.base_url})"
    )
    assert "sk-" not in llm.describe("other")
    proxied = ModelAlias(model="openai/x", api_base="https://bot:hunter2secret@proxy.example/v1")
    assert LLM(section(models={"p": proxied})).describe("p") == "openai/x via https://bot:***@proxy.example/v1"
    await llm.complete(user("hi"), model="other")
    assert fake.calls[-1].headers["authorization"] == "Bearer sk-other-key-987654321"
    assert fake.requests[-1]["model"] == "other-model"


async def test_alias_params_are_sent_and_explicit_arguments_win(fake: FakeOpenAI) -> None:
    llm = make_llm(
        fake,
        tuned=ModelAlias(
            model="openai/tuned-model",
            api_base=fake.base_url,
            api_key=ALIAS_KEY,
            params={"temperature": 0.9, "top_p": 0.5, "seed": 7},
        ),
    )

    await llm.complete(user("hi"), model="tuned", temperature=0.1)

    body = fake.requests[-1]
    assert (body["temperature"], body["top_p"], body["seed"]) == (0.1, 0.5, 7)


async def test_a_raw_model_string_uses_the_providers_environment_variables(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", fake.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment-42")
    llm = LLM(section(default="openai/env-model"))

    assert llm.default_model == "openai/env-model"
    assert llm.describe() == f"openai/env-model via {fake.base_url}"
    answer = await llm.complete(user("from env"))

    assert answer.text == "echo: from env"
    assert fake.calls[-1].headers["authorization"] == "Bearer sk-from-the-environment-42"


async def test_tokens_and_cost_are_accounted_per_call_and_per_model_today(fake: FakeOpenAI) -> None:
    import litellm

    llm = make_llm(
        fake,
        priced=ModelAlias(model="openai/gpt-4o-mini", api_base=fake.base_url, api_key=ALIAS_KEY),
        custom=ModelAlias(
            model="openai/house-model",
            api_base=fake.base_url,
            api_key=ALIAS_KEY,
            params={"input_cost_per_token": 0.001, "output_cost_per_token": 0.002},
        ),
    )

    known = await llm.complete(user("what does it cost"), model="priced")
    unknown = await llm.complete(user("and this"), model="fake")
    custom = await llm.complete(user("and ours"), model="custom")

    prices = litellm.model_cost["gpt-4o-mini"]
    assert known.usage.tokens_in > 0 and known.usage.tokens_out > 0
    price_in, price_out = prices["input_cost_per_token"], prices["output_cost_per_token"]
    assert known.usage.cost == pytest.approx(known.usage.tokens_in * price_in + known.usage.tokens_out * price_out)
    assert unknown.usage.cost == 0.0  # not in litellm's price map: zero, never an error
    assert custom.usage.cost == pytest.approx(custom.usage.tokens_in * 0.001 + custom.usage.tokens_out * 0.002)
    assert "input_cost_per_token" not in fake.requests[-1]

    async def ignore(piece: str) -> None:
        pass

    streamed = await llm.complete(user("streamed cost"), model="priced", on_delta=ignore)
    assert streamed.usage.cost == pytest.approx(
        streamed.usage.tokens_in * price_in + streamed.usage.tokens_out * price_out
    )
    today = llm.usage_today()
    assert today["openai/gpt-4o-mini"] == {
        "calls": 2,
        "failures": 0,
        "attempts": 2,
        "tokens_in": known.usage.tokens_in + streamed.usage.tokens_in,
        "tokens_out": known.usage.tokens_out + streamed.usage.tokens_out,
        "cost": pytest.approx(known.usage.cost + streamed.usage.cost),
    }
    assert today["openai/fake-model"]["calls"] == 1


async def test_many_concurrent_calls_each_get_their_own_answer(fake: FakeOpenAI) -> None:
    llm = make_llm(fake)
    fake.respond_with(lambda request: Text(f"re: {request['messages'][-1]['content']}", delay=0.2))

    answers = await asyncio.gather(*(llm.complete(user(f"message {i}")) for i in range(100)))

    assert [a.text for a in answers] == [f"re: message {i}" for i in range(100)]


async def test_a_retry_after_longer_than_we_wait_goes_straight_to_the_fallback(fake: FakeOpenAI) -> None:
    llm = make_llm(
        fake,
        primary=ModelAlias(
            model="openai/primary-model", api_base=fake.base_url, api_key=ALIAS_KEY, max_retries=3, fallbacks=["fake"]
        ),
    )
    llm.max_retry_after = 5.0
    fake.script(Error(status=429, retry_after=3600), Text("fallback answered"))

    answer = await llm.complete(user("hi"), model="primary")

    assert (answer.text, answer.model, answer.attempts) == ("fallback answered", "openai/fake-model", 2)


async def test_each_call_logs_one_line_with_figures_but_never_the_prompt_or_key(
    fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    llm = make_llm(fake)
    fake.script(Text("the secret answer"))

    with caplog.at_level(logging.INFO, logger="bot.llm"):
        await llm.complete(user("my private question"), metadata={"run_id": "run-7", "node": "answer"})

    (record,) = [r for r in caplog.records if r.name == "bot.llm"]
    assert record.levelno == logging.INFO
    fields = vars(record)
    assert fields["model"] == "openai/fake-model"
    assert fields["attempts"] == 1 and fields["tokens_in"] > 0 and fields["tokens_out"] == 3
    assert fields["latency_ms"] > 0
    assert fields["meta"] == {"run_id": "run-7", "node": "answer"}
    line = repr(fields)
    assert "private question" not in line and "secret answer" not in line and ALIAS_KEY not in line


async def test_an_unreachable_endpoint_is_retried_and_named_in_the_error() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}/v1"
    alias = ModelAlias(model="openai/nowhere", api_base=endpoint, api_key=ALIAS_KEY, max_retries=1)
    llm = LLM(section(default="nowhere", models={"nowhere": alias}), backoff_base=0.01)

    with pytest.raises(LLMError) as caught:
        await llm.complete(user("hi"))

    assert caught.value.retryable
    assert caught.value.attempts == 2
    assert f"could not reach the provider at {endpoint}" in str(caught.value)


async def test_a_name_that_is_neither_alias_nor_model_string_says_what_is_expected() -> None:
    llm = LLM(LLMSection(default="fast"))  # an alias that was never defined: not `openai/`, so litellm

    with pytest.raises(LLMError) as caught:
        await llm.complete(user("hi"))

    assert not caught.value.retryable
    assert "use an alias from llm.models or provider/model" in str(caught.value)


@pytest.mark.parametrize("transport", ["litellm"], indirect=True)  # about litellm's own loggers
async def test_litellm_logs_go_through_our_handlers_from_warning_up(fake: FakeOpenAI, transport: str) -> None:
    assert transport == "litellm"
    await make_llm(fake).complete(user("hi"))

    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logger = logging.getLogger(name)
        # Its own plain-text handler would bypass the JSON formatter and the secret redaction.
        assert logger.handlers == [] and logger.propagate
        assert logger.level == logging.WARNING


async def test_an_empty_conversation_is_refused_before_calling_anyone(fake: FakeOpenAI) -> None:
    with pytest.raises(LLMError, match="no messages"):
        await make_llm(fake).complete([])
    assert fake.requests == []


async def test_a_missing_api_key_is_a_clear_configuration_error(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    llm = make_llm(fake, keyless=ModelAlias(model="openai/keyless", api_base=fake.base_url, fallbacks=["fake"]))

    with pytest.raises(LLMError) as caught:
        await llm.complete(user("hi"), model="keyless")

    assert not caught.value.retryable
    assert "set OPENAI_API_KEY" in str(caught.value)
    assert fake.requests == []


@pytest.mark.slow
async def test_the_fake_serves_a_thousand_concurrent_slow_requests(fake: FakeOpenAI) -> None:
    import aiohttp  # a litellm dependency; httpx's pool is too slow at this concurrency to measure the fake

    fake.respond_with(lambda request: Text(f"re: {request['messages'][-1]['content']}", delay=1.0))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def ask(i: int) -> str:
            body = {"model": "fake-model", "messages": [{"role": "user", "content": str(i)}]}
            async with session.post(f"{fake.base_url}/chat/completions", json=body) as response:
                assert response.status == 200
                return (await response.json())["choices"][0]["message"]["content"]

        answers = await asyncio.gather(*(ask(i) for i in range(1000)))

    assert answers == [f"re: {i}" for i in range(1000)]


def test_importing_bot_llm_does_not_import_litellm() -> None:
    code = "import sys, bot.llm; print('litellm' in sys.modules, 'openai' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_a_bot_without_a_model_never_imports_litellm() -> None:
    code = """
import asyncio, sys, time
from bot.config import LLMSection
from bot.llm import LLM, ModelNotConfigured
llm = LLM(LLMSection())
assert not llm.configured() and llm.describe() == "no model configured"
try:
    asyncio.run(llm.complete([{"role": "user", "content": "hi"}]))
except ModelNotConfigured:
    pass
time.sleep(0.2)  # room for a background import, if one had been started
print('litellm' in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False"]
