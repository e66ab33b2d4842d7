"""Conformance harness for the Telegram adapter: PTB's real code path against `tests.fakes.telegram`.

The adapter long-polls the fake (the default mode). A person's private chat has the person's user
id as its chat id, as on Telegram, so the harness room is that id. The conformance suite names
messages with strings; they are mapped to Telegram's integer message ids, so delivering the same
name twice re-sends the same message (a new update carrying the same chat and message id).
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator

import pytest

from adapters.base import AdapterContext
from adapters.telegram import TelegramAdapter, create
from bot.bus.memory import MemoryBus
from tests.adapters.conformance import PlatformHarness, SentMessage
from tests.fakes.telegram import FakeTelegram

TOKEN = "7000001:AAH-fake-token-for-switchboard-tests"
FIRST_USER_ID = 1001


class TelegramHarness(PlatformHarness):
    name = "telegram"
    supports_buttons = True
    max_chars = 4096
    room = str(FIRST_USER_ID)

    def __init__(self, fake: FakeTelegram, adapter: TelegramAdapter, bus: MemoryBus) -> None:
        self.fake = fake
        self.adapter: TelegramAdapter = adapter
        self.bus = bus
        self._message_ids: dict[str, int] = {}
        self._user_ids: dict[str, int] = {}
        self._next_message_id = itertools.count(1)

    async def deliver_message(self, text: str, *, message_id: str, user: str = "U1") -> None:
        user_id = self._user_ids.setdefault(user, FIRST_USER_ID + len(self._user_ids))
        number = self._message_ids.setdefault(message_id, next(self._next_message_id))
        chat = self.fake.chat(user_id)
        self.fake.enqueue(self.fake.message(chat, self.fake.user(user_id, user), text, message_id=number))

    async def sent(self) -> list[SentMessage]:
        # Never report half of a multi-message reply: wait until the adapter is between replies.
        for _ in range(500):
            if self.adapter.idle:
                break
            await asyncio.sleep(0.01)
        return [
            SentMessage(room=str(m.chat_id), text=m.text, thread=str(m.thread_id or ""),
                        buttons=[label for label, _ in m.buttons], edited=m.edits > 0)
            for m in self.fake.sent if m.kind == "text"
        ]

    async def reset(self) -> None:
        self.fake.reset()

    def rate_limit_next_send(self, retry_after: float) -> None:
        # Telegram advertises whole seconds.
        self.fake.rate_limit_next(math.ceil(retry_after), frozenset({"sendMessage"}))


@pytest.fixture(scope="module")
async def telegram_harness() -> AsyncIterator[TelegramHarness]:
    fake = await FakeTelegram(TOKEN).start()
    bus = MemoryBus()
    await bus.start()
    adapter = create({"poll_timeout": 5}, {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": fake.base_url})
    await adapter.start(AdapterContext(bus=bus, command_prefix="/sb"))
    await adapter.wait_ready(10)
    delivery = asyncio.create_task(adapter.deliver_forever(bus))
    yield TelegramHarness(fake, adapter, bus)
    delivery.cancel()
    await asyncio.gather(delivery, return_exceptions=True)
    await adapter.stop()
    await bus.stop(drain_timeout=1)
    await fake.stop()
