"""The seam between `LLM` (retries, fallbacks, accounting) and whatever puts one attempt on the wire.

A transport makes exactly one HTTP attempt and either returns a Completion or raises: an LLMError
(or any exception `errors.from_exception` can map) for a model failure, `ConsumerFailed` when the
caller's `on_delta` raised. It never retries: every attempt must be counted by `LLM`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bot.llm.completion import Completion
from bot.llm.models import ResolvedModel

DeltaCallback = Callable[[str], Awaitable[None]]


class ConsumerFailed(Exception):
    """The caller's `on_delta` raised: not the model's fault, so never retried or wrapped."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


class Transport(Protocol):
    """One attempt at one model. `delivered[0]` becomes True once any text went to `on_delta`."""

    async def attempt(
        self,
        target: ResolvedModel,
        request: dict[str, Any],
        call_timeout: float,
        on_delta: DeltaCallback | None,
        delivered: list[bool],
    ) -> Completion: ...

    async def warm_up(self) -> None:
        """Load now what the first call would otherwise wait for."""
        ...


async def deliver(on_delta: DeltaCallback, text: str, delivered: list[bool]) -> None:
    """Hand a piece of text to the caller; its own failure is marked so that it is never retried."""
    delivered[0] = True
    try:
        await on_delta(text)
    except Exception as exc:
        raise ConsumerFailed(exc) from exc
