"""A local fake of Discord: the REST API and the gateway websocket, on 127.0.0.1.

It speaks Discord's wire format closely enough that discord.py's real code path runs against it:
login (`GET /users/@me`, `GET /oauth2/applications/@me`), `GET /gateway/bot` (which points at
this server's own websocket), the gateway handshake (HELLO → IDENTIFY → READY → GUILD_CREATE, with
heartbeats and RESUME), messages (JSON and multipart with files), edits, interaction callbacks and
interaction webhooks, and command sync. Tests drive it from the platform side:

    async with FakeDiscord() as fake:
        fake.add_guild(GUILD, channels=[Channel(CHANNEL, "general"), Channel(THREAD, "t", parent=CHANNEL)])
        await fake.dispatch("MESSAGE_CREATE", fake.message(CHANNEL, USER, "hi"))
        fake.fail_next("POST", "/channels/", status=429, retry_after=1.0)
        assert fake.sent[-1].content == "..."

Two Discord quirks it reproduces on purpose: responses carry `Content-Type: application/json`
exactly (discord.py parses nothing else as JSON), and a real rate-limit answer carries a `Via`
header (discord.py treats a 429 without one as a Cloudflare ban and does not retry it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

BOT_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GfakeT.fake-token-for-tests-only_0123456789abcdef"
APPLICATION_ID = "1100000000000000001"
BOT_USER_ID = APPLICATION_ID  # Discord bots share their application's id
_PERMISSIONS_ALL = str((1 << 50) - 1)

_BODY = web.RequestKey("body", object)
_snowflakes = itertools.count(1_300_000_000_000_000_000)


def snowflake() -> str:
    """A fresh, increasing Discord-style id."""
    return str(next(_snowflakes))


def bot_role_id(guild_id: str) -> str:
    """The id of the bot's managed role in a guild."""
    return str(int(guild_id) + 7)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def user_payload(user_id: str, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": user_id,
        "username": name,
        "global_name": name.title(),
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
    }


def _member(user: dict[str, Any] | None = None) -> dict[str, Any]:
    member: dict[str, Any] = {"roles": [], "joined_at": _now(), "deaf": False, "mute": False, "flags": 0}
    if user is not None:
        member["user"] = user
    return member


@dataclass(slots=True)
class Channel:
    id: str
    name: str
    parent: str = ""  # set for a thread: the channel it lives in

    def payload(self, guild_id: str) -> dict[str, Any]:
        if self.parent:
            return {
                "id": self.id,
                "guild_id": guild_id,
                "type": 11,
                "name": self.name,
                "parent_id": self.parent,
                "owner_id": BOT_USER_ID,
                "member_count": 2,
                "message_count": 0,
                "thread_metadata": {
                    "archived": False,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": _now(),
                    "locked": False,
                },
            }
        return {
            "id": self.id,
            "guild_id": guild_id,
            "type": 0,
            "name": self.name,
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
        }


@dataclass(slots=True)
class Guild:
    id: str
    name: str
    channels: list[Channel]

    def channel(self, channel_id: str) -> Channel | None:
        return next((c for c in self.channels if c.id == channel_id), None)


@dataclass(slots=True)
class SentMessage:
    """A message the bot created, as the fake stores it (edits update it in place)."""

    id: str
    channel_id: str
    content: str
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    message_reference: dict[str, Any] | None = None
    edits: int = 0
    via: str = "channel"  # "channel", "interaction" (original response) or "followup"
    flags: int = 0

    @property
    def button_labels(self) -> list[str]:
        return [c.get("label", "") for row in self.components for c in row.get("components", []) if c.get("type") == 2]

    @property
    def custom_ids(self) -> list[str]:
        return [c.get("custom_id", "") for row in self.components for c in row.get("components", [])]


@dataclass(slots=True)
class Request:
    method: str
    path: str
    body: Any
    at: float


@dataclass(slots=True)
class _Failure:
    method: str
    path_prefix: str
    status: int
    retry_after: float
    via: bool
    # The request takes effect, then the answer is an error (a response lost on the way back).
    after_commit: bool = False


