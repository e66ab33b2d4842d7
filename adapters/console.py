"""The console channel: `switchboard chat` (interactive) and `switchboard send` (one message).

The console user is the local operator and therefore an owner. Replies print as they arrive;
streamed replies print their new text as it grows (chat) or only once complete (send).
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from adapters.base import Adapter, AdapterContext, Capability, buttons_as_text
from bot.commands import parse_command
from bot.events import ConversationRef, Event, EventKind, Reply, ReplyKind, Sender

CHANNEL = "console"


class TextSink(Protocol):
    """Where the console prints: stdout, or anything with `write` and `flush`."""

    def write(self, text: str, /) -> Any: ...

    def flush(self) -> None: ...


def create(options: dict[str, Any], env: Mapping[str, str]) -> ConsoleAdapter:
    return ConsoleAdapter()


class ConsoleAdapter(Adapter):
    name = CHANNEL
    capabilities = frozenset({Capability.EDIT, Capability.MARKDOWN})
    max_message_chars = 1_000_000
    wants_turn_end = True

    def __init__(self, *, user: str = "local", out: TextSink | None = None, stream: bool = True) -> None:
        self.user = user
        self.out = out or sys.stdout
        self.stream = stream
        self.conversation = ConversationRef(CHANNEL, room=user)
        self._context: AdapterContext | None = None
        self._turn_done: dict[str, asyncio.Event] = {}
        self._shown: dict[str, str] = {}
        self.replies: list[Reply] = []

    def describe(self) -> str:
        return f"console as {self.user}"

    async def start(self, context: AdapterContext) -> None:
        self._context = context

    async def stop(self) -> None:
        for done in self._turn_done.values():
            done.set()

    async def say(self, text: str) -> str:
        """Publish one message from the console user; returns the event id."""
        assert self._context is not None
        command = parse_command(text, self._context.command_prefix)
        event = Event(
            id=f"{CHANNEL}:{uuid.uuid4().hex}",
            kind=EventKind.COMMAND if command else EventKind.MESSAGE,
            channel=CHANNEL,
            conversation=self.conversation,
            sender=Sender(CHANNEL, self.user, self.user),
            text=text,
            command=command,
            mentioned=True,
        )
        self._turn_done[event.id] = asyncio.Event()
        await self._context.bus.publish(event)
        return event.id

    async def wait_turn(self, event_id: str, timeout: float) -> bool:
        done = self._turn_done.get(event_id)
        if done is None:
            return True
        try:
            await asyncio.wait_for(done.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._turn_done.pop(event_id, None)

    async def send(self, reply: Reply) -> str:
        if reply.kind is ReplyKind.TURN_END:
            done = self._turn_done.get(reply.in_reply_to)
            if done is not None:
                done.set()
            return reply.id
        key = reply.edit_of or reply.id
        text = buttons_as_text(reply)
        if reply.partial and not self.stream:
            return key
        if self.stream:
            before = self._shown.get(key, "")
            if text.startswith(before):
                self.out.write(text[len(before) :])
            else:
                self.out.write(("\n" if before else "") + text)
            if reply.partial:
                self._shown[key] = text
            else:
                self.out.write("\n")
                self._shown.pop(key, None)
        else:
            self.out.write(text + "\n")
        self.out.flush()
        if not reply.partial:
            self.replies.append(reply)
        return key
