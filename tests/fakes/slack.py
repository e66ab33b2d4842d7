"""A local fake of Slack: the Web API the adapter calls, Socket Mode, and signed HTTP deliveries.

`FakeSlack` serves the Web API under `/api/<method>` (the adapter reaches it through
`SLACK_API_URL`), hands out a `ws://` Socket Mode URL from `apps.connections.open`, and records every
call. It answers like Slack: `{"ok": false, "error": ...}` for bad tokens or unknown messages, and a
429 with `Retry-After` when a test asks for one. `SlackDelivery` plays Slack's side of the HTTP Events
API: it signs requests with the signing secret exactly as Slack does (v0 HMAC-SHA256 over
`v0:<timestamp>:<body>`), and can send retries (`X-Slack-Retry-Num`) or forged signatures.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from aiohttp import WSMsgType, web


@dataclass(slots=True)
class ApiCall:
    method: str
    args: dict[str, Any]
    at: float  # time.monotonic() when the fake received it
    status: int = 200


@dataclass(slots=True)
class PostedMessage:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str = ""
    edits: int = 0
    ephemeral_user: str = ""

    @property
    def sections(self) -> list[str]:
        return [b["text"]["text"] for b in self.blocks if b.get("type") == "section"]

    @property
    def buttons(self) -> list[dict[str, Any]]:
        return [e for b in self.blocks if b.get("type") == "actions" for e in b.get("elements", [])]


@dataclass(slots=True)
class _RateLimit:
    method: str
    retry_after: int
    times: int


@dataclass
class FakeSlack:
    bot_token: str = "xoxb-fake-bot-token"
    app_token: str = "xapp-fake-app-token"
    team_id: str = "T0FAKE"
    bot_user_id: str = "U0BOT"
    bot_id: str = "B0BOT"
    bot_name: str = "switchboard"
    users: dict[str, str] = field(default_factory=lambda: {"U1": "Ada", "U2": "Grace"})

    def __post_init__(self) -> None:
        self.calls: list[ApiCall] = []
        self.messages: list[PostedMessage] = []
        self.deleted: list[PostedMessage] = []
        self.uploads: dict[str, dict[str, Any]] = {}
        self.acks: dict[str, dict[str, Any]] = {}
        self.responses: list[dict[str, Any]] = []  # bodies POSTed to slash-command response_urls
        self.members: set[str] | None = None  # channels the bot is in (None: every channel)
        self.socket_connects = 0
        self._rate_limits: list[_RateLimit] = []
        self._ts = itertools.count(1)
        self._sockets: list[web.WebSocketResponse] = []
        self._ack_waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.socket_connected = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=32 * 1024 * 1024, middlewares=[_errors])
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/socket", self._socket)
        app.router.add_post("/response/{id}", self._response_url)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    # -- test controls --------------------------------------------------------------------------

    def rate_limit(self, method: str = "chat.postMessage", *, retry_after: int = 1, times: int = 1) -> None:
        """Answer the next `times` calls of `method` with 429 and `Retry-After: retry_after`."""
        self._rate_limits.append(_RateLimit(method, retry_after, times))

    def reset(self) -> None:
        self.calls.clear()
        self.messages.clear()
        self.deleted.clear()
        self.uploads.clear()
        self.responses.clear()
        self.members = None
        self._rate_limits.clear()

    def calls_to(self, method: str) -> list[ApiCall]:
        return [c for c in self.calls if c.method == method]

    def next_ts(self) -> str:
        return f"{1_700_000_000 + next(self._ts)}.{next(self._ts):06d}"

    async def push(
        self, payload: dict[str, Any], *, kind: str = "events_api", retry_attempt: int = 0,
        envelope_id: str | None = None, ack_within: float = 5.0,
    ) -> dict[str, Any]:
        """Send one Socket Mode envelope to the connected app and wait for its acknowledgement."""
        if not self._sockets:
            await asyncio.wait_for(self.socket_connected.wait(), ack_within)
        envelope_id = envelope_id or uuid.uuid4().hex
        waiter = asyncio.get_running_loop().create_future()
        self._ack_waiters[envelope_id] = waiter
        envelope = {
            "envelope_id": envelope_id, "type": kind, "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": retry_attempt, "retry_reason": "timeout" if retry_attempt else "",
        }
        await self._sockets[-1].send_str(json.dumps(envelope))
        try:
            return await asyncio.wait_for(waiter, ack_within)
        finally:
            self._ack_waiters.pop(envelope_id, None)

    async def drop_socket(self) -> None:
        """Close the app's websocket from Slack's side, as Slack does every few hours."""
        self.socket_connected.clear()
        for ws in list(self._sockets):
            await ws.close()

    async def request_refresh(self) -> None:
        """Send Slack's `disconnect` notice (`refresh_requested`): the app must fetch a new URL and reconnect."""
        self.socket_connected.clear()
        await self._sockets[-1].send_str(json.dumps({"type": "disconnect", "reason": "refresh_requested"}))

    # -- payload builders -----------------------------------------------------------------------

    def event_body(self, event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
        """An Events API `event_callback` envelope, as Slack POSTs it (or wraps it in Socket Mode)."""
        return {
            "token": "legacy-verification-token", "team_id": self.team_id, "api_app_id": "A0FAKE",
            "event": event, "type": "event_callback", "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()), "authorizations": [
                {"team_id": self.team_id, "user_id": self.bot_user_id, "is_bot": True}
            ],
        }

    def message(
        self, text: str, *, channel: str = "C0GENERAL", user: str = "U1", ts: str | None = None,
        thread_ts: str = "", channel_type: str = "channel", kind: str = "message", **extra: Any,
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "type": kind, "channel": channel, "user": user, "text": text, "ts": ts or self.next_ts(),
            "team": self.team_id, "event_ts": ts or "",
        }
        if kind == "message":
            event["channel_type"] = channel_type
        if thread_ts:
            event["thread_ts"] = thread_ts
        event.update(extra)
        event["event_ts"] = event["event_ts"] or event["ts"]
        return event

    def slash_command(self, text: str, *, command: str = "/sb", channel: str = "C0GENERAL",
                      user: str = "U1") -> dict[str, str]:
        return {
            "token": "legacy", "team_id": self.team_id, "team_domain": "fake", "channel_id": channel,
            "channel_name": "general", "user_id": user, "user_name": self.users.get(user, user).lower(),
            "command": command, "text": text, "api_app_id": "A0FAKE",
            "response_url": f"{self.url}/response/{uuid.uuid4().hex}", "trigger_id": f"trg.{uuid.uuid4().hex}",
        }

    def block_action(self, message: PostedMessage, *, button: int = 0, user: str = "U1") -> dict[str, Any]:
        element = message.buttons[button]
        return {
            "type": "block_actions", "user": {"id": user, "username": user.lower(), "name": self.users.get(user, user),
                                              "team_id": self.team_id},
            "api_app_id": "A0FAKE", "token": "legacy", "trigger_id": f"trg.{uuid.uuid4().hex}",
            "team": {"id": self.team_id, "domain": "fake"},
            "container": {"type": "message", "message_ts": message.ts, "channel_id": message.channel,
                          "is_ephemeral": False, **({"thread_ts": message.thread_ts} if message.thread_ts else {})},
            "channel": {"id": message.channel, "name": "general"},
            "message": {"type": "message", "ts": message.ts, "text": message.text, "blocks": message.blocks,
                        "user": self.bot_user_id, "bot_id": self.bot_id,
                        **({"thread_ts": message.thread_ts} if message.thread_ts else {})},
            "response_url": f"{self.url}/response/{uuid.uuid4().hex}",
            "actions": [{"type": "button", "action_id": element["action_id"], "block_id": "b1",
                         "text": element["text"], "value": element.get("value", ""),
                         "action_ts": f"{time.time():.6f}"}],
        }

    def reaction(self, message_ts: str, *, reaction: str = "thumbsup", channel: str = "C0GENERAL",
                 user: str = "U1", item_user: str | None = None) -> dict[str, Any]:
        return {
            "type": "reaction_added", "user": user, "reaction": reaction,
            "item": {"type": "message", "channel": channel, "ts": message_ts},
            "item_user": item_user or self.bot_user_id, "event_ts": f"{time.time():.6f}",
        }

    # -- Web API --------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        raw = await request.read()
        content_type = request.headers.get("Content-Type", "")
        if raw and content_type.startswith("application/json"):
            args.update(json.loads(raw))
        elif raw:
            args.update(parse_qsl(raw.decode()))
        call = ApiCall(method, args, time.monotonic())
        self.calls.append(call)
        for limit in self._rate_limits:
            if limit.method == method and limit.times > 0:
                limit.times -= 1
                call.status = 429
                return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                         headers={"Retry-After": str(limit.retry_after)})
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip() or args.get("token", "")
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != expected:
            return _error("invalid_auth" if token else "not_authed")
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return _error("unknown_method")
        return web.json_response({"ok": True, **handler(args)})

    def _m_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"url": "https://fake.slack.com/", "team": "Fake", "user": self.bot_name, "team_id": self.team_id,
                "user_id": self.bot_user_id, "bot_id": self.bot_id, "is_enterprise_install": False}

    def _m_apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"url": f"ws://127.0.0.1:{self.port}/socket"}

    def _m_users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = args.get("user", "")
        name = self.users.get(user, user)
        return {"user": {"id": user, "name": name.lower(), "real_name": name,
                         "profile": {"display_name": name, "real_name": name}}}

    def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.members is not None and args["channel"] not in self.members:
            raise _ApiError("not_in_channel")
        message = PostedMessage(
            channel=args["channel"], ts=self.next_ts(), text=args.get("text", ""), blocks=_blocks(args),
            thread_ts=args.get("thread_ts") or "",
        )
        self.messages.append(message)
        return {"channel": message.channel, "ts": message.ts, "message": {"text": message.text, "ts": message.ts}}

    def _m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        message = PostedMessage(
            channel=args["channel"], ts=self.next_ts(), text=args.get("text", ""), blocks=_blocks(args),
            thread_ts=args.get("thread_ts") or "", ephemeral_user=args.get("user", ""),
        )
        self.messages.append(message)
        return {"message_ts": message.ts}

    def _m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self._find(args.get("channel", ""), args.get("ts", ""))
        message.text = args.get("text", message.text)
        message.blocks = _blocks(args) or message.blocks
        message.edits += 1
        return {"channel": message.channel, "ts": message.ts, "text": message.text}

    def _m_chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self._find(args.get("channel", ""), args.get("ts", ""))
        self.messages.remove(message)
        self.deleted.append(message)
        return {"channel": message.channel, "ts": message.ts}

    def _m_files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        file_id = f"F{uuid.uuid4().hex[:10].upper()}"
        self.uploads[file_id] = {"filename": args.get("filename"), "length": int(args.get("length", 0)),
                                 "content": b"", "shared": None}
        return {"upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _m_files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        files = json.loads(args["files"]) if isinstance(args.get("files"), str) else args.get("files", [])
        for f in files:
            self.uploads[f["id"]]["shared"] = {"channel": args.get("channel_id"), "thread_ts": args.get("thread_ts"),
                                               "title": f.get("title")}
        return {"files": [{"id": f["id"], "title": f.get("title")} for f in files]}

    def _find(self, channel: str, ts: str) -> PostedMessage:
        for message in self.messages:
            if message.channel == channel and message.ts == ts:
                return message
        raise _ApiError("message_not_found")

    async def _response_url(self, request: web.Request) -> web.Response:
        self.responses.append(await request.json())
        return web.Response(text="ok")

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        if file_id not in self.uploads:
            return web.Response(status=404, text="unknown upload")
        self.uploads[file_id]["content"] = await request.read()
        return web.Response(text="OK - 200")

    # -- Socket Mode ----------------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.socket_connects += 1
        self._sockets.append(ws)
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1,
                                      "connection_info": {"app_id": "A0FAKE"}}))
        self.socket_connected.set()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                ack = json.loads(msg.data)
                envelope_id = ack.get("envelope_id", "")
                self.acks[envelope_id] = ack
                waiter = self._ack_waiters.get(envelope_id)
                if waiter is not None and not waiter.done():
                    waiter.set_result(ack)
        finally:
            self._sockets.remove(ws)
        return ws


