"""A Switchboard cluster of real OS processes for end-to-end tests and benchmarks.

One gateway (`python -m bot.cli run --role gateway`) and N workers (`--role worker`) share a Redis bus
(a prefix of their own) and one PostgreSQL database, with a config file and a flow folder written here.
The flow is the "durable 3-node flow": `prepare` (template) → `wait` (http: a slow local API) →
`answer` (reply), every step persisted. The slow API runs in this process (its own thread) and
records which worker process is waiting on it, so a test can SIGKILL a worker that has runs in flight.

Why processes and not `App` objects: a SIGKILL must kill everything a worker holds — its Redis
connections, its database pool, its half-finished run — exactly as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import psutil
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

REPO = Path(__file__).resolve().parent.parent.parent
READY_LINE = "  flows:"  # the last line `switchboard run` prints once it serves (bot/cli/run.py `_report`)


class ProcessRole(StrEnum):
    GATEWAY = "gateway"
    WORKER = "worker"
    ALL = "all"


DURABLE_FLOW = """\
# The durable 3-node flow: every step is persisted, the middle one waits on a slow API.
name: durable
description: Prepares, waits on a slow API, answers.
triggers: [{{default: true}}]
history: {{record: true}}
nodes:
  - id: prepare
    kind: template
    template: "{{{{ event.text }}}}"
  - id: wait
    kind: http
    method: POST
    url: "{slow_url}/slow"
    json: {{event: "{{{{ event.id }}}}", text: "{{{{ prepare.text }}}}"}}
  - id: answer
    kind: reply
    text: "done {{{{ prepare.text }}}}"
