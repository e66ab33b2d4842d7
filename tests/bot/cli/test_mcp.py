"""`switchboard mcp serve`: an MCP client (our own MCP tool source, on the official SDK) lists the
flows as tools and calls one, over stdio and over streamable HTTP."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from bot.tools import ToolContext, ToolRegistry
from bot.tools.mcp_client import connect_servers
from bot.tools.settings import MCPServerSettings
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[3]

GREET = """
name: greet
description: Greets someone by name.
example: Ada
triggers:
  - command: greet
nodes:
  - id: hello
    kind: reply
    text: "Hello, {{ event.text }}!"
  - id: bye
    kind: reply
    text: "Goodbye."
"""


@pytest.fixture(scope="module")
def config_file(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mcp-serve")
    (root / "flows").mkdir()
    (root / "flows" / "greet.yaml").write_text(GREET)
    config = {"data_dir": str(root / "data"), "database": {"url": database_url, "pool_min": 1, "pool_max": 4},
              "flows": {"paths": [str(root / "flows")], "default": "greet"},
              "logging": {"level": "WARNING", "format": "text"}, "tools": {"builtins": [], "entry_points": False}}
    path = root / "switchboard.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def _call_greet(settings: MCPServerSettings) -> None:
    registry = ToolRegistry()
    (connection,) = await connect_servers({"bot": settings}, registry, wait=90)
    try:
        assert connection.connects == 1, connection.last_error
        greet = registry.get("bot__greet")
        assert greet is not None and greet.description == "Greets someone by name. Example: Ada"
        assert greet.parameters["required"] == ["text"]
        result = await registry.invoke("bot__greet", {"text": "Grace"}, ToolContext(), timeout=60)
        assert result.ok and result.content == "Hello, Grace!\n\nGoodbye."
    finally:
        await registry.aclose()


@pytest.mark.slow
async def test_flows_are_served_as_mcp_tools_over_stdio(config_file: Path) -> None:
    await _call_greet(MCPServerSettings(
        command=sys.executable, args=["-m", "bot.cli", "--config", str(config_file), "mcp", "serve"],
        cwd=str(REPO), timeout=60))


@pytest.fixture
async def http_serve(config_file: Path) -> AsyncIterator[str]:
    port = free_port()
    process = subprocess.Popen(  # noqa: ASYNC220 -- started once, polled below without blocking
        [sys.executable, "-m", "bot.cli", "--config", str(config_file), "mcp", "serve", "--transport", "http",
         "--port", str(port)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(1200):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(20)


@pytest.mark.slow
async def test_flows_are_served_as_mcp_tools_over_streamable_http(http_serve: str) -> None:
    await _call_greet(MCPServerSettings(url=http_serve, timeout=60))
