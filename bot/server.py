"""The HTTP server (Starlette on uvicorn) that adapters mount their routes on.

The core owns only `/healthz`; the web adapter adds the chat page and APIs, the Slack and Telegram
adapters their webhooks. Request bodies are capped (`server.max_message_bytes`) before parsing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

log = logging.getLogger("switchboard.server")

HealthCheck = Callable[[], Awaitable[dict[str, Any]]]


class RequestTooLarge(Exception):
    pass


async def read_body_capped(request: Request, limit: int) -> bytes:
    """Read a request body, refusing (RequestTooLarge) past `limit` bytes without buffering it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"request body of {declared} bytes is over the {limit}-byte limit")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise RequestTooLarge(f"request body is over the {limit}-byte limit")
    return bytes(body)


def api_key_ok(request: Request, api_key: str) -> bool:
    """True when no key is required, or the request carries `Authorization: Bearer <key>`."""
    if not api_key:
        return True
    token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(token.encode(), api_key.encode())


def json_error(status: int, message: str, *, code: str, **extra: Any) -> JSONResponse:
    """The one error body shape of our APIs: `{"error": {"code", "message", ...}}`."""
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


class HttpServer:
    def __init__(self, host: str, port: int, *, max_body_bytes: int = 64 * 1024) -> None:
        self.host = host
        self.port = port
        self.max_body_bytes = max_body_bytes
        self.started_at = time.time()
        self._routes: list[BaseRoute] = [Route("/healthz", self._healthz, methods=["GET"])]
        self._health: dict[str, HealthCheck] = {}
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        self.app: Starlette | None = None

    def add_route(self, path: str, endpoint: Callable[..., Any], methods: list[str] | None = None) -> None:
        if self.app is not None:
            raise RuntimeError("routes must be added before the server starts")
        self._routes.append(Route(path, endpoint, methods=methods))

    def add_routes(self, routes: list[BaseRoute]) -> None:
        if self.app is not None:
            raise RuntimeError("routes must be added before the server starts")
        self._routes.extend(routes)

    def add_health_check(self, name: str, check: HealthCheck) -> None:
        self._health[name] = check

    def build(self) -> Starlette:
        self.app = Starlette(routes=self._routes)
        return self.app

    async def start(self) -> None:
        import uvicorn

        app = self.app or self.build()
        config = uvicorn.Config(app, host=self.host, port=self.port, log_config=None, access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # the app owns signals
        self._task = asyncio.create_task(self._server.serve(), name="http-server")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises the bind error, e.g. port in use
                raise RuntimeError("HTTP server stopped during start")
            await asyncio.sleep(0.01)
        if self.port == 0:
            self.port = self._server.servers[0].sockets[0].getsockname()[1]
        log.info("HTTP server listening", extra={"url": self.url})

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, timeout=5)
            self._task = None

    async def _healthz(self, request: Request) -> Response:
        checks: dict[str, Any] = {}
        healthy = True
        for name, check in self._health.items():
            try:
                checks[name] = await asyncio.wait_for(check(), timeout=2)
            except Exception as exc:
                healthy = False
                checks[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            else:
                healthy = healthy and bool(checks[name].get("ok", True))
        body = {
            "status": "ok" if healthy else "degraded",
            "uptime_s": round(time.time() - self.started_at, 1),
            "checks": checks,
        }
        return JSONResponse(body, status_code=200 if healthy else 503)
