"""A migrated PostgreSQL database that several benchmark *processes* can share.

BENCH_DATABASE_URL when set; else a throwaway embedded PostgreSQL. Migrations run here, once, before
any role process starts, so concurrent starts never race on them.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from bench.harness import temp_dir
from bot.store import Store
from bot.store.embedded import start_embedded


async def shared_database() -> tuple[str, Path]:
    """(database URL, a data folder) for a benchmark run."""
    data = temp_dir("sb-bench-cluster-")
    url = os.environ.get("BENCH_DATABASE_URL") or start_embedded(data / "pg", database=f"b_{uuid.uuid4().hex[:8]}")
    store = await Store.open(url, data_dir=data, pool_min=1, pool_max=1)
    await store.close()
    return url, data


def redis_url() -> str:
    return os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
