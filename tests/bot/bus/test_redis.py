"""The Redis Streams bus against the machine's real Redis: what gateways and workers in many processes see."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.bus.memory import BusClosed
from bot.bus.redis import BusFull, BusMisconfigured, BusUnavailable, PartitionState, RedisBus
from bot.events import ConversationRef, Event, Reply
from tests.bot.bus.conftest import FAST, Recorder, eventually, make_event
from tests.conftest import free_port

NewBus = Callable[..., Awaitable[RedisBus]]
ROOT = Path(__file__).resolve().parents[3]


async def all_partitions_active(*buses: RedisBus) -> None:
    """Wait until the workers hold every partition between them, each at least one, none mid-hand-over."""

    def settled() -> bool:
        owned = [bus.owned_partitions() for bus in buses]
        states = [state for parts in owned for state in parts.values()]
        return (
            all(owned)
            and len(states) == buses[0].partitions
            and all(state is PartitionState.ACTIVE for state in states)
        )

    await eventually(settled, what="the partitions to settle")


def assert_in_order_without_overlap(steps: list[tuple[str, str, int, str]], expected: dict[str, int]) -> None:
    """Per conversation: start 0, end 0, start 1, end 1, ... — handled in order, one at a time, each once."""
    for conversation, count in expected.items():
        mine = [(seq, phase) for _w, conv, seq, phase in steps if conv == conversation]
        assert mine == [(seq, phase) for seq in range(count) for phase in ("start", "end")], conversation


# -- ordering across workers -----------------------------------------------------------------------


async def test_conversations_spread_over_two_workers_and_each_stays_in_order(new_bus: NewBus) -> None:
    record = Recorder()
    first, second = await new_bus(), await new_bus()
    first.consume(record.handler("first", pause=0.003))
    second.consume(record.handler("second", pause=0.003))
    await all_partitions_active(first, second)
    conversations = {f"room-{n}": 10 for n in range(8)}
    for seq in range(10):
        for conversation in conversations:
            await first.publish(make_event(conversation, seq))
    await eventually(lambda: len(record.steps) == 2 * 80, what="80 events")
    assert_in_order_without_overlap(record.steps, conversations)
    workers_used = {worker for worker, *_ in record.steps}
    assert workers_used == {"first", "second"}


async def test_order_holds_while_partitions_move_to_a_worker_that_joins(new_bus: NewBus) -> None:
    record = Recorder()
    first = await new_bus()
    first.consume(record.handler("first", pause=0.05))
    conversations = {f"room-{n}": 25 for n in range(6)}
    for seq in range(25):
        for conversation in conversations:
            await first.publish(make_event(conversation, seq))
    await eventually(lambda: len(record.steps) > 20, what="the first worker to get going")
    second = await new_bus()
    second.consume(record.handler("second", pause=0.05))
    await eventually(lambda: len(record.steps) == 2 * 150, what="150 events")
    assert_in_order_without_overlap(record.steps, conversations)
    assert any(worker == "second" for worker, *_ in record.steps), "the joining worker took partitions"


def start_worker(redis_url: str, prefix: str, *, hang: bool = False) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "tests.bot.bus.worker_process", redis_url, prefix, *(["--hang"] if hang else [])]
    return subprocess.Popen(args, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


async def read_log(client: aioredis.Redis, prefix: str) -> list[tuple[str, str, int, str]]:
    steps = [json.loads(raw) for raw in await client.lrange(f"{prefix}log", 0, -1)]
    return [(s["worker"], s["conv"], s["seq"], s["phase"]) for s in steps]


@pytest.mark.slow
async def test_two_worker_processes_keep_each_conversation_in_order(redis_url: str, new_bus: NewBus) -> None:
    gateway = await new_bus()
    client = aioredis.from_url(redis_url, decode_responses=True)
    workers = [start_worker(redis_url, gateway.prefix) for _ in range(2)]
    try:

        async def both_hold_partitions() -> bool:
            live = [w for w in await gateway.workers() if w.consuming]
            return len(live) == 2 and all(w.partitions for w in live) and sum(len(w.partitions) for w in live) == 4

        deadline = time.monotonic() + 15
        while not await both_hold_partitions():
            assert time.monotonic() < deadline, "two worker processes never shared the partitions"
            await asyncio.sleep(0.1)
        await asyncio.sleep(FAST["visibility_timeout"])  # let a partition still recovering settle
        conversations = {f"room-{n}": 12 for n in range(8)}
        for seq in range(12):
            for conversation in conversations:
                await gateway.publish(make_event(conversation, seq, pause=0.005))
        deadline = time.monotonic() + 30
        while len(steps := await read_log(client, gateway.prefix)) < 2 * 96:
            assert time.monotonic() < deadline, f"only {len(steps)} steps logged"
            await asyncio.sleep(0.1)
        assert_in_order_without_overlap(steps, conversations)
        assert len({worker for worker, *_ in steps}) == 2, "both processes handled events"
        assert await client.xlen(f"{gateway.prefix}replies:test") == 96  # one reply per event
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            assert worker.wait(timeout=15) == 0, "a worker did not stop cleanly on SIGTERM"
        await client.aclose()


# -- crashes and recovery -------------------------------------------------------------------------


async def test_a_worker_that_dies_mid_handler_has_its_events_handled_by_another(new_bus: NewBus) -> None:
    record = Recorder()
    doomed = await new_bus()
    stuck = asyncio.Event()

    async def hang(event: Event) -> None:
        record.start("doomed", event)
        stuck.set()
        await asyncio.sleep(3600)

    doomed.consume(hang)
    await doomed.publish(make_event("room", 0))
    await doomed.publish(make_event("room", 1))
    await asyncio.wait_for(stuck.wait(), 5)
    await doomed.abandon()  # no ack, no hand-over: what the others see when a process dies
    survivor = await new_bus()
    survivor.consume(record.handler("survivor"))
    await eventually(lambda: record.finished("room") == [0, 1], what="the survivor to reclaim both events")
    assert [(w, seq, phase) for w, _c, seq, phase in record.steps] == [
        ("doomed", 0, "start"),
        ("survivor", 0, "start"),
        ("survivor", 0, "end"),
        ("survivor", 1, "start"),
        ("survivor", 1, "end"),
    ]


@pytest.mark.slow
async def test_a_worker_process_killed_with_sigkill_loses_nothing_and_doubles_nothing(
    redis_url: str, new_bus: NewBus, redis_prefix: Callable[[], str]
) -> None:
    trials = int(os.environ.get("SWITCHBOARD_KILL_TRIALS", "3"))
    client = aioredis.from_url(redis_url, decode_responses=True)
    try:
        for trial in range(trials):
            prefix = redis_prefix()
            gateway = await new_bus(prefix=prefix)
            victim = start_worker(redis_url, prefix, hang=True)
            try:
                await gateway.publish(make_event("room", 0))
                await gateway.publish(make_event("room", 1))
                deadline = time.monotonic() + 15
                while not await read_log(client, prefix):
                    assert time.monotonic() < deadline, "the victim never started the event"
                    await asyncio.sleep(0.05)
            finally:
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=5)
            record = Recorder()
            survivor = await new_bus(prefix=prefix)

            async def answer(event: Event, bus: RedisBus = survivor, record: Recorder = record) -> None:
                record.start("survivor", event)
                await bus.send(Reply(event.conversation, text="answer", in_reply_to=event.id))
                record.end("survivor", event)

            survivor.consume(answer)
            await eventually(lambda r=record: r.finished("room") == [0, 1], what=f"recovery in trial {trial}")
            victim_steps = await read_log(client, prefix)
            assert [(seq, phase) for _w, _c, seq, phase in victim_steps] == [(0, "start")], "killed mid-run"
            replies = await client.xrange(f"{prefix}replies:test")
            answered = Counter(json.loads(fields["r"])["in_reply_to"] for _id, fields in replies)
            assert sorted(answered.values()) == [1, 1], "one reply per event: none lost, none doubled"
            assert record.overlaps == []
            await survivor.stop()
            await gateway.stop()
    finally:
        await client.aclose()


async def test_a_worker_that_loses_its_lease_stops_the_handler_and_leaves_the_event(
    redis_url: str, new_bus: NewBus
) -> None:
    bus = await new_bus(partitions=1)
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def long_run(event: Event) -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    bus.consume(long_run)
    await bus.publish(make_event("room", 0))
    await asyncio.wait_for(started.wait(), 5)
    client = aioredis.from_url(redis_url, decode_responses=True)
    await client.set(f"{bus.prefix}lease:0", "another-worker", px=60_000)  # e.g. it stalled and lost it
    await asyncio.wait_for(cancelled.wait(), 5)
    pending = await client.xpending(f"{bus.prefix}in:{{0}}", "workers")
    await client.aclose()
    assert pending["pending"] == 1, "not acked: the partition's next owner runs it"
    assert bus.owned_partitions() == {}


async def test_an_event_whose_workers_keep_dying_is_dead_lettered(new_bus: NewBus) -> None:
    doomed = await new_bus(max_deliveries=1)
    started = asyncio.Event()

    async def hang(event: Event) -> None:
        started.set()
        await asyncio.sleep(3600)

    doomed.consume(hang)
    await doomed.publish(make_event("cursed", 0))
    await asyncio.wait_for(started.wait(), 5)
    await doomed.abandon()
    record = Recorder()
    survivor = await new_bus(max_deliveries=1)
    survivor.consume(record.handler("survivor"))
    await eventually(lambda: survivor.stats().dead_lettered == 1, what="the dead letter")
    [letter] = await survivor.dead_letters()
    assert letter.event is not None and letter.event.conversation.room == "cursed"
    assert "handed out 2 times" in letter.error
    assert record.steps == [], "not run a third time"


async def test_stop_hands_unfinished_work_to_another_worker_without_waiting(new_bus: NewBus) -> None:
    leaving = await new_bus()
    started = asyncio.Event()

    async def slow(event: Event) -> None:
        started.set()
        await asyncio.sleep(3600)

    leaving.consume(slow)
    await leaving.publish(make_event("room", 0))
    await asyncio.wait_for(started.wait(), 5)
    began = time.monotonic()
    await leaving.stop(drain_timeout=0.1)
    assert time.monotonic() - began < 1.0
    record = Recorder()
    taking_over = await new_bus()
    took_at = time.monotonic()
    taking_over.consume(record.handler("next"))
    await eventually(lambda: record.finished("room") == [0], what="the parked event")
    assert time.monotonic() - took_at < FAST["visibility_timeout"], "parked work is not held back"
    assert [w.id for w in await taking_over.workers()] == [taking_over.worker_id]


# -- dead letters and bad input -------------------------------------------------------------------


async def test_dead_letters_show_their_error_and_replay_after_the_fix(new_bus: NewBus) -> None:
    bus = await new_bus(max_attempts=2)
    broken = True
    handled: list[int] = []

    async def handle(event: Event) -> None:
        if broken:
            raise ValueError("template error in node 'answer'")
        handled.append(event.meta["seq"])

    bus.consume(handle)
    event = make_event("room", 7)
    await bus.publish(event)
    await eventually(lambda: bus.stats().dead_lettered == 1, what="the dead letter")
    [letter] = await bus.dead_letters()
    assert (letter.event_id, letter.error) == (event.id, "ValueError: template error in node 'answer'")
    assert letter.event == event
    broken = False
    assert await bus.replay_dead(letter.entry_id) is True
    assert await bus.replay_dead(letter.entry_id) is False, "a dead letter replays once"
    await eventually(lambda: handled == [7], what="the replayed event")
    assert await bus.dead_letters() == []


async def test_an_undecodable_entry_is_dead_lettered_instead_of_blocking_its_partition(
    redis_url: str, new_bus: NewBus
) -> None:
    bus = await new_bus(partitions=1)
    client = aioredis.from_url(redis_url, decode_responses=True)
    await client.xadd(f"{bus.prefix}in:{{0}}", {"id": "junk:1", "e": "{not json"})
    await client.aclose()
    await bus.publish(make_event("room", 0))
    record = Recorder()
    bus.consume(record.handler("w"))
    await eventually(lambda: record.finished("room") == [0], what="the good event behind the junk")
    [letter] = await bus.dead_letters()
    assert letter.event is None and letter.payload == "{not json" and "undecodable" in letter.error
    with pytest.raises(ValueError, match="cannot be replayed"):
        await bus.replay_dead(letter.entry_id)


async def test_a_redelivered_event_is_dropped_by_every_gateway(new_bus: NewBus) -> None:
    one, two = await new_bus(), await new_bus()
    event = make_event("room", 0)
    assert await one.publish(event) is True
    assert await two.publish(event) is False
    assert await one.depth() == 1


async def test_a_full_partition_refuses_events_until_workers_catch_up(new_bus: NewBus) -> None:
    bus = await new_bus(partitions=1, max_queued=3)
    for seq in range(3):
        await bus.publish(make_event("room", seq))
    refused = make_event("room", 3)
    with pytest.raises(BusFull, match="start more workers"):
        await bus.publish(refused)
    record = Recorder()
    bus.consume(record.handler("w"))
    await eventually(lambda: record.finished("room") == [0, 1, 2], what="the backlog")
    assert await bus.publish(refused) is True, "a refused event is not remembered as seen"
    await eventually(lambda: record.finished("room") == [0, 1, 2, 3], what="the retried event")


async def test_every_process_must_agree_on_the_partition_count(new_bus: NewBus) -> None:
    first = await new_bus(partitions=4)
    with pytest.raises(BusMisconfigured, match="partitions=4"):
        await new_bus(prefix=first.prefix, partitions=8)


async def test_an_unreachable_redis_is_a_clear_error_and_the_password_is_not_shown() -> None:
    bus = RedisBus(f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    assert "hunter2" not in bus.url
    with pytest.raises(BusUnavailable, match="cannot reach Redis") as raised:
        await bus.start()
    assert "hunter2" not in str(raised.value)
    with pytest.raises(BusClosed):
        await bus.publish(make_event("room", 0))


def test_bus_options_can_come_from_the_url() -> None:
    bus = RedisBus("redis://127.0.0.1:6379/15?prefix=acme:&partitions=32&visibility_timeout=5&socket_timeout=9")
    assert (bus.prefix, bus.partitions) == ("acme:", 32)
    assert bus._redis_url == "redis://127.0.0.1:6379/15?socket_timeout=9"
    assert bus.partition_of("slack:T1:C1:") == RedisBus("redis://x?partitions=32").partition_of("slack:T1:C1:")


# -- replies and status ---------------------------------------------------------------------------


async def test_each_reply_is_sent_by_exactly_one_of_several_gateways(new_bus: NewBus) -> None:
    worker, one, two = await new_bus(), await new_bus(), await new_bus()
    received: list[tuple[str, str]] = []

    async def gateway(name: str, bus: RedisBus) -> None:
        async for reply in bus.replies("slack"):
            received.append((name, reply.text))

    readers = [asyncio.create_task(gateway("one", one)), asyncio.create_task(gateway("two", two))]
    for n in range(30):
        await worker.send(Reply(ConversationRef("slack", "C1"), text=f"r{n}"))
    await worker.send(Reply(ConversationRef("discord", "D1"), text="not for slack"))
    await eventually(lambda: len(received) == 30, what="30 replies")
    texts = Counter(text for _name, text in received)
    assert texts == Counter(f"r{n}" for n in range(30))
    await one.stop()
    await two.stop()
    await asyncio.wait_for(asyncio.gather(*readers), 5)  # iterators end when their bus stops


async def test_replies_wait_for_a_gateway_and_a_dead_gateways_replies_are_taken_over(new_bus: NewBus) -> None:
    worker = await new_bus()
    await worker.send(Reply(ConversationRef("telegram", "42"), text="sent while no gateway ran"))
    crashing = await new_bus()
    replies = crashing.replies("telegram")
    first = await asyncio.wait_for(anext(replies), 5)
    assert first.text == "sent while no gateway ran"
    await crashing.abandon()  # died before the send completed: never acked
    restarted = await new_bus()
    again = await asyncio.wait_for(anext(restarted.replies("telegram")), 5)
    assert (again.id, again.text) == (first.id, first.text)


async def test_workers_announce_themselves_for_status(new_bus: NewBus) -> None:
    gateway, worker = await new_bus(role="gateway"), await new_bus()
    worker.consume(Recorder().handler("w"))
    await all_partitions_active(worker)
    await eventually(lambda: bool(worker.stats()), what="a heartbeat")
    seen = {w.id: w for w in await gateway.workers()}
    assert set(seen) == {gateway.worker_id, worker.worker_id}
    me = seen[worker.worker_id]
    assert (me.role, me.pid, me.consuming) == ("worker", os.getpid(), True)
    assert seen[gateway.worker_id].role == "gateway"
    await worker.stop()
    assert [w.id for w in await gateway.workers()] == [gateway.worker_id]


async def test_workers_recover_when_redis_loses_its_data(redis_url: str, new_bus: NewBus) -> None:
    bus = await new_bus()
    record = Recorder()
    bus.consume(record.handler("w"))
    await all_partitions_active(bus)
    client = aioredis.from_url(redis_url)
    async for key in client.scan_iter(match=f"{bus.prefix}*"):  # what a restart without persistence leaves
        await client.delete(key)
    await client.aclose()
    await bus.publish(make_event("room", 0))
    await eventually(lambda: record.finished("room") == [0], what="the event after Redis lost everything")
