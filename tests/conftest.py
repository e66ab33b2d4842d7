"""Shared fixtures: one embedded PostgreSQL per test session, a fresh database per test module.

Every module that touches the store gets its own migrated database (cloned from a template in
~50 ms), so modules never see each other's rows and the server starts only once.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from bot.store import Store
from bot.store.embedded import start_embedded

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# A developer's own model settings must not leak into tests.
for _var in ("SWITCHBOARD_MODEL", "SWITCHBOARD_CONFIG", "DATABASE_URL", "REDIS_URL"):
    os.environ.pop(_var, None)

# Adapter conformance harnesses (tests/adapters/harness_<name>.py) are fixture plugins.
pytest_plugins = sorted(
    f"tests.adapters.{p.stem}" for p in (Path(__file__).parent / "adapters").glob("harness_*.py")
)

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
def redis_url() -> str:
    """The machine's Redis on loopback. Without one, skip — except under CI=true, where it fails."""
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    host, port = "127.0.0.1", 6379
    try:
        with socket.create_connection((host, port), timeout=1):
            pass
    except OSError:
        message = f"no Redis reachable at {host}:{port} (start redis-server, or set TEST_REDIS_URL)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return url
