"""Conformance harness for the Slack adapter: HTTP Events API mode against `tests.fakes.slack`.

Inbound messages are signed deliveries to `/slack/events` on a real `HttpServer`; a redelivery is
the same message (same `ts`, same `event_id`) sent again with `X-Slack-Retry-Num`, as Slack does.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import AsyncIterator

import pytest

from adapters.base import AdapterContext
from adapters.slack import SlackAdapter, create
from bot.bus.memory import MemoryBus
from bot.server import HttpServer
from tests.adapters.conformance import PlatformHarness, SentMessage
from tests.fakes.slack import FakeSlack, SlackDelivery

SIGNING_SECRET = "harness-signing-secret"


class SlackHarness(PlatformHarness):
    name = "slack"
    supports_buttons = True
    room = "D0HARNESS"  # a DM: the bot answers every message there

    def __init__(self, fake: FakeSlack, adapter: SlackAdapter, bus: MemoryBus, delivery: SlackDelivery) -> None:
        self.fake = fake
        self.adapter = adapter
        self.bus = bus
        self.delivery = delivery
        self.max_chars = adapter.max_message_chars
        self._ts: dict[str, str] = {}

    async def deliver_message(self, text: str, *, message_id: str, user: str = "U1") -> None:
        redelivery = message_id in self._ts
        ts = self._ts.setdefault(message_id, self.fake.next_ts())
        event_id = "Ev" + hashlib.sha1(message_id.encode()).hexdigest()[:12].upper()
        event = self.fake.message(text, channel=self.room, channel_type="im", user=user, ts=ts)
        response = await self.delivery.event(
            self.fake.event_body(event, event_id=event_id), retry_num=1 if redelivery else None
        )
        assert response.status_code == 200, response.text

    async def sent(self) -> list[SentMessage]:
        return [
            SentMessage(
                room=m.channel,
                text="\n".join(m.sections) if m.sections else m.text,
                thread=m.thread_ts,
                buttons=[b["text"]["text"] for b in m.buttons],
                edited=m.edits > 0,
            )
            for m in self.fake.messages
        ]

    async def reset(self) -> None:
        self.fake.reset()

    def rate_limit_next_send(self, retry_after: float) -> None:
        self.fake.rate_limit("chat.postMessage", retry_after=math.ceil(retry_after))


@pytest.fixture(scope="module")
async def slack_harness() -> AsyncIterator[SlackHarness]:
    fake = FakeSlack()
    await fake.start()
    env = {"SLACK_BOT_TOKEN": fake.bot_token, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.api_url}
    adapter = create({}, env)
    bus = MemoryBus()
    await bus.start()
    server = HttpServer("127.0.0.1", 0)
    await adapter.start(AdapterContext(bus=bus, server=server, command_prefix="/sb"))
    await server.start()
    await asyncio.wait_for(adapter.connected.wait(), 10)
    pump = asyncio.create_task(adapter.deliver_forever(bus))
    delivery = SlackDelivery(f"{server.url}/slack/events", SIGNING_SECRET)
    yield SlackHarness(fake, adapter, bus, delivery)
    await adapter.stop()
    await bus.stop(drain_timeout=1)
    pump.cancel()
    await asyncio.gather(pump, return_exceptions=True)
    await server.stop()
    await fake.stop()