class FakeDiscord:
    """REST + gateway on one aiohttp server; start with `async with` or `start()`/`stop()`."""

    def __init__(self, *, heartbeat_interval_ms: int = 41250) -> None:
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.guilds: dict[str, Guild] = {}
        self.bot = user_payload(BOT_USER_ID, "switchboard", bot=True)
        self.requests: list[Request] = []
        self.sent: list[SentMessage] = []
        self.interaction_callbacks: list[dict[str, Any]] = []  # {"id", "type", "at"}
        self.command_syncs: list[dict[str, Any]] = []  # {"guild_id", "commands"}
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self.heartbeats = 0
        self.sessions: list[web.WebSocketResponse] = []
        self.gateway_closed: asyncio.Event = asyncio.Event()
        self.close_code_on_identify: int | None = None  # e.g. 4014: disallowed (privileged) intents
        self._failures: list[_Failure] = []
        self._messages: dict[str, SentMessage] = {}
        self._interaction_originals: dict[str, SentMessage] = {}  # token -> original response
        self._tokens: dict[str, str] = {}  # interaction token -> channel id
        self._nonces: dict[tuple[str, str], SentMessage] = {}
        self.typing: list[str] = []  # channel ids the bot showed "typing…" in
        self.deleted: list[str] = []  # ids of messages the bot deleted ("@original" for a response)
        self._seq = 0
        self._session_id = "fake-session"
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.message_ready: asyncio.Event = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application(middlewares=[self._record_and_fail])
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        for ws in list(self.sessions):
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def api_url(self) -> str:
        """What `DISCORD_API_URL` is set to (the REST base, version included)."""
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    # -- the platform side: what tests do to it ----------------------------------------------------

    def add_guild(self, guild_id: str, name: str = "test guild", channels: list[Channel] | None = None) -> Guild:
        guild = Guild(guild_id, name, channels or [])
        self.guilds[guild_id] = guild
        return guild

    def guild_of(self, channel_id: str) -> Guild | None:
        return next((g for g in self.guilds.values() if g.channel(channel_id)), None)

    def fail_next(
        self,
        method: str,
        path_prefix: str,
        *,
        status: int = 429,
        retry_after: float = 1.0,
        via: bool = True,
        after_commit: bool = False,
    ) -> None:
        """Answer the next matching request with an error (429 carries Discord's rate-limit body).
        With `after_commit` the request is carried out first and only its answer is lost."""
        self._failures.append(_Failure(method.upper(), path_prefix, status, retry_after, via, after_commit))

    def message(
        self,
        channel_id: str,
        author: dict[str, Any],
        content: str,
        *,
        message_id: str | None = None,
        mentions: list[dict[str, Any]] | None = None,
        mention_roles: list[str] | None = None,
        attachments: list[dict[str, Any]] | None = None,
        reference: SentMessage | dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A MESSAGE_CREATE payload from `author` in a guild channel, a thread or a DM channel."""
        guild = self.guild_of(channel_id)
        data: dict[str, Any] = {
            "id": message_id or snowflake(),
            "channel_id": channel_id,
            "author": author,
            "content": content,
            "timestamp": _now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": mentions or [],
            "mention_roles": mention_roles or [],
            "attachments": attachments or [],
            "embeds": [],
            "pinned": False,
            "type": 19 if reference else 0,
            "flags": 0,
            "components": [],
        }
        if guild is not None:
            data["guild_id"] = guild.id
            data["member"] = _member()
        if reference is not None:
            ref = self._message_payload(reference) if isinstance(reference, SentMessage) else reference
            data["message_reference"] = {"message_id": ref["id"], "channel_id": ref["channel_id"]}
            data["referenced_message"] = ref
        return data

    def slash_command(
        self, channel_id: str, user: dict[str, Any], text: str | None, *, name: str = "sb"
    ) -> dict[str, Any]:
        """An INTERACTION_CREATE for `/sb text:<text>` typed in `channel_id`."""
        options = [] if text is None else [{"name": "text", "type": 3, "value": text}]
        data = {"id": snowflake(), "name": name, "type": 1, "options": options}
        return self._interaction(channel_id, user, 2, data)

    def button_click(self, message: SentMessage, user: dict[str, Any], custom_id: str) -> dict[str, Any]:
        """An INTERACTION_CREATE for a click on one of the bot's buttons."""
        payload = self._interaction(message.channel_id, user, 3, {"custom_id": custom_id, "component_type": 2})
        payload["message"] = self._message_payload(message)
        return payload

    def reaction(
        self, message_id: str, channel_id: str, user: dict[str, Any], emoji: str, *, author_id: str = BOT_USER_ID
    ) -> dict[str, Any]:
        """A MESSAGE_REACTION_ADD payload (`author_id`: who wrote the message reacted to)."""
        data: dict[str, Any] = {
            "message_author_id": author_id,
            "user_id": user["id"],
            "channel_id": channel_id,
            "message_id": message_id,
            "emoji": {"id": None, "name": emoji},
            "burst": False,
            "type": 0,
        }
        guild = self.guild_of(channel_id)
        if guild is not None:
            data["guild_id"] = guild.id
            data["member"] = _member(user)
        return data

    def member_join(self, guild_id: str, user: dict[str, Any]) -> dict[str, Any]:
        """A GUILD_MEMBER_ADD payload (sent only to bots with the SERVER MEMBERS intent)."""
        return {**_member(user), "guild_id": guild_id}

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send one DISPATCH to every connected gateway session."""
        self._seq += 1
        frame = json.dumps({"op": 0, "t": event, "s": self._seq, "d": data})
        for ws in list(self.sessions):
            if not ws.closed:
                await ws.send_str(frame)

    async def drop_connections(self, code: int = 4000) -> None:
        """Close every gateway session the way Discord does before asking for a RESUME."""
        for ws in list(self.sessions):
            await ws.close(code=code, message=b"fake: reconnect")

    async def wait_connected(self, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not any(not ws.closed for ws in self.sessions) or not self.identifies:
            if time.monotonic() > deadline:
                raise TimeoutError("the bot never connected to the fake gateway")
            await asyncio.sleep(0.02)

    def reset(self) -> None:
        self.sent.clear()
        self.requests.clear()
        self.interaction_callbacks.clear()
        self.deleted.clear()
        self.typing.clear()
        self._failures.clear()

    # -- REST ---------------------------------------------------------------------------------

    @web.middleware
    async def _record_and_fail(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/gateway":
            return await handler(request)
        path = request.path.removeprefix("/api/v10")
        body = await self._read_body(request)
        self.requests.append(Request(request.method, path, body, time.monotonic()))
        for failure in self._failures:
            if failure.method == request.method and path.startswith(failure.path_prefix):
                self._failures.remove(failure)
                if failure.after_commit:
                    request[_BODY] = body
                    await handler(request)
                return self._failure(failure)
        request[_BODY] = body
        return await handler(request)

    def _failure(self, failure: _Failure) -> web.Response:
        headers = {"Retry-After": str(failure.retry_after)}
        if failure.via:
            headers["Via"] = "1.1 google"
        if failure.status == 429:
            headers.update(
                {
                    "X-RateLimit-Limit": "5",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset-After": str(failure.retry_after),
                    "X-RateLimit-Scope": "user",
                }
            )
            body = {"message": "You are being rate limited.", "retry_after": failure.retry_after, "global": False}
        else:
            body = {"message": "fake failure", "code": 0}
        return _json(body, status=failure.status, headers=headers)

    async def _read_body(self, request: web.Request) -> Any:
        if request.content_type.startswith("multipart/"):
            parts: dict[str, Any] = {"files": []}
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":
                    parts.update(json.loads(await part.text()))
                else:
                    data = await part.read()
                    parts["files"].append({"name": part.filename, "size": len(data)})
            return parts
        raw = await request.read()
        if not raw:
            return None
        return json.loads(raw)

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        body = request.get(_BODY)
        method = request.method
        parts = path.strip("/").split("/")
        if method == "GET" and path == "/users/@me":
            if request.headers.get("Authorization") != f"Bot {BOT_TOKEN}":
                return _json({"message": "401: Unauthorized", "code": 0}, status=401)
            return _json(self.bot)
        if method == "GET" and path == "/oauth2/applications/@me":
            return _json(self._application())
        if method == "GET" and path == "/gateway/bot":
            limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
            return _json({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})
        if method == "PUT" and parts[0] == "applications" and parts[-1] == "commands":
            guild_id = parts[3] if len(parts) == 5 else ""
            self.command_syncs.append({"guild_id": guild_id, "commands": body})
            return _json([self._command(c, guild_id) for c in body])
        if method == "POST" and parts[0] == "channels" and len(parts) == 3 and parts[2] == "typing":
            self.typing.append(parts[1])
            return web.Response(status=204)
        if parts[0] == "channels" and len(parts) >= 3 and parts[2] == "messages":
            return self._channel_messages(method, parts, body)
        if method == "POST" and parts[0] == "interactions":
            return self._interaction_callback(parts[1], parts[2], body)
        if parts[0] == "webhooks" and len(parts) >= 3:
            return self._webhook(method, parts, body)
        if method == "GET" and parts[0] == "channels" and len(parts) == 2:
            guild = self.guild_of(parts[1])
            if guild is None:
                return _json({"message": "Unknown Channel", "code": 10003}, status=404)
            channel = guild.channel(parts[1])
            assert channel is not None
            return _json(channel.payload(guild.id))
        return _json({"message": f"fake: no route for {method} {path}", "code": 0}, status=404)

    def _channel_messages(self, method: str, parts: list[str], body: Any) -> web.Response:
        channel_id = parts[1]
        if method == "POST" and len(parts) == 3:
            nonce = (body or {}).get("nonce")
            if nonce and body.get("enforce_nonce") and (channel_id, nonce) in self._nonces:
                # Discord's idempotency: the same nonce again answers with the message already made.
                return _json(self._message_payload(self._nonces[(channel_id, nonce)]))
            message = self._store(channel_id, body, via="channel")
            if nonce:
                self._nonces[(channel_id, nonce)] = message
            return _json(self._message_payload(message))
        if method == "DELETE" and len(parts) == 4:
            message = self._messages.pop(parts[3], None)
            if message is None:
                return _json({"message": "Unknown Message", "code": 10008}, status=404)
            self.deleted.append(message.id)
            self.sent.remove(message)
            return web.Response(status=204)
        if method == "PATCH" and len(parts) == 4:
            message = self._messages.get(parts[3])
            if message is None:
                return _json({"message": "Unknown Message", "code": 10008}, status=404)
            self._edit(message, body)
            return _json(self._message_payload(message))
        return _json({"message": "fake: unsupported message route", "code": 0}, status=404)

    def _interaction_callback(self, interaction_id: str, token: str, body: Any) -> web.Response:
        kind = body.get("type") if isinstance(body, dict) else None
        self.interaction_callbacks.append({"id": interaction_id, "token": token, "type": kind, "at": time.monotonic()})
        flags = ((body or {}).get("data") or {}).get("flags", 0)
        return _json(
            {
                "interaction": {
                    "id": interaction_id,
                    "type": 2,
                    "response_message_loading": kind == 5,
                    "response_message_ephemeral": bool(flags & 64),
                }
            }
        )

    def _webhook(self, method: str, parts: list[str], body: Any) -> web.Response:
        token = parts[2]
        channel_id = self._tokens.get(token, "")
        if method == "PATCH" and parts[-1] == "@original":
            original = self._interaction_originals.get(token)
            if original is None:
                original = self._store(channel_id, body, via="interaction")
                self._interaction_originals[token] = original
            else:
                self._edit(original, body)
            return _json(self._message_payload(original))
        if method == "DELETE" and parts[-1] == "@original":
            self.deleted.append("@original")
            original = self._interaction_originals.pop(token, None)
            if original is not None:
                self.sent.remove(original)
            return web.Response(status=204)
        if method == "POST" and len(parts) == 3:
            message = self._store(channel_id, body, via="followup")
            return _json(self._message_payload(message))
        if method == "PATCH" and len(parts) == 5 and parts[3] == "messages":
            message = self._messages.get(parts[4])
            if message is None:
                return _json({"message": "Unknown Message", "code": 10008}, status=404)
            self._edit(message, body)
            return _json(self._message_payload(message))
        return _json({"message": "fake: unsupported webhook route", "code": 0}, status=404)

    def _store(self, channel_id: str, body: dict[str, Any], *, via: str) -> SentMessage:
        body = body or {}
        message = SentMessage(
            id=snowflake(),
            channel_id=channel_id,
            content=body.get("content") or "",
            components=body.get("components") or [],
            attachments=body.get("files") or [],
            message_reference=body.get("message_reference"),
            via=via,
            flags=body.get("flags") or 0,
        )
        self._messages[message.id] = message
        self.sent.append(message)
        self.message_ready.set()
        return message

    def _edit(self, message: SentMessage, body: dict[str, Any]) -> None:
        body = body or {}
        if "content" in body:
            message.content = body["content"] or ""
        if "components" in body:
            message.components = body["components"] or []
        message.edits += 1
        self.message_ready.set()

    # -- payload builders ----------------------------------------------------------------------

    def _application(self) -> dict[str, Any]:
        return {
            "id": APPLICATION_ID,
            "name": "switchboard",
            "icon": None,
            "description": "",
            "rpc_origins": [],
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": user_payload("1100000000000000009", "owner"),
            "summary": "",
            "verify_key": "0" * 64,
            "team": None,
            "flags": 0,
            "interactions_endpoint_url": None,
            "bot": self.bot,
        }

    def _command(self, command: dict[str, Any], guild_id: str) -> dict[str, Any]:
        out = {
            "id": snowflake(),
            "application_id": APPLICATION_ID,
            "version": snowflake(),
            "default_member_permissions": None,
            "dm_permission": True,
            "nsfw": False,
            "type": 1,
            "options": [],
            **command,
        }
        if guild_id:
            out["guild_id"] = guild_id
        return out

    def _message_payload(self, message: SentMessage) -> dict[str, Any]:
        guild = self.guild_of(message.channel_id)
        data: dict[str, Any] = {
            "id": message.id,
            "channel_id": message.channel_id,
            "author": self.bot,
            "content": message.content,
            "timestamp": _now(),
            "edited_timestamp": _now() if message.edits else None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": 0,
            "flags": message.flags,
            "components": message.components,
        }
        if guild is not None:
            data["guild_id"] = guild.id
        return data

    def _interaction(self, channel_id: str, user: dict[str, Any], kind: int, data: dict[str, Any]) -> dict[str, Any]:
        token = f"itoken-{snowflake()}"
        self._tokens[token] = channel_id
        guild = self.guild_of(channel_id)
        payload: dict[str, Any] = {
            "id": snowflake(),
            "application_id": APPLICATION_ID,
            "type": kind,
            "data": data,
            "channel_id": channel_id,
            "token": token,
            "version": 1,
            "app_permissions": _PERMISSIONS_ALL,
            "attachment_size_limit": 10 * 1024 * 1024,
            "locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": guild.id if guild else "0"},
            "context": 0 if guild else 1,
        }
        if guild is not None:
            channel = guild.channel(channel_id)
            assert channel is not None
            payload["guild_id"] = guild.id
            payload["guild_locale"] = "en-US"
            payload["channel"] = channel.payload(guild.id)
            payload["member"] = {**_member(user), "permissions": _PERMISSIONS_ALL}
            if kind == 2:
                data["guild_id"] = guild.id
        else:
            payload["user"] = user
            payload["channel"] = {"id": channel_id, "type": 1, "recipients": [user]}
        return payload

    # -- gateway --------------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sessions.append(ws)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}}))
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                await self._on_frame(ws, frame)
        finally:
            self.sessions.remove(ws)
            self.gateway_closed.set()
        return ws

    async def _on_frame(self, ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        op = frame.get("op")
        if op == 1:
            self.heartbeats += 1
            await ws.send_str(json.dumps({"op": 11}))
        elif op == 2:
            self.identifies.append(frame["d"])
            if self.close_code_on_identify is not None:
                await ws.close(code=self.close_code_on_identify, message=b"fake: refused")
                return
            await self._send_ready(ws)
        elif op == 6:
            self.resumes.append(frame["d"])
            self._seq += 1
            await ws.send_str(json.dumps({"op": 0, "t": "RESUMED", "s": self._seq, "d": {}}))

    async def _send_ready(self, ws: web.WebSocketResponse) -> None:
        self._seq += 1
        ready = {
            "v": 10,
            "user": self.bot,
            "guilds": [{"id": g, "unavailable": True} for g in self.guilds],
            "session_id": self._session_id,
            "resume_gateway_url": self.gateway_url,
            "shard": [0, 1],
            "application": {"id": APPLICATION_ID, "flags": 0},
            "private_channels": [],
            "relationships": [],
        }
        await ws.send_str(json.dumps({"op": 0, "t": "READY", "s": self._seq, "d": ready}))
        for guild in self.guilds.values():
            self._seq += 1
            await ws.send_str(json.dumps({"op": 0, "t": "GUILD_CREATE", "s": self._seq, "d": self._guild(guild)}))

    def _guild(self, guild: Guild) -> dict[str, Any]:
        return {
            "id": guild.id,
            "name": guild.name,
            "icon": None,
            "owner_id": "1100000000000000009",
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "system_channel_id": next((c.id for c in guild.channels if not c.parent), None),
            "roles": [
                {
                    # The role Discord creates for the bot when it joins; people often mention it.
                    "id": bot_role_id(guild.id),
                    "name": "switchboard",
                    "permissions": _PERMISSIONS_ALL,
                    "position": 1,
                    "color": 0,
                    "hoist": False,
                    "managed": True,
                    "mentionable": True,
                    "flags": 0,
                    "tags": {"bot_id": BOT_USER_ID},
                },
                {
                    "id": guild.id,
                    "name": "@everyone",
                    "permissions": _PERMISSIONS_ALL,
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                },
            ],
            "emojis": [],
            "stickers": [],
            "features": [],
            "member_count": 2,
            "large": False,
            "unavailable": False,
            "joined_at": _now(),
            "members": [_member(self.bot)],
            "channels": [c.payload(guild.id) for c in guild.channels if not c.parent],
            "threads": [c.payload(guild.id) for c in guild.channels if c.parent],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }


def _json(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Exactly `application/json`: discord.py only decodes a body whose content type is that string.
    return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json", headers=headers)
