"""Wires tools into the app: `attach(services)` builds the registry from the `tools:` config section.

Order: built-ins, Python modules, entry points, composite tools, then MCP servers (connected
concurrently; one that is down keeps retrying in the background and never blocks the start).
It also starts the timer that ends human waits (approvals, `ask`) whose deadline has passed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.tools.builtins import builtin_tools
from bot.tools.composite import load_composites
from bot.tools.mcp_client import connect_servers
from bot.tools.registry import ToolLoadError, ToolRegistry
from bot.tools.settings import ToolsSettings
from bot.tools.waits import HumanWaits, WaitTimer

log = logging.getLogger("switchboard.tools")


class ToolService(ToolRegistry):
    """The registry the app uses, plus the settings and the wait timer."""

    def __init__(self, settings: ToolsSettings) -> None:
        super().__init__(default_timeout=settings.timeout, max_result_chars=settings.max_result_chars)
        self.settings = settings
        self.connections: list[Any] = []


def parse_settings(raw: dict[str, Any]) -> ToolsSettings:
    try:
        return ToolsSettings.model_validate(raw or {})
    except ValidationError as exc:
        problems = "; ".join(f"tools.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ToolLoadError(f"invalid tools configuration: {problems}") from None


async def build(settings: ToolsSettings, *, base_dir: Path | None = None) -> ToolService:
    service = ToolService(settings)
    service.add(*builtin_tools(settings))
    for module in settings.modules:
        service.load_module(module)
    if settings.entry_points:
        service.load_entry_points()
    load_composites(settings.composite, service, base_dir)
    if settings.mcp:
        service.connections = await connect_servers(settings.mcp, service)
    return service


async def attach(services: Any) -> None:
    config = services.config
    settings = parse_settings(getattr(config, "tools", {}) or {})
    base_dir = Path(config.base_dir) if getattr(config, "base_dir", "") else None
    service = await build(settings, base_dir=base_dir)
    timer = WaitTimer(HumanWaits(services.store.pool), services.bus, interval=settings.approvals.sweep_interval)
    timer.start()
    service.add_closer(timer.aclose)
    services.tools = service
    log.info("tools ready", extra={"tools": service.names()})
