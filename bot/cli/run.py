"""`switchboard run`: the bot, its adapters, bus, flows and HTTP server, until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any


def register(sub: Any) -> None:
    run = sub.add_parser("run", help="run the bot (adapters, flows, HTTP server)")
    run.add_argument(
        "--role",
        choices=["all", "gateway", "worker"],
        default="all",
        help="all (default): everything in one process; gateway: adapters and HTTP only; "
        "worker: flow execution only (needs a redis:// bus)",
    )
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from bot.cli.common import boot_config, fail

    config = boot_config(args)
    if args.role != "all" and config.bus.url.startswith("memory"):
        fail("--role gateway/worker needs a shared bus: set REDIS_URL (or bus.url) to redis://host:6379/0")
    return asyncio.run(_serve(config, args.role))


async def _serve(config: Any, role: str) -> int:
    from bot.app import App, Role
    from bot.store import StoreError

    app = App(config, role=Role(role))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await app.start()
    except (StoreError, OSError) as exc:
        print(f"switchboard: cannot start: {exc}", file=sys.stderr)
        await app.stop()
        return 1
    _report(app)
    await stop.wait()
    print("switchboard: stopping (finishing runs in flight)...", file=sys.stderr)
    await app.stop()
    return 0


def _report(app: Any) -> None:
    """A human summary on stderr: where to talk to the bot and which adapters are live (and why not)."""
    lines = []
    if app.server is not None:
        lines.append(f"Switchboard is running: open {app.server.url}/ to chat, API at {app.server.url}/api/v1/messages")
    store = "embedded PostgreSQL in " + str(app.config.data_path / "postgres") if app.store.embedded else "DATABASE_URL"
    lines.append(
        f"  database: {store}; bus: {app.bus.url}; model: {app.services.llm.default_model or 'none configured'}"
    )
    for status in app.statuses:
        lines.append(f"  {'✓' if status.live else '·'} {status.name}: {status.detail}")
    flows = ", ".join(f.spec.name for f in app.runtime.registry.active())
    lines.append(f"  flows: {flows}")
    for problem in app.runtime.registry.problems:
        lines.append(f"  ! {problem}")
    print("\n".join(lines), file=sys.stderr, flush=True)
