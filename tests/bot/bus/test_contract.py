"""The `Bus` contract, specified once and checked against every implementation (memory:// and redis://).

Each spec is written from the caller's side: publish events, register a handler, read replies.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from bot.bus.base import Bus
from bot.bus.memory import MemoryBus
from bot.bus.redis import RedisBus
from bot.events import ConversationRef, Event, Reply
from bot.store import Store
from tests.bot.bus.conftest import FAST, Recorder, delete_prefix, eventually, make_event

BusFactory = Callable[..., Awaitable[Bus]]


@pytest.fixture(params=["memory", "redis"])
async def open_bus(request: pytest.FixtureRequest) -> AsyncIterator[BusFactory]:
    """Start a bus of the parametrized kind with the given options; stopped after the test."""
    buses: list[Bus] = []
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    prefix = f"sbtest:contract:{uuid.uuid4().hex[:8]}:"

    async def make(**options: object) -> Bus:
        if request.param == "memory":
            bus: Bus = MemoryBus(retry_delay=0.01, **options)  # type: ignore[arg-type]
        else:
            bus = RedisBus(redis_url, **{**FAST, "prefix": f"{prefix}{len(buses)}:", **options})  # type: ignore[arg-type]
        await bus.start()
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.stop(drain_timeout=1.0)
    if redis_url:
        await delete_prefix(redis_url, prefix)


async def test_one_conversation_is_handled_in_publish_order_and_never_twice_at_once(open_bus: BusFactory) -> None:
    bus = await open_bus()
    record = Recorder()
    bus.consume(record.handler("w", pause=0.002))
    for seq in range(15):
        for conversation in ("a", "b", "c"):
            assert await bus.publish(make_event(conversation, seq))
    await eventually(lambda: len(record.steps) == 2 * 45, what="45 events handled")
    for conversation in ("a", "b", "c"):
        assert record.finished(conversation) == list(range(15))
    assert record.overlaps == []


async def test_events_published_before_the_handler_is_registered_are_held(open_bus: BusFactory) -> None:
    bus = await open_bus()
    for seq in range(3):
        await bus.publish(make_event("early", seq))
    record = Recorder()
    bus.consume(record.handler("w"))
    await eventually(lambda: record.finished("early") == [0, 1, 2], what="held events")


async def test_a_slow_conversation_does_not_block_the_others(open_bus: BusFactory) -> None:
    bus = await open_bus()
    other_done = asyncio.Event()
    seen: list[str] = []

    async def handle(event: Event) -> None:
        seen.append(event.conversation.room)
        if event.conversation.room == "slow":
            await asyncio.wait_for(other_done.wait(), timeout=5)  # only finishes if "fast" ran meanwhile
        else:
            other_done.set()

    bus.consume(handle)
    await bus.publish(make_event("slow", 0))
    await bus.publish(make_event("slow", 1))
    await eventually(lambda: "slow" in seen, what="the slow conversation to start")
    await bus.publish(make_event("fast", 0))
    await eventually(lambda: seen.count("slow") == 2, what="the slow conversation to finish after the fast one")
    assert seen == ["slow", "fast", "slow"]


async def test_no_more_handlers_run_at_once_than_max_concurrency(open_bus: BusFactory) -> None:
    bus = await open_bus(max_concurrency=2)
    running, peak, done = 0, 0, 0

    async def handle(event: Event) -> None:
        nonlocal running, peak, done
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        done += 1

    bus.consume(handle)
    for conversation in range(8):
        await bus.publish(make_event(f"c{conversation}", 0))
    await eventually(lambda: done == 8, what="8 handlers")
    assert peak == 2


async def test_a_redelivered_event_is_handled_once(open_bus: BusFactory) -> None:
    bus = await open_bus()
    record = Recorder()
    bus.consume(record.handler("w"))
    event = make_event("dup", 0)
    assert await bus.publish(event) is True
    assert await bus.publish(event) is False  # e.g. Slack retrying the same event_id
    await bus.publish(make_event("dup", 1))
    await eventually(lambda: record.finished("dup") == [0, 1], what="both distinct events")
    assert bus.stats().duplicates == 1


async def test_the_journal_remembers_events_for_durable_dedupe(open_bus: BusFactory, store: Store) -> None:
    bus = await open_bus(journal=store.journal)
    record = Recorder()
    bus.consume(record.handler("w"))
    event = make_event("journaled", 0)
    assert await bus.publish(event) is True
    await eventually(lambda: record.finished("journaled") == [0], what="the event")
    for _ in range(500):  # the journal is completed just after the handler returns
        if event.id not in {e.id for e in await store.journal.pending()}:
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the handled event stayed pending in the journal")
    other = await open_bus(journal=store.journal)  # another process, or this one after a restart
    assert await other.publish(event) is False


async def test_an_event_that_keeps_failing_is_dead_lettered_and_the_conversation_moves_on(
    open_bus: BusFactory, store: Store
) -> None:
    bus = await open_bus(journal=store.journal, max_attempts=3)
    attempts: list[int] = []
    handled: list[int] = []

    async def handle(event: Event) -> None:
        if event.meta.get("poison"):
            attempts.append(event.meta["seq"])
            raise RuntimeError("the model said no")
        handled.append(event.meta["seq"])

    bus.consume(handle)
    poison = make_event("poisoned", 0, poison=True)
    await bus.publish(poison)
    await bus.publish(make_event("poisoned", 1))
    await eventually(lambda: handled == [1], what="the next event of the conversation")
    assert attempts == [0, 0, 0]
    assert bus.stats().dead_lettered == 1
    dead = {e.id: error for e, error in await store.journal.dead()}
    assert dead[poison.id] == "RuntimeError: the model said no"


async def test_replies_reach_only_the_adapter_they_are_addressed_to_in_order(open_bus: BusFactory) -> None:
    bus = await open_bus()
    for n in range(3):
        await bus.send(Reply(ConversationRef("slack", "C1"), text=f"slack {n}"))
        await bus.send(Reply(ConversationRef("discord", "D1"), text=f"discord {n}"))
    slack = bus.replies("slack")
    discord = bus.replies("discord")
    got_slack = [(await asyncio.wait_for(anext(slack), 5)).text for _ in range(3)]
    got_discord = [(await asyncio.wait_for(anext(discord), 5)).text for _ in range(3)]
    assert got_slack == ["slack 0", "slack 1", "slack 2"]
    assert got_discord == ["discord 0", "discord 1", "discord 2"]
    await slack.aclose()
    await discord.aclose()


async def test_stop_lets_the_running_handler_finish_and_refuses_new_events(open_bus: BusFactory) -> None:
    bus = await open_bus()
    record = Recorder()
    bus.consume(record.handler("w", pause=0.2))
    await bus.publish(make_event("stopping", 0))
    await eventually(lambda: bool(record.steps), what="the handler to start")
    await bus.stop(drain_timeout=5)
    assert record.finished("stopping") == [0]
    with pytest.raises(RuntimeError, match="stopping"):
        await bus.publish(make_event("stopping", 1))
