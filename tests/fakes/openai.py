"""A local, programmable OpenAI-compatible server: the model every test (and benchmark) talks to.

It is a real HTTP server (Starlette on uvicorn, 127.0.0.1, OS-assigned port) speaking OpenAI's exact
wire format, so litellm's and the `openai` SDK's real code paths run: plain JSON, `stream: true`
server-sent events (text deltas, streamed `tool_calls` deltas, the final usage chunk when
`stream_options.include_usage`), embeddings, and the model list.

It runs on its own event loop in a background thread. That keeps it independent of the loop under
test (a test that blocks its loop, or uses a synchronous client, still gets answers) and lets one
instance serve a whole test module or a benchmark of 1,000 concurrent slow requests.

    async with FakeOpenAI() as fake:
        fake.script(Text("hello"), Error(status=429, retry_after=0.1), ToolCalls([("calculator", {"x": 1})]))
        ... litellm.acompletion(model="openai/fake", api_base=fake.base_url, api_key="sk-test", ...)
        assert fake.requests[-1]["messages"][-1]["content"] == "..."
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import inspect
import json
import logging
import math
import re
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

DEFAULT_MODEL = "fake-model"
_WORD = re.compile(r"\w+", re.UNICODE)


# ---------------------------------------------------------------- what a request can be answered with


@dataclass(frozen=True)
class Text:
    """An assistant text answer, sent after `delay` seconds (streamed word by word when asked to stream)."""

    text: str
    delay: float = 0.0
    finish_reason: str = "stop"
    # When streaming: drop the connection after this many text pieces (a provider dying mid-answer).
    break_after: int | None = None
    # When streaming: seconds between pieces (None: the server's `stream_chunk_delay`).
    chunk_delay: float | None = None


@dataclass(frozen=True)
class ToolCalls:
    """The model asks for tools: `(name, arguments)` pairs; arguments as a dict, or a raw string (may be bad JSON)."""

    calls: list[tuple[str, dict[str, Any] | str]]
    text: str = ""
    delay: float = 0.0


@dataclass(frozen=True)
class Error:
    """An HTTP error in OpenAI's error shape; `retry_after` (seconds) becomes a `Retry-After` header."""

    status: int = 500
    retry_after: float | None = None
    message: str = ""
    code: str | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class Hang:
    """Answer nothing for `seconds` (then a short text): for timeout tests."""

    seconds: float


Scripted = Text | ToolCalls | Error | Hang
Responder = Callable[[dict[str, Any]], "Scripted | str | Awaitable[Scripted | str]"]


