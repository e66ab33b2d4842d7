"""`switchboard db status`: which migrations are applied (applying pending ones with `db migrate`)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any


def register(sub: Any) -> None:
    db = sub.add_parser("db", help="database maintenance")
    actions = db.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    status = actions.add_parser("status", help="show applied and pending migrations")
    status.set_defaults(handler=lambda a: _go(a, migrate=False))
    migrate = actions.add_parser("migrate", help="apply pending migrations (also done at every start)")
    migrate.set_defaults(handler=lambda a: _go(a, migrate=True))


def _go(args: argparse.Namespace, *, migrate: bool) -> int:
    from bot.cli.common import boot_config

    config = boot_config(args, quiet=True)
    return asyncio.run(_status(config, migrate))


async def _status(config: Any, migrate: bool) -> int:
    from bot.logging import redact_url
    from bot.store import Store

    store = await Store.open(config.database.url, data_dir=config.data_path, pool_min=1, pool_max=2, migrate=migrate)
    try:
        states = await store.migration_status()
        print(f"database: {'embedded' if store.embedded else redact_url(store.url)}")
        pending = 0
        for state in states:
            m = state.migration
            if state.applied_at is None:
                pending += 1
                mark = "pending"
            else:
                mark = f"applied {state.applied_at}" + ("" if state.checksum_ok else "  (file changed since!)")
            print(f"  {m.version:04d} {m.name:<28} {mark}")
        print(f"{len(states) - pending} applied, {pending} pending")
        return 0 if pending == 0 else 1
    finally:
        await store.close()
