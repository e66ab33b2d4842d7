"""Per-model counters for today (UTC): calls, failures, attempts, tokens and cost, for `/sb status`.

In-process only and reset at midnight UTC; the durable per-step record (tokens and cost of each
node) is written by the flow engine with the run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any


@dataclass
class ModelDay:
    calls: int = 0
    failures: int = 0
    attempts: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0


def _utc_today() -> date:
    return datetime.now(UTC).date()


class UsageCounter:
    """Thread-safe counters keyed by the litellm model string that was called."""

    def __init__(self, today: Callable[[], date] = _utc_today) -> None:
        self._today = today
        self._day = today()
        self._models: dict[str, ModelDay] = {}
        self._lock = threading.Lock()

    def _roll(self) -> None:
        day = self._today()
        if day != self._day:
            self._day = day
            self._models = {}

    def record(
        self, model: str, *, ok: bool, attempts: int, tokens_in: int = 0, tokens_out: int = 0, cost: float = 0.0
    ) -> None:
        with self._lock:
            self._roll()
            entry = self._models.setdefault(model, ModelDay())
            if ok:
                entry.calls += 1
            else:
                entry.failures += 1
            entry.attempts += attempts
            entry.tokens_in += tokens_in
            entry.tokens_out += tokens_out
            entry.cost += cost

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """`{model: {calls, failures, attempts, tokens_in, tokens_out, cost}}` since midnight UTC."""
        with self._lock:
            self._roll()
            return {model: asdict(entry) for model, entry in sorted(self._models.items())}
