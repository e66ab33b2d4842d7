"""A chat adapter for tests on a non-owner channel: many people, each in their own conversation.

The console user is always an owner, so role tests speak through this adapter instead (channel
"web" by default). It runs inside a real `App` like any adapter: events go through the bus, the
runtime and the store; replies come back through `deliver_forever`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

from adapters.base import Adapter, AdapterContext
from bot.commands import parse_command
from bot.events import ConversationRef, Event, EventKind, Reply, ReplyKind, Sender


class ChatTester(Adapter):
    wants_turn_end = True

    def __init__(self, name: str = "web") -> None:
        self.name = name
        self._context: AdapterContext | None = None
        self._turns: dict[str, asyncio.Event] = {}
        self.answers: dict[str, list[str]] = defaultdict(list)  # event id -> reply texts
        self.proactive: list[Reply] = []  # replies that answer no event (reminders, broadcasts)
        self._arrived = asyncio.Condition()

    async def start(self, context: AdapterContext) -> None:
        self._context = context

    async def stop(self) -> None:
        for turn in self._turns.values():
            turn.set()

    async def send(self, reply: Reply) -> str:
        if reply.kind is ReplyKind.TURN_END:
            turn = self._turns.get(reply.in_reply_to)
            if turn is not None:
                turn.set()
            return reply.id
        if reply.in_reply_to:
            self.answers[reply.in_reply_to].append(reply.text)
        else:
            self.proactive.append(reply)
        async with self._arrived:
            self._arrived.notify_all()
        return reply.id

    def conversation(self, user: str) -> ConversationRef:
        return ConversationRef(self.name, room=f"dm-{user}")

    async def publish(self, user: str, text: str) -> str:
        assert self._context is not None
        command = parse_command(text, self._context.command_prefix)
        event = Event(id=f"{self.name}:{uuid.uuid4().hex}", kind=EventKind.COMMAND if command else EventKind.MESSAGE,
                      channel=self.name, conversation=self.conversation(user), sender=Sender(self.name, user, user),
                      text=text, command=command, mentioned=True)
        self._turns[event.id] = asyncio.Event()
        await self._context.bus.publish(event)
        return event.id

    async def say(self, user: str, text: str, *, within: float = 15) -> list[str]:
        """What the bot answered `user` (an empty list when it ignored them)."""
        event_id = await self.publish(user, text)
        await self.turn(event_id, within=within)
        return self.answers.pop(event_id, [])

    async def turn(self, event_id: str, *, within: float = 15) -> None:
        await asyncio.wait_for(self._turns[event_id].wait(), within)
        self._turns.pop(event_id, None)

    async def wait_proactive(self, count: int, *, within: float = 10) -> list[Reply]:
        """Wait until at least `count` unprompted replies arrived; return them all."""
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.proactive) >= count), within)
        return list(self.proactive)
