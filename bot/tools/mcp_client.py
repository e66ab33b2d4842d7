"""MCP servers as tool sources: stdio (a child process) or streamable HTTP, with the official SDK.

Each configured server gets a supervisor task that owns the connection (the SDK's transports are
anyio context managers, so one task must enter and leave them). It lists the server's tools and
registers them as `<server>__<tool>`; a ping every few seconds, or a failed call, notices a server
that went away, and the supervisor reconnects with backoff — so a restarted server comes back on
its own. A call that fails because the connection dropped is retried once on the new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import jsonschema

from bot.tools.base import Tool, ToolContext, ToolError
from bot.tools.registry import ToolRegistry
from bot.tools.settings import MCPServerSettings

log = logging.getLogger("switchboard.tools.mcp")

PING_INTERVAL = 5.0
# JSON-RPC error codes the SDK reports when the session is gone (a restarted HTTP server answers 404
# for the old session id; a closed stdio pipe gives CONNECTION_CLOSED): reconnect, then retry once.
_LOST_SESSION = frozenset({32600, -32000})
MAX_BACKOFF = 30.0
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def tool_name(server: str, tool: str) -> str:
    return _UNSAFE.sub("_", f"{server}__{tool}")[:64]


class MCPConnection:
    def __init__(self, name: str, settings: MCPServerSettings, registry: ToolRegistry) -> None:
        self.name = name
        self.settings = settings
        self.registry = registry
        self.session: Any = None
        self.connects = 0  # how many times a session was established (reconnects show here)
        self.last_error = ""
        self._ready = asyncio.Event()
        self._broken = asyncio.Event()
        # Set when the current connection ends, so calls in flight on it fail at once instead of
        # waiting out their read timeout (a killed stdio server never answers them).
        self._lost = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._registered: list[str] = []

    async def start(self, wait: float = 15.0) -> bool:
        """Start the supervisor; True once connected within `wait` seconds (it keeps trying after)."""
        self._task = asyncio.create_task(self._supervise(), name=f"mcp:{self.name}")
        try:
            await asyncio.wait_for(self._ready.wait(), wait)
            return True
        except TimeoutError:
            log.error(
                "MCP server not reachable yet; retrying in the background",
                extra={"server": self.name, "error": self.last_error},
            )
            return False

    async def aclose(self) -> None:
        self._closing = True
        self._broken.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for registered in self._registered:
            self.registry.remove(registered)

    # ------------------------------------------------------------------ connection

    @contextlib.asynccontextmanager
    async def _transport(self) -> AsyncIterator[tuple[Any, Any]]:
        settings = self.settings
        if settings.command is not None:
            from mcp import StdioServerParameters
            from mcp.client.stdio import get_default_environment, stdio_client

            params = StdioServerParameters(
                command=settings.command,
                args=settings.args,
                env={**get_default_environment(), **settings.env},
                cwd=settings.cwd,
            )
            with open(os.devnull, "w") as errlog:  # noqa: ASYNC230 -- opened once per connection
                async with stdio_client(params, errlog=errlog) as (read, write):
                    yield read, write
        else:
            import httpx
            from mcp.client.streamable_http import streamable_http_client

            assert settings.url is not None
            timeout = httpx.Timeout(settings.timeout, read=max(settings.timeout, 300.0))
            async with (
                httpx.AsyncClient(headers=settings.headers, timeout=timeout) as client,
                streamable_http_client(settings.url, http_client=client) as (read, write, _),
            ):
                yield read, write

    async def _supervise(self) -> None:
        from mcp import ClientSession

        delay = 0.2
        while not self._closing:
            self._broken.clear()
            self._lost = asyncio.Event()
            try:
                async with self._transport() as (read, write), ClientSession(read, write) as session:
                    await asyncio.wait_for(session.initialize(), self.settings.timeout)
                    listed = await asyncio.wait_for(session.list_tools(), self.settings.timeout)
                    self.session = session
                    self._register(listed.tools)
                    self.connects += 1
                    self._ready.set()
                    delay = 0.2
                    log.info(
                        "MCP server connected",
                        extra={"server": self.name, "tools": len(listed.tools), "connects": self.connects},
                    )
                    await self._watch(session)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # ExceptionGroups from anyio task groups included
                self.last_error = _describe(exc)
                log.warning("MCP connection lost", extra={"server": self.name, "error": self.last_error})
            finally:
                self.session = None
                self._ready.clear()
                self._lost.set()
            if self._closing:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)

    async def _watch(self, session: Any) -> None:
        """Hold the connection until a call reports it broken or a ping fails."""
        while not self._broken.is_set():
            try:
                await asyncio.wait_for(self._broken.wait(), PING_INTERVAL)
            except TimeoutError:
                await asyncio.wait_for(session.send_ping(), self.settings.timeout)

    def _register(self, tools: list[Any]) -> None:
        include = set(self.settings.include) if self.settings.include is not None else None
        names = []
        for listed in tools:
            if include is not None and listed.name not in include:
                continue
            names.append(self._tool(listed))
        for stale in set(self._registered) - set(names):
            self.registry.remove(stale)
        self._registered = names

    def _tool(self, listed: Any) -> str:
        remote = listed.name
        schema = dict(listed.inputSchema or {"type": "object", "properties": {}})
        schema.setdefault("properties", {})
        validator = jsonschema.Draft202012Validator(schema)

        def validate(arguments: dict[str, Any]) -> dict[str, Any]:
            problems = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
            if problems:
                raise ValueError(
                    "; ".join(f"{'.'.join(str(p) for p in e.path) or 'arguments'}: {e.message}" for e in problems[:5])
                )
            return arguments

        async def call(arguments: dict[str, Any], ctx: ToolContext) -> Any:
            return await self.call(remote, arguments)

        name = tool_name(self.name, remote)
        self.registry.add(
            Tool(
                name=name,
                description=(listed.description or remote).strip(),
                parameters=schema,
                call=call,
                validate=validate,
                role=self.settings.role,
                approval=self.settings.approval,
                timeout=self.settings.timeout,
                source=f"mcp:{self.name}",
                meta={"server": self.name, "remote": remote},
            ),
            replace=True,
        )
        return name

    # ------------------------------------------------------------------ calls

    async def call(self, remote: str, arguments: dict[str, Any]) -> Any:
        from mcp.shared.exceptions import McpError

        for attempt in (1, 2):
            session = await self._session(self.settings.timeout)
            lost = self._lost
            try:
                result = await _unless_lost(
                    session.call_tool(remote, arguments, read_timeout_seconds=timedelta(seconds=self.settings.timeout)),
                    lost,
                )
            except McpError as exc:
                if exc.error.code not in _LOST_SESSION or attempt == 2:
                    # The server answered with an error: the call must not be repeated.
                    raise ToolError(f"{self.name}: {exc}") from None
                self.last_error = str(exc)
                self._mark_broken()  # the server restarted and forgot our session
                continue
            except Exception as exc:
                self.last_error = _describe(exc)
                self._mark_broken()  # reconnect, then try once more on the fresh session
                if attempt == 2:
                    raise ToolError(f"MCP server {self.name!r} is unavailable: {self.last_error}") from None
                continue
            return _result_value(result)
        raise AssertionError("unreachable")

    async def _session(self, wait: float) -> Any:
        if self.session is None:
            try:
                await asyncio.wait_for(self._ready.wait(), wait)
            except TimeoutError:
                reason = self.last_error or "starting"
                raise ToolError(f"MCP server {self.name!r} is not connected ({reason})") from None
        return self.session

    def _mark_broken(self) -> None:
        """Drop the session now (calls wait for the next one) and make the supervisor reconnect."""
        self.session = None
        self._ready.clear()
        self._broken.set()


def _result_value(result: Any) -> Any:
    texts = []
    for block in result.content or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            texts.append(block.text)
        elif kind == "resource":
            texts.append(getattr(block.resource, "text", "") or f"[resource {block.resource.uri}]")
        else:
            texts.append(f"[{kind} content]")
    text = "\n".join(texts)
    if result.isError:
        raise ToolError(text or "the MCP tool reported an error")
    if result.structuredContent is not None and not text:
        return result.structuredContent
    return text


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _describe(exc.exceptions[0])
    return f"{type(exc).__name__}: {exc}"[:500]


async def connect_servers(
    servers: dict[str, MCPServerSettings], registry: ToolRegistry, *, wait: float = 15.0
) -> list[MCPConnection]:
    """Connect every configured server concurrently; failures keep retrying in the background."""
    connections = [MCPConnection(name, settings, registry) for name, settings in servers.items()]
    await asyncio.gather(*(c.start(wait) for c in connections))
    for connection in connections:
        registry.add_closer(connection.aclose)
    return connections


class ConnectionLost(ConnectionError):
    pass


async def _unless_lost(call: Any, lost: asyncio.Event) -> Any:
    """Await `call`, but fail with ConnectionLost as soon as its connection ends."""
    call_task = asyncio.ensure_future(call)
    lost_task = asyncio.ensure_future(lost.wait())
    try:
        done, _ = await asyncio.wait({call_task, lost_task}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        call_task.cancel()
        raise
    finally:
        lost_task.cancel()
    if call_task in done:
        return call_task.result()
    call_task.cancel()
    raise ConnectionLost("the connection to the MCP server ended during the call")
