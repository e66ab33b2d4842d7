"""`/sb flows reload` swaps in changed flow files while a run of the old version is mid-flight.

The flow's first node calls a local HTTP "gate" that answers only when the test opens it, which
holds a real run in flight for as long as the test needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from bot.app import App
from tests.apps import make_config
from tests.bot.admin.chat import ChatTester

SLOW_FLOW = """
name: slow
triggers:
  - keywords: ["slow"]
nodes:
  - id: wait
    kind: http
    url: "{url}"
  - id: say
    kind: reply
    text: "{version} done: {{{{ wait.text }}}}"
"""


class Gate:
    """An HTTP endpoint that holds each request until `open()`."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self._open = asyncio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.arrived.set()
        await self._open.wait()
        return web.Response(text="gate opened")

    def open(self) -> None:
        self._open.set()

    def close_again(self) -> None:
        self._open.clear()
        self.arrived.clear()

    async def __aenter__(self) -> Gate:
        app = web.Application()
        app.router.add_get("/gate", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/gate"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._open.set()
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture(scope="module")
async def gate() -> AsyncIterator[Gate]:
    async with Gate() as g:
        yield g


@pytest.fixture(scope="module")
async def setup(database_url: str, tmp_path_factory: pytest.TempPathFactory, gate: Gate) -> AsyncIterator[
        tuple[App, Path]]:
    flows = tmp_path_factory.mktemp("flows")
    (flows / "slow.yaml").write_text(SLOW_FLOW.format(url=gate.url, version="v1"))
    config = make_config(database_url, tmp_path_factory.mktemp("data"), flow_dirs=[flows], flows={"default": "slow"},
                         bot={"owners": ["web:olive"]})
    application = App(config, with_server=False, adapters=[ChatTester("web")])
    await application.start()
    yield application, flows
    await application.stop()


async def test_reloading_a_changed_flow_keeps_the_run_in_flight_on_its_version(
    setup: tuple[App, Path], gate: Gate
) -> None:
    app, flows = setup
    tester = next(a for a in app.live_adapters if isinstance(a, ChatTester))
    assert app.runtime is not None and app.store is not None
    in_flight = await tester.publish("mia", "please be slow")
    await asyncio.wait_for(gate.arrived.wait(), 10)
    assert app.runtime.runs_in_flight == 1

    (flows / "slow.yaml").write_text(SLOW_FLOW.format(url=gate.url, version="v2"))
    answer = "\n".join(await tester.say("olive", "/sb flows reload"))
    assert answer == "Reloaded 1 flows from 1 files.\n1 runs in flight finish with the version they started with."

    gate.open()
    await tester.turn(in_flight)
    assert tester.answers.pop(in_flight) == ["v1 done: gate opened"]
    run = (await app.store.runs.recent(1))[0]
    assert run.event_id == in_flight and str(run.status) == "succeeded"

    assert await tester.say("mia", "slow again") == ["v2 done: gate opened"]
    gate.close_again()
