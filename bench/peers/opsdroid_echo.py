"""opsdroid in-process echo: a regex skill answers every message through an in-memory connector.

Runs inside bench/.peers/ (not our venv). Prints one JSON line: messages, seconds, CPU seconds of the
measured phase. No persistence: opsdroid keeps no run state, so this is its dispatch cost alone.
"""

from __future__ import annotations

import asyncio
import gettext
import json
import logging
import sys
import time

from opsdroid.connector import Connector, register_event
from opsdroid.core import OpsDroid
from opsdroid.events import Message
from opsdroid.matchers import match_regex


class Sink(Connector):
    """A connector whose `send` only counts: the platform is out of the measurement."""

    def __init__(self, config: dict, opsdroid: OpsDroid) -> None:
        super().__init__(config, opsdroid=opsdroid)
        self.name = "sink"
        self.sent = 0

    async def connect(self) -> None:
        pass

    async def listen(self) -> None:
        pass

    @register_event(Message)
    async def send_message(self, message: Message) -> None:
        self.sent += 1


async def main(messages: int, batch: int) -> None:
    logging.disable(logging.CRITICAL)
    gettext.install("opsdroid")  # opsdroid's CLI installs `_` (i18n) before anything logs; we skip the CLI
    # The context manager makes it the instance `get_opsdroid()` returns (events respond through it).
    with OpsDroid(config={}) as opsdroid:
        sink = Sink({"name": "sink"}, opsdroid)
        opsdroid.connectors = [sink]

        @match_regex(r"^echo (?P<text>.*)$")
        async def echo(opsdroid: OpsDroid, config: dict, message: Message) -> None:
            await message.respond(message.entities["text"]["value"])

        opsdroid.register_skill(echo, config={"name": "echo"})

        async def run(count: int, tag: str) -> None:
            for first in range(0, count, batch):
                await asyncio.gather(*(
                    opsdroid.parse(Message(text=f"echo {tag} {i}", user="ada", target=f"room{i % 50}",
                                           connector=sink))
                    for i in range(first, min(first + batch, count))
                ))

        await run(500, "warm")
        sink.sent = 0
        cpu0, t0 = time.process_time(), time.perf_counter()
        await run(messages, "m")
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        if sink.sent != messages:
            raise SystemExit(f"opsdroid answered {sink.sent} of {messages} messages")
    print(json.dumps({"messages": messages, "seconds": seconds, "cpu": cpu,
                      "note": "in-process, regex skill, no persistence"}))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000, 32))
