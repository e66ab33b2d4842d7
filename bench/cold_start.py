"""How long `switchboard send "help"` takes from a cold start, no model configured.

    python bench/cold_start.py [--runs 5]

Each run is a new process; the embedded PostgreSQL is started by it and stopped when it exits, so
every run pays the database start too. The first run also creates the data folder (initdb).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import temp_dir


def main(runs: int) -> None:
    data = temp_dir("sb-bench-cold-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWITCHBOARD_", "DATABASE_URL", "REDIS_URL"))}
    env["SWITCHBOARD_DATA"] = str(data / "data")
    times = []
    for i in range(runs + 1):
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "bot.cli", "send", "help"],
            env=env,
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        elapsed = time.perf_counter() - started
        if result.returncode != 0 or "Here is what I can do" not in result.stdout:
            raise SystemExit(f"switchboard send failed: {result.stderr[-2000:]}")
        if i == 0:
            print(f"first run (creates the data folder and the database): {elapsed:.2f} s")
        else:
            times.append(elapsed)
    print(
        f"`switchboard send help`, cold (embedded PostgreSQL started and stopped each time), {runs} runs: "
        f"median {statistics.median(times):.2f} s, min {min(times):.2f} s, max {max(times):.2f} s"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    main(parser.parse_args().runs)
