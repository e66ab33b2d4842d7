"""Gateway and worker processes share work over Redis Streams: the gateway holds the HTTP API and the
adapters, the worker runs the flows, and the reply finds its way back to the gateway."""

from __future__ import annotations

import uuid

import httpx
import pytest

from bot.app import App, Role
from tests.apps import make_config
from tests.fakes.openai import FakeOpenAI, Text


@pytest.fixture(scope="module")
def bus_url(redis_url: str) -> str:
    return f"{redis_url}?prefix=sbtest-{uuid.uuid4().hex[:8]}:&partitions=4&visibility_timeout=2"


async def test_a_gateway_and_a_worker_answer_together(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, fake_llm: FakeOpenAI, bus_url: str
) -> None:
    config = make_config(
        database_url,
        tmp_path_factory.mktemp("data"),
        llm_base_url=fake_llm.base_url,
        bus={"url": bus_url},
        bot={"owners": ["web:ops"]},
    )
    gateway = App(config, role=Role.GATEWAY)
    worker = App(config, role=Role.WORKER, with_server=False)
    await worker.start()
    await gateway.start()
    try:
        assert gateway.server is not None and worker.server is None
        assert not worker.live_adapters  # a worker holds no platform connection
        fake_llm.script(Text("Answered by the worker."))
        async with httpx.AsyncClient(base_url=gateway.server.url, timeout=30) as http:
            response = await http.post("/api/v1/messages", json={"user": "ada", "text": "who answers?"})
            assert response.status_code == 200, response.text
            assert [r["text"] for r in response.json()["replies"]] == ["Answered by the worker."]
            run = await worker.store.runs.get(response.json()["run_id"])
            assert run is not None and run.status == "succeeded"
            status = await http.post("/api/v1/messages", json={"user": "ops", "text": "/sb status"})
        (report,) = [r["text"] for r in status.json()["replies"]]
        assert "processes on the bus: 2" in report  # /sb status shows the gateway and the worker
        assert "gateway" in report and "worker" in report
    finally:
        await gateway.stop()
        await worker.stop()
