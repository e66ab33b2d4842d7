"""The Slack adapter: slack-bolt's `AsyncApp` in, slack_sdk's `AsyncWebClient` out.

Inbound runs through bolt's real code path in both modes (Socket Mode websocket, or HTTP Events API
mounted on our server, where bolt checks the signing secret and timestamp). Bolt runs with
`process_before_response=True`: Slack gets its acknowledgement once the event is accepted by the bus
(milliseconds), and the flow runs afterwards from the bus. If the bus refuses the event the request
fails and Slack delivers it again, so nothing is lost; bolt does not dedupe Slack's retries, the
stable `Event.id` does, at `bus.publish`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from typing import Any

from slack_bolt.adapter.starlette.async_handler import to_starlette_response
from slack_bolt.async_app import AsyncApp, AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from starlette.requests import Request
from starlette.responses import Response

from adapters.base import Adapter, AdapterContext, Capability
from adapters.slack import render
from adapters.slack.inbound import NAME, Inbound, InboundPolicy
from adapters.slack.lru import BoundedDict
from adapters.slack.outbound import Outbound
from adapters.slack.settings import SlackMode, SlackSettings
from bot.events import Event, Reply, ReplyKind
from bot.server import RequestTooLarge, json_error, read_body_capped

log = logging.getLogger("switchboard.adapters.slack")

_NAME_LOOKUP_TIMEOUT = 1.0  # seconds; the ack path must stay well inside Slack's 3 s
_MIN_BODY_CAP = 512 * 1024  # Slack payloads with blocks and files exceed a chat message's cap
_FATAL_AUTH = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked", "not_allowed_token_type"})


class SlackAdapter(Adapter):
    name = NAME
    capabilities = frozenset({
        Capability.BUTTONS, Capability.EDIT, Capability.THREADS, Capability.FILES,
        Capability.REACTIONS, Capability.EPHEMERAL, Capability.MARKDOWN,
    })
    max_message_chars = render.Limit.MESSAGE_CHARS

    def __init__(self, settings: SlackSettings) -> None:
        self.settings = settings
        self.bot_user_id = ""
        self.bot_name = ""
        self.app: AsyncApp | None = None
        self._client: AsyncWebClient | None = None
        self._context: AdapterContext | None = None
        self._inbound: Inbound | None = None
        self._socket: Any = None  # AsyncSocketModeHandler, imported only in Socket Mode
        self._tasks: set[asyncio.Task[Any]] = set()
        self._outbound: Outbound | None = None
        self._askers: BoundedDict[str, str] = BoundedDict(10_000)  # Event.id -> Slack user (ephemeral replies)
        self._names: BoundedDict[str, str] = BoundedDict(10_000)
        self.connected = asyncio.Event()
        self.failure = ""  # Slack's error code when it refused our token

    def describe(self) -> str:
        s = self.settings
        how = "socket mode" if s.mode is SlackMode.SOCKET else f"events API at {s.events_path}"
        who = f" as @{self.bot_name}" if self.bot_name else ""
        return f"{how}{who}, slash command {s.slash_command}, answers {s.channel_messages} in channels"

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, context: AdapterContext) -> None:
        s = self.settings
        if s.mode is SlackMode.HTTP and context.server is None:
            raise RuntimeError("Slack HTTP Events API mode needs the HTTP server (server: in config)")
        self._context = context
        self._inbound = Inbound(InboundPolicy(
            command_prefix=context.command_prefix,
            channel_messages=s.channel_messages,
            reply_in_thread=s.reply_in_thread,
            ignore_bots=s.ignore_bots,
            allowed_channels=s.allowed_channels,
            allowed_users=s.allowed_users,
        ))
        self._client = self._web_client(s.bot_token)
        self._outbound = Outbound(
            self._client, self._inbound, edit_interval=s.edit_interval, askers=self._askers, spawn=self._spawn
        )
        self.app = AsyncApp(
            client=self._client,
            signing_secret=s.signing_secret,
            process_before_response=True,
            request_verification_enabled=s.mode is SlackMode.HTTP,
            logger=logging.getLogger("switchboard.adapters.slack.bolt"),
        )
        self._register(self.app)
        if s.mode is SlackMode.HTTP:
            assert context.server is not None
            for path in dict.fromkeys((s.events_path, "/slack/commands", "/slack/actions")):
                context.server.add_route(path, self._http_endpoint, methods=["POST"])
        if context.server is not None:
            context.server.add_health_check(NAME, self.health)
        self._spawn(self._connect(), "slack-connect")

    async def stop(self) -> None:
        socket, self._socket = self._socket, None
        if socket is not None:
            with contextlib.suppress(Exception):
                await socket.close_async()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.connected.clear()

    def _web_client(self, token: str) -> AsyncWebClient:
        return AsyncWebClient(
            token=token,
            base_url=self.settings.api_url,
            retry_handlers=[
                AsyncRateLimitErrorRetryHandler(max_retry_count=self.settings.max_retries),
                AsyncConnectionErrorRetryHandler(max_retry_count=self.settings.max_retries),
            ],
        )

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _connect(self) -> None:
        """Learn who we are (auth.test), then open Socket Mode; retry with backoff and jitter."""
        try:
            await self._with_backoff(self._whoami, "auth.test")
            if self.settings.mode is SlackMode.SOCKET:
                await self._open_socket()
        except SlackApiError as exc:  # a refused token: logged by _with_backoff, reported by /healthz
            self.failure = str(exc.response.get("error", "refused"))
            return
        self.connected.set()
        log.info("slack adapter connected", extra={"mode": str(self.settings.mode), "bot": self.bot_name})

    async def _open_socket(self) -> None:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        assert self.app is not None
        handler = AsyncSocketModeHandler(
            self.app, self.settings.app_token, web_client=self._web_client(self.settings.app_token),
            ping_interval=self.settings.ping_interval,
        )
        self._socket = handler
        # Ask for the websocket URL ourselves so a bad app token is reported (not retried forever);
        # once connected, the SDK's own monitor reconnects on drops and Slack's "disconnect" notices.
        handler.client.wss_uri = await self._with_backoff(handler.client.issue_new_wss_url, "apps.connections.open")
        await handler.client.connect()

    async def health(self) -> dict[str, Any]:
        """For /healthz: connected, still connecting, or refused (with Slack's error code)."""
        if self.failure:
            return {"ok": False, "error": f"Slack refused the credentials: {self.failure}"}
        return {"ok": self.connected.is_set(), "mode": str(self.settings.mode), "bot": self.bot_name}

    async def _whoami(self) -> None:
        assert self._client is not None
        answer = await self._client.auth_test()
        self.bot_user_id = answer.get("user_id") or ""
        self.bot_name = answer.get("user") or ""

    async def _with_backoff(self, call: Any, what: str) -> Any:
        delay = 1.0
        while True:
            try:
                return await call()
            except asyncio.CancelledError:
                raise
            except SlackApiError as exc:
                error = exc.response.get("error", "")
                if error in _FATAL_AUTH:
                    log.error("Slack refused the token; fix it and restart", extra={"call": what, "error": error})
                    raise
                log.warning("Slack call failed; retrying", extra={"call": what, "error": error, "delay": delay})
            except Exception as exc:
                log.warning("Slack unreachable; retrying", extra={"call": what, "error": repr(exc), "delay": delay})
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 60.0)

    # -- inbound --------------------------------------------------------------------------------

    def _register(self, app: AsyncApp) -> None:
        app.event("message")(self._on_message)
        app.event("app_mention")(self._on_message)
        app.event("reaction_added")(self._on_reaction)
        app.event("member_joined_channel")(self._on_join)
        app.command(self.settings.slash_command)(self._on_command)
        app.action(re.compile("^" + re.escape(render.ACTION_PREFIX)))(self._on_action)
        # Anything else we are subscribed to is acknowledged, so Slack does not retry it.
        app.event(re.compile(".*"))(self._on_other)

    async def _http_endpoint(self, request: Request) -> Response:
        assert self.app is not None and self._context is not None and self._context.server is not None
        try:
            body = await read_body_capped(request, max(self._context.server.max_body_bytes, _MIN_BODY_CAP))
        except RequestTooLarge as exc:
            return json_error(413, str(exc), code="too_large")
        retry = request.headers.get("x-slack-retry-num")
        if retry:
            reason = request.headers.get("x-slack-retry-reason")
            log.info("Slack redelivery", extra={"retry_num": retry, "reason": reason})
        bolt_request = AsyncBoltRequest(
            body=body.decode("utf-8", errors="replace"),
            query=request.query_params,  # type: ignore[arg-type]
            headers=request.headers,  # type: ignore[arg-type]
        )
        return to_starlette_response(await self.app.async_dispatch(bolt_request))

    def _bot_user(self, context: Any) -> str:
        return (context.get("bot_user_id") if context else "") or self.bot_user_id

    async def _on_message(self, body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        assert self._inbound is not None
        await self._publish(self._inbound.message(body, event, self._bot_user(context)))

    async def _on_reaction(self, body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        assert self._inbound is not None
        await self._publish(self._inbound.reaction(body, event, self._bot_user(context)))

    async def _on_join(self, body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        assert self._inbound is not None
        await self._publish(self._inbound.join(body, event, self._bot_user(context)))

    async def _on_command(self, ack: Any, body: dict[str, Any]) -> None:
        assert self._inbound is not None
        event = self._inbound.slash_command(body)
        if event is None:
            await ack(text="Sorry, I am not enabled for you here.")
            return
        # in_channel echoes the person's command into the channel, so the answer has context.
        await ack(response_type="in_channel")
        if self._outbound is not None and body.get("response_url"):
            self._outbound.response_urls[event.id] = str(body["response_url"])
        await self._publish(event)

    async def _on_action(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        assert self._inbound is not None
        event = self._inbound.block_action(body)
        if event is not None:
            if self._outbound is not None:
                event.meta["action"] = self._outbound.decode_value(str(event.meta.get("action", "")))
            await self._publish(event)

    async def _on_other(self) -> None:
        return None

    async def _publish(self, event: Event | None) -> None:
        if event is None or self._context is None:
            return
        if not event.sender.name and event.sender.id:
            name = await self._display_name(event.sender.id)
            if name:
                event.sender = type(event.sender)(event.sender.channel, event.sender.id, name, event.sender.is_bot)
        self._askers[event.id] = event.sender.id
        accepted = await self._context.bus.publish(event)
        if not accepted:
            log.info("dropped a Slack redelivery", extra={"event_id": event.id})

    async def _display_name(self, user: str) -> str:
        cached = self._names.get(user)
        if cached is not None:
            return cached
        assert self._client is not None
        try:
            answer = await asyncio.wait_for(self._client.users_info(user=user), _NAME_LOOKUP_TIMEOUT)
        except Exception as exc:  # names are a nicety: never hold up the acknowledgement for one
            log.debug("users.info failed", extra={"user": user, "error": repr(exc)})
            return ""
        info = answer.get("user") or {}
        profile = info.get("profile") or {}
        name = profile.get("display_name") or profile.get("real_name") or info.get("real_name") or info.get("name")
        name = name or ""
        self._names[user] = name
        return name

    # -- outbound -------------------------------------------------------------------------------

    async def send(self, reply: Reply) -> str:
        if reply.kind is ReplyKind.TURN_END:
            return ""
        if self._outbound is None:
            raise RuntimeError("the Slack adapter was asked to send before it started")
        return await self._outbound.send(reply)