@dataclass
class RecordedRequest:
    """One request the fake received: its path, headers (lower-cased names) and JSON body."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float = field(default_factory=time.time)


def echo(request: dict[str, Any]) -> Text:
    """The default responder: `echo: <last user message>`."""
    return Text(f"echo: {last_user_text(request)}")


def last_user_text(request: dict[str, Any]) -> str:
    for message in reversed(request.get("messages") or []):
        if message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


# ---------------------------------------------------------------- the server


class FakeOpenAI:
    """A programmable OpenAI-compatible HTTP server on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        *,
        embedding_dim: int = 64,
        api_key: str | None = None,
        models: Iterable[str] = (DEFAULT_MODEL,),
        stream_chunk_delay: float = 0.0,
    ) -> None:
        self.embedding_dim = embedding_dim
        # When set, requests must carry `Authorization: Bearer <api_key>` (else 401, like OpenAI).
        self.api_key = api_key
        self.models = list(models)
        self.stream_chunk_delay = stream_chunk_delay
        self.calls: list[RecordedRequest] = []
        self._queue: deque[Scripted] = deque()
        self._responder: Responder = echo
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._closing: asyncio.Event | None = None
        self._port = 0

    # -------------------------------------------------- programming it

    def script(self, *responses: Scripted | str) -> FakeOpenAI:
        """Queue responses; each chat request consumes the next one (a plain str means `Text(str)`)."""
        with self._lock:
            self._queue.extend(Text(r) if isinstance(r, str) else r for r in responses)
        return self

    def respond_with(self, responder: Responder | None) -> FakeOpenAI:
        """What to answer when the script is empty (None restores the echo)."""
        self._responder = responder or echo
        return self

    def reset(self) -> None:
        """Forget the script, the recorded requests and the responder (between tests of a module)."""
        with self._lock:
            self._queue.clear()
            self.calls.clear()
        self._responder = echo

    @property
    def pending(self) -> int:
        """How many scripted responses are still queued."""
        return len(self._queue)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Bodies of the chat completion requests, in arrival order."""
        return [c.body for c in self.calls if c.path.endswith("/chat/completions")]

    @property
    def embedding_requests(self) -> list[dict[str, Any]]:
        return [c.body for c in self.calls if c.path.endswith("/embeddings")]

    @property
    def base_url(self) -> str:
        if not self._port:
            raise RuntimeError("FakeOpenAI is not started: use `async with FakeOpenAI() as fake` or `fake.start()`")
        return f"http://127.0.0.1:{self._port}/v1"

    # -------------------------------------------------- lifecycle

    def start(self) -> FakeOpenAI:
        """Start serving in a background thread; returns once the port is bound."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(ready, failure), name="fake-openai", daemon=True)
        self._thread.start()
        ready.wait(timeout=30)
        if failure:
            raise RuntimeError(f"FakeOpenAI failed to start: {failure[0]!r}") from failure[0]
        if not self._port:
            raise RuntimeError("FakeOpenAI did not start within 30 s")
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        # Wake hanging and delayed handlers so they answer at once and shutdown stays quick and quiet.
        if self._loop is not None and self._closing is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._closing.set)
        self._thread.join(timeout=10)
        self._thread = None
        self._server = None
        self._port = 0

    async def __aenter__(self) -> FakeOpenAI:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        config = uvicorn.Config(
            self._app(),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            access_log=False,
            lifespan="off",
            backlog=4096,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server = server

        async def serve() -> None:
            self._closing = asyncio.Event()
            task = asyncio.create_task(server.serve())
            # uvicorn offers no start-up event to wait on; its own tests poll `started` the same way.
            while not server.started and not task.done():  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            if server.started:
                self._port = server.servers[0].sockets[0].getsockname()[1]
            ready.set()
            await task

        try:
            loop.run_until_complete(serve())
        except BaseException as exc:  # surfaced to start()
            failure.append(exc)
        finally:
            ready.set()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            with contextlib.suppress(BaseException):
                loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    # -------------------------------------------------- HTTP

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/embeddings", self._embeddings, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/models", self._models, methods=["GET"]),
            ]
        )

    async def _read(self, request: Request) -> tuple[dict[str, Any] | None, Response | None]:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError as exc:
            return None, _error_response(Error(400, message=f"request body is not valid JSON: {exc}"))
        if not isinstance(body, dict):
            return None, _error_response(Error(400, message="request body must be a JSON object"))
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.calls.append(RecordedRequest(request.url.path, headers, body))
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return body, _error_response(
                Error(401, message="Incorrect API key provided.", code="invalid_api_key"), kind="invalid_request_error"
            )
        return body, None

    async def _next_response(self, body: dict[str, Any]) -> Scripted:
        with self._lock:
            scripted = self._queue.popleft() if self._queue else None
        if scripted is not None:
            return scripted
        answer = self._responder(body)
        if inspect.isawaitable(answer):
            answer = await answer
        return Text(answer) if isinstance(answer, str) else answer

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the server stops."""
        assert self._closing is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def _chat(self, request: Request) -> Response:
        body, problem = await self._read(request)
        if problem is not None:
            return problem
        assert body is not None
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return _error_response(Error(400, message="'messages' must be a non-empty list"))
        answer = await self._next_response(body)
        if isinstance(answer, Hang):
            await self._sleep(answer.seconds)
            answer = Text("(the fake woke up)")
        if answer.delay:
            await self._sleep(answer.delay)
        if isinstance(answer, Error):
            return _error_response(answer)
        model = str(body.get("model") or DEFAULT_MODEL)
        completion = _Completion.build(answer, model=model, prompt_tokens=_prompt_tokens(body))
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                completion.sse(include_usage, self.stream_chunk_delay),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache"},
            )
        return JSONResponse(completion.message())

    async def _embeddings(self, request: Request) -> Response:
        body, problem = await self._read(request)
        if problem is not None:
            return problem
        assert body is not None
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            return _error_response(Error(400, message="'input' must be a string or a non-empty list"))
        answer = None
        with self._lock:
            if self._queue and isinstance(self._queue[0], Error | Hang):
                answer = self._queue.popleft()
        if isinstance(answer, Hang):
            await self._sleep(answer.seconds)
        elif isinstance(answer, Error):
            return _error_response(answer)
        dim = int(body.get("dimensions") or self.embedding_dim)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(inputs):
            text = item if isinstance(item, str) else " ".join(str(t) for t in item)
            vector = embed(text, dim)
            encoded: Any = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode() if as_base64 else vector
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(_count_tokens(i if isinstance(i, str) else " ".join(map(str, i))) for i in inputs)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body.get("model") or "fake-embedding",
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _models(self, request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models],
            }
        )


# ---------------------------------------------------------------- wire format


class _Dropped(Exception):
    """Raised inside a stream to cut the connection like a crashing provider."""


class _QuietDrops(logging.Filter):
    """Keep uvicorn from printing a traceback for connections we drop on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _Dropped))


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


