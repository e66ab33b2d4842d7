"""Stopping the bot never loses accepted work: a run cut off by a stop finishes after the next start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from adapters.console import ConsoleAdapter
from bot.app import App
from bot.store.runs import RunStatus
from tests.apps import NullOutput, make_config
from tests.conftest import free_port

FLOW = """
name: slow_then_reply
triggers: [{default: true}]
nodes:
  - id: first
    kind: template
    template: "started {{ event.text }}"
  - id: slow_call
    kind: http
    url: "{{ vars_base }}/slow"
  - id: done
    kind: reply
    text: "finished after {{ slow_call.json.waited }} s"
"""


@pytest.fixture(scope="module")
async def slow_api() -> AsyncIterator[str]:
    async def slow(request):  # type: ignore[no-untyped-def]
        await asyncio.sleep(1.5)
        return JSONResponse({"waited": 1.5})

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/slow", slow)]), host="127.0.0.1", port=port, log_config=None, lifespan="off"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no start-up event
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


async def test_a_run_interrupted_by_a_stop_resumes_at_the_next_start(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, slow_api: str
) -> None:
    flows = tmp_path_factory.mktemp("flows")
    (flows / "slow.yaml").write_text(FLOW.replace("{{ vars_base }}", slow_api))
    config = make_config(database_url, tmp_path_factory.mktemp("data"), flow_dirs=[flows], bus={"drain_timeout": 0.2})

    first = ConsoleAdapter(user="ops", out=NullOutput(), stream=False)
    app = App(config, with_server=False, adapters=[first])
    await app.start()
    event_id = await first.say("job 1")
    await asyncio.sleep(0.5)  # `first` is committed; `slow_call` is waiting on the API
    await app.stop()  # the drain timeout cuts the run off mid-node

    async with App(config, with_server=False, adapters=[first]) as restarted:
        run = await restarted.store.runs.for_event(event_id)
        assert run is not None
        for _ in range(100):
            run = await restarted.store.runs.get(run.id, with_steps=True)
            if run is not None and run.status is RunStatus.SUCCEEDED:
                break
            await asyncio.sleep(0.05)
        assert run is not None and run.status is RunStatus.SUCCEEDED
        # `first` ran once, before the stop; the run went on from `slow_call`.
        assert [s.node_id for s in run.step_records] == ["first", "slow_call", "done"]
        assert await restarted.store.journal.pending() == []
    assert first.replies[-1].text == "finished after 1.5 s"


async def test_events_queued_behind_a_busy_conversation_survive_a_stop(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, slow_api: str
) -> None:
    flows = tmp_path_factory.mktemp("flows")
    (flows / "slow.yaml").write_text(FLOW.replace("{{ vars_base }}", slow_api))
    config = make_config(database_url, tmp_path_factory.mktemp("data"), flow_dirs=[flows], bus={"drain_timeout": 0.2})
    console = ConsoleAdapter(user="queue", out=NullOutput(), stream=False)
    app = App(config, with_server=False, adapters=[console])
    await app.start()
    ids = [await console.say(f"job {i}") for i in range(3)]  # one conversation: they run one after another
    await asyncio.sleep(0.3)
    await app.stop()

    async with App(config, with_server=False, adapters=[console]) as restarted:
        for _ in range(200):
            runs = [await restarted.store.runs.for_event(i) for i in ids]
            if all(r is not None and r.status is RunStatus.SUCCEEDED for r in runs):
                break
            await asyncio.sleep(0.05)
        assert all(r is not None and r.status is RunStatus.SUCCEEDED for r in runs)
