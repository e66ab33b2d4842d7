"""Rendering `Reply`s onto Telegram: HTML chunks, inline keyboards, files and streaming edits.

Streaming keeps, per streamed reply, the messages it occupies and what each shows; an edit closer
than the interval to the previous one is skipped (the next carries the full text anyway), and the
final text is always rendered, continuing into new messages when it outgrows the first.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from telegram import Bot, InlineKeyboardMarkup, InputFile, Message, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import BadRequest

from adapters.telegram.api import call_api, entity_error
from adapters.telegram.inbound import CHANNEL
from adapters.telegram.keyboard import CallbackValues
from adapters.telegram.markup import Chunk, render_chunks
from adapters.telegram.settings import TelegramSettings
from bot.events import FileOut, Reply

log = logging.getLogger("switchboard.adapters.telegram")

MAX_MESSAGE_CHARS = 4096
_STREAMS_KEPT = 1024
_PHOTO_TYPES = {"image/jpeg", "image/png", "image/webp"}
_EMPTY_KEYBOARD_TEXT = "Choose:"
_STREAM_PLACEHOLDER = "…"


@dataclass(slots=True)
class _Stream:
    """A streamed reply: the platform messages it occupies and when it was last edited."""

    chat_id: str
    thread_id: int | None
    message_ids: list[int]
    shown: list[str]  # the HTML each message shows now
    last_edit: float = field(default_factory=time.monotonic)


class Outbox:
    """Sends replies through one PTB `Bot`; keeps a bounded map of streamed replies."""

    def __init__(self, bot: Bot, settings: TelegramSettings, callbacks: CallbackValues) -> None:
        self._bot = bot
        self.settings = settings
        self._callbacks = callbacks
        self._streams: OrderedDict[str, _Stream] = OrderedDict()

    async def send(self, reply: Reply) -> str:
        """Render one reply; return the id of its (first) Telegram message, or "" when skipped."""
        if reply.edit_of:
            return await self._send_edit(reply)
        chunks = self._chunks(reply)
        thread_id = self._thread_id(reply)
        markup = self._callbacks.keyboard(reply.buttons) if reply.buttons else None
        ids: list[int] = []
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            message = await self._send_chunk(
                reply.conversation.room, chunk, thread_id,
                markup=markup if last else None,
                reply_to=self._reply_target(reply) if i == 0 else None,
            )
            ids.append(message.message_id)
        await self._send_files(reply.conversation.room, thread_id, reply.files)
        if reply.partial and ids:
            self._remember_stream(reply.id, _Stream(reply.conversation.room, thread_id, ids,
                                                    [c.html for c in chunks]))
        return str(ids[0]) if ids else ""

    def _chunks(self, reply: Reply) -> list[Chunk]:
        chunks = render_chunks(reply.text, MAX_MESSAGE_CHARS)
        if not chunks and reply.buttons:
            chunks = [Chunk(_EMPTY_KEYBOARD_TEXT, _EMPTY_KEYBOARD_TEXT)]
        elif not chunks and reply.partial:
            chunks = [Chunk(_STREAM_PLACEHOLDER, _STREAM_PLACEHOLDER)]
        return chunks

    @staticmethod
    def _thread_id(reply: Reply) -> int | None:
        thread = reply.conversation.thread
        return int(thread) if reply.in_thread and thread.isdigit() else None

    @staticmethod
    def _reply_target(reply: Reply) -> ReplyParameters | None:
        """In groups, quote the message being answered so the answer is visibly tied to it."""
        parts = reply.in_reply_to.split(":")
        if not reply.in_thread or len(parts) != 3 or parts[0] != CHANNEL or not parts[1].startswith("-"):
            return None
        if parts[1] != reply.conversation.room or not parts[2].isdigit():
            return None
        return ReplyParameters(message_id=int(parts[2]), allow_sending_without_reply=True)

    def _remember_stream(self, reply_id: str, stream: _Stream) -> None:
        self._streams[reply_id] = stream
        while len(self._streams) > _STREAMS_KEPT:
            self._streams.popitem(last=False)

    async def _send_chunk(
        self, chat_id: str, chunk: Chunk, thread_id: int | None, *,
        markup: InlineKeyboardMarkup | None, reply_to: ReplyParameters | None,
    ) -> Message:
        bot = self._bot
        common: dict[str, Any] = {"chat_id": chat_id, "message_thread_id": thread_id, "reply_markup": markup,
                                  "reply_parameters": reply_to}
        try:
            return await call_api(bot.send_message, text=chunk.html, parse_mode=ParseMode.HTML, **common)
        except BadRequest as exc:
            if not entity_error(exc):
                raise
            log.warning("Telegram rejected the formatting; sending plain text",
                        extra={"adapter": CHANNEL, "chat_id": chat_id, "error": str(exc)})
            return await call_api(bot.send_message, text=chunk.plain, **common)

    async def _edit_chunk(self, stream: _Stream, index: int, chunk: Chunk,
                          markup: InlineKeyboardMarkup | None) -> None:
        bot = self._bot
        common: dict[str, Any] = {"chat_id": stream.chat_id, "message_id": stream.message_ids[index],
                                  "reply_markup": markup}
        try:
            try:
                await call_api(bot.edit_message_text, text=chunk.html, parse_mode=ParseMode.HTML, **common)
            except BadRequest as exc:
                if not entity_error(exc):
                    raise
                await call_api(bot.edit_message_text, text=chunk.plain, **common)
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():
                raise
        stream.shown[index] = chunk.html

    async def _send_edit(self, reply: Reply) -> str:
        """Streaming: skip edits closer than the interval; always render the final text."""
        stream = self._streams.get(reply.edit_of)
        if stream is None:
            if reply.partial:
                return ""  # a stream we no longer know (restart): wait for its final text
            return await self.send(Reply(**{**_reply_fields(reply), "edit_of": ""}))
        interval = self.settings.group_edit_interval if stream.chat_id.startswith("-") else self.settings.edit_interval
        wait = stream.last_edit + interval - time.monotonic()
        if reply.partial and wait > 0:
            return str(stream.message_ids[0])
        if wait > 0:
            await asyncio.sleep(wait)
        chunks = self._chunks(reply) or [Chunk(_STREAM_PLACEHOLDER, _STREAM_PLACEHOLDER)]
        markup = self._callbacks.keyboard(reply.buttons) if reply.buttons and not reply.partial else None
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            if i < len(stream.message_ids):
                if chunk.html != stream.shown[i] or (last and markup is not None):
                    await self._edit_chunk(stream, i, chunk, markup if last else None)
            else:
                message = await self._send_chunk(stream.chat_id, chunk, stream.thread_id,
                                                 markup=markup if last else None, reply_to=None)
                stream.message_ids.append(message.message_id)
                stream.shown.append(chunk.html)
        stream.last_edit = time.monotonic()
        if not reply.partial:
            self._streams.pop(reply.edit_of, None)
            await self._send_files(stream.chat_id, stream.thread_id, reply.files)
        return str(stream.message_ids[0])

    async def _send_files(self, chat_id: str, thread_id: int | None, files: tuple[FileOut, ...]) -> None:
        bot = self._bot
        for file in files:
            payload: Any = (
                InputFile(base64.b64decode(file.data_b64), filename=file.name) if file.data_b64 else file.url
            )
            if not payload:
                log.warning("a reply file has neither data nor url; skipped",
                            extra={"adapter": CHANNEL, "file": file.name})
                continue
            if file.content_type in _PHOTO_TYPES:
                await call_api(bot.send_photo, chat_id=chat_id, photo=payload, message_thread_id=thread_id)
            else:
                await call_api(bot.send_document, chat_id=chat_id, document=payload, message_thread_id=thread_id)


def _reply_fields(reply: Reply) -> dict[str, Any]:
    return {name: getattr(reply, name) for name in Reply.__dataclass_fields__}
