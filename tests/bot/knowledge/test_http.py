"""The knowledge API over HTTP does what `switchboard kb` does, within the allowed folders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.app import App
from tests.apps import make_config


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    (folder / "deploy.md").write_text("# Deploys\n\nProduction deploys happen on Tuesdays after the standup.\n")
    (folder / "holidays.md").write_text("# Holidays\n\nThe office is closed on the first Monday of August.\n")
    return folder


@pytest.fixture(scope="module")
async def http(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, docs: Path
) -> AsyncIterator[httpx.AsyncClient]:
    config = make_config(database_url, tmp_path_factory.mktemp("data"), knowledge={"allowed_roots": [str(docs)]})
    async with App(config) as app:
        assert app.server is not None
        async with httpx.AsyncClient(base_url=app.server.url, timeout=60) as client:
            yield client


async def test_ingest_search_list_and_delete(http: httpx.AsyncClient, docs: Path) -> None:
    ingested = await http.post("/api/v1/kb/ingest", json={"paths": [str(docs)], "collection": "handbook"})
    assert ingested.status_code == 200, ingested.text
    assert ingested.json()["files"] == 2 and ingested.json()["chunks"] >= 2

    found = await http.post(
        "/api/v1/kb/search", json={"query": "when do production deploys happen", "collection": "handbook", "top_k": 1}
    )
    assert found.status_code == 200
    (hit,) = found.json()["hits"]
    assert hit["source"].endswith("deploy.md") and "Tuesdays" in hit["text"]

    listed = (await http.get("/api/v1/kb/collections")).json()["collections"]
    assert {"name": "handbook", "documents": 2}.items() <= next(c for c in listed if c["name"] == "handbook").items()

    gone = await http.delete("/api/v1/kb/collections/handbook", params={"source": hit["source"]})
    assert gone.status_code == 200
    assert (await http.delete("/api/v1/kb/collections/handbook")).status_code == 200
    assert (await http.delete("/api/v1/kb/collections/handbook")).status_code == 404


async def test_paths_outside_the_allowed_folders_are_refused(http: httpx.AsyncClient, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the bot")
    response = await http.post("/api/v1/kb/ingest", json={"paths": [str(secret)]})
    assert response.status_code == 403 and response.json()["error"]["code"] == "path_not_allowed"


async def test_bad_requests_are_explained(http: httpx.AsyncClient) -> None:
    assert (await http.post("/api/v1/kb/search", json={"query": ""})).status_code == 400
    assert (await http.post("/api/v1/kb/search", json={"query": "x", "top_k": 500})).status_code == 400
    unknown = await http.post("/api/v1/kb/search", json={"query": "x", "collection": "nope"})
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]["message"]
    assert (await http.post("/api/v1/kb/ingest", content=b"{oops")).status_code == 400
