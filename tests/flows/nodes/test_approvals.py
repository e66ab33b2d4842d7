"""Approvals across a restart, and approvals decided by admins in their own room."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.app import App
from bot.store.runs import RunStatus
from bot.tools.records import ToolCallLog
from tests.fakes.openai import FakeOpenAI, Text, ToolCalls
from tests.flows.nodes import agent_tools
from tests.flows.nodes.chat import build_app, latest_run, press, say

FLOW = """
name: ops
description: An agent that may delete things, with approval.
triggers:
  - default: true
nodes:
  - id: agent
    kind: agent
    tools: [delete_everything]
"""



@pytest.fixture(scope="module")
def flow_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    flows = tmp_path_factory.mktemp("flows")
    (flows / "ops.yaml").write_text(FLOW)
    return flows


@pytest.fixture(autouse=True)
def fresh(fake_llm: FakeOpenAI) -> None:
    fake_llm.reset()
    agent_tools.DELETED.clear()


def make(database_url: str, data_dir: Path, fake_llm: FakeOpenAI, flows: Path, **approvals: object) -> App:
    return build_app(database_url, data_dir, fake_llm.base_url, flows, user="bob", default_flow="ops",
                     tools={"modules": ["tests.flows.nodes.agent_tools"], "approvals": approvals})


async def test_an_approval_survives_a_restart_between_the_question_and_the_answer(
    database_url: str, tmp_path: Path, fake_llm: FakeOpenAI, flow_dir: Path
) -> None:
    fake_llm.script(ToolCalls([("delete_everything", {"target": "old-builds"})]), Text("Old builds deleted."))
    first = make(database_url, tmp_path, fake_llm, flow_dir, timeout=600)
    await first.start()
    try:
        (question,) = await say(first, "clean up old builds")
        assert [b.value for b in question.buttons] == ["approve", "deny"]
        run_id = (await latest_run(first)).id
    finally:
        await first.stop()

    second = make(database_url, tmp_path, fake_llm, flow_dir, timeout=600)
    await second.start()
    try:
        assert (await latest_run(second)).status is RunStatus.WAITING
        replies = await press(second, "approve")
        assert [r.text for r in replies] == ["Old builds deleted."]
        assert agent_tools.DELETED == ["old-builds"]
        run = await second.store.runs.get(run_id)
        assert run is not None and run.status is RunStatus.SUCCEEDED
        # The model saw the original question and its own call again after the restart.
        assert fake_llm.requests[-1]["messages"][-2]["tool_calls"][0]["function"]["name"] == "delete_everything"
        recorded = await ToolCallLog(second.store.pool).for_run(run_id)
        assert [(r.tool, r.status) for r in recorded] == [("delete_everything", "ok")]
    finally:
        await second.stop()


async def test_with_admin_approvers_the_request_goes_to_the_admin_room_and_the_command_decides(
    database_url: str, tmp_path: Path, fake_llm: FakeOpenAI, flow_dir: Path
) -> None:
    fake_llm.script(ToolCalls([("delete_everything", {"target": "tmp"})]), Text("tmp is gone."))
    app = make(database_url, tmp_path, fake_llm, flow_dir, approvers="admins", timeout=600,
               admin_rooms=[{"channel": "console", "room": "admins"}])
    await app.start()
    try:
        replies = await say(app, "delete tmp")
        to_admins = [r for r in replies if r.conversation.room == "admins"]
        to_requester = [r for r in replies if r.conversation.room == "bob"]
        assert len(to_admins) == 1 and "/sb approve" in to_admins[0].text and "delete_everything" in to_admins[0].text
        assert "admin's approval" in to_requester[0].text
        short_id = to_admins[0].text.split("/sb approve ")[1].split("`")[0]

        (still,) = await say(app, "is it done?")  # the requester cannot approve their own request
        assert "still waiting for an admin" in still.text and agent_tools.DELETED == []

        replies = await say(app, f"/sb approve {short_id}")
        assert any(r.text.startswith("Approved") for r in replies)
        for _ in range(200):
            if (await latest_run(app)).status is RunStatus.SUCCEEDED:
                break
            await asyncio.sleep(0.05)
        assert agent_tools.DELETED == ["tmp"]
        assert (await say(app, f"/sb approve {short_id}"))[0].text.startswith("No pending approval")
    finally:
        await app.stop()
