"""Run the fake OpenAI-compatible server in its own process for benchmarks.

    python bench/fake_llm_server.py --delay 1.0

Prints its base URL on the first line, then serves until killed. Every answer waits `--delay`
seconds, like a model that takes that long, so a benchmark measures our overhead above it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.openai import FakeOpenAI, Text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=1.0)
    args = parser.parse_args()
    fake = FakeOpenAI()
    fake.respond_with(lambda request: Text("The model's answer, after a while.", delay=args.delay))
    fake.start()
    print(fake.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
