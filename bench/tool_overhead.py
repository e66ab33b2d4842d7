"""Tool calls: success rate on a mixed workload and the framework's overhead per call.

    python bench/tool_overhead.py [--calls 20000] [--no-db]

Overhead is what `ToolRegistry.invoke` adds around the tool's own work (lookup, argument
validation, role check, timeout wrapper, result to text): every tool here times its own body,
and overhead = wall time of the call - that. Async tools run on the loop, sync tools hop to a
worker thread (measured separately). The workload mixes good calls with every failure kind
(raises, hangs past its timeout, returns garbage, invalid arguments, unknown tool): each must
come back as an explained result, never an exception. With the database, the cost of recording
calls in `tool_calls` (one batched insert per agent step) is measured too.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import percentile, temp_dir
from bot.store.people import Person, Role
from bot.tools import ToolContext, ToolRegistry, ToolStatus, tool
from bot.tools.records import ToolCallLog, ToolCallRecord

INNER: list[float] = []  # the tools' own time of the last call, seconds


@tool
async def lookup(ticket: int, verbose: bool = False) -> dict:
    """Look up a ticket (async)."""
    t0 = time.perf_counter()
    value = {"ticket": ticket, "state": "open", "verbose": verbose}
    INNER.append(time.perf_counter() - t0)
    return value


@tool
def convert(amount: float, currency: str = "EUR") -> str:
    """Convert an amount (sync: runs in a worker thread)."""
    t0 = time.perf_counter()
    value = f"{amount * 1.08:.2f} {currency}"
    INNER.append(time.perf_counter() - t0)
    return value


@tool
async def flaky(n: int) -> str:
    """Raises."""
    raise RuntimeError(f"backend refused {n}")


@tool
async def junk() -> object:
    """Returns garbage."""
    return object()


@tool(timeout=0.01)
async def stuck() -> str:
    """Hangs past its timeout."""
    await asyncio.sleep(1)
    return "late"


async def overhead(registry: ToolRegistry, name: str, arguments: dict, calls: int) -> list[float]:
    ctx = ToolContext(person=Person(1, "bench", Role.MEMBER), run_id="bench")
    samples = []
    for _ in range(calls):
        INNER.clear()
        t0 = time.perf_counter()
        result = await registry.invoke(name, arguments, ctx)
        wall = time.perf_counter() - t0
        assert result.ok, result.content
        samples.append((wall - sum(INNER)) * 1000)
    return samples


async def mixed(registry: ToolRegistry, rounds: int) -> dict[str, int]:
    ctx = ToolContext(person=Person(1, "bench", Role.MEMBER))
    workload = [("lookup", {"ticket": 7}, None), ("convert", {"amount": 10}, None), ("flaky", {"n": 1}, None),
                ("junk", {}, None), ("stuck", {}, None), ("lookup", {"ticket": "seven"}, None),
                ("nope", {}, None), ("lookup", {}, '{"ticket": 7')]
    counts = {"calls": 0, "ok": 0, "explained_failures": 0, "lost": 0}
    for _ in range(rounds):
        results = await asyncio.gather(*(registry.invoke(n, a, ctx, raw_arguments=r) for n, a, r in workload),
                                       return_exceptions=True)
        for result in results:
            counts["calls"] += 1
            if isinstance(result, BaseException):
                counts["lost"] += 1
            elif result.status is ToolStatus.OK:
                counts["ok"] += 1
            elif result.error and result.content.startswith("Error"):
                counts["explained_failures"] += 1
            else:
                counts["lost"] += 1
    return counts


async def recording_cost(batches: int, per_batch: int) -> float:
    from bot.store import Store

    store = await Store.open("", data_dir=temp_dir("sb-bench-tools-"), pool_min=2, pool_max=4)
    try:
        log = ToolCallLog(store.pool)
        from bot.tools.base import ToolResult

        rows = [ToolCallRecord.of(ToolResult(ToolStatus.OK, '{"ticket": 7}', 0.1), run_id=None, node_id="agent",
                                  call_id=f"c{i}", tool="lookup", arguments={"ticket": 7}) for i in range(per_batch)]
        t0 = time.perf_counter()
        for _ in range(batches):
            await log.record(rows)
        return (time.perf_counter() - t0) * 1000 / (batches * per_batch)
    finally:
        await store.close()


def describe(label: str, samples: list[float]) -> str:
    return (f"  {label}: p50 {percentile(samples, 50) * 1000:.0f} µs, p99 {percentile(samples, 99) * 1000:.0f} µs, "
            f"mean {statistics.fmean(samples) * 1000:.0f} µs")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--no-db", action="store_true", help="skip the tool_calls recording figure")
    args = parser.parse_args()
    logging.getLogger("switchboard.tools").setLevel(logging.ERROR)  # the failing tools are on purpose
    registry = ToolRegistry()
    registry.add(lookup, convert, flaky, junk, stuck)

    await overhead(registry, "lookup", {"ticket": 1}, 500)  # warm-up
    async_samples = await overhead(registry, "lookup", {"ticket": 42, "verbose": True}, args.calls)
    sync_samples = await overhead(registry, "convert", {"amount": 12.5}, max(1000, args.calls // 10))
    counts = await mixed(registry, 50)
    print(f"Tool call framework overhead (excluding the tool's own time), {args.calls} calls:")
    print(describe("async tool", async_samples))
    print(describe("sync tool (worker thread hop)", sync_samples))
    rate = counts["ok"] / counts["calls"]
    print(f"Mixed workload ({counts['calls']} calls, 2 good and 6 failing kinds per round): "
          f"{counts['ok']} ok ({rate:.1%}), {counts['explained_failures']} explained failures, "
          f"{counts['lost']} lost")
    good = counts["calls"] // 4  # 2 of the 8 calls per round are well-formed calls to working tools
    print(f"  well-formed calls to working tools that succeeded: {counts['ok']}/{good} ({counts['ok'] / good:.1%}); "
          f"calls returning a result (ok or explained): "
          f"{(counts['ok'] + counts['explained_failures']) / counts['calls']:.1%}")
    if not args.no_db:
        per_call = await recording_cost(200, 4)
        print(f"Recording in tool_calls (batches of 4, embedded PostgreSQL): {per_call * 1000:.0f} µs per call")


if __name__ == "__main__":
    asyncio.run(main())
