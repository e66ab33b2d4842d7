"""The Discord adapter: a discord.py gateway client in a background task, and reply rendering.

discord.py runs its real code path: `login()` then `connect()` (never `run()`, which owns the loop
and signals), heartbeats on its own keep-alive thread, RESUME and reconnect with jittered backoff,
and 429 handling (it sleeps `retry_after` and retries). Around that we add what a chat-ops bot
needs: retries for what discord.py gives up on (`retry.py`), idempotent sends (a `nonce`, which
Discord enforces), streamed replies edited at most about once a second, slash-command answers
through the interaction, and buttons that survive restarts (`components.py`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import logging
import random
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import discord
import yarl
from discord import app_commands

from adapters.base import Adapter, AdapterContext, Capability, buttons_as_text, split_text
from adapters.discord.components import MAX_BUTTONS, ButtonValues, ReplyButton, build_view
from adapters.discord.inbound import (
    DM_SPACE,
    NAME,
    action_event,
    admits,
    join_event,
    message_event,
    reaction_event,
    slash_event,
)
from adapters.discord.markdown import to_discord
from adapters.discord.options import DiscordOptions
from adapters.discord.retry import with_retries
from bot.events import Event, FileOut, Reply, ReplyKind

log = logging.getLogger("switchboard.adapters.discord")

MAX_CHARS = 2000
_MAX_FILES = 10  # attachments per message
_REMEMBERED = 2000  # Reply.id -> sent messages, for streaming edits
_LOGIN_WAIT = 300.0  # seconds a reply waits for a (re)login before it is given up
_INTERACTION_TTL = 14 * 60  # interaction tokens live 15 minutes
_PLACEHOLDER = "…"  # Discord refuses an empty message; a stream may start empty
# Gateway close codes after which reconnecting cannot help (bad token, bad intents, ...).
_FATAL_CLOSE_CODES = {
    4004: "DISCORD_BOT_TOKEN was refused",
    4013: "invalid intents",
    4014: "privileged intent not enabled",
}

# (content, chunk index, view, files) -> the platform message. Files are built per attempt: discord.py
# closes a File after sending it, so a retried send needs fresh ones.
Poster = Callable[[str, int, "discord.ui.View | None", list[FileOut]], Awaitable[Any]]


@dataclass(slots=True)
class _Sent:
    """The platform messages one Reply became, kept so later Replies can edit them (streaming)."""

    messages: list[Any]
    shown: list[str]
    post: Poster
    has_view: bool = False
    last_edit: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: Reply | None = None
    flusher: asyncio.Task[None] | None = None


@dataclass(slots=True)
class _PendingInteraction:
    """A deferred slash command: its first reply edits the "thinking…" response."""

    interaction: discord.Interaction
    at: float
    answered: bool = False


class _Client(discord.Client):
    """discord.Client whose gateway events go to the adapter."""

    def __init__(self, adapter: DiscordAdapter, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._adapter = adapter
        self.switchboard_on_click = adapter._on_click  # read by components.ReplyButton

    async def setup_hook(self) -> None:
        self.add_dynamic_items(ReplyButton)

    async def on_ready(self) -> None:
        self._adapter._on_ready()

    async def on_message(self, message: discord.Message) -> None:
        await self._adapter._on_message(message)

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        await self._adapter._on_reaction(payload)

    async def on_member_join(self, member: discord.Member) -> None:
        await self._adapter._on_member_join(member)


class DiscordAdapter(Adapter):
    name = NAME
    capabilities = frozenset(
        {
            Capability.BUTTONS,
            Capability.EDIT,
            Capability.THREADS,
            Capability.FILES,
            Capability.REACTIONS,
            Capability.MARKDOWN,
        }
    )
    max_message_chars = MAX_CHARS
    # TURN_END tells us when a slash command's flow finished without answering, so the
    # "thinking…" placeholder can be removed instead of spinning forever.
    wants_turn_end = True

    def __init__(self, options: DiscordOptions) -> None:
        self.options = options
        self.connected = asyncio.Event()  # set on READY; cleared on disconnect
        self.failure = ""  # why the adapter gave up, for status reports
        self._context: AdapterContext | None = None
        self._client: _Client | None = None
        self._tree: app_commands.CommandTree[_Client] | None = None
        self._task: asyncio.Task[None] | None = None
        self._logged_in = asyncio.Event()
        self._stopping = False
        self._prefix = "/sb"
        self._sent: OrderedDict[str, _Sent] = OrderedDict()
        self._interactions: OrderedDict[str, _PendingInteraction] = OrderedDict()
        self._values = ButtonValues()
        self._publish_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones
        self._globals: dict[str, Any] = {}

    def describe(self) -> str:
        where = f"guilds {', '.join(map(str, self.options.guilds))}" if self.options.guilds else "all guilds"
        api = f", API {self.options.api_url}" if self.options.api_url else ""
        intent = "message content intent on" if self.options.message_content else "mentions and DMs only"
        user = f" as @{self._client.user.name}" if self._client and self._client.user else ""
        return f"gateway{user}; /{self.slash_command_name} in {where}; {intent}{api}"

    async def health(self) -> dict[str, Any]:
        """For /healthz: connected to the gateway, still connecting, or given up (with the reason)."""
        if self.failure:
            return {"ok": False, "error": self.failure}
        user = self._client.user if self._client else None
        return {"ok": self.connected.is_set(), "bot": user.name if user else "", "latency_ms": self._latency_ms()}

    def _latency_ms(self) -> float | None:
        latency = self._client.latency if self._client else float("inf")
        return round(latency * 1000, 1) if latency != float("inf") else None

    @property
    def slash_command_name(self) -> str:
        # Discord command names: 1-32 of a-z 0-9 - _ ("/sb" -> "sb", "!Ops Bot" -> "opsbot").
        derived = re.sub(r"[^-_a-z0-9]", "", self._prefix.lower())[:32]
        return self.options.slash_command or derived or "sb"

    @property
    def client(self) -> discord.Client | None:
        return self._client

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self, context: AdapterContext) -> None:
        """Build the client and connect in the background; returns at once."""
        self._context = context
        self._prefix = context.command_prefix
        self._stopping = False
        self._apply_endpoints()
        self._build_client()
        if context.server is not None:
            context.server.add_health_check(NAME, self.health)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="discord-gateway")

    async def stop(self) -> None:
        self._stopping = True
        for sent in self._sent.values():
            if sent.flusher is not None:
                sent.flusher.cancel()
        for task in list(self._background):
            task.cancel()
        if self._client is not None and not self._client.is_closed():
            with contextlib.suppress(Exception):
                await self._client.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        self.connected.clear()
        self._logged_in.clear()
        self._restore_endpoints()

    def _apply_endpoints(self) -> None:
        """Point discord.py at `api_url`. These are class attributes (process-wide): we remember
        what we replaced and put it back in `stop`."""
        if not self.options.api_url:
            return
        self._globals = {
            "route": discord.http.Route.BASE,
            "gateway": discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
        }
        discord.http.Route.BASE = self.options.api_url

    def _restore_endpoints(self) -> None:
        if not self._globals:
            return
        discord.http.Route.BASE = self._globals["route"]
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self._globals["gateway"]
        self._globals = {}

    def _build_client(self) -> _Client:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = intents.dm_messages = True
        intents.guild_reactions = intents.dm_reactions = True
        intents.message_content = self.options.message_content
        intents.members = self.options.member_events
        self._client = _Client(
            self,
            intents=intents,
            # Model output must never ping @everyone or a role.
            allowed_mentions=discord.AllowedMentions(everyone=False, roles=False, users=True, replied_user=True),
            max_messages=1000,
        )
        self._tree = app_commands.CommandTree(self._client)
        self._tree.add_command(self._slash_command())
        return self._client

    async def _run(self) -> None:
        """Log in, then hold the gateway; recover from whatever ends `connect()` with jittered
        backoff, except what reconnecting cannot fix (a refused token or intent)."""
        delay = 1.0
        synced = False
        while not self._stopping:
            client = self._client
            if client is None or client.is_closed():
                client = self._build_client()  # a closed discord.Client cannot log in again
                self._logged_in.clear()
            try:
                if not self._logged_in.is_set():
                    await client.login(self.options.token)
                    if self.options.api_url:
                        # The gateway URL is the API's answer, as Discord recommends.
                        _shards, url, _limit = await client.http.get_bot_gateway()
                        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
                    self._logged_in.set()
                    if self.options.sync_commands and not synced:
                        synced = True
                        self._spawn(self._sync_commands(), "discord-sync-commands")
                await client.connect(reconnect=True)
                if self._stopping:
                    return
            except asyncio.CancelledError:
                raise
            except discord.LoginFailure:
                self._give_up("DISCORD_BOT_TOKEN was refused by Discord (401); reset the token in the developer portal")
                return
            except discord.PrivilegedIntentsRequired:
                self._give_up(
                    "Discord refused a privileged intent: enable MESSAGE CONTENT INTENT (and SERVER MEMBERS INTENT "
                    "when member_events is on) under Bot → Privileged Gateway Intents, or set "
                    "adapters.discord.message_content: false"
                )
                return
            except discord.ConnectionClosed as exc:
                if exc.code in _FATAL_CLOSE_CODES:
                    self._give_up(f"gateway closed with {exc.code}: {_FATAL_CLOSE_CODES[exc.code]}")
                    return
                log.warning("discord gateway closed; reconnecting", extra={"code": exc.code, "delay": delay})
            except (aiohttp.ClientError, OSError, discord.HTTPException, discord.GatewayNotFound, TimeoutError) as exc:
                log.warning("discord unreachable; retrying", extra={"error": type(exc).__name__, "delay": delay})
            except Exception:
                # A payload discord.py cannot parse ends `connect()`: drop that socket, open a new session.
                log.exception("discord gateway failed; reconnecting", extra={"delay": delay})
                ws = client.ws
                if ws is not None and ws.open:
                    with contextlib.suppress(Exception):
                        await ws.close(code=4000)
            if self.connected.is_set():
                delay = 1.0  # it had been up: this is a fresh failure, not a run of them
            self.connected.clear()
            if self._stopping:
                return
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 60.0)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _give_up(self, reason: str) -> None:
        self.failure = reason
        log.error("discord adapter stopped: %s", reason, extra={"adapter": NAME})

    def _on_ready(self) -> None:
        self.connected.set()
        assert self._client is not None and self._client.user is not None
        log.info(
            "discord connected",
            extra={"adapter": NAME, "bot_user": self._client.user.name, "guilds": len(self._client.guilds)},
        )

    # -- slash command ------------------------------------------------------------------------------

    def _slash_command(self) -> app_commands.Command[Any, Any, Any]:
        adapter = self

        @app_commands.command(name=self.slash_command_name, description="Ask Switchboard, or run a command (try: help)")
        @app_commands.describe(text="A request, or a command and its arguments, e.g. help")
        async def slash(interaction: discord.Interaction, text: str = "") -> None:
            await adapter._on_slash(interaction, text)

        return slash

    async def _sync_commands(self) -> None:
        """Register the slash command: per configured guild (instant) or globally (up to an hour)."""
        assert self._tree is not None
        targets = [discord.Object(id=g) for g in self.options.guilds] or [None]
        for guild in targets:
            try:
                if guild is not None:
                    self._tree.copy_global_to(guild=guild)
                await self._tree.sync(guild=guild)
                log.info("discord slash command registered", extra={"guild": guild.id if guild else "global"})
            except discord.Forbidden:
                log.error(
                    "cannot register the slash command: the bot is not in this guild, or was invited without "
                    "the applications.commands scope (see docs/adapters/discord.md)",
                    extra={"guild": guild.id if guild else "global"},
                )
            except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
                log.warning("slash command registration failed", extra={"error": str(exc)})

    async def _on_slash(self, interaction: discord.Interaction, text: str) -> None:
        if not self._allows(interaction.user.id, interaction.guild_id):
            await interaction.response.send_message("You are not on this bot's allow-list.", ephemeral=True)
            return
        # Acknowledge at once (Discord allows 3 seconds); the answer edits this "thinking…" reply.
        await interaction.response.defer(thinking=True)
        event = slash_event(interaction, text, self._prefix)
        self._interactions[event.id] = _PendingInteraction(interaction, time.monotonic())
        while len(self._interactions) > _REMEMBERED:
            self._interactions.popitem(last=False)
        if not await self._publish(event):
            self._interactions.pop(event.id, None)
            with contextlib.suppress(discord.HTTPException):
                await interaction.edit_original_response(
                    content="Switchboard could not take this right now; try again."
                )

    async def _on_click(self, interaction: discord.Interaction, custom_id: str, label: str) -> None:
        if not self._allows(interaction.user.id, interaction.guild_id):
            await interaction.response.send_message("You are not on this bot's allow-list.", ephemeral=True)
            return
        await interaction.response.defer()  # acknowledge without changing the message
        value = self._values.decode(custom_id)
        if value is None:
            await interaction.followup.send("This button has expired; please ask again.", ephemeral=True)
            return
        await self._publish(action_event(interaction, value, label))

    # -- inbound ------------------------------------------------------------------------------------

    def _allows(self, user_id: int, guild_id: int | None) -> bool:
        if self.options.allowed_users and user_id not in self.options.allowed_users:
            return False
        return not (guild_id and self.options.allowed_guilds and guild_id not in self.options.allowed_guilds)

    async def _on_message(self, message: discord.Message) -> None:
        me = self._client.user if self._client else None
        if me is None or not admits(message, self.options, me.id, self._prefix):
            return
        event = message_event(message, me.id, self._prefix)
        if await self._publish(event) and event.mentioned:
            # "Switchboard is typing…" until the answer arrives (Discord shows it for up to 10 s).
            self._spawn(self._typing(message.channel), "discord-typing")

    async def _typing(self, channel: Any) -> None:
        try:
            await channel.typing()
        except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
            log.debug("typing indicator not shown", extra={"error": type(exc).__name__})

    async def _on_reaction(self, payload: discord.RawReactionActionEvent) -> None:
        client = self._client
        if client is None or client.user is None or payload.user_id == client.user.id:
            return
        if not self._allows(payload.user_id, payload.guild_id):
            return
        user = payload.member or client.get_user(payload.user_id)
        if user is not None and user.bot and not self.options.answer_bots:
            return
        channel = client.get_channel(payload.channel_id)
        await self._publish(reaction_event(payload, channel, user, client.user.id))

    async def _on_member_join(self, member: discord.Member) -> None:
        if self._allows(member.id, member.guild.id) and not member.bot:
            await self._publish(join_event(member))

    async def _publish(self, event: Event) -> bool:
        """Hand an event to the bus. False when it could not be accepted (logged, never raised:
        an exception here would only reach discord.py's event loop)."""
        assert self._context is not None
        try:
            # discord.py runs every gateway event in its own task; the lock (FIFO) keeps publishes
            # in gateway order even when the bus awaits (journal, Redis), so a conversation's
            # messages are never reordered.
            async with self._publish_lock:
                accepted = await self._context.bus.publish(event)
        except Exception:
            log.exception("event not accepted by the bus", extra={"adapter": NAME, "event_id": event.id})
            return False
        if not accepted:
            log.debug("duplicate event dropped", extra={"adapter": NAME, "event_id": event.id})
        return True

    # -- outbound -----------------------------------------------------------------------------------

    async def send(self, reply: Reply) -> str:
        if reply.kind is ReplyKind.TURN_END:
            await self._finish_interaction(reply.in_reply_to)
            return ""
        if self.failure:
            raise RuntimeError(f"discord adapter is not running: {self.failure}")
        if not self._logged_in.is_set():
            # Replies wait out a (re)connect rather than being dropped.
            await asyncio.wait_for(self._logged_in.wait(), timeout=_LOGIN_WAIT)
        if reply.edit_of:
            return await self._edit(reply)
        return await self._post(reply)

    async def _post(self, reply: Reply) -> str:
        chunks, view = self._render(reply)
        files = [f for f in reply.files if f.data_b64]
        post = self._poster(reply)
        messages: list[Any] = []
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            batch = files[:_MAX_FILES] if last else []
            messages.append(await with_retries(post, chunk, index, view if last else None, batch))
        for start in range(_MAX_FILES, len(files), _MAX_FILES):
            await with_retries(post, "", len(chunks) + start, None, files[start : start + _MAX_FILES])
        self._remember(reply.id, _Sent(messages, chunks, post, has_view=view is not None))
        return str(messages[0].id)

    def _render(self, reply: Reply) -> tuple[list[str], discord.ui.View | None]:
        """Markdown → Discord, buttons natively (or as a numbered list past 25), split at 2000."""
        view = None
        text = reply.text
        if len(reply.buttons) > MAX_BUTTONS:
            text = buttons_as_text(reply)
        elif reply.buttons:
            view = build_view(reply.buttons, reply.id, self._values)
        links = [f"[{f.name}]({f.url})" for f in reply.files if f.url and not f.data_b64]
        if links:
            text = "\n".join([text.rstrip(), *links]) if text.strip() else "\n".join(links)
        rendered = to_discord(text)
        chunks = split_text(rendered, MAX_CHARS) if rendered.strip() else [_PLACEHOLDER]
        return chunks, view

    def _poster(self, reply: Reply) -> Poster:
        """How this reply's messages are created: through a pending slash-command interaction
        (first edits the deferred response, the rest are follow-ups) or in the channel/thread."""
        pending = self._interactions.get(reply.in_reply_to)
        if pending is not None and time.monotonic() - pending.at < _INTERACTION_TTL:
            return self._interaction_poster(pending, reply)
        return self._channel_poster(reply)

    def _interaction_poster(self, pending: _PendingInteraction, reply: Reply) -> Poster:
        interaction = pending.interaction

        async def post(content: str, index: int, view: discord.ui.View | None, files: list[FileOut]) -> Any:
            extra: dict[str, Any] = {}
            if view is not None:
                extra["view"] = view
            if not pending.answered:
                if files:
                    extra["attachments"] = [_to_file(f) for f in files]
                message = await interaction.edit_original_response(content=content, **extra)
                pending.answered = True
                return message
            if files:
                extra["files"] = [_to_file(f) for f in files]
            return await interaction.followup.send(
                content or _PLACEHOLDER, wait=True, ephemeral=reply.ephemeral, **extra
            )

        return post

    def _channel_poster(self, reply: Reply) -> Poster:
        assert self._client is not None
        conv = reply.conversation
        target = conv.thread if (reply.in_thread and conv.thread) else conv.room
        if not target.isdigit():
            raise ValueError(f"discord reply to {conv.key!r}: the room/thread is not a Discord channel id")
        guild_id = int(conv.space) if conv.space.isdigit() else None
        channel = self._client.get_partial_messageable(int(target), guild_id=guild_id)
        reference = None
        origin = conv.thread or conv.room  # where the answered message was posted
        answered = re.fullmatch(rf"{NAME}:(\d+)", reply.in_reply_to or "")
        if answered and origin == target and conv.space != DM_SPACE:
            reference = discord.MessageReference(
                message_id=int(answered.group(1)), channel_id=int(target), fail_if_not_exists=False
            )

        async def post(content: str, index: int, view: discord.ui.View | None, files: list[FileOut]) -> Any:
            extra: dict[str, Any] = {"nonce": f"{reply.id[:20]}{index:05d}"}  # Discord dedupes retried sends
            if view is not None:
                extra["view"] = view
            if files:
                extra["files"] = [_to_file(f) for f in files]
            if reference is not None and index == 0:
                extra["reference"] = reference
            return await channel.send(content or None, **extra)

        return post

    async def _edit(self, reply: Reply) -> str:
        """Streaming: edit the first reply's messages, at most once per `edit_interval`, always
        rendering the final text. Skipped intermediate texts are superseded by later ones."""
        sent = self._sent.get(reply.edit_of)
        if sent is None:
            log.info("edit of a message no longer remembered; sending it anew", extra={"reply_id": reply.edit_of})
            sent_id = await self._post(reply)
            self._remember(reply.edit_of, self._sent[reply.id])
            return sent_id
        first_id = str(sent.messages[0].id)
        if reply.partial:
            due = time.monotonic() - sent.last_edit >= self.options.edit_interval
            if due and sent.flusher is None and not sent.lock.locked():
                async with sent.lock:
                    await self._apply(sent, reply)
            else:
                sent.pending = reply
                if sent.flusher is None:
                    sent.flusher = asyncio.get_running_loop().create_task(self._flush_later(sent))
            return first_id
        sent.pending = None
        if sent.flusher is not None:
            sent.flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sent.flusher
            sent.flusher = None
        async with sent.lock:
            await self._apply(sent, reply)
        if reply.files:
            files = [f for f in reply.files if f.data_b64]
            for start in range(0, len(files), _MAX_FILES):
                await with_retries(sent.post, "", len(sent.messages) + start, None, files[start : start + _MAX_FILES])
        return first_id

    async def _flush_later(self, sent: _Sent) -> None:
        try:
            await asyncio.sleep(max(0.0, sent.last_edit + self.options.edit_interval - time.monotonic()))
            async with sent.lock:
                pending, sent.pending = sent.pending, None
                if pending is not None:
                    await self._apply(sent, pending)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("streamed edit failed; the next one will carry the text", extra={"adapter": NAME})
        finally:
            if asyncio.current_task() is sent.flusher:
                sent.flusher = None

    async def _apply(self, sent: _Sent, reply: Reply) -> None:
        chunks, view = self._render(reply)
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            if index >= len(sent.messages):
                sent.messages.append(await with_retries(sent.post, chunk, index, view if last else None, []))
                sent.shown.append(chunk)
                continue
            changes: dict[str, Any] = {}
            if chunk != sent.shown[index]:
                changes["content"] = chunk
            if last and view is not None:
                changes["view"] = view
            elif sent.has_view and (not last or view is None) and index == len(sent.messages) - 1:
                changes["view"] = None  # the buttons moved on or went away
            if changes:
                message = sent.messages[index]
                await with_retries(lambda m=message, c=changes: m.edit(**c))
                sent.shown[index] = chunk
        for message in sent.messages[len(chunks) :]:
            with contextlib.suppress(discord.HTTPException):
                await message.delete()
        del sent.messages[len(chunks) :], sent.shown[len(chunks) :]
        sent.has_view = view is not None
        sent.last_edit = time.monotonic()

    async def _finish_interaction(self, event_id: str) -> None:
        pending = self._interactions.pop(event_id, None)
        if pending is None or pending.answered or time.monotonic() - pending.at >= _INTERACTION_TTL:
            return
        with contextlib.suppress(discord.HTTPException):
            await pending.interaction.delete_original_response()

    def _remember(self, reply_id: str, sent: _Sent) -> None:
        self._sent[reply_id] = sent
        self._sent.move_to_end(reply_id)
        while len(self._sent) > _REMEMBERED:
            _, old = self._sent.popitem(last=False)
            if old.flusher is not None:
                old.flusher.cancel()


def _to_file(out: FileOut) -> discord.File:
    return discord.File(io.BytesIO(base64.b64decode(out.data_b64)), filename=out.name)
