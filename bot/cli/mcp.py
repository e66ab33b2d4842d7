"""`switchboard mcp serve`: the bot's flows as MCP tools, so any MCP client can call a flow.

Each active flow becomes a tool named after it, taking `text` (what a person would have written);
the call runs the flow through the real app (bus, engine, store) on an `mcp` channel and returns
everything the flow replied. Transports: stdio (default; logs go to stderr, stdout is the
protocol) and streamable HTTP (`--transport http --port 8765`, endpoint `/mcp`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import uuid
from typing import Any

from adapters.base import Adapter, AdapterContext, Capability
from bot.events import ConversationRef, Event, EventKind, Reply, ReplyKind, Sender

CHANNEL = "mcp"
DEFAULT_TURN_TIMEOUT = 300.0


def register(sub: Any) -> None:
    mcp = sub.add_parser("mcp", help="Model Context Protocol: serve the flows as MCP tools")
    mcp_sub = mcp.add_subparsers(dest="mcp_command", metavar="SUBCOMMAND")
    mcp_sub.required = True
    serve = mcp_sub.add_parser("serve", help="serve every active flow as an MCP tool (stdio or streamable HTTP)")
    serve.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--turn-timeout", type=float, default=DEFAULT_TURN_TIMEOUT,
                       help="seconds a flow may take before the call returns what it has")
    serve.set_defaults(handler=_serve)


class FlowBridge(Adapter):
    """The `mcp` channel: publishes a call as an event and collects the replies until the turn ends."""

    name = CHANNEL
    capabilities = frozenset({Capability.MARKDOWN})
    wants_turn_end = True

    def __init__(self) -> None:
        self._context: AdapterContext | None = None
        self._turns: dict[str, tuple[list[str], asyncio.Event]] = {}

    async def start(self, context: AdapterContext) -> None:
        self._context = context

    async def stop(self) -> None:
        for _, done in self._turns.values():
            done.set()

    async def send(self, reply: Reply) -> str:
        turn = self._turns.get(reply.in_reply_to)
        if turn is not None:
            texts, done = turn
            if reply.kind is ReplyKind.TURN_END:
                done.set()
            elif not reply.partial and reply.text:
                if reply.edit_of and texts:
                    texts[-1] = reply.text  # a streamed answer: its final edit replaces the first piece
                else:
                    texts.append(reply.text)
        return reply.id

    async def run_flow(self, flow: str, text: str, *, timeout: float) -> str:
        assert self._context is not None
        event = Event(id=f"{CHANNEL}:{uuid.uuid4().hex}", kind=EventKind.MESSAGE, channel=CHANNEL,
                      conversation=ConversationRef(CHANNEL, room=uuid.uuid4().hex),
                      sender=Sender(CHANNEL, "client", "MCP client"), text=text, mentioned=True,
                      meta={"flow": flow})
        texts: list[str] = []
        done = asyncio.Event()
        self._turns[event.id] = (texts, done)
        try:
            await self._context.bus.publish(event)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout)
        finally:
            self._turns.pop(event.id, None)
        return "\n\n".join(texts) if texts else "(the flow sent no reply)"


def build_server(app: Any, bridge: FlowBridge, *, host: str = "127.0.0.1", port: int = 8765,
                 turn_timeout: float = DEFAULT_TURN_TIMEOUT) -> Any:
    """A FastMCP server with one tool per active flow."""
    from mcp.server.fastmcp import FastMCP

    server = FastMCP(app.config.bot.name, host=host, port=port, log_level="WARNING",
                     instructions="Each tool runs one Switchboard flow with `text` as the person's message.")
    for flow in app.runtime.registry.active():
        spec = flow.spec

        def make(flow_name: str) -> Any:
            async def call_flow(text: str) -> str:
                return await bridge.run_flow(flow_name, text, timeout=turn_timeout)

            return call_flow

        description = spec.description or f"Run the {spec.name} flow."
        if spec.example:
            description += f" Example: {spec.example}"
        server.add_tool(make(spec.name), name=re.sub(r"[^A-Za-z0-9_-]", "_", spec.name)[:64],
                        description=description)
    return server


def _serve(args: argparse.Namespace) -> int:
    from bot.cli.common import boot_config

    config = boot_config(args, quiet=True)
    return asyncio.run(_run(config, args))


async def _run(config: Any, args: argparse.Namespace) -> int:
    from bot.app import App

    bridge = FlowBridge()
    app = App(config, with_server=False, adapters=[bridge])
    await app.start()
    try:
        server = build_server(app, bridge, host=args.host, port=args.port, turn_timeout=args.turn_timeout)
        if args.transport == "stdio":
            await server.run_stdio_async()
        else:
            await server.run_streamable_http_async()
    finally:
        await app.stop()
    return 0
