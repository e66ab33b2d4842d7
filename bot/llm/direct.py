"""The direct transport: OpenAI's chat-completions wire format over one shared aiohttp session, no litellm.

Why: litellm's own work is ~10 ms of CPU per plain call and ~22–25 ms per streamed one on our 2 cores
(its response objects, logging and pricing layers), so 1,000 concurrent conversations queue behind the
CPU for seconds. OpenAI-compatible endpoints (OpenAI, Azure-style proxies, vLLM, LM Studio, llama.cpp,
Ollama's /v1, a LiteLLM proxy) are the most common deployment and need none of that: one POST, plain
JSON or server-sent events parsed here as they arrive, ~1 ms of CPU a call.

Failures are raised as the same LLMErrors (status, retryable, Retry-After) litellm's are mapped to, so
`LLM`'s retries, fallbacks and accounting cannot tell the transports apart. Nothing here retries.

Why aiohttp and not httpx: measured here, httpx 0.28's connection pool spent ~11 ms of CPU per request
at 300 concurrent requests and took 34 s for 1,000 concurrent 1 s requests (its pool rescans every
connection on each event); aiohttp took 3.6 s and ~0.5 ms of CPU per request.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import weakref
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit
from urllib.request import getproxies, proxy_bypass

from bot.llm.completion import Completion, ToolCall, Usage, parse_tool_calls
from bot.llm.errors import LLMError, from_exception, missing_key_error, scrub
from bot.llm.models import ResolvedModel
from bot.llm.pricing import COST_PARAMS, cost, load_prices, prices_loaded
from bot.llm.streaming import StreamAssembler
from bot.llm.transport import ConsumerFailed, DeltaCallback, deliver

# aiohttp itself (~0.2 s to import) is imported on the first call, not when the bot starts.
if TYPE_CHECKING:
    import aiohttp

# Sized for a thousand conversations waiting on the model at once, each on its own keep-alive connection.
MAX_CONNECTIONS = 1000
KEEPALIVE_SECONDS = 30.0
# litellm keyword arguments an alias's `params` may carry that are not OpenAI request-body fields.
_NOT_BODY = frozenset(
    {
        *COST_PARAMS,
        "extra_headers",
        "extra_body",
        "organization",
        "api_version",
        "drop_params",
        "num_retries",
        "max_retries",
        "timeout",
        "custom_llm_provider",
    }
)
# After `data: [DONE]` a compliant server ends the body at once; a sloppy one gets this long to do it.
_DRAIN_SECONDS = 1.0
# A provider that streams no usage: estimate ~4 characters a token rather than record zero.
_CHARS_PER_TOKEN = 4

_closers: set[asyncio.Task[None]] = set()
_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = weakref.WeakKeyDictionary()


def shared_session() -> aiohttp.ClientSession:
    """The process's one HTTP session for the running event loop (connections belong to a loop)."""
    import aiohttp

    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None or session.closed:
        connector = aiohttp.TCPConnector(
            limit=MAX_CONNECTIONS, limit_per_host=0, keepalive_timeout=KEEPALIVE_SECONDS, ttl_dns_cache=300
        )
        session = aiohttp.ClientSession(
            connector=connector,
            headers={"user-agent": "switchboard"},
            # Per call (see `_timeouts`); none for the session as a whole.
            timeout=aiohttp.ClientTimeout(total=None),
            # Not trust_env: aiohttp would then look up proxies and ~/.netrc in a thread on every request.
            # HTTP(S)_PROXY / NO_PROXY are read once per endpoint instead (`_proxy_for`).
            trust_env=False,
        )
        _sessions[loop] = session
        # Closed when the loop shuts down (asyncio.run cancels leftover tasks), so an app that never calls
        # `LLM.aclose()` does not end with aiohttp's "Unclosed client session" warnings.
        closer = loop.create_task(_close_at_shutdown(session), name="llm-direct-session-closer")
        _closers.add(closer)
        closer.add_done_callback(_closers.discard)
    return session


async def _close_at_shutdown(session: aiohttp.ClientSession) -> None:
    try:
        await asyncio.get_running_loop().create_future()  # never set: waits for cancellation
    finally:
        await session.close()


