"""The tool node: a flow calls one tool (Python, MCP or composite, as configured) with templated
arguments; failures are outputs the flow can branch on; approval tools wait for the person."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import App
from bot.tools.records import ToolCallLog
from tests.fakes.openai import FakeOpenAI
from tests.flows.nodes import agent_tools
from tests.flows.nodes.chat import build_app, latest_run, press, say

CHAIN = """
name: chain
description: Python tool, MCP tool and composite tool in a row.
triggers:
  - default: true
nodes:
  - id: total
    kind: tool
    tool: add
    arguments: {a: "{{ event.text }}", b: 10}
  - id: remote
    kind: tool
    tool: local__echo
    arguments: {text: "total is {{ total.result }}"}
  - id: doubled
    kind: tool
    tool: double_add
    arguments: {n: "{{ total.data }}"}
  - id: broken
    kind: tool
    tool: explode
    arguments: {reason: "on purpose"}
  - id: told
    kind: reply
    text: "{{ remote.result }}; doubled {{ doubled.result }}; broken ok={{ broken.ok }} ({{ broken.status }})"
"""

WIPE = """
name: wipe
description: Deletes with approval.
triggers:
  - command: wipe
nodes:
  - id: wipe
    kind: tool
    tool: delete_everything
    arguments: {target: "{{ event.command.text }}"}
  - id: said
    kind: reply
    text: "{{ wipe.status }}: {{ wipe.result }}"
"""

REPO = Path(__file__).resolve().parents[3]

DOUBLE_ADD = {
    "name": "double_add", "description": "n + n, then + 1.", "parameters": {"n": {"type": "integer"}},
    "steps": [{"id": "first", "tool": "add", "arguments": {"a": "{{ args.n }}", "b": "{{ args.n }}"}},
              {"id": "second", "tool": "add", "arguments": {"a": "{{ first }}", "b": 1}}],
}


@pytest.fixture(scope="module")
async def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[App]:
    flows = tmp_path_factory.mktemp("flows")
    (flows / "chain.yaml").write_text(CHAIN)
    (flows / "wipe.yaml").write_text(WIPE)
    tools = {
        "modules": ["tests.flows.nodes.agent_tools"],
        "composite": [DOUBLE_ADD],
        "mcp": {"local": {"command": sys.executable, "args": ["-m", "tests.fakes.mcp_server", "stdio"],
                          "cwd": str(REPO), "timeout": 10}},
    }
    async with FakeOpenAI() as fake:
        application = build_app(database_url, tmp_path_factory.mktemp("data"), fake.base_url, flows,
                                default_flow="chain", tools=tools)
        await application.start()
        yield application
        await application.stop()


@pytest.mark.slow
async def test_tools_of_every_kind_chain_through_templates_and_a_failure_is_an_output(app: App) -> None:
    (reply,) = await say(app, "5")
    assert reply.text == "total is 15; doubled 31; broken ok=False (error)"
    run = await latest_run(app)
    recorded = await ToolCallLog(app.store.pool).for_run(run.id)
    assert [(r.node_id, r.tool, r.status) for r in recorded] == [
        ("total", "add", "ok"), ("remote", "local__echo", "ok"),
        ("doubled", "add", "ok"), ("doubled", "add", "ok"), ("doubled", "double_add", "ok"),
        ("broken", "explode", "error")]


@pytest.mark.slow
async def test_a_tool_needing_approval_waits_and_a_denial_is_the_result(app: App) -> None:
    agent_tools.DELETED.clear()
    (question,) = await say(app, "/sb wipe the cache")
    assert "delete_everything" in question.text and len(question.buttons) == 2
    (said,) = await press(app, "deny")
    assert said.text.startswith("denied: denied: the person did not approve delete_everything")
    assert agent_tools.DELETED == []


@pytest.mark.slow
async def test_tools_command_lists_what_the_assistant_can_use(app: App) -> None:
    (listing,) = await say(app, "/sb tools")
    assert "`local__echo`" in listing.text and "[mcp:local]" in listing.text
    assert "`delete_everything` (needs approval)" in listing.text and "`double_add`" in listing.text