@dataclass
class _Completion:
    id: str
    created: int
    model: str
    text: str
    tool_calls: list[dict[str, Any]]
    finish_reason: str
    usage: dict[str, int]
    break_after: int | None = None
    chunk_delay: float | None = None

    @classmethod
    def build(cls, answer: Text | ToolCalls, *, model: str, prompt_tokens: int) -> _Completion:
        tool_calls: list[dict[str, Any]] = []
        if isinstance(answer, ToolCalls):
            for name, arguments in answer.calls:
                raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
                function = {"name": name, "arguments": raw}
                tool_calls.append({"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function", "function": function})
            finish = "tool_calls"
        else:
            finish = answer.finish_reason
        text = answer.text
        break_after = answer.break_after if isinstance(answer, Text) else None
        chunk_delay = answer.chunk_delay if isinstance(answer, Text) else None
        completion_tokens = _count_tokens(text) + sum(
            _count_tokens(c["function"]["name"] + " " + c["function"]["arguments"]) for c in tool_calls
        )
        return cls(
            id=f"chatcmpl-{uuid.uuid4().hex[:29]}",
            created=int(time.time()),
            model=model,
            text=text,
            tool_calls=tool_calls,
            finish_reason=finish,
            usage={
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            break_after=break_after,
            chunk_delay=chunk_delay,
        )

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None, "refusal": None}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish_reason}],
            "usage": self.usage,
        }

    def _chunk(self, delta: dict[str, Any], finish: str | None, include_usage: bool) -> str:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            chunk["usage"] = None
        return f"data: {json.dumps(chunk)}\n\n"

    async def sse(self, include_usage: bool, chunk_delay: float) -> AsyncIterator[str]:
        if self.chunk_delay is not None:
            chunk_delay = self.chunk_delay
        yield self._chunk({"role": "assistant", "content": "", "refusal": None}, None, include_usage)
        for sent, piece in enumerate(_split_words(self.text)):
            if sent == self.break_after:
                raise _Dropped  # uvicorn aborts the response: the client sees the body end mid-stream
            if chunk_delay:
                await asyncio.sleep(chunk_delay)
            yield self._chunk({"content": piece}, None, include_usage)
        for index, call in enumerate(self.tool_calls):
            # OpenAI sends the id and name first, then the arguments JSON in fragments.
            name = {"name": call["function"]["name"], "arguments": ""}
            head = {"index": index, "id": call["id"], "type": "function", "function": name}
            yield self._chunk({"tool_calls": [head]}, None, include_usage)
            for piece in _split_every(call["function"]["arguments"], 7):
                fragment = {"index": index, "function": {"arguments": piece}}
                yield self._chunk({"tool_calls": [fragment]}, None, include_usage)
        yield self._chunk({}, self.finish_reason, include_usage)
        if include_usage:
            final = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": "fp_fake",
                "choices": [],
                "usage": self.usage,
            }
            yield f"data: {json.dumps(final)}\n\n"
        yield "data: [DONE]\n\n"


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_error",
}


def _error_response(error: Error, kind: str | None = None) -> JSONResponse:
    message = error.message or f"fake error {error.status}"
    payload = {
        "error": {
            "message": message,
            "type": kind or _ERROR_TYPES.get(error.status, "server_error"),
            "param": None,
            "code": error.code,
        }
    }
    headers = {}
    if error.retry_after is not None:
        headers["retry-after"] = f"{error.retry_after:g}"
        headers["retry-after-ms"] = str(int(error.retry_after * 1000))
    return JSONResponse(payload, status_code=error.status, headers=headers)


# ---------------------------------------------------------------- tokens and embeddings


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _count_tokens(text: str) -> int:
    """A stable stand-in for a tokenizer: one token per word or punctuation mark."""
    return len(re.findall(r"\w+|[^\w\s]", text))


def _prompt_tokens(body: dict[str, Any]) -> int:
    total = 0
    for message in body.get("messages") or []:
        total += 3 + _count_tokens(_content_text(message.get("content")))
    if body.get("tools"):
        total += _count_tokens(json.dumps(body["tools"]))
    return total


def _split_words(text: str) -> list[str]:
    """Split keeping whitespace, so the deltas concatenate to exactly `text`."""
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def _split_every(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def embed(text: str, dim: int) -> list[float]:
    """A deterministic unit vector by feature hashing of the words, so texts sharing words are close.

    Not a language model, but it makes similarity searches in tests meaningful: a query sharing
    words with a document scores higher than one that shares none.
    """
    vector = [0.0] * dim
    words = [w.lower() for w in _WORD.findall(text)] or [text]
    for word in words:
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        slot = int.from_bytes(digest[:4], "little") % dim
        vector[slot] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:  # all words cancelled out: fall back to a hash of the whole text
        digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
        vector[int.from_bytes(digest[:4], "little") % dim] = 1.0
        norm = 1.0
    return [v / norm for v in vector]
