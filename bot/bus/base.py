"""The `Bus` contract, shared by every implementation.

Guarantees callers can rely on, whatever the transport:

* per-conversation ordering: two events of one conversation are never handled at once, and are
  handled in the order they were published; different conversations run concurrently;
* at-least-once delivery with dedupe on `Event.id` (a redelivered event is dropped at `publish`);
* bounded concurrency (at most `max_concurrency` handlers running);
* a dead-letter place for events whose handler keeps failing;
* `stop()` finishes in-flight work or parks it so nothing accepted is lost.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from bot.events import Event, Reply

log = logging.getLogger("switchboard.bus")

EventHandler = Callable[[Event], Awaitable[None]]


@dataclass(slots=True)
class BusStats:
    queued: int = 0
    in_flight: int = 0
    handled: int = 0
    duplicates: int = 0
    failed: int = 0
    dead_lettered: int = 0


async def handle_with_retries(
    handler: EventHandler, event: Event, *, max_attempts: int, retry_delay: float, stats: BusStats
) -> str:
    """Run `handler` on `event`, retrying in-process with a growing delay; the last error, or "" on success.

    Shared by every bus so a failing handler is retried, counted and logged the same way everywhere;
    what happens after the last failure (dead-letter, redelivery) is the bus's own business.
    """
    error = ""
    for attempt in range(1, max_attempts + 1):
        try:
            await handler(event)
            return ""
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            stats.failed += 1
            log.exception("event handler failed", extra={"event_id": event.id, "attempt": attempt})
            if attempt < max_attempts:
                await asyncio.sleep(retry_delay * attempt)
    return error


class EventJournal(abc.ABC):
    """Durable record of accepted events: the dedupe memory and the crash-recovery list.

    A bus records an event before it is queued and completes it after its handler returns, so an
    event accepted but not handled when the process died is handed out again at the next start.
    """

    @abc.abstractmethod
    async def record(self, event: Event) -> bool:
        """Store the event; False when its id was seen before (a duplicate)."""

    @abc.abstractmethod
    async def complete(self, event_id: str, *, failed: bool = False, error: str = "") -> None:
        """Mark the event handled (or dead-lettered when `failed`)."""

    @abc.abstractmethod
    async def pending(self) -> list[Event]:
        """Events recorded but never completed, oldest first."""


class Bus(abc.ABC):
    """Moves `Event`s from adapters to flow workers and `Reply`s back to adapters."""

    url: str = ""

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect, and hand out again any event accepted but not finished before a crash."""

    @abc.abstractmethod
    async def stop(self, *, drain_timeout: float = 10.0) -> None:
        """Stop taking events; let in-flight handlers finish for up to `drain_timeout` seconds.

        Whatever is still queued stays recorded in the journal (or the stream) and runs after the
        next start.
        """

    @abc.abstractmethod
    async def publish(self, event: Event) -> bool:
        """Accept an event for handling. Returns False when it is a duplicate (already accepted)."""

    @abc.abstractmethod
    def consume(self, handler: EventHandler) -> None:
        """Register the worker-side handler. Events published before this are held until then."""

    @abc.abstractmethod
    async def send(self, reply: Reply) -> None:
        """Queue an outbound reply for the adapter named by `reply.conversation.channel`."""

    @abc.abstractmethod
    def replies(self, adapter: str) -> AsyncIterator[Reply]:
        """Iterate the replies addressed to one adapter, in send order, until the bus stops."""

    @abc.abstractmethod
    def stats(self) -> BusStats:
        """Queue depth and counters for `/sb status` and the benchmarks."""
