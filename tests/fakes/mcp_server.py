"""A tiny real MCP server (the official SDK's FastMCP) for the MCP client tests.

    python -m tests.fakes.mcp_server stdio
    python -m tests.fakes.mcp_server http --port 8123     # streamable HTTP at /mcp

Tools: `add`, `echo`, `whoami` (the server's pid, to tell a restarted server apart), `fail`
(an error result) and `slow` (sleeps).
"""

from __future__ import annotations

import argparse
import asyncio
import os

from mcp.server.fastmcp import FastMCP

server = FastMCP("fake", host="127.0.0.1", log_level="WARNING")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool()
def whoami() -> str:
    """The server process id."""
    return str(os.getpid())


@server.tool()
def fail(reason: str = "broken on purpose") -> str:
    """Always fails."""
    raise RuntimeError(reason)


@server.tool()
async def slow(seconds: float) -> str:
    """Sleep, then answer."""
    await asyncio.sleep(seconds)
    return "done"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("transport", choices=["stdio", "http"])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.transport == "stdio":
        server.run("stdio")
        return
    import uvicorn

    uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
