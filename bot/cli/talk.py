"""`switchboard chat` and `switchboard send`: talk to the bot from a terminal or a script."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any


def register(sub: Any) -> None:
    chat = sub.add_parser("chat", help="open a console conversation with the bot")
    chat.add_argument("--user", default="local", help="who you are in the conversation (default: local)")
    chat.set_defaults(handler=_chat)

    send = sub.add_parser("send", help="send one message through the bus and flows; print the replies")
    send.add_argument("text", help="the message (a command if it starts with the command prefix)")
    send.add_argument("--user", default="local", help="who sends it (default: local)")
    send.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the replies")
    send.set_defaults(handler=_send)


def _send(args: argparse.Namespace) -> int:
    from bot.cli.common import boot_config

    config = boot_config(args, quiet=True)
    return asyncio.run(_send_async(config, args))


async def _send_async(config: Any, args: argparse.Namespace) -> int:
    from adapters.console import ConsoleAdapter
    from bot.app import App

    console = ConsoleAdapter(user=args.user, stream=False)
    async with App(config, with_server=False, adapters=[console]):
        event_id = await console.say(args.text)
        finished = await console.wait_turn(event_id, args.timeout)
    if not finished:
        print(f"switchboard: no complete answer within {args.timeout:g} s", file=sys.stderr)
        return 1
    return 0


def _chat(args: argparse.Namespace) -> int:
    from bot.cli.common import boot_config

    config = boot_config(args, quiet=True)
    return asyncio.run(_chat_async(config, args))


async def _chat_async(config: Any, args: argparse.Namespace) -> int:
    from adapters.console import ConsoleAdapter
    from bot.app import App

    console = ConsoleAdapter(user=args.user, stream=True)
    loop = asyncio.get_running_loop()
    async with App(config, with_server=False, adapters=[console]):
        print(
            f"Talking to {config.bot.name} as {args.user}. Type '{config.bot.command_prefix} help' for commands, "
            "Ctrl-D to leave."
        )
        while True:
            try:
                line = await loop.run_in_executor(None, _prompt)
            except (EOFError, KeyboardInterrupt):
                print()
                break
            if not line.strip():
                continue
            event_id = await console.say(line)
            await console.wait_turn(event_id, 300)
    return 0


def _prompt() -> str:
    return input("you> ")
