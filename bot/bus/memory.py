"""`memory://`: the in-process bus, one asyncio lane per conversation.

Each conversation gets a FIFO lane drained by at most one task, which is what keeps one
conversation's messages in order while a semaphore bounds how many handlers run at once overall.
With an `EventJournal` (PostgreSQL in the app) accepted events survive a crash: they are recorded
before they are queued and replayed by `start()` until completed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import AsyncIterator

from bot.bus.base import Bus, BusStats, EventHandler, EventJournal, handle_with_retries
from bot.events import Event, Reply

log = logging.getLogger("switchboard.bus")

_RECENT_IDS = 100_000  # in-process dedupe window when no journal is configured
_STOP = object()


class BusClosed(RuntimeError):
    """Raised by `publish` once the bus is stopping: the caller should retry on another process."""


class MemoryBus(Bus):
    url = "memory://"

    def __init__(
        self,
        *,
        journal: EventJournal | None = None,
        max_concurrency: int = 256,
        max_attempts: int = 3,
        retry_delay: float = 0.2,
    ) -> None:
        self._journal = journal
        self._slots = asyncio.Semaphore(max_concurrency)
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self._handler: EventHandler | None = None
        self._lanes: dict[str, deque[Event]] = {}
        self._drainers: dict[str, asyncio.Task[None]] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._outboxes: dict[str, asyncio.Queue[object]] = {}
        self._closing = False
        self._stats = BusStats()

    async def start(self) -> None:
        self._closing = False
        if self._journal is None:
            return
        pending = await self._journal.pending()
        if pending:
            log.info("replaying events accepted before the last stop", extra={"count": len(pending)})
        for event in pending:
            self._remember(event.id)
            self._enqueue(event)

    async def stop(self, *, drain_timeout: float = 10.0) -> None:
        self._closing = True
        drainers = list(self._drainers.values())
        if drainers:
            _done, still_running = await asyncio.wait(drainers, timeout=drain_timeout)
            for task in still_running:
                task.cancel()
            if still_running:
                await asyncio.gather(*still_running, return_exceptions=True)
                log.warning(
                    "stopped with work in flight; it stays journaled and resumes at the next start",
                    extra={"conversations": len(still_running)},
                )
        for queue in self._outboxes.values():
            queue.put_nowait(_STOP)

    async def publish(self, event: Event) -> bool:
        if self._closing:
            raise BusClosed("the bus is stopping; event not accepted")
        if event.id in self._recent:
            self._stats.duplicates += 1
            return False
        if self._journal is not None and not await self._journal.record(event):
            self._remember(event.id)
            self._stats.duplicates += 1
            return False
        self._remember(event.id)
        self._enqueue(event)
        return True

    def consume(self, handler: EventHandler) -> None:
        self._handler = handler
        for key, lane in self._lanes.items():
            if lane and key not in self._drainers:
                self._spawn(key)

    async def send(self, reply: Reply) -> None:
        self._outbox(reply.conversation.channel).put_nowait(reply)

    async def replies(self, adapter: str) -> AsyncIterator[Reply]:  # type: ignore[override]
        queue = self._outbox(adapter)
        while True:
            item = await queue.get()
            if item is _STOP:
                return
            assert isinstance(item, Reply)
            yield item

    def stats(self) -> BusStats:
        self._stats.queued = sum(len(lane) for lane in self._lanes.values())
        return self._stats

    # -- internals -------------------------------------------------------------------------

    def _outbox(self, adapter: str) -> asyncio.Queue[object]:
        queue = self._outboxes.get(adapter)
        if queue is None:
            queue = self._outboxes[adapter] = asyncio.Queue()
        return queue

    def _remember(self, event_id: str) -> None:
        self._recent[event_id] = None
        if len(self._recent) > _RECENT_IDS:
            self._recent.popitem(last=False)

    def _enqueue(self, event: Event) -> None:
        key = event.conversation.key
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = deque()
        lane.append(event)
        if self._handler is not None and key not in self._drainers:
            self._spawn(key)

    def _spawn(self, key: str) -> None:
        self._drainers[key] = asyncio.get_running_loop().create_task(self._drain(key), name=f"lane:{key}")

    async def _drain(self, key: str) -> None:
        lane = self._lanes[key]
        try:
            while lane and not self._closing:
                event = lane[0]
                async with self._slots:
                    self._stats.in_flight += 1
                    try:
                        await self._handle(event)
                    finally:
                        self._stats.in_flight -= 1
                lane.popleft()
        finally:
            del self._drainers[key]
            if not lane:
                self._lanes.pop(key, None)

    async def _handle(self, event: Event) -> None:
        assert self._handler is not None
        error = await handle_with_retries(
            self._handler, event, max_attempts=self._max_attempts, retry_delay=self._retry_delay, stats=self._stats
        )
        if not error:
            self._stats.handled += 1
            if self._journal is not None:
                await self._journal.complete(event.id)
            return
        self._stats.dead_lettered += 1
        log.error("event dead-lettered after repeated failures", extra={"event_id": event.id})
        if self._journal is not None:
            await self._journal.complete(event.id, failed=True, error=error)
