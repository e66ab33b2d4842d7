"""Shared scaffolding for the benchmarks: a real App on a throwaway embedded PostgreSQL, and an
adapter that timestamps when each turn ends. Figures are printed, never asserted."""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from adapters.base import Adapter, AdapterContext
from bot.config import Config
from bot.events import ConversationRef, Event, EventKind, Reply, ReplyKind, Sender

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


class TimingAdapter(Adapter):
    """Publishes events and records, per event, when its turn ended."""

    name = "bench"
    wants_turn_end = True

    def __init__(self) -> None:
        self.sent_at: dict[str, float] = {}
        self.done_at: dict[str, float] = {}
        self.replies = 0
        self._all_done = asyncio.Event()
        self._expected = 0
        self.context: AdapterContext | None = None

    async def start(self, context: AdapterContext) -> None:
        self.context = context

    async def stop(self) -> None:
        pass

    async def send(self, reply: Reply) -> str:
        if reply.kind is ReplyKind.TURN_END:
            self.done_at[reply.in_reply_to] = time.perf_counter()
            if len(self.done_at) >= self._expected:
                self._all_done.set()
        elif not reply.partial:
            self.replies += 1
        return reply.id

    def expect(self, count: int) -> None:
        self._expected = count
        self._all_done.clear()
        self.sent_at.clear()
        self.done_at.clear()
        self.replies = 0

    async def publish(self, text: str, conversation: str) -> None:
        assert self.context is not None
        event = Event(
            id=f"bench:{uuid.uuid4().hex}",
            kind=EventKind.MESSAGE,
            channel="bench",
            conversation=ConversationRef("bench", conversation),
            sender=Sender("bench", conversation),
            text=text,
            mentioned=True,
        )
        self.sent_at[event.id] = time.perf_counter()
        await self.context.bus.publish(event)

    async def wait(self, timeout: float) -> None:
        await asyncio.wait_for(self._all_done.wait(), timeout)

    def latencies_ms(self) -> list[float]:
        return sorted((self.done_at[k] - self.sent_at[k]) * 1000 for k in self.done_at if k in self.sent_at)


def bench_config(flow_dir: Path, data_dir: Path, **overrides: Any) -> Config:
    data: dict[str, Any] = {
        "data_dir": str(data_dir),
        "database": {"url": os.environ.get("BENCH_DATABASE_URL", ""), "pool_min": 4, "pool_max": 16},
        "flows": {"paths": [str(flow_dir)], "default": "bench"},
        "logging": {"level": "WARNING", "format": "text"},
    }
    for key, value in overrides.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return Config.model_validate(data)


def temp_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def summary(latencies: list[float]) -> str:
    return (
        f"p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms, "
        f"mean {statistics.fmean(latencies):.1f} ms"
    )
