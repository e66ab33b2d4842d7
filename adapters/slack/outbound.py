"""Sending replies to Slack: post, stream by editing, ephemeral answers, file uploads.

One `Reply` may become several Slack messages (long text); `_Posted` remembers them so a stream of
edits (`Reply.edit_of`) updates the same messages. Edits are throttled to one per `edit_interval`:
a skipped partial edit is parked and flushed when the interval has passed, and the final text
(`partial=False`) is always rendered. Rate limits are slack_sdk's retry handler's job (it waits for
`Retry-After` and retries), so a 429 delays a reply but never drops it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.slack import render
from adapters.slack.inbound import Inbound
from adapters.slack.lru import BoundedDict
from bot.events import Button, ConversationRef, Reply

log = logging.getLogger("switchboard.adapters.slack")

LONG_VALUE = "sb-ref:"  # button values over Slack's 2,000 characters travel as a reference
# chat.postMessage errors meaning "the bot cannot post in that room" (not invited, someone else's DM).
_NOT_A_MEMBER = frozenset({"not_in_channel", "channel_not_found"})
Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[Any]"]


@dataclass(slots=True)
class _Posted:
    """The Slack messages one reply became, and the state of its stream of edits."""

    conversation: ConversationRef
    channel: str
    thread_ts: str
    ts: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    last_edit: float = 0.0
    latest: Reply | None = None  # newest skipped partial edit, rendered by the flush task
    flush: asyncio.Task[Any] | None = None
    done: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    response_url: str = ""  # set when the answer went through a slash command's response_url

    @property
    def first_ts(self) -> str:
        return self.ts[0] if self.ts else ""


class Outbound:
    def __init__(
        self, client: AsyncWebClient, inbound: Inbound, *, edit_interval: float, askers: BoundedDict[str, str],
        spawn: Spawn,
    ) -> None:
        self._client = client
        self._inbound = inbound
        self._edit_interval = edit_interval
        self._askers = askers  # Event.id -> Slack user id, for ephemeral answers
        self._spawn = spawn
        self._posted: BoundedDict[str, _Posted] = BoundedDict(2_000)
        self.long_values: BoundedDict[str, str] = BoundedDict(10_000)
        # Slash-command Event.id -> its response_url: the way to answer in rooms the bot is not in.
        self.response_urls: BoundedDict[str, str] = BoundedDict(5_000)

    async def send(self, reply: Reply) -> str:
        uploads = _decoded_uploads(reply)  # refuse bad files before anything is posted
        if reply.ephemeral:
            return await self._send_ephemeral(reply)
        if reply.edit_of:
            posted = self._posted.get(reply.edit_of)
            if posted is not None:
                return await self._edit(posted, reply, uploads)
        try:
            posted = await self._post(reply)
        except SlackApiError as exc:
            url = self.response_urls.get(reply.in_reply_to)
            if exc.response.get("error") not in _NOT_A_MEMBER or not url:
                raise
            posted = _Posted(reply.conversation, reply.conversation.room, "", response_url=url)
            if not reply.partial:
                await self._send_to_response_url(url, reply)
        # A stream whose first message we never saw (or forgot) still gets one message, edited from then on.
        self._posted[reply.edit_of or reply.id] = posted
        posted.done = bool(reply.edit_of) and not reply.partial
        if not reply.partial:
            await self._upload(uploads, posted)
        return posted.first_ts

    # -- posting --------------------------------------------------------------------------------

    async def _post(self, reply: Reply) -> _Posted:
        conversation = reply.conversation
        thread_ts = conversation.thread if reply.in_thread else ""
        posted = _Posted(conversation, conversation.room, thread_ts, last_edit=time.monotonic())
        pieces = render.chunks(render.reply_markdown(reply.text, reply.files))
        if pieces == [""]:
            # A stream starts with a placeholder to edit; an empty reply may still carry buttons
            # (or files, sent apart); otherwise there is nothing to post.
            pieces = ["…"] if reply.partial else ([""] if reply.buttons else [])
        for i, chunk in enumerate(pieces):
            posted.ts.append(await self._post_one(posted, chunk, reply.buttons if i == len(pieces) - 1 else ()))
            posted.texts.append(chunk)
        return posted

    async def _post_one(self, posted: _Posted, chunk: str, buttons: Sequence[Button]) -> str:
        msg = render.message(chunk, buttons, self._encode_value)
        answer = await self._client.chat_postMessage(
            channel=posted.channel, thread_ts=posted.thread_ts or None, text=msg.text, blocks=msg.blocks or None,
        )
        ts = answer.get("ts") or ""
        room = answer.get("channel") or posted.channel
        # Remember where the bot spoke: replies in that thread and reactions to it are addressed to it.
        if posted.thread_ts:
            self._inbound.bot_threads[(room, posted.thread_ts)] = True
        self._inbound.bot_messages[(room, ts)] = posted.conversation
        return ts

    # -- streaming ------------------------------------------------------------------------------

    async def _edit(self, posted: _Posted, reply: Reply, uploads: list[dict[str, Any]]) -> str:
        async with posted.lock:
            if posted.done:
                return posted.first_ts
            wait = posted.last_edit + self._edit_interval - time.monotonic()
            if reply.partial and wait > 0:
                posted.latest = reply
                if posted.flush is None or posted.flush.done():
                    posted.flush = self._spawn(self._flush_later(posted, wait), "slack-stream-flush")
                return posted.first_ts
            posted.latest = None
            if not reply.partial:
                posted.done = True
                if posted.flush is not None:
                    posted.flush.cancel()
            if posted.response_url:  # cannot be edited: only the final text is sent
                if not reply.partial:
                    await self._send_to_response_url(posted.response_url, reply)
                return posted.first_ts
            await self._render_edit(posted, reply)
        if not reply.partial:
            await self._upload(uploads, posted)
        return posted.first_ts

    async def _flush_later(self, posted: _Posted, wait: float) -> None:
        await asyncio.sleep(wait)
        async with posted.lock:
            latest, posted.latest = posted.latest, None
            if latest is None or posted.done:
                return
            try:
                await self._render_edit(posted, latest)
            except Exception as exc:  # an intermediate edit is expendable: the final one follows
                log.warning("a streamed edit failed", extra={"error": repr(exc)})

    async def _render_edit(self, posted: _Posted, reply: Reply) -> None:
        pieces = render.chunks(render.reply_markdown(reply.text, reply.files))
        for i, chunk in enumerate(pieces):
            buttons = reply.buttons if i == len(pieces) - 1 else ()
            if i >= len(posted.ts):  # the text outgrew its messages: continue in a new one
                posted.ts.append(await self._post_one(posted, chunk, buttons))
                posted.texts.append(chunk)
            elif chunk != posted.texts[i] or buttons:
                msg = render.message(chunk, buttons, self._encode_value)
                await self._client.chat_update(
                    channel=posted.channel, ts=posted.ts[i], text=msg.text, blocks=msg.blocks
                )
                posted.texts[i] = chunk
        # The text shrank below what earlier edits needed: remove the messages left over.
        while len(posted.ts) > len(pieces):
            ts = posted.ts.pop()
            posted.texts.pop()
            with contextlib.suppress(SlackApiError):
                await self._client.chat_delete(channel=posted.channel, ts=ts)
        posted.last_edit = time.monotonic()

    # -- ephemeral, files, button values --------------------------------------------------------

    async def _send_ephemeral(self, reply: Reply) -> str:
        """Only the person who asked sees it; Slack cannot edit or attach files to these."""
        user = str(reply.meta.get("user") or self._askers.get(reply.in_reply_to) or "")
        if not user:
            raise ValueError(
                f"ephemeral reply {reply.id} names no Slack user: set meta['user'] or in_reply_to a recent event"
            )
        if any(f.data_b64 for f in reply.files):
            log.warning("files cannot be sent ephemerally; only their names are shown", extra={"reply_id": reply.id})
        names = [f"({f.name})" for f in reply.files if f.data_b64]
        pieces = render.chunks(render.reply_markdown("\n".join([reply.text, *names]).strip(), reply.files))
        thread_ts = reply.conversation.thread if reply.in_thread else ""
        first = ""
        for i, chunk in enumerate(pieces):
            msg = render.message(chunk, reply.buttons if i == len(pieces) - 1 else (), self._encode_value)
            answer = await self._client.chat_postEphemeral(
                channel=reply.conversation.room, user=user, thread_ts=thread_ts or None, text=msg.text,
                blocks=msg.blocks or None,
            )
            first = first or answer.get("message_ts") or ""
        return first

    async def _send_to_response_url(self, url: str, reply: Reply) -> None:
        """Answer a slash command in a room the bot cannot post in (Slack allows 5 uses in 30 minutes)."""
        webhook = AsyncWebhookClient(url, retry_handlers=list(self._client.retry_handlers))
        pieces = render.chunks(render.reply_markdown(reply.text, reply.files))
        for i, chunk in enumerate(pieces):
            msg = render.message(chunk, reply.buttons if i == len(pieces) - 1 else (), self._encode_value)
            answer = await webhook.send(text=msg.text, blocks=msg.blocks, response_type="in_channel")
            if answer.status_code != 200:
                raise RuntimeError(f"Slack refused the slash command response: {answer.status_code} {answer.body}")

    async def _upload(self, uploads: list[dict[str, Any]], posted: _Posted) -> None:
        if uploads and not posted.response_url:
            await self._client.files_upload_v2(
                channel=posted.channel, thread_ts=posted.thread_ts or None, file_uploads=uploads
            )

    def _encode_value(self, value: str) -> str:
        if len(value) <= render.Limit.BUTTON_VALUE_CHARS:
            return value
        key = hashlib.sha256(value.encode()).hexdigest()[:32]
        self.long_values[key] = value
        return LONG_VALUE + key

    def decode_value(self, value: str) -> str:
        """A pressed button's value as the flow gave it (long values come back from the reference)."""
        if value.startswith(LONG_VALUE):
            return self.long_values.get(value.removeprefix(LONG_VALUE)) or value
        return value


def _decoded_uploads(reply: Reply) -> list[dict[str, Any]]:
    uploads = []
    for f in reply.files:
        if not f.data_b64:
            continue
        try:
            content = base64.b64decode(f.data_b64, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"file {f.name!r} of reply {reply.id} is not valid base64; nothing was sent") from None
        uploads.append({"content": content, "filename": f.name, "title": f.name})
    return uploads
