"""Fixtures for the bus tests: isolated Redis key prefixes, events, and a record of what handlers saw."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis

from bot.bus.redis import RedisBus
from bot.events import ConversationRef, Event, EventKind, Sender

# Fast settings: a crashed worker's events come back after ~2 s instead of ~20 s.
FAST = {"partitions": 4, "visibility_timeout": 1.5, "retry_delay": 0.01, "block": 0.2}


def make_event(conversation: str, seq: int, *, channel: str = "test", **meta: object) -> Event:
    return Event(
        id=f"{channel}:{conversation}:{seq}:{uuid.uuid4().hex[:8]}",
        kind=EventKind.MESSAGE,
        channel=channel,
        conversation=ConversationRef(channel, room=conversation),
        sender=Sender(channel, "u1"),
        text=f"message {seq}",
        meta={"seq": seq, **meta},
    )


@dataclass
class Recorder:
    """What handlers did, in real order: (worker, conversation, seq, phase) with phase start/end."""

    steps: list[tuple[str, str, int, str]] = field(default_factory=list)
    running: set[str] = field(default_factory=set)
    overlaps: list[str] = field(default_factory=list)

    def start(self, worker: str, event: Event) -> None:
        key = event.conversation.room
        if key in self.running:
            self.overlaps.append(key)
        self.running.add(key)
        self.steps.append((worker, key, int(event.meta["seq"]), "start"))

    def end(self, worker: str, event: Event) -> None:
        self.running.discard(event.conversation.room)
        self.steps.append((worker, event.conversation.room, int(event.meta["seq"]), "end"))

    def finished(self, conversation: str) -> list[int]:
        return [seq for _w, conv, seq, phase in self.steps if conv == conversation and phase == "end"]

    def handler(self, worker: str, *, pause: float = 0.0) -> Callable[[Event], Awaitable[None]]:
        async def handle(event: Event) -> None:
            self.start(worker, event)
            try:
                await asyncio.sleep(float(event.meta.get("pause", pause)))
            finally:
                self.end(worker, event)

        return handle


async def eventually(check: Callable[[], bool], *, within: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
async def redis_prefix(redis_url: str) -> AsyncIterator[Callable[[], str]]:
    """A factory of fresh key prefixes for this module; every key under them is deleted afterwards."""
    root = f"sbtest:{uuid.uuid4().hex[:8]}:"
    counter = iter(range(1_000_000))
    yield lambda: f"{root}{next(counter)}:"
    await delete_prefix(redis_url, root)


async def delete_prefix(redis_url: str, prefix: str) -> None:
    client = aioredis.from_url(redis_url)
    async for key in client.scan_iter(match=f"{prefix}*", count=1000):
        await client.delete(key)
    await client.aclose()


@pytest.fixture
async def new_bus(redis_url: str, redis_prefix: Callable[[], str]) -> AsyncIterator[Callable[..., Awaitable[RedisBus]]]:
    """Start RedisBus instances on one fresh prefix (pass `prefix=` to share); all are stopped afterwards."""
    prefix = redis_prefix()
    buses: list[RedisBus] = []

    async def make(**options: object) -> RedisBus:
        settings = {**FAST, "prefix": prefix, **options}
        bus = RedisBus(redis_url, **settings)  # type: ignore[arg-type]
        await bus.start()
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.stop(drain_timeout=1.0)
