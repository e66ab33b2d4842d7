"""The agent node: the model calls tools (in parallel), reads their results and answers; every
call is recorded; failing tools become explained results; dangerous tools wait for approval."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.app import App
from bot.store.runs import RunStatus
from bot.tools.records import ToolCallLog
from bot.tools.waits import HumanWaits, WaitStatus
from tests.fakes.openai import FakeOpenAI, Text, ToolCalls
from tests.flows.nodes import agent_tools
from tests.flows.nodes.chat import build_app, latest_run, press, run_settles, say, user_of

FLOW = """
name: helper
description: An agent with the test tools.
triggers:
  - default: true
nodes:
  - id: agent
    kind: agent
    system: You are a careful test agent.
    tools: [add, explode, hang, garbage, delete_everything, shutdown, calculator, current_time]
    tool_timeout: 2
    max_steps: 3
"""

APPROVAL_TIMEOUT = 2.0



@pytest.fixture(scope="module")
async def app(database_url: str, tmp_path_factory: pytest.TempPathFactory, fake_llm: FakeOpenAI) -> AsyncIterator[App]:
    flows = tmp_path_factory.mktemp("flows")
    (flows / "helper.yaml").write_text(FLOW)
    application = build_app(database_url, tmp_path_factory.mktemp("data"), fake_llm.base_url, flows,
                            default_flow="helper",
                            tools={"modules": ["tests.flows.nodes.agent_tools"],
                                   "approvals": {"timeout": APPROVAL_TIMEOUT, "sweep_interval": 0.1}})
    await application.start()
    yield application
    await application.stop()


@pytest.fixture(autouse=True)
def fresh(fake_llm: FakeOpenAI) -> None:
    fake_llm.reset()
    agent_tools.DELETED.clear()


def tool_messages(request: dict) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "tool"]


async def test_parallel_tool_calls_feed_their_results_back_and_the_answer_is_sent(
    app: App, fake_llm: FakeOpenAI
) -> None:
    fake_llm.script(ToolCalls([("add", {"a": 2, "b": 3}), ("calculator", {"expression": "6 * 7"})]),
                    Text("2 + 3 = 5 and 6 × 7 = 42."))
    replies = await say(app, "add 2 and 3, and multiply 6 by 7")
    assert [r.text for r in replies] == ["2 + 3 = 5 and 6 × 7 = 42."]
    first, second = fake_llm.requests
    offered = {t["function"]["name"] for t in first["tools"]}
    assert offered == {"add", "explode", "hang", "garbage", "delete_everything", "shutdown", "calculator",
                       "current_time"}
    assert tool_messages(second) == ["5", "42"]
    run = await latest_run(app)
    assert run.status is RunStatus.SUCCEEDED
    assert run.step_records[0].outputs["tool_calls"] == [{"tool": "add", "status": "ok"},
                                                         {"tool": "calculator", "status": "ok"}]
    recorded = await ToolCallLog(app.store.pool).for_run(run.id)
    assert [(r.tool, r.arguments, r.result, r.status) for r in recorded] == [
        ("add", {"a": 2, "b": 3}, "5", "ok"), ("calculator", {"expression": "6 * 7"}, "42", "ok")]
    assert all(r.duration_ms >= 0 and r.node_id == "agent" for r in recorded)


async def test_a_tool_that_raises_hangs_or_returns_garbage_is_an_explained_result_not_a_lost_run(
    app: App, fake_llm: FakeOpenAI
) -> None:
    fake_llm.script(
        ToolCalls([("explode", {"reason": "disk on fire"}), ("hang", {}), ("garbage", {}), ("nope", {}),
                   ("add", '{"a": 1, "b":'), ("add", {"a": "one", "b": 2})]),
        Text("Several tools failed; here is what I know."),
    )
    replies = await say(app, "try everything")
    assert [r.text for r in replies] == ["Several tools failed; here is what I know."]
    run = await latest_run(app)
    assert run.status is RunStatus.SUCCEEDED
    recorded = await ToolCallLog(app.store.pool).for_run(run.id)
    assert [r.status for r in recorded] == ["error", "timeout", "garbage", "unknown", "invalid", "invalid"]
    told = tool_messages(fake_llm.requests[1])
    assert "disk on fire" in told[0] and "0.3 s" in told[1] and "not JSON" in told[2]
    assert "no tool named 'nope'" in told[3] and "not a JSON object" in told[4]
    assert "a: Input should be a valid integer" in told[5]
    assert all(text.startswith("Error") for text in told)
    assert all(r.error for r in recorded)


async def test_the_step_limit_forces_a_final_answer_without_tools(app: App, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(*(ToolCalls([("add", {"a": i, "b": 1})]) for i in range(3)), Text("Stopping here: 3."))
    replies = await say(app, "keep adding forever")
    assert [r.text for r in replies] == ["Stopping here: 3."]
    assert len(fake_llm.requests) == 4
    assert fake_llm.requests[-1]["tool_choice"] == "none"
    run = await latest_run(app)
    assert run.step_records[0].outputs["steps"] == 3


async def test_a_tool_needing_approval_waits_for_the_approve_button(app: App, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(ToolCalls([("delete_everything", {"target": "staging"}), ("add", {"a": 1, "b": 1})]),
                    Text("Done: staging is deleted."))
    (question,) = await say(app, "delete staging")
    assert "Approval needed" in question.text and "delete_everything" in question.text and "staging" in question.text
    assert [b.label for b in question.buttons] == ["Approve", "Deny"]
    run = await latest_run(app)
    assert run.status is RunStatus.WAITING and agent_tools.DELETED == []
    assert len(fake_llm.requests) == 1  # the model waits too

    replies = await press(app, "approve")
    assert [r.text for r in replies] == ["Done: staging is deleted."]
    assert agent_tools.DELETED == ["staging"]
    assert tool_messages(fake_llm.requests[-1]) == ["2", "deleted staging for ada"]
    run = await app.store.runs.get(run.id)
    assert run is not None and run.status is RunStatus.SUCCEEDED
    recorded = await ToolCallLog(app.store.pool).for_run(run.id)
    assert [(r.tool, r.status) for r in recorded] == [("add", "ok"), ("delete_everything", "ok")]
    (wait,) = [w for w in await _waits(app) if w.run_id == run.id]
    assert wait.status is WaitStatus.APPROVED and wait.decided_by == "console:ada"


async def test_denying_by_typing_the_number_tells_the_model_and_runs_nothing(app: App, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(ToolCalls([("delete_everything", {"target": "prod"})]), Text("OK, I did not delete prod."))
    await say(app, "delete prod")
    replies = await say(app, "2")  # the numbered-list answer of a channel without buttons: 2 = Deny
    assert [r.text for r in replies] == ["OK, I did not delete prod."]
    assert agent_tools.DELETED == []
    (told,) = tool_messages(fake_llm.requests[-1])
    assert told.startswith("denied")
    run = await latest_run(app)
    recorded = await ToolCallLog(app.store.pool).for_run(run.id)
    assert [(r.tool, r.status) for r in recorded] == [("delete_everything", "denied")]


async def test_an_answer_that_is_neither_approve_nor_deny_asks_again(app: App, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(ToolCalls([("delete_everything", {"target": "cache"})]), Text("Cache deleted."))
    await say(app, "clear the cache")
    (again,) = await say(app, "hmm, what would that do?")
    assert "Approve or Deny" in again.text and [b.value for b in again.buttons] == ["approve", "deny"]
    assert (await latest_run(app)).status is RunStatus.WAITING
    assert [r.text for r in await say(app, "yes")] == ["Cache deleted."]
    assert agent_tools.DELETED == ["cache"]


async def test_in_a_shared_room_only_the_requester_can_approve(app: App, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(ToolCalls([("delete_everything", {"target": "backups"})]), Text("Not deleted."))
    await say(app, "delete the backups")
    user = user_of(app)
    before = len(user.replies)
    assert await user.wait_turn(await user.say_as("mallory", "approve"), 30)
    (reminder,) = user.replies[before:]
    assert reminder.text.startswith("ada, please answer Approve or Deny.")
    assert agent_tools.DELETED == [] and (await latest_run(app)).status is RunStatus.WAITING
    assert [r.text for r in await say(app, "no")] == ["Not deleted."]


async def test_an_unanswered_approval_times_out_and_the_model_is_told(app: App, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(ToolCalls([("delete_everything", {"target": "logs"})]),
                    Text("Nobody approved deleting the logs, so I left them."))
    await say(app, "delete the logs")
    run = await latest_run(app)
    assert run.status is RunStatus.WAITING
    finished = await run_settles(app, run.id, seconds=APPROVAL_TIMEOUT + 10)
    assert finished.status is RunStatus.SUCCEEDED
    assert agent_tools.DELETED == []
    (told,) = tool_messages(fake_llm.requests[-1])
    assert told.startswith("timed out")
    recorded = await ToolCallLog(app.store.pool).for_run(run.id)
    assert [(r.tool, r.status) for r in recorded] == [("delete_everything", "approval_timed_out")]
    (wait,) = [w for w in await _waits(app) if w.run_id == run.id]
    assert wait.status is WaitStatus.TIMED_OUT


async def _waits(app: App) -> list:
    assert app.store is not None
    async with app.store.pool.connection() as conn:
        ids = [r[0] for r in await (await conn.execute("SELECT id FROM human_waits ORDER BY created_at")).fetchall()]
    waits = HumanWaits(app.store.pool)
    return [await waits.get(str(i)) for i in ids]

