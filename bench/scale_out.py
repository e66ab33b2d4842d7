"""Scale-out on Redis Streams: throughput with 1 and 2 worker processes, and the bus's added latency.

    python bench/scale_out.py [--messages 400] [--conversations 64] [--model-delay 0.2] [--concurrency 4]

All real processes (`python -m bot.cli run --role ...`), the gateway separate from the workers, a shared
PostgreSQL (embedded, or BENCH_DATABASE_URL) and Redis (BENCH_REDIS_URL, default db 15, a fresh prefix):

1. Throughput: the durable 3-node flow `prepare` (template) → `think` (llm: the fake OpenAI server of
   bench/fake_llm_server.py in its own process, answering after `--model-delay` s) → `answer` (reply),
   every step persisted. `--conversations` clients each send messages one after another through the
   gateway's web API until `--messages` are answered. Each worker runs `--concurrency` flows at a time,
   so the model wait, not the CPU, bounds one worker: 2 workers should reach about twice the rate.
2. Latency: a 3-node flow with no wait, one message at a time through the web API: one `--role all`
   process on the in-process `memory://` bus, against a gateway and a worker on the Redis bus.
   The p50 difference is what Redis and the extra process hop add per message, end to end.

CPU per message counts the gateway and worker processes (user + system), not Redis or the clients.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import psutil
import redis.asyncio as aioredis

from bench.process_db import redis_url, shared_database
from tests.conftest import free_port
from tests.e2e.cluster import Cluster, ProcessRole, RoleProcess, summarize

REPO = Path(__file__).resolve().parent.parent

MODEL_FLOW = """\
name: durable
triggers: [{default: true}]
history: {record: false}
nodes:
  - id: prepare
    kind: template
    template: "{{ event.text }}"
  - id: think
    kind: llm
    model: fake
    prompt: "{{ prepare.text }}"
  - id: answer
    kind: reply
    text: "{{ think.text }}"
"""

ECHO_FLOW = """\
name: durable
triggers: [{default: true}]
history: {record: false}
nodes:
  - id: prepare
    kind: template
    template: "{{ event.text }}"
  - id: shape
    kind: template
    template: "echo: {{ prepare.text }}"
  - id: answer
    kind: reply
    text: "{{ shape.text }}"
