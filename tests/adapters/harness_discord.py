"""Conformance harness for the Discord adapter: discord.py against the local fake gateway + REST API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from adapters.base import AdapterContext
from adapters.discord import DiscordAdapter, create
from bot.bus.memory import MemoryBus
from tests.adapters.conformance import PlatformHarness, SentMessage
from tests.fakes.discord import BOT_TOKEN, Channel, FakeDiscord, snowflake, user_payload

GUILD = "1200000000000000001"
CHANNEL = "1200000000000000010"  # the bot answers every message here (listen_channels)
QUIET = "1200000000000000011"  # a channel where only mentions count
THREAD = "1200000000000000020"  # a thread inside CHANNEL
DM = "1200000000000000030"


def default_guild(fake: FakeDiscord) -> None:
    fake.add_guild(
        GUILD,
        channels=[Channel(CHANNEL, "general"), Channel(QUIET, "quiet"), Channel(THREAD, "a thread", parent=CHANNEL)],
    )


@dataclass
class DiscordRig:
    """A started adapter + bus + reply pump, against `fake`."""

    fake: FakeDiscord
    adapter: DiscordAdapter
    bus: MemoryBus
    pump: asyncio.Task[None]
    users: dict[str, dict[str, Any]] = field(default_factory=dict)

    def user(self, name: str) -> dict[str, Any]:
        """A human Discord user, the same one every time for the same name."""
        if name not in self.users:
            self.users[name] = user_payload(snowflake(), name.lower())
        return self.users[name]

    async def close(self) -> None:
        await self.adapter.stop()
        await self.bus.stop(drain_timeout=1)
        self.pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.pump


async def start_rig(
    fake: FakeDiscord, options: dict[str, Any] | None = None, *, bus: MemoryBus | None = None, **env: str
) -> DiscordRig:
    adapter = create(
        {"guilds": [int(GUILD)], **(options or {})},
        {"DISCORD_BOT_TOKEN": BOT_TOKEN, "DISCORD_API_URL": fake.api_url, **env},
    )
    bus = bus or MemoryBus()
    await bus.start()
    await adapter.start(AdapterContext(bus=bus, command_prefix="/sb"))
    pump = asyncio.get_running_loop().create_task(adapter.deliver_forever(bus))
    await asyncio.wait_for(adapter.connected.wait(), 15)
    return DiscordRig(fake, adapter, bus, pump)


class DiscordHarness(PlatformHarness):
    name = "discord"
    supports_buttons = True
    max_chars = 2000
    room = CHANNEL

    def __init__(self, rig: DiscordRig) -> None:
        self.rig = rig
        self.adapter = rig.adapter
        self.bus = rig.bus
        self._ids: dict[str, str] = {}

    async def deliver_message(self, text: str, *, message_id: str, user: str = "U1") -> None:
        # Discord ids are snowflakes: the same test message id maps to the same snowflake,
        # which is exactly what a gateway RESUME replay looks like.
        snow = self._ids.setdefault(message_id, snowflake())
        payload = self.rig.fake.message(CHANNEL, self.rig.user(user), text, message_id=snow)
        await self.rig.fake.dispatch("MESSAGE_CREATE", payload)

    async def sent(self) -> list[SentMessage]:
        out = []
        for m in self.rig.fake.sent:
            guild = self.rig.fake.guild_of(m.channel_id)
            channel = guild.channel(m.channel_id) if guild else None
            room, thread = (channel.parent, channel.id) if channel and channel.parent else (m.channel_id, "")
            out.append(SentMessage(room, m.content, thread, m.button_labels, m.edits > 0))
        return out

    async def reset(self) -> None:
        self.rig.fake.reset()

    def rate_limit_next_send(self, retry_after: float) -> None:
        self.rig.fake.fail_next("POST", "/channels/", status=429, retry_after=retry_after)


@pytest.fixture(scope="module")
async def discord_harness() -> AsyncIterator[DiscordHarness]:
    async with FakeDiscord() as fake:
        default_guild(fake)
        rig = await start_rig(fake, {"listen_channels": [int(CHANNEL)]})
        try:
            yield DiscordHarness(rig)
        finally:
            await rig.close()
