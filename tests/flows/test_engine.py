"""The engine's per-node error policy (retry, timeout, on_error) and per-run limits, with Dify's
semantics, and every step written as the run goes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from adapters.console import ConsoleAdapter
from bot.app import App
from bot.store.runs import RunStatus, StepStatus
from tests.apps import NullOutput, make_config

FLOWS = {
    "retry.yaml": """
name: flaky
triggers: [{keywords: [flaky]}]
nodes:
  - id: call
    kind: http
    url: "{{ vars.base }}/flaky"
    retry: {max_attempts: 3, interval: 0.01}
  - id: say
    kind: reply
    text: "got {{ call.json.attempt }}"
""",
    "default.yaml": """
name: fallback
triggers: [{keywords: [fallback]}]
nodes:
  - id: call
    kind: http
    url: "http://127.0.0.1:9/unreachable"
    timeout: 2
    on_error: {default: {json: {answer: "the default"}}}
  - id: say
    kind: reply
    text: "{{ call.json.answer }} ({{ 'after an error' if call.error else 'no error' }})"
""",
    "branch.yaml": """
name: branching
triggers: [{keywords: [branch]}]
nodes:
  - id: call
    kind: http
    url: "{{ vars.base }}/fail"
    on_error: {next: sorry}
  - id: ok
    kind: reply
    text: "fine"
    next: end
  - id: sorry
    kind: reply
    text: "fail branch: {{ call.error }}"
""",
    "slow.yaml": """
name: slow
limits: {max_seconds: 1}
triggers: [{keywords: [slow]}]
nodes:
  - id: call
    kind: http
    url: "{{ vars.base }}/slow"
""",
    "cond.yaml": """
name: conditions
triggers: [{regex: "^num (\\\\d+)$"}]
nodes:
  - id: parse
    kind: set
    values: {n: "{{ event.text.split()[1] | int }}"}
  - id: route
    kind: condition
    branches:
      - {if: "vars.n | int > 100", next: big}
      - {if: "vars.n | int > 10", next: medium}
    else: small
  - {id: big, kind: reply, text: big, next: end}
  - {id: medium, kind: reply, text: medium, next: end}
  - {id: small, kind: reply, text: small}
""",
}


@pytest.fixture(scope="module")
async def api() -> AsyncIterator[str]:
    """A tiny HTTP API for http nodes: /flaky fails twice then works, /fail always 500, /slow sleeps."""
    import asyncio

    import uvicorn

    from tests.conftest import free_port

    calls = {"flaky": 0}

    async def flaky(request):  # type: ignore[no-untyped-def]
        calls["flaky"] += 1
        if calls["flaky"] % 3:
            return JSONResponse({"error": "try again"}, status_code=503)
        return JSONResponse({"attempt": calls["flaky"]})

    async def fail(request):  # type: ignore[no-untyped-def]
        return JSONResponse({"error": "broken"}, status_code=500)

    async def slow(request):  # type: ignore[no-untyped-def]
        await asyncio.sleep(5)
        return JSONResponse({})

    app = Starlette(routes=[Route("/flaky", flaky), Route("/fail", fail), Route("/slow", slow)])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no start-up event
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.fixture(scope="module")
async def app(database_url: str, tmp_path_factory: pytest.TempPathFactory, api: str) -> AsyncIterator[App]:
    folder = tmp_path_factory.mktemp("flows")
    for name, text in FLOWS.items():
        (folder / name).write_text(text.replace("{{ vars.base }}", api))
    config = make_config(database_url, tmp_path_factory.mktemp("data"), flow_dirs=[folder])
    console = ConsoleAdapter(user="eng", out=NullOutput(), stream=False)
    async with App(config, with_server=False, adapters=[console]) as application:
        assert application.runtime is not None and not application.runtime.registry.problems
        yield application


async def say(app: App, text: str) -> list[str]:
    console = app.live_adapters[0]
    assert isinstance(console, ConsoleAdapter)
    before = len(console.replies)
    assert await console.wait_turn(await console.say(text), 20)
    return [r.text for r in console.replies[before:]]


async def last_run(app: App):  # type: ignore[no-untyped-def]
    run = (await app.store.runs.recent(1))[0]
    return await app.store.runs.get(run.id, with_steps=True)


async def test_a_failing_node_is_retried_until_it_succeeds(app: App) -> None:
    assert await say(app, "flaky") == ["got 3"]
    run = await last_run(app)
    assert run.status is RunStatus.SUCCEEDED
    assert run.step_records[0].attempts == 3


async def test_on_error_default_supplies_outputs_and_the_run_carries_on(app: App) -> None:
    assert await say(app, "fallback") == ["the default (after an error)"]
    run = await last_run(app)
    assert run.status is RunStatus.SUCCEEDED
    assert run.step_records[0].status is StepStatus.DEFAULTED and run.step_records[0].error


async def test_on_error_next_takes_the_fail_branch(app: App) -> None:
    (reply,) = await say(app, "branch")
    assert reply.startswith("fail branch: ") and "500" in reply
    run = await last_run(app)
    assert [s.node_id for s in run.step_records] == ["call", "sorry"]
    assert run.step_records[0].status is StepStatus.FAILED and run.status is RunStatus.SUCCEEDED


async def test_a_run_over_its_time_limit_fails_with_a_clear_reason(app: App) -> None:
    (reply,) = await say(app, "slow")
    assert reply.startswith("Sorry") and "Traceback" not in reply
    run = await last_run(app)
    assert run.status is RunStatus.FAILED and "timed out" in (run.error or "")


@pytest.mark.parametrize(("number", "answer"), [("500", "big"), ("50", "medium"), ("5", "small")])
async def test_condition_branches_are_if_elif_else(app: App, number: str, answer: str) -> None:
    assert await say(app, f"num {number}") == [answer]


async def test_steps_record_inputs_outputs_and_timings(app: App) -> None:
    await say(app, "num 7")
    run = await last_run(app)
    parse, route, small = run.step_records
    assert parse.outputs == {"n": "7"} and route.outputs == {"branch": "else"}
    assert small.outputs["text"] == "small" and all(s.duration_ms >= 0 for s in run.step_records)
    assert run.state["values"]["route"] == {"branch": "else"} and run.next_node is None


async def test_the_http_node_refuses_hosts_outside_its_allow_list(tmp_path: Path) -> None:
    from flows.loader import load_flow_text
    from flows.registry import compile_flow

    flow = compile_flow(
        load_flow_text(
            "name: x\nnodes:\n  - id: a\n    kind: http\n    url: http://example.com/\n"
            "    allow_hosts: [api.internal]\n"
        )
    )
    with pytest.raises(PermissionError, match="not in this node's allow_hosts"):
        await flow.nodes["a"].run(_ScopeOnly())
    assert httpx  # the shared client is httpx


class _ScopeOnly:
    def scope(self) -> dict[str, object]:
        return {}
