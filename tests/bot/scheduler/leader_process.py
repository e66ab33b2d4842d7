"""A second Switchboard process for the scheduler tests: `python -m tests.bot.scheduler.leader_process URL DATA FLOWS`.

It runs a real App on the given database with a "web" test adapter, prints `leading` once its
scheduler holds the lock and `reply <text>` for every unprompted reply it delivers, and stops on
SIGTERM (the tests also SIGKILL it, to play a crashed leader).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from bot.app import App
from bot.events import Reply
from tests.apps import make_config
from tests.bot.admin.chat import ChatTester


class PrintingChat(ChatTester):
    async def send(self, reply: Reply) -> str:
        if not reply.in_reply_to and reply.text:
            print(f"reply {reply.text}", flush=True)
        return await super().send(reply)


async def main(url: str, data: str, flows: str) -> None:
    config = make_config(url, Path(data), flow_dirs=[Path(flows)], flows={"default": "quiet"},
                         scheduler={"leader_retry": 0.2, "resync": 1})
    app = App(config, with_server=False, adapters=[PrintingChat("web")])
    await app.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    assert app.services is not None
    if await app.services.scheduler.wait_leading(30):
        print("leading", flush=True)
    await stop.wait()
    await app.stop()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
