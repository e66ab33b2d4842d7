"""A worker process for the Redis bus tests: `python -m tests.bot.bus.worker_process URL PREFIX [--hang]`.

It handles events like a flow would: logs `start`, waits `meta.pause` seconds (forever with `--hang`,
so the test can SIGKILL it mid-run), sends one reply, logs `end`. The log is a Redis list
`<prefix>log` of JSON steps, so the test sees every process's steps in one real order.
SIGTERM stops it gracefully.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

import redis.asyncio as aioredis

from bot.bus.redis import RedisBus
from bot.events import Event, Reply
from tests.bot.bus.conftest import FAST


async def run(url: str, prefix: str, hang: bool, concurrency: int) -> None:
    bus = RedisBus(url, **{**FAST, "prefix": prefix, "max_concurrency": concurrency})  # type: ignore[arg-type]
    log = aioredis.from_url(url)

    async def step(event: Event, phase: str) -> None:
        await log.rpush(
            f"{prefix}log",
            json.dumps(
                {"worker": bus.worker_id, "conv": event.conversation.room, "seq": event.meta["seq"], "phase": phase}
            ),
        )

    async def handle(event: Event) -> None:
        await step(event, "start")
        await asyncio.sleep(3600 if hang else float(event.meta.get("pause", 0)))
        await bus.send(Reply(event.conversation, text=f"answer {event.meta['seq']}", in_reply_to=event.id))
        await step(event, "end")

    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await bus.start()
    bus.consume(handle)
    await stopping.wait()
    await bus.stop(drain_timeout=5)
    await log.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("prefix")
    parser.add_argument("--hang", action="store_true", help="never finish a handler (to be killed mid-run)")
    parser.add_argument("--concurrency", type=int, default=256, help="handlers at once in this process")
    args = parser.parse_args()
    asyncio.run(run(args.url, args.prefix, args.hang, args.concurrency))
