"""Bus benchmark: publish -> handler latency and throughput, in-process bus vs Redis Streams bus.

    python bench/bus_latency.py [--redis redis://127.0.0.1:6379/15] [--events 3000] [--no-processes]

1. *one at a time*: publish, wait until the handler has it, repeat: the per-message cost of the bus.
2. *burst*: publish N events over 100 conversations, 32 at a time (as a busy gateway does); throughput until all are
   handled and the publish -> handler latency under that load.
Both run publisher and worker in this one process, so the difference is what the bus itself adds.
3. *scale-out*: worker processes (1, then 2) of 4 concurrent handlers that each wait 100 ms as if on a
   model; shows how throughput grows with workers when the work is waiting, not CPU.
Keys live under a throwaway prefix that is deleted afterwards. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.bus.base import Bus  # noqa: E402
from bot.bus.memory import MemoryBus  # noqa: E402
from bot.bus.redis import RedisBus  # noqa: E402
from bot.events import ConversationRef, Event, EventKind, Sender  # noqa: E402

CONVERSATIONS = 100


def event(n: int, conversation: int, **meta: object) -> Event:
    return Event(
        id=f"bench:{uuid.uuid4().hex}",
        kind=EventKind.MESSAGE,
        channel="bench",
        conversation=ConversationRef("bench", f"room-{conversation}"),
        sender=Sender("bench", "u"),
        text=f"message {n}",
        meta={"seq": n, **meta},
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_at_a_time(bus: Bus, count: int) -> list[float]:
    arrived: asyncio.Future[float] | None = None

    async def handle(ev: Event) -> None:
        assert arrived is not None
        arrived.set_result(time.perf_counter())

    bus.consume(handle)
    latencies = []
    for n in range(count + 50):  # the first 50 warm up connections and partitions
        arrived = asyncio.get_running_loop().create_future()
        began = time.perf_counter()
        await bus.publish(event(n, n % CONVERSATIONS))
        handled_at = await asyncio.wait_for(arrived, 30)
        if n >= 50:
            latencies.append(handled_at - began)
    return latencies


async def burst(bus: Bus, count: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    done = asyncio.Event()

    async def handle(ev: Event) -> None:
        latencies.append(time.perf_counter() - ev.meta["t0"])
        if len(latencies) == count:
            done.set()

    bus.consume(handle)
    began = time.perf_counter()
    for start in range(0, count, 32):  # a gateway publishes many webhooks at once
        batch = [event(n, n % CONVERSATIONS, t0=time.perf_counter()) for n in range(start, min(count, start + 32))]
        await asyncio.gather(*(bus.publish(ev) for ev in batch))
    await asyncio.wait_for(done.wait(), 300)
    return count / (time.perf_counter() - began), latencies


async def open_bus(kind: str, redis_url: str, prefix: str) -> Bus:
    bus: Bus = MemoryBus() if kind == "memory" else RedisBus(redis_url, prefix=prefix, visibility_timeout=3)
    await bus.start()
    if isinstance(bus, RedisBus):  # take the partitions before measuring
        bus.consume(_ignore)
        await until(lambda: _all_active(bus))
    return bus


def _all_active(bus: RedisBus) -> bool:
    owned = bus.owned_partitions()
    return len(owned) == bus.partitions and all(state == "active" for state in owned.values())


async def until(check: Callable[[], bool] | Callable[[], Awaitable[bool]], pause: float = 0.05) -> None:
    while True:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        await asyncio.sleep(pause)


async def _ignore(ev: Event) -> None:
    return None


async def scale_out(redis_url: str, prefix: str, workers: int, count: int) -> float:
    """Throughput of `workers` processes, 4 handlers each, whose handler waits 100 ms (as if on a model)."""
    client = aioredis.from_url(redis_url)
    gateway = RedisBus(redis_url, prefix=prefix, partitions=4, visibility_timeout=1.5)
    await gateway.start()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "tests.bot.bus.worker_process", redis_url, prefix, "--concurrency", "4"]
    procs = [await asyncio.create_subprocess_exec(*command, cwd=ROOT, env=env) for _ in range(workers)]
    try:

        async def sharing() -> bool:
            live = [w for w in await gateway.workers() if w.consuming]
            return (
                len(live) == workers and all(w.partitions for w in live) and sum(len(w.partitions) for w in live) == 4
            )

        await until(sharing, 0.1)
        await asyncio.sleep(1.6)  # let partitions finish changing hands
        began = time.perf_counter()
        for start in range(0, count, 32):  # a gateway publishes many webhooks at once
            await asyncio.gather(
                *(gateway.publish(event(n, n % CONVERSATIONS, pause=0.1)) for n in range(start, min(count, start + 32)))
            )

        async def all_handled() -> bool:
            return await client.llen(f"{prefix}log") >= 2 * count

        await until(all_handled, 0.02)
        return count / (time.perf_counter() - began)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            await proc.wait()
        await gateway.stop()
        await client.aclose()


async def delete_prefix(redis_url: str, prefix: str) -> None:
    client = aioredis.from_url(redis_url)
    async for key in client.scan_iter(match=f"{prefix}*", count=1000):
        await client.delete(key)
    await client.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"))
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--no-processes", action="store_true", help="skip the worker-process scale-out run")
    args = parser.parse_args()
    root = f"bench:{uuid.uuid4().hex[:8]}:"
    rows = []
    try:
        for kind in ("memory", "redis"):
            bus = await open_bus(kind, args.redis, f"{root}{kind}-seq:")
            single = await one_at_a_time(bus, min(args.events, 2000))
            await bus.stop()
            bus = await open_bus(kind, args.redis, f"{root}{kind}-burst:")
            rate, loaded = await burst(bus, args.events)
            await bus.stop()
            rows.append((kind, single, rate, loaded))
        print(f"\nbus latency and throughput ({args.events} events, {CONVERSATIONS} conversations, one process)")
        print(f"{'bus':<8} {'1-at-a-time p50':>16} {'p99':>9} {'burst msg/s':>12} {'burst p50':>10} {'p99':>9}")
        for kind, single, rate, loaded in rows:
            print(
                f"{kind:<8} {statistics.median(single) * 1e3:>13.3f} ms {percentile(single, 0.99) * 1e3:>6.2f} ms"
                f" {rate:>12,.0f} {statistics.median(loaded) * 1e3:>7.1f} ms {percentile(loaded, 0.99) * 1e3:>6.1f} ms"
            )
        added = statistics.median(rows[1][1]) - statistics.median(rows[0][1])
        print(f"the Redis bus adds {added * 1e3:.3f} ms p50 per message over the in-process bus")
        if not args.no_processes:
            count = 400
            print(f"\nscale-out: {count} events, worker processes of 4 handlers that each wait 100 ms (as on a model)")
            print(f"{'workers':<8} {'msg/s':>8} {'speed-up':>9}")
            base = None
            for workers in (1, 2):
                rate = await scale_out(args.redis, f"{root}scale{workers}:", workers, count)
                base = base or rate
                print(f"{workers:<8} {rate:>8,.0f} {rate / base:>8.2f}x")
    finally:
        await delete_prefix(args.redis, root)


if __name__ == "__main__":
    asyncio.run(main())