"""


@dataclass(slots=True)
class Row:
    setup: str
    messages: int
    seconds: float
    latencies: list[float]
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


def cpu_seconds(processes: list[RoleProcess]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = psutil.Process(process.pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


async def ask(http: httpx.AsyncClient, conversation: str, text: str) -> float:
    t0 = time.perf_counter()
    response = await http.post("/api/v1/messages", json={"user": conversation, "conversation": conversation,
                                                          "text": text})
    body = response.json()
    if response.status_code != 200 or body.get("status") != "succeeded" or len(body.get("replies", [])) != 1:
        raise RuntimeError(f"{text!r}: HTTP {response.status_code} {str(body)[:300]}")
    return time.perf_counter() - t0


async def load(http: httpx.AsyncClient, messages: int, conversations: int, tag: str) -> tuple[float, list[float]]:
    """`conversations` clients, each sending its next message once the previous one was answered."""
    remaining = iter(range(messages))
    latencies: list[float] = []

    async def client(c: int) -> None:
        for i in remaining:
            latencies.append(await ask(http, f"{tag}-c{c}", f"{tag} message {i}"))

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(conversations)))
    return time.perf_counter() - started, latencies


async def partitions_spread(cluster: Cluster, workers: int, timeout: float = 60) -> None:
    """Wait until the partition leases are held by `workers` distinct workers (the rebalance is done)."""
    client = aioredis.from_url(cluster.redis_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            keys = [k async for k in client.scan_iter(match=f"{cluster.prefix}lease:*")]
            owners = {await client.get(k) for k in keys} - {None}
            if len(keys) == cluster.partitions and len(owners) == workers:
                return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"the partitions did not spread over {workers} workers in {timeout} s")
    finally:
        await client.aclose()


async def throughput(database_url: str, data: Path, llm_url: str, workers: int, args: argparse.Namespace) -> Row:
    llm = (f"llm: {{default: fake, max_retries: 0, timeout: 30, models: {{fake: {{model: openai/gpt-bench, "
           f"api_base: '{llm_url}', api_key: sk-bench-not-real}}}}}}\n")
    with Cluster(database_url, redis_url(), data / f"tp{workers}", free_port(), MODEL_FLOW, visibility_timeout=3,
                 partitions=16, max_concurrency=args.concurrency, extra_config=llm, log_level="WARNING") as cluster:
        processes = [cluster.spawn(ProcessRole.GATEWAY)] + [cluster.spawn(ProcessRole.WORKER) for _ in range(workers)]
        await asyncio.gather(*(cluster.wait_ready(p) for p in processes))
        await partitions_spread(cluster, workers)
        limits = httpx.Limits(max_connections=args.conversations + 8, max_keepalive_connections=args.conversations + 8)
        async with httpx.AsyncClient(base_url=cluster.base_url, timeout=300, limits=limits) as http:
            await load(http, args.conversations * 2, args.conversations, "warm")  # litellm import, pools, caches
            cpu0 = cpu_seconds(processes)
            seconds, latencies = await load(http, args.messages, args.conversations, "load")
            cpu = cpu_seconds(processes) - cpu0
    return Row(f"redis, gateway + {workers} worker{'s' if workers > 1 else ''}, model waits "
               f"{args.model_delay * 1000:.0f} ms", args.messages, seconds, latencies, cpu)


async def latency(database_url: str, data: Path, bus: str, args: argparse.Namespace) -> Row:
    with Cluster(database_url, redis_url(), data / f"lat-{bus}", free_port(), ECHO_FLOW, visibility_timeout=3,
                 partitions=16, bus="memory://" if bus == "memory" else "", log_level="WARNING") as cluster:
        roles = [ProcessRole.ALL] if bus == "memory" else [ProcessRole.GATEWAY, ProcessRole.WORKER]
        processes = [cluster.spawn(role) for role in roles]
        await asyncio.gather(*(cluster.wait_ready(p) for p in processes))
        async with httpx.AsyncClient(base_url=cluster.base_url, timeout=60) as http:
            for i in range(50):
                await ask(http, "warm", f"warm {i}")
            cpu0 = cpu_seconds(processes)
            started = time.perf_counter()
            latencies = [await ask(http, f"lat-c{i % 10}", f"message {i}") for i in range(args.latency_messages)]
            seconds = time.perf_counter() - started
            cpu = cpu_seconds(processes) - cpu0
    setup = "memory://, one process (--role all)" if bus == "memory" else "redis://, gateway + 1 worker"
    return Row(f"{setup}, no wait, one at a time", args.latency_messages, seconds, latencies, cpu)


def start_fake_llm(delay: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "fake_llm_server.py"), "--delay", str(delay)],
                            stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise RuntimeError(f"bench/fake_llm_server.py did not print its URL (got {url!r})")
    return proc, url


async def main(args: argparse.Namespace) -> None:
    database_url, data = await shared_database()
    load_before = os.getloadavg()
    fake, llm_url = start_fake_llm(args.model_delay)
    rows: list[Row] = []
    try:
        for workers in (1, 2):
            rows.append(await throughput(database_url, data, llm_url, workers, args))
            print(f"  {rows[-1].setup}: {rows[-1].rate:.1f} msg/s", file=sys.stderr, flush=True)
        # Alternate the two setups so the other jobs' load drifts over both alike; merge the rounds.
        merged: dict[str, Row] = {}
        for _ in range(args.latency_rounds):
            for bus in ("memory", "redis"):
                row = await latency(database_url, data, bus, args)
                print(f"  {row.setup}: p50 {summarize(row.latencies)['p50']:.1f} ms", file=sys.stderr, flush=True)
                if bus in merged:
                    into = merged[bus]
                    into.messages += row.messages
                    into.seconds += row.seconds
                    into.latencies += row.latencies
                    into.cpu_seconds += row.cpu_seconds
                else:
                    merged[bus] = row
        rows += [merged["memory"], merged["redis"]]
    finally:
        fake.kill()
        fake.wait()
    ceiling = args.concurrency / args.model_delay
    print(f"\nmachine: {os.cpu_count()} cores; load average before {load_before[0]:.1f}, "
          f"after {os.getloadavg()[0]:.1f} (shared with other jobs)")
    print(f"throughput: {args.messages} messages from {args.conversations} conversations; each worker runs "
          f"{args.concurrency} flows at a time (ceiling {ceiling:.0f} msg/s per worker)\n")
    print("| setup | messages | msg/s | speed-up | latency p50 | p95 | max | CPU ms/msg (gateway + workers) |")
    print("|---|---|---|---|---|---|---|---|")
    base = rows[0].rate
    for i, row in enumerate(rows):
        s = summarize(row.latencies)
        speed = f"{row.rate / base:.2f}×" if i < 2 else "—"
        print(f"| {row.setup} | {row.messages} | {row.rate:.1f} | {speed} | {s['p50']:.1f} ms | {s['p95']:.1f} ms "
              f"| {s['max']:.0f} ms | {row.cpu_seconds / row.messages * 1000:.1f} |")
    memory, redis = (summarize(rows[2].latencies)["p50"], summarize(rows[3].latencies)["p50"])
    lowest = min(rows[2].latencies) * 1000, min(rows[3].latencies) * 1000
    print(f"\nfastest message: memory {lowest[0]:.2f} ms, redis {lowest[1]:.2f} ms")
    print(f"Redis bus + process hop adds {redis - memory:.2f} ms p50 per message end to end "
          f"({memory:.2f} → {redis:.2f} ms); 2 workers = {rows[1].rate / base:.2f}× one worker.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--conversations", type=int, default=64)
    parser.add_argument("--model-delay", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=4, help="flows each worker runs at a time")
    parser.add_argument("--latency-messages", type=int, default=200, help="per round and setup")
    parser.add_argument("--latency-rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