class _ApiError(Exception):
    pass


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except _ApiError as exc:
        return _error(str(exc))


def _error(code: str) -> web.Response:
    return web.json_response({"ok": False, "error": code})


def _blocks(args: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = args.get("blocks") or []
    return json.loads(blocks) if isinstance(blocks, str) else list(blocks)


# -- Slack's side of the HTTP Events API --------------------------------------------------------------


def signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass(slots=True)
class SlackDelivery:
    """Posts signed requests to the adapter's webhook, like Slack's delivery service."""

    url: str  # e.g. http://127.0.0.1:PORT/slack/events
    signing_secret: str

    async def event(self, body: dict[str, Any], *, retry_num: int | None = None, **kw: Any) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if retry_num:
            headers |= {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
        return await self.post(json.dumps(body).encode(), headers, **kw)

    async def command(self, form: dict[str, str], **kw: Any) -> httpx.Response:
        return await self.post(urlencode(form).encode(), {"Content-Type": "application/x-www-form-urlencoded"}, **kw)

    async def action(self, payload: dict[str, Any], **kw: Any) -> httpx.Response:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self.post(body, {"Content-Type": "application/x-www-form-urlencoded"}, **kw)

    async def post(
        self, body: bytes, headers: dict[str, str], *, timestamp: int | None = None, secret: str | None = None,
        sign: bool = True,
    ) -> httpx.Response:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        headers = dict(headers)
        if sign:
            headers["X-Slack-Request-Timestamp"] = ts
            headers["X-Slack-Signature"] = signature(secret or self.signing_secret, ts, body)
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.post(self.url, content=body, headers=headers)