async def close_shared_session() -> None:
    """Close the running loop's session and its connections (at shutdown; the next call opens a new one)."""
    session = _sessions.pop(asyncio.get_running_loop(), None)
    if session is not None:
        await session.close()


class ProviderError(Exception):
    """An HTTP error answer, shaped like litellm's exceptions so `errors.from_exception` maps it the same way."""

    def __init__(self, status: int | None, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status_code = status
        self.message = message
        self.headers = headers or {}


class ContextWindowExceededError(ProviderError):
    """A 400 saying the conversation does not fit the model (mapped to its own clear message)."""


class DirectTransport:
    """One attempt as a POST to `<api_base>/chat/completions` (see the module docstring)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    async def warm_up(self) -> None:
        if not prices_loaded():
            await asyncio.to_thread(load_prices)
        shared_session()

    async def attempt(
        self,
        target: ResolvedModel,
        request: dict[str, Any],
        call_timeout: float,
        on_delta: DeltaCallback | None,
        delivered: list[bool],
    ) -> Completion:
        import aiohttp

        url, headers, key = self._where(target)
        body = _body(target, request, stream=on_delta is not None)
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        if not prices_loaded():  # once per process, off the event loop
            await asyncio.to_thread(load_prices)
        try:
            if on_delta is None:
                return await self._plain(target, url, headers, payload, call_timeout, key)
            return await self._stream(target, url, headers, payload, body, call_timeout, on_delta, delivered, key)
        except (LLMError, ConsumerFailed):
            raise
        except TimeoutError:  # asyncio's or aiohttp's socket timeouts
            raise TimeoutError from None  # LLM words it with the timeout that applied
        except aiohttp.ClientConnectorError as exc:
            raise from_exception(exc, model=target.model, api_key=key, endpoint=self._base(target)) from None
        except aiohttp.ClientError as exc:
            detail = scrub(str(exc) or type(exc).__name__, key)
            raise LLMError(
                f"{target.model}: the connection to the provider broke ({detail})", model=target.model, retryable=True
            ) from None

    # -------------------------------------------------------------- the two shapes of an answer

    async def _plain(
        self, target: ResolvedModel, url: str, headers: dict[str, str], payload: bytes, call_timeout: float, key: str
    ) -> Completion:
        async with (
            asyncio.timeout(call_timeout),
            shared_session().post(
                url, data=payload, headers=headers, timeout=_timeouts(call_timeout), proxy=_proxy_for(url)
            ) as response,
        ):
            content = await response.read()
        if response.status >= 400:
            raise _http_error(target, response, content, key)
        return _from_json(target, _decode(target, content))

    async def _stream(
        self,
        target: ResolvedModel,
        url: str,
        headers: dict[str, str],
        payload: bytes,
        body: dict[str, Any],
        call_timeout: float,
        on_delta: DeltaCallback,
        delivered: list[bool],
        key: str,
    ) -> Completion:
        session = shared_session()
        loop = asyncio.get_running_loop()
        assembler = StreamAssembler()
        done = False
        try:
            async with (
                asyncio.timeout(call_timeout) as deadline,
                session.post(
                    url, data=payload, headers=headers, timeout=_timeouts(call_timeout), proxy=_proxy_for(url)
                ) as response,
            ):
                if response.status >= 400:
                    raise _http_error(target, response, await response.read(), key)
                if response.content_type == "application/json":
                    # A server that ignores `stream: true`: one piece with the whole answer.
                    completion = _from_json(target, _decode(target, await response.read()))
                    if completion.text:
                        await deliver(on_delta, completion.text, delivered)
                    return completion
                async for data in sse_data(response.content.iter_any()):
                    if done:
                        continue  # read to the end so the connection goes back to the pool
                    if data == b"[DONE]":
                        done = True
                        deadline.reschedule(loop.time() + min(call_timeout, _DRAIN_SECONDS))
                        continue
                    deadline.reschedule(loop.time() + call_timeout)
                    text = assembler.add(_chunk(target, data, key))
                    if text:
                        await deliver(on_delta, text, delivered)
                        deadline.reschedule(loop.time() + call_timeout)
        except TimeoutError:
            if not done:
                raise
        if not assembler.chunks:
            raise LLMError(f"{target.model}: the model sent an empty stream", model=target.model, retryable=True)
        tool_calls = assembler.tool_calls()
        text = assembler.full_text
        tokens_in, tokens_out = assembler.tokens_in, assembler.tokens_out
        if tokens_in is None or tokens_out is None:
            # The server ignored stream_options.include_usage: estimate rather than record zero.
            tokens_in, tokens_out = estimate_tokens(body["messages"], text, tool_calls)
        return Completion(
            text=text,
            tool_calls=tool_calls,
            model=target.model,
            usage=Usage(tokens_in, tokens_out, cost(target.model, tokens_in, tokens_out, target.params)),
            finish_reason=assembler.finish_reason or ("tool_calls" if tool_calls else "stop"),
            latency_ms=0.0,
            attempts=0,
        )

    # -------------------------------------------------------------- where the call goes

    def _base(self, target: ResolvedModel) -> str:
        return target.endpoint(self._environ)

    def _where(self, target: ResolvedModel) -> tuple[str, dict[str, str], str]:
        """URL, headers and key (for scrubbing; "" when none) of one call, or a clear configuration error."""
        # Only OpenAI's public default speaks OpenAI's format; another provider's must be configured.
        base = self._base(target) if target.provider == "openai" else target.configured_endpoint(self._environ) or ""
        if not base.startswith(("http://", "https://")):
            raise LLMError(
                f"{target.model}: the direct transport needs an OpenAI-compatible endpoint; set the alias's "
                "api_base (e.g. http://127.0.0.1:8000/v1)",
                model=target.model,
            )
        env = os.environ if self._environ is None else self._environ
        key = target.api_key or env.get(f"{target.provider.upper()}_API_KEY", "")
        headers = {"content-type": "application/json"}
        if key:
            headers["authorization"] = f"Bearer {key}"
        elif target.provider == "openai":
            # Like the openai SDK under litellm: refuse rather than send an anonymous request.
            raise missing_key_error(target.model)
        organization = target.params.get("organization")
        if organization:
            headers["openai-organization"] = str(organization)
        extra = target.params.get("extra_headers")
        if isinstance(extra, Mapping):
            headers.update({str(k): str(v) for k, v in extra.items()})
        return _chat_url(base), headers, key


@functools.lru_cache(maxsize=64)
def _chat_url(base: str) -> str:
    """`<api_base>/chat/completions`, keeping a query string (`?api-version=...` on Azure-style proxies)."""
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/chat/completions"))


@functools.lru_cache(maxsize=64)
def _proxy_for(url: str) -> str | None:
    """The HTTP(S)_PROXY that applies to `url` (None under NO_PROXY), like the openai SDK; read once per URL."""
    parts = urlsplit(url)
    if parts.hostname and proxy_bypass(parts.hostname):
        return None
    return getproxies().get(parts.scheme)


@functools.lru_cache(maxsize=16)
def _timeouts(call_timeout: float) -> aiohttp.ClientTimeout:
    import aiohttp

    # The whole attempt is bounded with asyncio.timeout; these only keep a socket from outliving it.
    return aiohttp.ClientTimeout(total=None, sock_connect=call_timeout, sock_read=call_timeout)


def _body(target: ResolvedModel, request: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    """The alias's params, then the call's own arguments (they win), then what only we decide."""
    body = {k: v for k, v in target.params.items() if k not in _NOT_BODY}
    extra = target.params.get("extra_body")
    if isinstance(extra, Mapping):
        body.update(extra)
    body.update(request)
    if not body.get("tools"):
        # OpenAI rejects `tools: []`, and a tool_choice without tools.
        body.pop("tools", None)
        body.pop("tool_choice", None)
    body["model"] = target.wire_model
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


async def sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The `data` of each server-sent event, as soon as its closing blank line arrives.

    Multi-line data is joined with newlines; comments (`: keep-alive`), `event:`, `id:` and `retry:`
    lines are skipped; CRLF or LF line ends.
    """
    buffer = b""
    data: list[bytes] = []
    async for chunk in chunks:
        buffer += chunk
        if b"\n" not in chunk:
            continue
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data:
                    yield b"\n".join(data)
                    data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
    if buffer.rstrip(b"\r").startswith(b"data:"):
        value = buffer.rstrip(b"\r")[5:]
        data.append(value[1:] if value.startswith(b" ") else value)
    if data:  # the body ended without the closing blank line
        yield b"\n".join(data)


def _chunk(target: ResolvedModel, data: bytes, key: str) -> dict[str, Any]:
    chunk = _decode(target, data)
    error = chunk.get("error")
    if error is not None or chunk.get("object") == "error":
        # Mid-stream failure: OpenAI sends {"error": {...}}, vLLM {"object": "error", "message": ...}.
        detail = error.get("message") if isinstance(error, dict) else (error or chunk.get("message"))
        raise LLMError(
            f"{target.model}: the provider reported an error during the answer ({scrub(str(detail), key)})",
            model=target.model,
            retryable=True,
        )
    return chunk


def _decode(target: ResolvedModel, raw: bytes) -> dict[str, Any]:
    try:
        decoded = json.loads(raw)
    except ValueError:
        decoded = None
    if not isinstance(decoded, dict):
        raise LLMError(
            f"{target.model}: the provider's answer is not OpenAI-shaped JSON (is api_base an OpenAI-compatible "
            "/v1 endpoint?)",
            model=target.model,
            retryable=True,
        )
    return decoded


def _from_json(target: ResolvedModel, response: dict[str, Any]) -> Completion:
    choices = response.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        raise LLMError(f"{target.model}: the model sent no choices", model=target.model, retryable=True)
    choice = choices[0]
    message = choice.get("message") or {}
    text = message.get("content") or ""
    if isinstance(text, list):  # content parts
        text = "".join(part.get("text", "") for part in text if isinstance(part, dict))
    tool_calls = parse_tool_calls(message.get("tool_calls"))
    usage = response.get("usage") or {}
    tokens_in = int(usage.get("prompt_tokens") or 0)
    tokens_out = int(usage.get("completion_tokens") or 0)
    return Completion(
        text=text if isinstance(text, str) else str(text),
        tool_calls=tool_calls,
        model=target.model,
        usage=Usage(tokens_in, tokens_out, cost(target.model, tokens_in, tokens_out, target.params)),
        finish_reason=str(choice.get("finish_reason") or ("tool_calls" if tool_calls else "stop")),
        latency_ms=0.0,
        attempts=0,
        raw=response,
    )


def _http_error(target: ResolvedModel, response: aiohttp.ClientResponse, content: bytes, key: str) -> LLMError:
    """An error answer as an LLMError: status, Retry-After, the provider's own message without secrets."""
    detail, code = _error_detail(response, content)
    context = code == "context_length_exceeded" or "maximum context length" in detail.lower()
    kind = ContextWindowExceededError if response.status == 400 and context else ProviderError
    error = kind(response.status, detail, response.headers)
    return from_exception(error, model=target.model, api_key=key, endpoint=target.api_base)


def _error_detail(response: aiohttp.ClientResponse, content: bytes) -> tuple[str, str]:
    """The message and code of `{"error": {"message", "code"}}` (or the shapes other servers use)."""
    try:
        payload = json.loads(content)
    except ValueError:
        text = content.decode(errors="replace").strip()
        return (text[:300] or response.reason or f"HTTP {response.status}"), ""
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail") or json.dumps(error)[:300]
        return str(message), str(error.get("code") or "")
    return str(error), ""


def estimate_tokens(messages: list[dict], text: str, tool_calls: list[ToolCall]) -> tuple[int, int]:
    """~4 characters a token: for servers that stream no usage (litellm would run a tokenizer here)."""
    prompt = sum(len(json.dumps(m.get("content"), ensure_ascii=False)) + 4 for m in messages if isinstance(m, dict))
    answer = len(text) + sum(len(c.name) + len(c.raw_arguments) for c in tool_calls)
    return math.ceil(prompt / _CHARS_PER_TOKEN), math.ceil(answer / _CHARS_PER_TOKEN)
