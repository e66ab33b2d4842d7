"""The composition root: builds store, bus, LLM, flows, commands, adapters and server, and runs them.

This is the one module of `bot/` allowed to import `adapters` and `flows`. Roles decide what a
process runs: `all` (default, one process), `gateway` (adapters + HTTP, no flow execution),
`worker` (flow execution only). The scheduler role arrives with the scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from adapters.base import Adapter, AdapterContext, AdapterStatus
from bot.bus import Bus, open_bus
from bot.commands import CommandRegistry
from bot.config import Config
from bot.help import help_command
from bot.llm import LLM
from bot.server import HttpServer
from bot.store import Store
from flows.context import Services
from flows.registry import FlowRegistry
from flows.runtime import FlowRuntime

log = logging.getLogger("switchboard.app")

# Modules that contribute `/sb` commands: each exposes COMMANDS, a list of @command handlers.
COMMAND_MODULES: tuple[str, ...] = (
    "bot.memory.commands",
    "bot.knowledge.commands",
    "bot.admin.commands",
    "bot.scheduler.commands",
    "bot.tools.commands",
)


class Role(StrEnum):
    ALL = "all"
    GATEWAY = "gateway"
    WORKER = "worker"


@dataclass
class App:
    config: Config
    role: Role = Role.ALL
    with_server: bool = True
    # Adapters to run instead of discovering them from the environment (console, tests).
    adapters: Sequence[Adapter] | None = None
    store: Store | None = field(default=None, init=False)
    bus: Bus | None = field(default=None, init=False)
    server: HttpServer | None = field(default=None, init=False)
    runtime: FlowRuntime | None = field(default=None, init=False)
    services: Services | None = field(default=None, init=False)
    statuses: list[AdapterStatus] = field(default_factory=list, init=False)
    live_adapters: list[Adapter] = field(default_factory=list, init=False)
    started_at: float = field(default_factory=time.time, init=False)
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list, init=False)

    async def start(self) -> None:
        config = self.config
        self.store = await Store.open(
            config.database.url,
            data_dir=config.data_path,
            pool_min=config.database.pool_min,
            pool_max=config.database.pool_max,
            synchronous_commit=config.database.synchronous_commit,
        )
        self.bus = open_bus(
            config.bus.url, journal=self.store.journal, max_concurrency=config.bus.max_concurrency, role=str(self.role)
        )
        commands = CommandRegistry(config.bot.command_prefix)
        commands.add_handlers(help_command)
        for module_name in COMMAND_MODULES:
            module = _optional_module(module_name)
            if module is not None:
                commands.add_handlers(*getattr(module, "COMMANDS", ()))
        registry = FlowRegistry(config.flow_dirs())
        registry.load()
        self.services = Services(store=self.store, llm=LLM(config.llm), bus=self.bus, config=config, commands=commands)
        await self._attach_features(self.services)
        self.runtime = FlowRuntime(self.services, registry, commands)
        self.services.catalog.update(adapters=self.statuses, started_at=self.started_at)  # for `/sb status`
        if self.services.scheduler is not None:  # jobs for the flows' `schedule:` triggers
            await self.services.scheduler.sync_flows(registry.active())
        if self.role in (Role.ALL, Role.WORKER):
            self.bus.consume(self.runtime.handle)

        # The bus first: reply pumps read from it, and events accepted before a crash replay now.
        await self.bus.start()
        if self.role in (Role.ALL, Role.GATEWAY):
            if self.with_server:
                self.server = HttpServer(
                    config.server.host, config.server.port, max_body_bytes=config.server.max_message_bytes
                )
                self.server.add_health_check("database", self._db_health)
            await self._start_adapters()
            if self.server is not None:
                self._mount_feature_apis(self.server)
                await self.server.start()
        log.info(
            "switchboard started",
            extra={
                "role": str(self.role),
                "flows": [f.spec.name for f in registry.active()],
                "adapters": [s.name for s in self.statuses if s.live],
                "bus": self.bus.url,
                "database": "embedded" if self.store.embedded else "external",
                "model": self.services.llm.default_model or None,
            },
        )

    async def _attach_features(self, services: Services) -> None:
        """Optional features (memory, knowledge, tools, scheduler) wire themselves in here."""
        for module_name in (
            "bot.memory.service",
            "bot.knowledge.service",
            "bot.tools.service",
            "bot.admin.service",
            "bot.scheduler.service",
        ):
            module = _optional_module(module_name)
            attach = getattr(module, "attach", None)
            if attach is not None:
                await attach(services)

    async def _start_adapters(self) -> None:
        assert self.bus is not None and self.services is not None
        from adapters.registry import discover

        if self.adapters is not None:
            found = [(a, AdapterStatus(a.name, True, "live")) for a in self.adapters]
        else:
            found = discover(self.config.adapters)
        services = self.services
        for adapter, status in found:
            self.statuses.append(status)
            if adapter is None:
                continue
            context = AdapterContext(
                bus=self.bus,
                server=self.server,
                command_prefix=self.config.bot.command_prefix,
                options=dict(self.config.adapters.get(adapter.name) or {}),
                catalog=lambda: list(services.catalog.get("flows", [])),
                max_message_bytes=self.config.server.max_message_bytes,
            )
            try:
                await adapter.start(context)
            except Exception as exc:
                status.live = False
                status.detail = f"failed to start: {type(exc).__name__}: {exc}"
                log.exception("adapter failed to start", extra={"adapter": adapter.name})
                continue
            self.live_adapters.append(adapter)
            self._tasks.append(asyncio.create_task(adapter.deliver_forever(self.bus), name=f"deliver:{adapter.name}"))

    def _mount_feature_apis(self, server: HttpServer) -> None:
        """HTTP APIs of optional features (the knowledge API), next to the web adapter's."""
        assert self.services is not None
        if self.services.knowledge is not None:
            from bot.knowledge.http import knowledge_routes

            server.add_routes(
                knowledge_routes(
                    self.services.knowledge,
                    api_key=os.environ.get("SWITCHBOARD_API_KEY", ""),
                    max_body_bytes=self.config.server.max_message_bytes,
                )
            )

    async def _db_health(self) -> dict[str, Any]:
        assert self.store is not None
        async with self.store.pool.connection() as conn:
            await conn.execute("SELECT 1")
        return {"ok": True, "embedded": self.store.embedded}

    async def stop(self) -> None:
        """Stop taking events, finish (or park) the runs in flight, send their replies, disconnect."""
        # Event sources first: adapters stop fetching, and the scheduler stops firing (a job fired
        # into a stopped bus would be lost; one not fired yet fires after the next start).
        for adapter in self.live_adapters:
            with contextlib.suppress(Exception):
                await adapter.stop_intake()
        scheduler_closer = getattr(self.services.scheduler if self.services else None, "aclose", None)
        if scheduler_closer is not None:
            with contextlib.suppress(Exception):
                await scheduler_closer()
        if self.server is not None:
            await self.server.stop()
        if self.bus is not None:
            await self.bus.stop(drain_timeout=self.config.bus.drain_timeout)
        if self._tasks:  # the bus has ended the reply streams: let the pumps send what is queued
            _, pending = await asyncio.wait(self._tasks, timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks.clear()
        for adapter in self.live_adapters:
            with contextlib.suppress(Exception):
                await adapter.stop()
        if self.services is not None:
            for extra in (self.services.memory, self.services.knowledge, self.services.tools, self.services.llm):
                closer = getattr(extra, "aclose", None)
                if closer is not None:
                    with contextlib.suppress(Exception):
                        await closer()
        if self.store is not None:
            await self.store.close()
        log.info("switchboard stopped")

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _optional_module(name: str) -> Any:
    """Import a feature module if it is part of this build; a missing module means the feature is absent."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            return None
        raise
