"""The Telegram adapter: python-telegram-bot's `Application` driven inside our event loop.

Lifecycle follows PTB's manual style (`initialize` → `start` → `updater.start_polling`), never
`run_polling()`, which would take over the loop and the signals. In webhook mode there is no
Updater: our HTTP server receives `POST /telegram/webhook`, checks the secret header, and feeds the
update to `Application.process_update`, answering 200 only once the events are on the bus (a 500
makes Telegram send the update again; the stable event ids make that harmless).

Outbound calls go through PTB's `AIORateLimiter` (global and per-group flood limits, `RetryAfter`
waited out and retried) and `api.call_api`; rendering replies is `outbox.Outbox`'s job. Replies
are delivered in one lane per chat, so a slow chat never holds up the others.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from telegram import BotCommand, Update
from telegram.error import BadRequest, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    MessageReactionHandler,
    filters,
)

from adapters.base import Adapter, AdapterContext, Capability, DeliveredReplies
from adapters.telegram.api import call_api
from adapters.telegram.inbound import CHANNEL, BotIdentity, Normalizer
from adapters.telegram.keyboard import CallbackValues
from adapters.telegram.outbox import MAX_MESSAGE_CHARS, Outbox
from adapters.telegram.settings import WEBHOOK_PATH, TelegramSettings, UpdateMode
from bot.bus import Bus
from bot.bus.memory import BusClosed
from bot.events import Event, Reply, ReplyKind
from bot.server import RequestTooLarge, json_error, read_body_capped

log = logging.getLogger("switchboard.adapters.telegram")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Updates we ask for; reactions are not sent unless asked for by name.
ALLOWED_UPDATES = ["message", "callback_query", "message_reaction"]
_READY_WAIT_S = 60.0


class TelegramAdapter(Adapter):
    name = CHANNEL
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
    max_message_chars = MAX_MESSAGE_CHARS

    def __init__(self, settings: TelegramSettings) -> None:
        self.settings = settings
        self.ready = asyncio.Event()  # set once getMe answered and updates flow
        self.identity: BotIdentity | None = None
        self._app: Application[Any, Any, Any, Any, Any, Any] | None = None
        self._context: AdapterContext | None = None
        self._normalizer: Normalizer | None = None
        self._runner: asyncio.Task[None] | None = None
        self._callbacks = CallbackValues()
        self._outbox: Outbox | None = None
        self._failed_updates: set[int] = set()
        self._stopping = False
        self._lanes: dict[str, asyncio.Queue[Reply]] = {}  # chat id -> replies waiting or being sent
        self._delivered = DeliveredReplies()

    def describe(self) -> str:
        host = urlsplit(self.settings.base_url).netloc
        how = "long polling" if self.settings.mode is UpdateMode.POLLING else f"webhook at {WEBHOOK_PATH}"
        who = f" as @{self.identity.username}" if self.identity else ""
        return f"{how} via {host}{who}; group messages: {self.settings.group_messages}"

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self, context: AdapterContext) -> None:
        self._context = context
        self._stopping = False
        if self.settings.mode is UpdateMode.WEBHOOK:
            if context.server is None:
                raise RuntimeError("Telegram webhook mode needs the HTTP server; use polling or enable the server")
            context.server.add_route(WEBHOOK_PATH, self._on_webhook, ["POST"])
        self._app = self._build_app()
        self._outbox = Outbox(self._app.bot, self.settings, self._callbacks)
        self._runner = asyncio.create_task(self._connect(), name="telegram-connect")

    def _build_app(self) -> Application[Any, Any, Any, Any, Any, Any]:
        base = self.settings.base_url
        builder = (
            Application.builder()
            .token(self.settings.token)
            .base_url(f"{base}/bot")
            .base_file_url(f"{base}/file/bot")
            .rate_limiter(AIORateLimiter(max_retries=5))
        )
        if self.settings.mode is UpdateMode.WEBHOOK:
            builder = builder.updater(None)
        app = builder.build()
        app.add_handler(MessageHandler(filters.UpdateType.MESSAGE, self._on_message))
        app.add_handler(CallbackQueryHandler(self._on_callback))
        app.add_handler(MessageReactionHandler(self._on_reaction))
        app.add_error_handler(self._on_error)
        return app

    async def _connect(self) -> None:
        try:
            await self._connect_once()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the Telegram adapter could not start", extra={"adapter": CHANNEL})

    async def _connect_once(self) -> None:
        """getMe until it answers (backoff with jitter), then start taking updates."""
        app = self._app
        assert app is not None and self._context is not None
        delay = 1.0
        while True:
            try:
                await app.initialize()
                break
            except InvalidToken:
                log.error("Telegram refused the bot token; check TELEGRAM_BOT_TOKEN", extra={"adapter": CHANNEL})
                return
            except (NetworkError, RetryAfter) as exc:
                log.warning(
                    "Telegram unreachable; retrying",
                    extra={"adapter": CHANNEL, "error": str(exc), "retry_in_s": round(delay, 1)},
                )
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 60.0)
        self.identity = BotIdentity(app.bot.id, app.bot.username)
        self._normalizer = Normalizer(self.settings, self.identity, self._context.command_prefix)
        await app.start()
        if self.settings.mode is UpdateMode.POLLING:
            assert app.updater is not None
            await app.updater.start_polling(
                timeout=int(self.settings.poll_timeout),
                allowed_updates=ALLOWED_UPDATES,
                drop_pending_updates=self.settings.drop_pending_updates,
                bootstrap_retries=-1,
                error_callback=self._on_poll_error,
            )
        elif self.settings.webhook_url:
            await self._register_webhook(app)
        if self.settings.publish_commands and self.settings.shortcuts:
            await self._publish_command_menu(app)
        self.ready.set()
        log.info("Telegram adapter live", extra={"adapter": CHANNEL, "detail": self.describe()})

    async def _register_webhook(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        """setWebhook until Telegram answers; a refusal (bad URL) is logged and sending still works."""
        delay = 1.0
        while True:
            try:
                await call_api(
                    app.bot.set_webhook,
                    url=self.settings.webhook_url,
                    secret_token=self.settings.webhook_secret,
                    allowed_updates=ALLOWED_UPDATES,
                    drop_pending_updates=self.settings.drop_pending_updates,
                )
                return
            except BadRequest as exc:
                log.error(
                    "Telegram refused the webhook URL; no updates will arrive until it is fixed",
                    extra={"adapter": CHANNEL, "error": str(exc), "url": self.settings.webhook_url},
                )
                return
            except NetworkError as exc:
                log.warning(
                    "could not register the webhook; retrying",
                    extra={"adapter": CHANNEL, "error": str(exc), "retry_in_s": round(delay, 1)},
                )
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 60.0)

    async def _publish_command_menu(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        prefix = self._context.command_prefix if self._context else "/sb"
        menu = [BotCommand(name, f"{prefix} {target}") for name, target in self.settings.shortcuts.items()]
        try:
            await call_api(app.bot.set_my_commands, menu)
        except TelegramError as exc:  # a menu is a nicety; never fail start over it
            log.warning("could not publish the command menu", extra={"adapter": CHANNEL, "error": str(exc)})

    async def wait_ready(self, seconds: float | None = _READY_WAIT_S) -> None:
        """Wait until getMe answered and updates flow.

        TimeoutError after `seconds` (None: no limit); RuntimeError if connecting gave up for good
        (a refused token), so queued replies fail loudly instead of waiting forever.
        """
        async with asyncio.timeout(seconds):
            while not self.ready.is_set():
                runner = self._runner
                if runner is None or runner.done():
                    raise RuntimeError("the Telegram adapter is not connected (see the log for why)")
                ready = asyncio.ensure_future(self.ready.wait())
                try:
                    await asyncio.wait({ready, runner}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    ready.cancel()

    async def stop_intake(self) -> None:
        """Stop polling first, so no update is confirmed to Telegram that the bus can no longer take."""
        app = self._app
        if app is not None and app.updater is not None and app.updater.running:
            try:
                await app.updater.stop()
            except TelegramError as exc:
                log.warning("Telegram polling did not stop cleanly", extra={"adapter": CHANNEL, "error": str(exc)})

    async def stop(self) -> None:
        self._stopping = True
        self.ready.clear()
        runner, self._runner = self._runner, None
        if runner is not None and not runner.done():
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        app, self._app = self._app, None
        self._outbox = None
        if app is None:
            return
        try:
            if app.updater is not None and app.updater.running:
                await app.updater.stop()
            if app.running:
                await app.stop()
            await app.shutdown()
        except TelegramError as exc:
            log.warning("Telegram did not shut down cleanly", extra={"adapter": CHANNEL, "error": str(exc)})

    # -- inbound -----------------------------------------------------------------------------------

    async def _publish(self, events: list[Event]) -> None:
        """Hand events to the bus. A webhook update that cannot be accepted fails (Telegram re-sends it
        on our 500); a polled one cannot be re-fetched, so polling holds here, retrying with backoff,
        until the bus takes it or the adapter stops."""
        assert self._context is not None
        for event in events:
            delay = 0.5
            while True:
                try:
                    accepted = await self._context.bus.publish(event)
                    break
                except BusClosed:
                    raise
                except Exception as exc:
                    if self.settings.mode is UpdateMode.WEBHOOK or self._stopping:
                        raise
                    log.warning(
                        "the bus did not take an event; retrying",
                        extra={
                            "adapter": CHANNEL,
                            "event_id": event.id,
                            "error": str(exc),
                            "retry_in_s": round(delay, 1),
                        },
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
            if not accepted:
                log.debug("dropped a re-sent update", extra={"adapter": CHANNEL, "event_id": event.id})

    async def _on_message(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        if self._normalizer is not None:
            await self._publish(self._normalizer.message(update))

    async def _on_reaction(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        if self._normalizer is not None:
            await self._publish(self._normalizer.reactions(update))

    async def _on_callback(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None or self._normalizer is None:
            return
        value = self._callbacks.decode(query.data or "")
        if value is None:
            await self._answer(query.answer, text="This button has expired. Please ask again.")
            return
        event = self._normalizer.action(update, value)
        if event is not None:
            await self._publish([event])
        await self._answer(query.answer)  # stops the button's spinner

    async def _answer(self, answer: Callable[..., Awaitable[Any]], **kwargs: Any) -> None:
        try:
            await call_api(answer, **kwargs)
        except BadRequest as exc:  # "query is too old": a re-sent update, already answered
            log.debug("callback query not answered", extra={"adapter": CHANNEL, "error": str(exc)})

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        if isinstance(update, Update) and self.settings.mode is UpdateMode.WEBHOOK:
            self._failed_updates.add(update.update_id)  # read (and removed) by the webhook endpoint
        log.error(
            "handling a Telegram update failed",
            exc_info=context.error,
            extra={"adapter": CHANNEL, "update_id": getattr(update, "update_id", None)},
        )

    def _on_poll_error(self, exc: TelegramError) -> None:
        log.warning(
            "Telegram polling error; PTB retries with backoff",
            extra={"adapter": CHANNEL, "error": f"{type(exc).__name__}: {exc}"},
        )

    async def _on_webhook(self, request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.settings.webhook_secret.encode()):
            log.warning(
                "refused a webhook call with a wrong or missing secret token",
                extra={"adapter": CHANNEL, "client": request.client.host if request.client else ""},
            )
            return json_error(403, "wrong or missing secret token", code="forbidden")
        app = self._app
        if app is None or not self.ready.is_set():
            return json_error(503, "the Telegram adapter is starting", code="not_ready")
        limit = self._context.max_message_bytes if self._context else 64 * 1024
        try:
            data = json.loads(await read_body_capped(request, limit))
        except RequestTooLarge as exc:
            return json_error(413, str(exc), code="too_large")
        except ValueError:
            return json_error(400, "the body is not JSON", code="bad_json")
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            return json_error(400, "not a Telegram update (no integer update_id)", code="bad_update")
        try:
            update = Update.de_json(data, app.bot)
        except (KeyError, TypeError, ValueError) as exc:
            return json_error(400, f"malformed Telegram update: {exc}", code="bad_update")
        await app.process_update(update)
        if update.update_id in self._failed_updates:
            self._failed_updates.discard(update.update_id)
            return json_error(500, "the update could not be accepted; Telegram will send it again", code="not_accepted")
        return JSONResponse({"ok": True})

    # -- outbound ----------------------------------------------------------------------------------

    async def deliver_forever(self, bus: Bus) -> None:
        """The base pump, with one lane per chat: a flood wait or a throttled streaming edit in one
        chat never holds up replies to another, and each chat still gets its replies in order."""
        lanes = self._lanes
        workers: set[asyncio.Task[None]] = set()
        try:
            async for reply in bus.replies(self.name):
                if reply.kind is ReplyKind.TURN_END:
                    continue
                room = reply.conversation.room
                lane = lanes.get(room)
                if lane is None:
                    lane = lanes[room] = asyncio.Queue()
                    worker = asyncio.create_task(self._drain_lane(room, lane, lanes), name=f"telegram-lane:{room}")
                    workers.add(worker)
                    worker.add_done_callback(workers.discard)
                lane.put_nowait(reply)
            if workers:  # the bus stopped: finish what is queued
                await asyncio.gather(*workers, return_exceptions=True)
        finally:
            for worker in list(workers):
                worker.cancel()

    @property
    def idle(self) -> bool:
        """True when no reply taken from the bus is waiting or half-sent (a long reply is several
        messages): a consistent moment to look at what was delivered."""
        return not self._lanes

    async def _drain_lane(self, room: str, lane: asyncio.Queue[Reply], lanes: dict[str, asyncio.Queue[Reply]]) -> None:
        while True:
            try:
                reply = lane.get_nowait()
            except asyncio.QueueEmpty:
                lanes.pop(room, None)  # no await since the check: nothing can slip in between
                return
            if self._delivered.seen(reply):
                continue  # re-sent by a resumed flow step: already shown
            try:
                await self.send(reply)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reply could not be delivered", extra={"adapter": CHANNEL, "reply_id": reply.id})
            else:
                self._delivered.mark(reply)

    async def send(self, reply: Reply) -> str:
        if not self.ready.is_set():
            await self.wait_ready(None)  # Telegram unreachable at start: replies wait, none is dropped
        if self._outbox is None:
            raise RuntimeError("the Telegram adapter is stopped")
        return await self._outbox.send(reply)
