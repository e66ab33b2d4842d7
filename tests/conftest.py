"""Shared fixtures: one embedded PostgreSQL per test session, a fresh database per test module.

Every module that touches the store gets its own migrated database (cloned from a template in
~50 ms), so modules never see each other's rows and the server starts only once.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from bot.store import Store
from bot.store.embedded import start_embedded
from tests.fakes.openai import FakeOpenAI

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# A developer's own model settings must not leak into tests.
for _var in ("SWITCHBOARD_MODEL", "SWITCHBOARD_CONFIG", "DATABASE_URL", "REDIS_URL"):
    os.environ.pop(_var, None)

# Adapter conformance harnesses (tests/adapters/harness_<name>.py) are fixture plugins.
pytest_plugins = sorted(f"tests.adapters.{p.stem}" for p in (Path(__file__).parent / "adapters").glob("harness_*.py"))

_TEMPLATE = "switchboard_template"
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """Admin URI of the session's embedded PostgreSQL (pgvector included)."""
    data_dir = Path(tempfile.mkdtemp(prefix="switchboard-test-pg-"))
    os.chmod(data_dir, 0o755)
    url = start_embedded(data_dir, database="postgres")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{_TEMPLATE}"')
        conn.execute(f'CREATE DATABASE "{_TEMPLATE}"')
    template_url = _with_database(url, _TEMPLATE)
    import asyncio

    async def migrate_template() -> None:
        store = await Store.open(template_url, data_dir=data_dir, pool_min=1, pool_max=1)
        await store.close()

    asyncio.run(migrate_template())
    yield url
    shutil.rmtree(data_dir, ignore_errors=True)


def new_database(admin_url: str) -> str:
    """A fresh, migrated database; returns its URI."""
    name = f"t_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{_TEMPLATE}"')
    return _with_database(admin_url, name)


@pytest.fixture(scope="module")
def database_url(pg_admin_url: str) -> str:
    """A migrated database of this test module's own."""
    return new_database(pg_admin_url)


@pytest.fixture(scope="module")
async def store(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Store]:
    store = await Store.open(database_url, data_dir=tmp_path_factory.mktemp("data"), pool_min=1, pool_max=8)
    yield store
    await store.close()


@pytest.fixture(scope="module")
async def fake_llm() -> AsyncIterator[FakeOpenAI]:
    """A local OpenAI-compatible server of this module's own (see tests/fakes/openai.py)."""
    async with FakeOpenAI() as fake:
        yield fake


def _with_database(url: str, database: str) -> str:
    # The embedded server's URI is postgresql://postgres:@/DB?host=/socket/dir
    base, _, query = url.partition("?")
    head = base.rsplit("/", 1)[0]
    return f"{head}/{database}" + (f"?{query}" if query else "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """Redis for the tests: TEST_REDIS_URL, else the machine's on 127.0.0.1:6379 (db 15), else a throwaway
    `redis-server` (no persistence) if one is installed. Without any, skip — except under CI=true, where it fails.
    """
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if _listening(host, port):
        yield url
        return
    server = shutil.which("redis-server")
    if server and "TEST_REDIS_URL" not in os.environ:
        port = free_port()
        args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                if _listening("127.0.0.1", port):
                    break
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/15"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        return
    message = f"no Redis reachable at {host}:{port} and no redis-server to start (install it, or set TEST_REDIS_URL)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False
