"""The web channel: a chat page, a JSON/SSE message API and an OpenAI-compatible endpoint.

Request/response over a bus: a request publishes one `Event` and collects the replies whose
`in_reply_to` is that event, until the runtime's TURN_END. Streaming replies (edits of one message)
become SSE deltas. Routes:

* `GET /` — the chat page;
* `POST /api/v1/messages` — `{"user", "conversation", "text"}` → replies as JSON, or SSE with
  `Accept: text/event-stream`;
* `POST /v1/chat/completions` — OpenAI chat completions; `model` names the flow; plain or `stream`;
* `GET /v1/models` — the flows, as models.

When `SWITCHBOARD_API_KEY` is set, the APIs need `Authorization: Bearer <key>`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from adapters.base import Adapter, AdapterContext, Capability
from bot.bus import Bus
from bot.events import ConversationRef, Event, EventKind, Reply, ReplyKind, Sender
from bot.server import RequestTooLarge, api_key_ok, json_error, read_body_capped

log = logging.getLogger("switchboard.adapters.web")

CHANNEL = "web"
_MAX_FIELD = 200  # characters of a user or conversation id


class BadRequest(ValueError):
    pass


class Unavailable(RuntimeError):
    pass


@dataclass(slots=True)
class _Turn:
    """Replies gathered for one request, as they arrive."""

    queue: asyncio.Queue[Reply] = field(default_factory=asyncio.Queue)


def create(options: dict[str, Any], env: Mapping[str, str]) -> WebAdapter:
    return WebAdapter(api_key=env.get("SWITCHBOARD_API_KEY", ""))


class WebAdapter(Adapter):
    name = CHANNEL
    capabilities = frozenset({Capability.EDIT, Capability.BUTTONS, Capability.MARKDOWN})
    max_message_chars = 1_000_000
    wants_turn_end = True

    def __init__(self, *, api_key: str = "") -> None:
        self._api_key = api_key
        self._turns: dict[str, _Turn] = {}
        self._bus: Bus | None = None
        self._context: AdapterContext | None = None
        self._reply_timeout = 120.0

    def describe(self) -> str:
        return "chat page and HTTP API" + (" (API key required)" if self._api_key else "")

    async def start(self, context: AdapterContext) -> None:
        self._bus = context.bus
        self._context = context
        self._reply_timeout = float(context.options.get("reply_timeout", 120.0))
        server = context.server
        if server is None:
            return
        server.add_route("/", self._page, methods=["GET"])
        server.add_route("/api/v1/messages", self._messages, methods=["POST"])
        server.add_route("/v1/chat/completions", self._chat_completions, methods=["POST"])
        server.add_route("/v1/models", self._models, methods=["GET"])

    async def stop(self) -> None:
        for turn in self._turns.values():
            turn.queue.put_nowait(Reply(conversation=ConversationRef(CHANNEL, ""), kind=ReplyKind.TURN_END))

    async def send(self, reply: Reply) -> str:
        turn = self._turns.get(reply.in_reply_to)
        if turn is None:
            log.info("reply for a web request that is gone", extra={"reply_id": reply.id})
            return reply.id
        turn.queue.put_nowait(reply)
        return reply.id

    # -- the turn machinery ----------------------------------------------------------------

    async def _publish(self, *, user: str, conversation: str, text: str, meta: dict[str, Any]) -> tuple[str, _Turn]:
        assert self._bus is not None and self._context is not None
        event_id = f"{CHANNEL}:{uuid.uuid4().hex}"
        command = None
        kind = EventKind.MESSAGE
        from bot.commands import parse_command

        command = parse_command(text, self._context.command_prefix)
        if command is not None:
            kind = EventKind.COMMAND
        event = Event(
            id=event_id,
            kind=kind,
            channel=CHANNEL,
            conversation=ConversationRef(CHANNEL, room=conversation),
            sender=Sender(CHANNEL, user, user),
            text=text,
            command=command,
            mentioned=True,
            meta=meta,
        )
        turn = _Turn()
        self._turns[event_id] = turn
        try:
            await self._bus.publish(event)
        except Exception as exc:  # the bus is stopping, full or unreachable: the client should retry
            self._turns.pop(event_id, None)
            raise Unavailable(f"the bot cannot take messages right now ({type(exc).__name__}); retry shortly") from exc
        return event_id, turn

    async def _replies(self, event_id: str, turn: _Turn) -> AsyncIterator[Reply]:
        """Replies of one turn until TURN_END (or the reply timeout)."""
        deadline = time.monotonic() + self._reply_timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                try:
                    reply = await asyncio.wait_for(turn.queue.get(), timeout=remaining)
                except TimeoutError:
                    return
                yield reply
                if reply.kind is ReplyKind.TURN_END:
                    return
        finally:
            self._turns.pop(event_id, None)

    # -- HTTP endpoints ----------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        return api_key_ok(request, self._api_key)

    async def _json_body(self, request: Request) -> dict[str, Any]:
        assert self._context is not None
        body = await read_body_capped(request, self._context.max_message_bytes)
        try:
            data = json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"the request body is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise BadRequest("the request body must be a JSON object")
        return data

    async def _guard(self, request: Request) -> dict[str, Any] | Response:
        if not self._authorized(request):
            return json_error(
                401, "missing or wrong API key: send Authorization: Bearer <SWITCHBOARD_API_KEY>", code="unauthorized"
            )
        try:
            return await self._json_body(request)
        except RequestTooLarge as exc:
            return json_error(413, f"{exc}; send a shorter message", code="too_large")
        except BadRequest as exc:
            return json_error(400, str(exc), code="bad_request")

    async def _page(self, request: Request) -> Response:
        html = resources.files("adapters").joinpath("web_chat.html").read_text(encoding="utf-8")
        return HTMLResponse(html)

    async def _messages(self, request: Request) -> Response:
        data = await self._guard(request)
        if isinstance(data, Response):
            return data
        try:
            text = _field(data, "text", required=True)
            user = _field(data, "user") or "web-user"
            conversation = _field(data, "conversation") or user
            if len(user) > _MAX_FIELD or len(conversation) > _MAX_FIELD:
                raise BadRequest(f"`user` and `conversation` are at most {_MAX_FIELD} characters")
        except BadRequest as exc:
            return json_error(400, str(exc), code="bad_request")
        try:
            event_id, turn = await self._publish(user=user, conversation=conversation, text=text, meta={})
        except Unavailable as exc:
            return json_error(503, str(exc), code="unavailable")
        if "text/event-stream" in request.headers.get("accept", ""):
            return StreamingResponse(
                self._sse_messages(event_id, turn),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        messages: dict[str, dict[str, Any]] = {}
        status, run_id = "timeout", ""
        async for reply in self._replies(event_id, turn):
            if reply.kind is ReplyKind.TURN_END:
                status, run_id = reply.meta.get("status") or "done", reply.meta.get("run_id", "")
                continue
            key = reply.edit_of or reply.id
            if not reply.partial:
                messages[key] = _reply_json(reply, key)
        return JSONResponse(
            {"event_id": event_id, "run_id": run_id, "status": status, "replies": list(messages.values())},
            status_code=200 if status != "timeout" else 504,
        )

    async def _sse_messages(self, event_id: str, turn: _Turn) -> AsyncIterator[str]:
        yield _sse("accepted", {"event_id": event_id})
        async for reply in self._replies(event_id, turn):
            if reply.kind is ReplyKind.TURN_END:
                yield _sse(
                    "done",
                    {
                        "event_id": event_id,
                        "run_id": reply.meta.get("run_id", ""),
                        "status": reply.meta.get("status") or "done",
                    },
                )
                return
            key = reply.edit_of or reply.id
            yield _sse("partial" if reply.partial else "reply", _reply_json(reply, key))
        yield _sse("done", {"event_id": event_id, "status": "timeout"})

    async def _models(self, request: Request) -> Response:
        if not self._authorized(request):
            return json_error(401, "missing or wrong API key", code="unauthorized")
        assert self._context is not None
        flows = self._context.catalog()
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {
                        "id": f["name"],
                        "object": "model",
                        "created": 0,
                        "owned_by": "switchboard",
                        "description": f.get("description", ""),
                    }
                    for f in flows
                ],
            }
        )

    async def _chat_completions(self, request: Request) -> Response:
        data = await self._guard(request)
        if isinstance(data, Response):
            return _openai_error(data)
        assert self._context is not None
        model = data.get("model")
        names = {f["name"] for f in self._context.catalog()}
        if not isinstance(model, str) or model not in names:
            return _openai_error(
                json_error(
                    404,
                    f"model {model!r} is not a flow of this bot; GET /v1/models lists "
                    f"them ({', '.join(sorted(names))})",
                    code="model_not_found",
                )
            )
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages or not all(_chat_message_ok(m) for m in messages):
            return _openai_error(
                json_error(400, "`messages` must be a non-empty list of {role, content} objects", code="bad_request")
            )
        last_user = next((i for i in range(len(messages) - 1, -1, -1) if messages[i]["role"] == "user"), None)
        if last_user is None:
            return _openai_error(json_error(400, "`messages` needs at least one user message", code="bad_request"))
        text = _content_text(messages[last_user]["content"])
        history = [{"role": m["role"], "content": _content_text(m["content"])} for m in messages[:last_user]]
        user = data.get("user") if isinstance(data.get("user"), str) and data.get("user") else "openai-api"
        conversation = f"openai-{uuid.uuid4().hex}"  # the client's `messages` carry the history
        try:
            event_id, turn = await self._publish(
                user=user[:_MAX_FIELD], conversation=conversation, text=text, meta={"flow": model, "history": history}
            )
        except Unavailable as exc:
            return _openai_error(json_error(503, str(exc), code="unavailable"))
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if data.get("stream"):
            return StreamingResponse(
                self._openai_stream(event_id, turn, completion_id, created, model),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        texts: dict[str, str] = {}
        async for reply in self._replies(event_id, turn):
            if reply.kind is ReplyKind.MESSAGE and not reply.partial:
                texts[reply.edit_of or reply.id] = reply.text
        content = "\n\n".join(t for t in texts.values() if t)
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            }
        )

    async def _openai_stream(
        self, event_id: str, turn: _Turn, completion_id: str, created: int, model: str
    ) -> AsyncIterator[str]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            body = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

        yield chunk({"role": "assistant", "content": ""})
        shown: dict[str, str] = {}  # text already streamed, per message
        order: list[str] = []
        async for reply in self._replies(event_id, turn):
            if reply.kind is not ReplyKind.MESSAGE:
                continue
            key = reply.edit_of or reply.id
            before = shown.get(key, "")
            if key not in shown:
                order.append(key)
                if len(order) > 1:  # separate successive messages like the plain response does
                    yield chunk({"content": "\n\n"})
            if reply.text.startswith(before):
                piece = reply.text[len(before) :]
            else:  # the text was rewritten, not extended: send what is new after the common prefix
                piece = reply.text[len(os.path.commonprefix([before, reply.text])) :]  # noqa: RUF071 - strings
            shown[key] = reply.text
            if piece:
                yield chunk({"content": piece})
        yield chunk({}, finish="stop")
        yield "data: [DONE]\n\n"


def _field(data: dict[str, Any], name: str, *, required: bool = False) -> str:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise BadRequest(f"`{name}` is required (a non-empty string)")
        return ""
    if not isinstance(value, str | int):
        raise BadRequest(f"`{name}` must be a string, found {type(value).__name__}")
    return str(value)


def _chat_message_ok(message: Any) -> bool:
    return (
        isinstance(message, dict)
        and message.get("role") in ("system", "user", "assistant", "tool", "developer")
        and (isinstance(message.get("content"), str | list) or message.get("content") is None)
    )


def _content_text(content: Any) -> str:
    """OpenAI content may be a string or a list of parts; we take the text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _reply_json(reply: Reply, key: str) -> dict[str, Any]:
    return {
        "id": key,
        "text": reply.text,
        "buttons": [{"label": b.label, "value": b.value, "style": b.style} for b in reply.buttons],
    }


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _openai_error(response: Response) -> Response:
    """Reshape our error body into OpenAI's `{"error": {"message", "type", "code"}}`."""
    body = json.loads(bytes(response.body))
    error = body.get("error", {})
    kind = "invalid_request_error" if response.status_code < 500 else "server_error"
    if response.status_code == 401:
        kind = "authentication_error"
    return JSONResponse(
        {"error": {"message": error.get("message", ""), "type": kind, "code": error.get("code")}},
        status_code=response.status_code,
    )
