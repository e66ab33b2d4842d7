"""MCP servers as tools: a real MCP server (the SDK's FastMCP, tests/fakes/mcp_server.py) over stdio
and streamable HTTP; its tools join the registry with the server's prefix; a restarted server is
reconnected on its own."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.tools import ToolContext, ToolRegistry, ToolStatus
from bot.tools.mcp_client import MCPConnection, connect_servers
from bot.tools.settings import MCPServerSettings
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[3]
SERVER = [sys.executable, "-m", "tests.fakes.mcp_server"]


class HttpServer:
    """The fake MCP server in its own process, so a test can kill and restart it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    async def start(self) -> None:
        self.process = subprocess.Popen([*SERVER, "http", "--port", str(self.port)], cwd=REPO,  # noqa: ASYNC220
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            await asyncio.sleep(0.05)
        raise RuntimeError("the fake MCP server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture(scope="module")
async def http_server() -> AsyncIterator[HttpServer]:
    server = HttpServer()
    await server.start()
    yield server
    server.stop()


CONNECTIONS: dict[str, MCPConnection] = {}


@pytest.fixture(scope="module")
async def registry(http_server: HttpServer) -> AsyncIterator[ToolRegistry]:
    reg = ToolRegistry()
    connections = await connect_servers({
        "local": MCPServerSettings(command=sys.executable, args=["-m", "tests.fakes.mcp_server", "stdio"],
                                   # Generous: restarting the server (a new Python process importing
                                   # the MCP SDK) can take several seconds on a loaded 2-core machine.
                                   cwd=str(REPO), timeout=30),
        "remote": MCPServerSettings(url=http_server.url, timeout=10, approval=True),
    }, reg, wait=60)
    CONNECTIONS.update((c.name, c) for c in connections)
    yield reg
    await reg.aclose()


@pytest.fixture
def ctx() -> Iterator[ToolContext]:
    yield ToolContext()


@pytest.mark.slow
async def test_the_tools_of_both_servers_join_the_registry_with_a_prefix(registry: ToolRegistry) -> None:
    names = registry.names()
    for prefix in ("local", "remote"):
        assert {f"{prefix}__{t}" for t in ("add", "echo", "whoami", "fail", "slow")} <= set(names)
    add = registry.get("remote__add")
    assert add is not None and add.source == "mcp:remote" and add.approval is True
    assert add.parameters["required"] == ["a", "b"]
    assert registry.get("local__add").approval is False  # type: ignore[union-attr]


@pytest.mark.slow
@pytest.mark.parametrize("server", ["local", "remote"])
async def test_calls_return_results_and_errors_are_tool_results(
    registry: ToolRegistry, ctx: ToolContext, server: str
) -> None:
    assert (await registry.invoke(f"{server}__add", {"a": 2, "b": 40}, ctx)).content == "42"
    assert (await registry.invoke(f"{server}__echo", {"text": "héllo"}, ctx)).content == "héllo"
    failed = await registry.invoke(f"{server}__fail", {"reason": "database locked"}, ctx)
    assert failed.status is ToolStatus.ERROR and "database locked" in failed.content
    invalid = await registry.invoke(f"{server}__add", {"a": "two", "b": 1}, ctx)
    assert invalid.status is ToolStatus.INVALID and "'two' is not of type 'integer'" in invalid.content
    slow = await registry.invoke(f"{server}__slow", {"seconds": 5}, ctx, timeout=0.3)
    assert slow.status is ToolStatus.TIMEOUT
    assert (await registry.invoke(f"{server}__add", {"a": 1, "b": 1}, ctx)).content == "2"  # still usable


@pytest.mark.slow
async def test_a_restarted_http_server_is_reconnected(registry: ToolRegistry, http_server: HttpServer,
                                                      ctx: ToolContext) -> None:
    before = (await registry.invoke("remote__whoami", {}, ctx)).content
    connects = CONNECTIONS["remote"].connects
    http_server.stop()
    await http_server.start()
    after = await registry.invoke("remote__whoami", {}, ctx)
    assert after.ok and after.content != before
    assert CONNECTIONS["remote"].connects == connects + 1


@pytest.mark.slow
async def test_a_stdio_server_that_dies_is_started_again(registry: ToolRegistry, ctx: ToolContext) -> None:
    pid = int((await registry.invoke("local__whoami", {}, ctx)).content)
    os.kill(pid, signal.SIGKILL)
    again = await registry.invoke("local__whoami", {}, ctx)
    assert again.ok and int(again.content) != pid


@pytest.mark.slow
async def test_a_server_that_is_down_at_start_joins_when_it_comes_up() -> None:
    late = HttpServer()
    reg = ToolRegistry()
    (conn,) = await connect_servers({"late": MCPServerSettings(url=late.url, timeout=5)}, reg, wait=0.5)
    try:
        assert conn.connects == 0 and "late__add" not in reg
        await late.start()
        for _ in range(200):
            if "late__add" in reg:
                break
            await asyncio.sleep(0.05)
        assert (await reg.invoke("late__add", {"a": 1, "b": 2}, ToolContext())).content == "3"
    finally:
        await reg.aclose()
        late.stop()


def test_an_mcp_server_needs_exactly_one_transport() -> None:
    with pytest.raises(ValueError, match="exactly one of `command`"):
        MCPServerSettings(command="x", url="http://y")
