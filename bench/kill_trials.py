"""SIGKILL a worker in the middle of runs, many times, and count lost and doubled replies.

    python bench/kill_trials.py [--trials 100] [--conversations 4] [--per-conversation 3] [--delay 0.6]

Real processes: one gateway and two workers (`python -m bot.cli run --role ...`) on Redis
(BENCH_REDIS_URL, default redis://127.0.0.1:6379/15, a fresh key prefix) and PostgreSQL (embedded, or
BENCH_DATABASE_URL). Each trial is `tests/e2e/kill_trial.py`'s: messages through the web API, the worker
with the most runs waiting on the slow API killed at a random point of the wait, a replacement started;
every message must get exactly one reply, every run exactly one success, in order per conversation.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.process_db import redis_url, shared_database
from tests.conftest import free_port
from tests.e2e.cluster import Cluster, ProcessRole, SlowApi, durable_flow, summarize
from tests.e2e.kill_trial import kill_trial

GONE = "reply for a web request that is gone"


async def main(trials: int, conversations: int, per_conversation: int, delay: float, seed: int) -> int:
    database_url, data = await shared_database()
    slow = SlowApi(delay).start()
    rng = random.Random(seed)
    results = []
    started = time.monotonic()
    try:
        with Cluster(database_url, redis_url(), data / "cluster", free_port(), durable_flow(slow.url)) as cluster:
            processes = [cluster.spawn(ProcessRole.GATEWAY), cluster.spawn(ProcessRole.WORKER),
                         cluster.spawn(ProcessRole.WORKER)]
            await asyncio.gather(*(cluster.wait_ready(p) for p in processes))
            async with httpx.AsyncClient(base_url=cluster.base_url, timeout=180) as http:
                for trial in range(trials):
                    result = await kill_trial(cluster, slow, http, trial=trial, conversations=conversations,
                                              per_conversation=per_conversation, rng=rng)
                    results.append(result)
                    flag = "ok" if result.clean else (f"LOST {result.lost} DOUBLED {result.doubled} "
                                                      f"RUNS {result.runs_wrong} REORDERED {result.reordered}")
                    print(f"trial {trial + 1:3d}/{trials}: {result.messages} messages, "
                          f"{result.in_flight_at_kill} runs in flight on the killed worker, "
                          f"{result.resumed} resumed at their next node, {result.seconds:.1f} s  {flag}", flush=True)
            gateway_log = processes[0].log()
    finally:
        slow.stop()
    messages = sum(r.messages for r in results)
    lost = sum(len(r.lost) for r in results)
    doubled = sum(len(r.doubled) for r in results)
    reordered = sum(len(r.reordered) for r in results)
    runs_wrong = sum(len(r.runs_wrong) for r in results)
    in_flight = sum(r.in_flight_at_kill for r in results)
    latency = summarize([s for r in results for s in r.latencies])
    print()
    print("| trials | messages | runs in flight at the kill | resumed at next node | replies lost | replies doubled "
          "| events without exactly one succeeded run | reordered | steps not recorded exactly once "
          "| late replies at the gateway | latency p50 / p95 / max | wall |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {len(results)} | {messages} | {in_flight} | {sum(r.resumed for r in results)} | {lost} | {doubled} "
          f"| {runs_wrong} | {reordered} | {sum(len(r.repeated_steps) for r in results)} | {gateway_log.count(GONE)} "
          f"| {latency['p50']:.0f} / {latency['p95']:.0f} / {latency['max']:.0f} ms "
          f"| {time.monotonic() - started:.0f} s |")
    for r in results:
        for line in r.repeated_steps + r.lost + r.doubled + r.runs_wrong + r.reordered:
            print(f"  trial {r.trial + 1}: {line}")
    return 1 if lost or doubled or reordered or runs_wrong else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--conversations", type=int, default=4)
    parser.add_argument("--per-conversation", type=int, default=3)
    parser.add_argument("--delay", type=float, default=0.6, help="seconds the slow API takes (the node in flight)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.trials, args.conversations, args.per_conversation, args.delay, args.seed)))
