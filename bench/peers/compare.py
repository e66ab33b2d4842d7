"""Switchboard's echo throughput next to its peers', measured in the same session on the same machine.

    python bench/peers/compare.py [--messages 3000] [--langgraph-url postgresql://postgres@127.0.0.1:5432/postgres]

* Switchboard: bench/flow_throughput.py (one process, in-process bus, a 2-node flow with every step,
  the run and the journal persisted in PostgreSQL), run twice (`--messages` and a tenth of it) so the
  CPU per message is the marginal cost, without start-up and warm-up.
* opsdroid (in-process, regex skill, no persistence), errbot (test backend, built-in `!echo`, one at a
  time), LangGraph (3-node graph, `AsyncPostgresSaver` checkpoint after every node, 16 at once): each in
  bench/.peers/, a venv this script creates and fills with pip (never our lock or .venv).

CPU is the benchmark process's own (user + system); the PostgreSQL server's CPU is not counted for
anyone. A peer that cannot be installed or run gets a row that says why; the others go on.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from bench.peers.peer_env import install

REPO = Path(__file__).resolve().parent.parent.parent
PEERS = Path(__file__).resolve().parent


@dataclass(slots=True)
class Row:
    name: str
    what: str
    messages: int = 0
    rate: float = 0.0
    cpu_ms: float = 0.0
    problem: str = ""


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def switchboard(messages: int) -> Row:
    what = "flow_throughput.py: in-process bus, 2-node flow, run + steps + journal in PostgreSQL"

    def once(count: int) -> tuple[float, float]:
        cpu0 = children_cpu()
        done = subprocess.run([sys.executable, str(REPO / "bench" / "flow_throughput.py"), "--messages", str(count)],
                              capture_output=True, text=True, cwd=REPO, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(" | ".join(done.stderr.strip().splitlines()[-3:]))
        found = re.search(r"([\d,]+) messages/s", done.stdout)
        if not found:
            raise RuntimeError(f"no 'messages/s' line in its output: {done.stdout[-300:]!r}")
        return float(found.group(1).replace(",", "")), children_cpu() - cpu0

    try:
        small = max(200, messages // 10)
        _, cpu_small = once(small)
        rate, cpu_full = once(messages)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return Row("Switchboard", what, problem=str(exc))
    return Row("Switchboard", what, messages, rate, (cpu_full - cpu_small) / (messages - small) * 1000)


def peer(name: str, what: str, script: str, *args: str) -> Row:
    installed = install(name)
    if not installed.ok:
        return Row(name, what, problem=installed.detail)
    python = PEERS.parent / ".peers" / "bin" / "python"
    try:
        done = subprocess.run([str(python), str(PEERS / script), *args], capture_output=True, text=True,
                              timeout=900, cwd=REPO)
    except subprocess.TimeoutExpired:
        return Row(name, what, problem="did not finish within 900 s")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        return Row(name, what, problem=f"exit {done.returncode}: {tail}")
    result = json.loads(lines[-1])
    return Row(name, f"{what} ({result['note']})", result["messages"], result["messages"] / result["seconds"],
               result["cpu"] / result["messages"] * 1000)


def langgraph_database(url: str) -> str:
    """A database of its own on the given server (created if missing); raises with the reason."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'sb_peers_langgraph'").fetchone():
            conn.execute("CREATE DATABASE sb_peers_langgraph")
    return url.rsplit("/", 1)[0] + "/sb_peers_langgraph"


def main(args: argparse.Namespace) -> None:
    load_before = os.getloadavg()
    started = time.monotonic()
    rows = [switchboard(args.messages)]
    rows.append(peer("opsdroid", "opsdroid 0.31", "opsdroid_echo.py", str(args.messages * 4)))
    rows.append(peer("errbot", "errbot 6.2", "errbot_echo.py", str(args.messages)))
    try:
        url = langgraph_database(args.langgraph_url)
    except Exception as exc:  # no server, refused, no rights: say so and go on
        rows.append(Row("langgraph", "LangGraph 1.x + langgraph-checkpoint-postgres",
                        problem=f"PostgreSQL at {args.langgraph_url} unusable: {exc}"))
    else:
        rows.append(peer("langgraph", "LangGraph 1.x + langgraph-checkpoint-postgres", "langgraph_echo.py", url,
                         str(max(500, args.messages // 3))))
    print(f"machine: {os.cpu_count()} cores; load average {load_before[0]:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after (shared with other jobs); {time.monotonic() - started:.0f} s in all\n")
    print("| framework | messages | msg/s | ms CPU per message | what is measured |")
    print("|---|---|---|---|---|")
    for row in rows:
        if row.problem:
            print(f"| {row.name} | — | — | — | NOT MEASURED: {row.problem} |")
        else:
            print(f"| {row.name} | {row.messages} | {row.rate:,.0f} | {row.cpu_ms:.2f} | {row.what} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--langgraph-url", default=os.environ.get("PEERS_PG_URL",
                                                                  "postgresql://postgres@127.0.0.1:5432/postgres"))
    main(parser.parse_args())
