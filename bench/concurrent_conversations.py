"""1,000 conversations at once, each waiting on a model that takes 1 s to answer.

    python bench/concurrent_conversations.py [--conversations 1000] [--delay 1.0]

Every conversation sends one message at the same moment to an llm flow (streamed reply, every
step persisted); the fake model runs in its own process. Prints wall time, the latency overhead
above the model's delay (p50/p99) and this process's peak RSS (the fake's memory is not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import TimingAdapter, bench_config, peak_rss_mib, percentile, temp_dir
from bot.app import App

FLOW = """
name: bench
triggers: [{default: true}]
nodes:
  - id: answer
    kind: llm
    system: "You are a benchmark."
    prompt: "{{ event.text }}"
    history: 0
    reply: true
"""


def start_fake(delay: float) -> subprocess.Popen[str]:
    script = Path(__file__).parent / "fake_llm_server.py"
    return subprocess.Popen([sys.executable, str(script), "--delay", str(delay)], stdout=subprocess.PIPE, text=True)


async def main(conversations: int, delay: float, fake: subprocess.Popen[str]) -> None:
    try:
        assert fake.stdout is not None
        base_url = fake.stdout.readline().strip()
        flows = temp_dir("sb-bench-flows-")
        (flows / "bench.yaml").write_text(FLOW)
        config = bench_config(
            flows,
            temp_dir("sb-bench-data-"),
            bus={"max_concurrency": conversations + 10},
            database={"pool_max": 20},
            llm={
                "default": "fake",
                "timeout": 30,
                "max_retries": 0,
                "models": {"fake": {"model": "openai/fake", "api_base": base_url, "api_key": "sk-bench"}},
            },
        )
        adapter = TimingAdapter()
        async with App(config, with_server=False, adapters=[adapter]) as app:
            await app.services.llm.complete([{"role": "user", "content": "warm up"}])  # import litellm, open pools
            adapter.expect(conversations)
            cpu_before = time.process_time()
            started = time.perf_counter()
            await asyncio.gather(*(adapter.publish("hello", f"conv-{i}") for i in range(conversations)))
            await adapter.wait(120)
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu_before
            overheads = [ms - delay * 1000 for ms in adapter.latencies_ms()]
            answered = adapter.replies
            failed = sum(1 for r in await app.store.runs.recent(conversations) if r.status != "succeeded")
    finally:
        fake.terminate()
        fake.wait()
    print(f"{conversations} concurrent conversations, model latency {delay:g} s, streamed replies, steps persisted")
    print(f"  answered {answered}/{conversations} (failed runs: {failed}) in {wall:.2f} s wall")
    print(
        f"  overhead above the model's {delay:g} s: p50 {percentile(overheads, 50):.0f} ms, "
        f"p99 {percentile(overheads, 99):.0f} ms, max {max(overheads):.0f} ms"
    )
    print(f"  CPU of this process for the burst: {cpu:.2f} s ({cpu / conversations * 1000:.2f} ms per conversation); "
          "the rest of the wall time is the fake model's own process and PostgreSQL sharing the 2 cores")
    print(f"  peak RSS {peak_rss_mib():.0f} MiB (this process; openai/ models use the direct transport, no litellm)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=1.0)
    args = parser.parse_args()
    asyncio.run(main(args.conversations, args.delay, start_fake(args.delay)))
