"""errbot echo over its test backend: `!echo <text>` through the real command dispatch, one at a time.

Runs inside bench/.peers/. The test backend is errbot's own in-process backend (queues in place of a
chat service); the bot runs in its thread, as `errbot.backends.test.TestBot` does. Prints one JSON line.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from errbot.backends.test import TestBot


def main(messages: int) -> None:
    bot = TestBot(loglevel=logging.ERROR)
    bot.start()
    try:
        for i in range(300):  # warm-up
            bot.push_message(f"!echo warm {i}")
            bot.pop_message(timeout=10)
        cpu0, t0 = time.process_time(), time.perf_counter()
        for i in range(messages):
            bot.push_message(f"!echo m {i}")
            answer = bot.pop_message(timeout=10)
            if answer != f"m {i}":
                raise SystemExit(f"errbot answered {answer!r} to message {i}")
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        bot.stop()
    print(json.dumps({"messages": messages, "seconds": seconds, "cpu": cpu,
                      "note": "test backend, built-in !echo, one message at a time, memory storage"}))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