"""


@dataclass(slots=True)
class SlowCall:
    """One call of the `wait` node: which event, from which client port, when."""

    event_id: str
    text: str
    port: int
    started: float
    finished: float = 0.0


class SlowApi:
    """A local HTTP API that answers after `delay` seconds, standing in for a model or a slow service."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls: list[SlowCall] = []
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def in_flight(self) -> list[SlowCall]:
        with self._lock:
            return [c for c in self.calls if not c.finished]

    def calls_for(self, event_id: str) -> list[SlowCall]:
        with self._lock:
            return [c for c in self.calls if c.event_id == event_id]

    async def _slow(self, request: Request) -> Response:
        body = await request.json()
        call = SlowCall(str(body.get("event", "")), str(body.get("text", "")),
                        request.client.port if request.client else 0, time.monotonic())
        with self._lock:
            self.calls.append(call)
        try:
            await asyncio.sleep(self.delay)
        finally:
            call.finished = time.monotonic()
        return JSONResponse({"ok": True, "text": call.text})

    def start(self) -> SlowApi:
        app = Starlette(routes=[Route("/slow", self._slow, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False,
                                lifespan="off", backlog=2048, timeout_keep_alive=60)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="slow-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the slow API did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)


@dataclass(slots=True)
class RoleProcess:
    role: ProcessRole
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client_ports(self) -> set[int]:
        """Local TCP ports of this process's connections (to tell which worker calls the slow API)."""
        with contextlib.suppress(psutil.Error):
            return {c.laddr.port for c in psutil.Process(self.pid).net_connections(kind="tcp") if c.laddr}
        return set()

    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass
class Cluster:
    """Writes the config and flow, starts and stops role processes. Use as a context manager."""

    database_url: str
    redis_url: str
    workdir: Path
    port: int
    flow_yaml: str
    visibility_timeout: float = 1.5
    partitions: int = 8
    max_concurrency: int = 64
    extra_config: str = ""
    bus: str = ""  # instead of the Redis bus (e.g. "memory://" for one `--role all` process)
    log_level: str = "INFO"
    env: dict[str, str] = field(default_factory=dict)
    prefix: str = field(default_factory=lambda: f"sbe2e-{uuid.uuid4().hex[:8]}:")
    processes: list[RoleProcess] = field(default_factory=list)
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def bus_url(self) -> str:
        if self.bus:
            return self.bus
        return (f"{self.redis_url}?prefix={self.prefix}&partitions={self.partitions}"
                f"&visibility_timeout={self.visibility_timeout}")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write(self) -> Path:
        flows = self.workdir / "flows"
        flows.mkdir(parents=True, exist_ok=True)
        (flows / "durable.yaml").write_text(self.flow_yaml)
        config = self.workdir / "switchboard.yaml"
        config.write_text(
            f"data_dir: {self.workdir / 'data'}\n"
            f"server: {{host: 127.0.0.1, port: {self.port}, reply_timeout: 120}}\n"
            'database: {url: "${DATABASE_URL}", pool_min: 1, pool_max: 8}\n'
            f'bus: {{url: "${{REDIS_URL}}", max_concurrency: {self.max_concurrency}, drain_timeout: 2}}\n'
            f"flows: {{paths: [{flows}], default: durable}}\n"
            f"logging: {{level: {self.log_level}, format: json}}\n"
            + self.extra_config
        )
        return config

    def __enter__(self) -> Cluster:
        self.config_path = self.write()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SWITCHBOARD_", "TELEGRAM_"))}
        env.update(
            SWITCHBOARD_CONFIG=str(self.config_path), DATABASE_URL=self.database_url, REDIS_URL=self.bus_url,
            LITELLM_LOCAL_MODEL_COST_MAP="True", PYTHONUNBUFFERED="1", **self.env,
        )
        return env

    def spawn(self, role: ProcessRole) -> RoleProcess:
        """Start a role process (returns at once; `wait_ready` waits for it to serve)."""
        name = f"{role}-{next(self._names)}"
        log_path = self.workdir / f"{name}.log"
        with log_path.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "run", "--role", str(role)], cwd=REPO,
                                    env=self._env(), stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        process = RoleProcess(role, name, proc, log_path)
        self.processes.append(process)
        return process

    async def wait_ready(self, process: RoleProcess, timeout: float = 60) -> RoleProcess:
        deadline = time.monotonic() + timeout
        while READY_LINE not in process.log():
            if not process.alive():
                raise RuntimeError(f"{process.name} exited with {process.proc.returncode}:\n{process.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{process.name} not ready after {timeout} s:\n{process.log()[-3000:]}")
            await asyncio.sleep(0.05)
        return process

    async def start(self, role: ProcessRole) -> RoleProcess:
        return await self.wait_ready(self.spawn(role))

    def live(self, role: ProcessRole) -> list[RoleProcess]:
        return [p for p in self.processes if p.role is role and p.alive()]

    @staticmethod
    def kill(process: RoleProcess) -> None:
        """SIGKILL: no drain, no hand-back, connections dropped mid-run."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.proc.wait(timeout=10)

    @staticmethod
    def terminate(process: RoleProcess, timeout: float = 20) -> int:
        """SIGTERM, the graceful stop; SIGKILL if it does not exit in time. Returns the exit code."""
        with contextlib.suppress(ProcessLookupError):
            process.proc.send_signal(signal.SIGTERM)
        try:
            return process.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            Cluster.kill(process)
            return -9

    def stop_all(self) -> None:
        for process in self.processes:
            if process.alive():
                with contextlib.suppress(ProcessLookupError):
                    process.proc.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill(process)

    def redis_key(self, name: str) -> str:
        return f"{self.prefix}{name}"


def durable_flow(slow_url: str) -> str:
    return DURABLE_FLOW.format(slow_url=slow_url)


def process_of(port: int, processes: list[RoleProcess]) -> RoleProcess | None:
    for process in processes:
        if port in process.client_ports():
            return process
    return None


def summarize(values: list[float]) -> dict[str, Any]:
    """p50/p95/max in ms of a list of seconds (empty → zeros)."""
    if not values:
        return {"p50": 0.0, "p95": 0.0, "max": 0.0}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"p50": pick(0.5), "p95": pick(0.95), "max": ordered[-1] * 1000}
