"""Messages per second through bus + router + a trivial two-node flow, every step persisted.

    python bench/flow_throughput.py [--messages 5000] [--conversations 200]

One process, in-process bus, embedded PostgreSQL (or BENCH_DATABASE_URL). Each message: journal
insert, person lookup, run row, two step rows with the run state, history row, journal completion.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import TimingAdapter, bench_config, peak_rss_mib, summary, temp_dir
from bot.app import App

FLOW = """
name: bench
triggers: [{default: true}]
history: {record: false}
nodes:
  - id: shape
    kind: template
    template: "echo: {{ event.text }}"
  - id: answer
    kind: reply
    text: "{{ shape.text }}"
"""


async def main(messages: int, conversations: int, concurrency: int, producers: int) -> None:
    flows = temp_dir("sb-bench-flows-")
    (flows / "bench.yaml").write_text(FLOW)
    config = bench_config(flows, temp_dir("sb-bench-data-"), bus={"max_concurrency": concurrency})
    adapter = TimingAdapter()
    async with App(config, with_server=False, adapters=[adapter]):
        adapter.expect(200)  # warm-up: prepared statements, pool, caches
        for i in range(200):
            await adapter.publish(f"warm {i}", f"w{i % 20}")
        await adapter.wait(60)

        adapter.expect(messages)
        started = time.perf_counter()
        # Several producers at once, as several webhook requests or socket connections would be.
        for first in range(0, messages, producers):
            await asyncio.gather(
                *(
                    adapter.publish(f"message {i}", f"c{i % conversations}")
                    for i in range(first, min(first + producers, messages))
                )
            )
        await adapter.wait(600)
        elapsed = time.perf_counter() - started
        latencies = adapter.latencies_ms()
        assert adapter.replies == messages, f"{adapter.replies} replies for {messages} messages"
    print(
        f"flow throughput: {messages} messages over {conversations} conversations, trivial 2-node flow, "
        f"every step persisted"
    )
    print(f"  {messages / elapsed:,.0f} messages/s  ({elapsed:.2f} s)")
    print(f"  latency publish -> turn end: {summary(latencies)} (all published at once: includes queueing)")
    print(f"  peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=64, help="bus.max_concurrency")
    parser.add_argument("--producers", type=int, default=32, help="events published at once")
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.conversations, args.concurrency, args.producers))
