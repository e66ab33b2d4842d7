"""`redis://`: the conversation bus on Redis Streams, so gateways and workers can run in many processes.

Why this shape
--------------
Inbound events go to one of N *partition streams* (`<prefix>in:{p}`, p = crc32(conversation key) % N),
so every event of a conversation lands in one stream, in publish order. Each partition is **leased** to
exactly one worker at a time (`<prefix>lease:<p>`, SET NX PX, renewed by the worker's heartbeat). Only
the lease holder reads that stream (XREADGROUP in the shared `workers` consumer group); inside the
worker each conversation gets an in-process FIFO lane drained by one task, as in `MemoryBus`. Hence:

* one conversation is handled in stream order, never twice at once, by whichever worker holds its
  partition; different conversations run concurrently, and partitions spread over the live workers
  (each takes about N / workers; a worker over its share hands partitions back once their running
  handlers finish, parking what it had buffered for the next owner);
* a plain consumer group alone would not do: it hands consecutive entries of one partition to
  different consumers, so one conversation's messages would race each other.

Delivery and recovery
---------------------
* An entry is XACKed (and XDELed, so the stream length *is* the backlog) only after its handler
  returned and the optional `EventJournal` marked it complete: at-least-once.
* While it works, a worker re-touches its entries every heartbeat (XCLAIM JUSTID resets their idle
  time), so an entry idle for longer than the visibility timeout belongs to a dead or stalled worker.
* A worker that takes over a partition first waits until every pending entry there is idle for the
  visibility timeout, reclaims them all with XAUTOCLAIM (in stream order) and handles them before
  reading anything new, which keeps the order across the handover. A graceful hand-back marks its
  left-over entries idle at once (XCLAIM IDLE), so a rolling restart does not wait.
* Fencing: a worker that could not renew a lease stops starting handlers for that partition and
  cancels the running ones shortly *before* the lease can expire in Redis, so the next owner never
  overlaps it. The limit: a handler that blocks the event loop longer than the visibility timeout
  can still overlap its successor; handlers must be async and idempotent (flow runs are persisted).
* Dedupe: `SET NX PX` on `<prefix>seen:{p}:<event id>` in the same Lua call as the XADD (fast, bounded
  by `dedupe_ttl`), plus the durable `EventJournal` when one is given.
* A handler that raises is retried in process (`max_attempts`); an entry handed out more than
  `max_deliveries` times (its workers kept dying) is not run again. Both go to the dead-letter
  stream `<prefix>dead` with the error; `dead_letters()` lists them and `replay_dead()` re-queues one.
* Replies go to `<prefix>replies:<adapter>`, read through the `gateways` consumer group, so with
  several gateways holding one adapter each reply is sent by one of them; an entry is acked when the
  consumer asks for the next reply (i.e. after it was sent), and a dead gateway's replies are reclaimed.
* Back-pressure: `publish` raises `BusFull` when a partition holds `max_queued` unhandled events
  (streams are also capped with MAXLEN ~ as a backstop); a worker buffers at most `prefetch` entries.

Keys share the configurable prefix (default `switchboard:`); partition keys carry a `{p}` hash tag so
the Lua calls stay within one cluster slot. Every process of one deployment must use the same prefix
and partition count (checked at start).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import socket
import time
import uuid
import zlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from bot.bus.base import Bus, BusStats, EventHandler, EventJournal, handle_with_retries
from bot.bus.memory import BusClosed
from bot.events import Event, Reply

log = logging.getLogger("switchboard.bus")

WORKER_GROUP = "workers"
GATEWAY_GROUP = "gateways"
# Replies read at once by a gateway: small, because a reply pending longer than the visibility timeout
# (a slow, rate-limited send) could be reclaimed by another gateway and sent twice.
_REPLY_BATCH = 5

# publish: dedupe, refuse when full, append. ARGV: ttl ms ('0' = no dedupe), refuse-at ('0' = never),
# MAXLEN backstop, event id, payload. Returns the entry id, 0 for a duplicate, -1 when full.
_PUBLISH = """
if ARGV[1] ~= '0' then
  if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
end
local cap = tonumber(ARGV[2])
if cap > 0 and redis.call('XLEN', KEYS[2]) >= cap then
  if ARGV[1] ~= '0' then redis.call('DEL', KEYS[1]) end
  return -1
end
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'id', ARGV[4], 'e', ARGV[5])
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Move one dead letter back to its partition; nil when another process replayed it first.
_REPLAY = """
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then return false end
local fields = found[1][2]
local event_id, payload = '', ''
for i = 1, #fields, 2 do
  if fields[i] == 'id' then event_id = fields[i + 1] elseif fields[i] == 'e' then payload = fields[i + 1] end
end
local new_id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'id', event_id, 'e', payload)
redis.call('XDEL', KEYS[1], ARGV[1])
return new_id
"""


class BusUnavailable(RuntimeError):
    """Redis could not take the event; the caller should ask the platform to retry later (HTTP 503)."""


class BusFull(BusUnavailable):
    """A partition holds `max_queued` unhandled events: workers are down or far behind."""


class BusMisconfigured(ValueError):
    """Options that would break the guarantees, e.g. processes disagreeing on the partition count."""


class PartitionState(StrEnum):
    RECOVERING = "recovering"  # reclaiming the previous owner's pending entries; nothing new read yet
    ACTIVE = "active"
    RELEASING = "releasing"  # handing back: no new reads, draining what is buffered


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One live process on the bus, as announced by its heartbeat (for `/sb status`)."""

    id: str
    role: str
    host: str
    pid: int
    started: float
    last_seen: float
    in_flight: int
    handled: int
    consuming: bool
    partitions: tuple[int, ...]

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> WorkerInfo:
        parts = data.get("partitions", "")
        return cls(
            id=data["id"],
            role=data.get("role", ""),
            host=data.get("host", ""),
            pid=int(data.get("pid", 0)),
            started=float(data.get("started", 0)),
            last_seen=float(data.get("last_seen", 0)),
            in_flight=int(data.get("in_flight", 0)),
            handled=int(data.get("handled", 0)),
            consuming=data.get("consuming") == "1",
            partitions=tuple(int(p) for p in parts.split(",") if p),
        )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    entry_id: str  # id in the dead-letter stream, the handle for `replay_dead`
    event_id: str
    event: Event | None  # None when the payload could not be decoded (`payload` keeps it)
    payload: str
    error: str
    failed_at: float
    deliveries: int
    worker: str


@dataclass(slots=True)
class _Item:
    entry_id: str
    partition: int
    event: Event
    payload: str
    deliveries: int


@dataclass(slots=True)
class _Lease:
    partition: int
    deadline: float  # monotonic time after which we must not act for this partition
    state: PartitionState = PartitionState.RECOVERING
    held: dict[str, _Item] = field(default_factory=dict)  # buffered or running, not yet acked
    lanes: dict[str, deque[_Item]] = field(default_factory=dict)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    helper: asyncio.Task[None] | None = None  # the recovery or release task
    fence_timer: asyncio.TimerHandle | None = None  # fires at `deadline` unless the lease is renewed


_URL_OPTIONS = ("prefix", "partitions", "visibility_timeout")


def split_bus_url(url: str) -> tuple[str, dict[str, str]]:
    """Separate our options (`?prefix=acme:&partitions=32`) from the URL redis-py connects to."""
    parts = urlsplit(url)
    ours, theirs = {}, []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _URL_OPTIONS:
            ours[key] = value
        else:
            theirs.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(theirs))), ours


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class RedisBus(Bus):
    """The `Bus` contract over Redis Streams; see the module docstring for how it keeps its guarantees."""

    def __init__(
        self,
        url: str,
        *,
        journal: EventJournal | None = None,
        max_concurrency: int = 256,
        prefix: str | None = None,
        partitions: int | None = None,
        visibility_timeout: float | None = None,
        max_attempts: int = 3,
        retry_delay: float = 0.2,
        max_deliveries: int = 5,
        max_queued: int = 10_000,
        prefetch: int | None = None,
        dedupe_ttl: float = 24 * 3600,
        reply_maxlen: int = 100_000,
        dead_maxlen: int = 10_000,
        block: float = 1.0,
        role: str = "",
    ) -> None:
        redis_url, options = split_bus_url(url)
        try:
            self._partitions = int(partitions if partitions is not None else options.get("partitions", 16))
            vt = float(visibility_timeout if visibility_timeout is not None else options.get("visibility_timeout", 15))
        except ValueError as exc:
            raise BusMisconfigured(f"bus URL {redact_url(url)!r}: {exc}") from exc
        if self._partitions < 1:
            raise BusMisconfigured(f"partitions must be at least 1, got {self._partitions}")
        if vt < 0.3:
            raise BusMisconfigured(f"visibility_timeout must be at least 0.3 s, got {vt}")
        if max_attempts < 1 or max_deliveries < 1 or max_queued < 1 or max_concurrency < 1:
            raise BusMisconfigured("max_attempts, max_deliveries, max_queued and max_concurrency must be >= 1")
        self.url = redact_url(url)
        self._redis_url = redis_url
        self._prefix = prefix if prefix is not None else options.get("prefix", "switchboard:")
        self._journal = journal
        self._max_concurrency = max_concurrency
        self._slots = asyncio.Semaphore(max_concurrency)
        self._vt = vt
        self._vt_ms = int(vt * 1000)
        self._interval = vt / 3  # heartbeat, lease renewal and entry touches
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self._max_deliveries = max_deliveries
        self._max_queued = max_queued
        self._prefetch = prefetch or max(256, 4 * max_concurrency)
        self._dedupe_ttl_ms = int(dedupe_ttl * 1000)
        self._reply_maxlen = reply_maxlen
        self._dead_maxlen = dead_maxlen
        self._block_ms = max(1, int(block * 1000))
        # Shown in the heartbeat (`/sb status`); set by the app from `--role`. Empty: worker if consuming, else gateway.
        self.role = role
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._started_at = time.time()

        self._redis: aioredis.Redis | None = None
        self._handler: EventHandler | None = None
        self._leases: dict[int, _Lease] = {}
        self._reading: frozenset[int] = frozenset()
        self._reader: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._reader_wake = asyncio.Event()
        self._heartbeat_wake = asyncio.Event()
        self._heartbeat_stop = False
        self._replies_stop = asyncio.Event()
        self._reply_readers = 0
        self._closing = True
        self._queued = 0
        self._stats = BusStats()
        self._stream_partition = {self._stream(p): p for p in range(self._partitions)}

    # -- keys ------------------------------------------------------------------------------------

    def _stream(self, partition: int) -> str:
        return f"{self._prefix}in:{{{partition}}}"

    def _seen(self, partition: int, event_id: str) -> str:
        return f"{self._prefix}seen:{{{partition}}}:{event_id}"

    def _lease_key(self, partition: int) -> str:
        return f"{self._prefix}lease:{partition}"

    def _reply_stream(self, adapter: str) -> str:
        return f"{self._prefix}replies:{adapter}"

    @property
    def _dead(self) -> str:
        return f"{self._prefix}dead"

    @property
    def _workers_key(self) -> str:
        return f"{self._prefix}workers"

    def _worker_key(self, worker_id: str) -> str:
        return f"{self._prefix}worker:{worker_id}"

    def partition_of(self, conversation_key: str) -> int:
        """Stable across processes and restarts (unlike `hash()`), so all agree where a conversation lives."""
        return zlib.crc32(conversation_key.encode()) % self._partitions

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def partitions(self) -> int:
        return self._partitions

    @property
    def _r(self) -> aioredis.Redis:
        if self._redis is None:
            raise BusClosed("the Redis bus is not started")
        return self._redis

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        client = aioredis.from_url(self._redis_url, decode_responses=True, socket_connect_timeout=5)
        try:
            await client.ping()
            meta = f"{self._prefix}meta"
            await client.hsetnx(meta, "partitions", self._partitions)
            agreed = int(await client.hget(meta, "partitions") or self._partitions)
        except RedisError as exc:
            await client.aclose()
            raise BusUnavailable(f"cannot reach Redis at {self.url}: {exc}") from exc
        if agreed != self._partitions:
            await client.aclose()
            raise BusMisconfigured(
                f"Redis at {self.url} (prefix {self._prefix!r}) was set up with {agreed} partitions but this "
                f"process has {self._partitions}; every process must use partitions={agreed}, or a new prefix"
            )
        self._redis = client
        self._publish_script = client.register_script(_PUBLISH)
        self._renew_script = client.register_script(_RENEW)
        self._release_script = client.register_script(_RELEASE)
        self._replay_script = client.register_script(_REPLAY)
        await self._create_groups()
        self._closing = False
        self._replies_stop.clear()
        await self._replay_journal()
        self._heartbeat_stop = False
        self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name="bus:heartbeat")
        if self._handler is not None:
            self._start_reader()
        log.info("redis bus started", extra={"worker": self.worker_id, "bus": self.url, "prefix": self._prefix})

    async def _create_groups(self) -> None:
        """The `workers` group on every partition, from the start of the stream: nothing published is skipped."""
        pipe = self._r.pipeline(transaction=False)
        for p in range(self._partitions):
            pipe.xgroup_create(self._stream(p), WORKER_GROUP, id="0", mkstream=True)
        for result in await pipe.execute(raise_on_error=False):
            if isinstance(result, Exception) and "BUSYGROUP" not in str(result):
                raise BusUnavailable(f"cannot create the worker group on {self.url}: {result}")

    async def stop(self, *, drain_timeout: float = 10.0) -> None:
        if self._redis is None:
            return
        self._closing = True
        await _cancel(self._reader)
        self._reader = None
        lanes = [t for lease in self._leases.values() for t in lease.tasks.values()]
        if lanes:
            _done, running = await asyncio.wait(lanes, timeout=drain_timeout)
            if running:
                log.warning(
                    "stopping with handlers still running; their events are handed to another worker",
                    extra={"handlers": len(running), "worker": self.worker_id},
                )
        for lease in list(self._leases.values()):
            await self._park(lease)
        # Let the heartbeat finish its tick: one cancelled mid-pipeline could re-announce us after we left.
        self._heartbeat_stop = True
        self._heartbeat_wake.set()
        if self._heartbeat is not None:
            await asyncio.wait({self._heartbeat}, timeout=max(self._interval, 0.5) + 1)
            await _cancel(self._heartbeat)
        self._heartbeat = None
        with contextlib.suppress(RedisError):
            await self._r.delete(self._worker_key(self.worker_id))
            await self._r.zrem(self._workers_key, self.worker_id)
        self._replies_stop.set()
        for _ in range(100):  # let reply iterators ack what was sent and return (at most 1 s)
            if not self._reply_readers:
                break
            await asyncio.sleep(0.01)
        await self._r.aclose()
        self._redis = None
        log.info("redis bus stopped", extra={"worker": self.worker_id})

    async def abandon(self) -> None:
        """Drop everything at once, as a crashed process would: no ack, no hand-back, leases left to expire.

        For chaos tests and last-resort exits; other workers recover the work after the visibility timeout.
        """
        self._closing = True
        tasks = [self._reader, self._heartbeat]
        for lease in self._leases.values():
            tasks.extend(lease.tasks.values())
            tasks.append(lease.helper)
            if lease.fence_timer is not None:
                lease.fence_timer.cancel()
        for task in tasks:
            await _cancel(task)
        self._leases.clear()
        self._reader = self._heartbeat = None
        self._replies_stop.set()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    # -- publishing ------------------------------------------------------------------------------

    async def publish(self, event: Event) -> bool:
        if self._closing:
            raise BusClosed("the bus is stopping or not started; event not accepted")
        payload = _encode(event)
        partition = self.partition_of(event.conversation.key)
        refuse_at = self._max_queued
        try:
            if self._journal is not None:
                # Check room before the journal records it: a refused event must stay acceptable later.
                if await self._r.xlen(self._stream(partition)) >= self._max_queued:
                    raise self._full(partition)
                if not await self._journal.record(event):
                    self._stats.duplicates += 1
                    return False
                refuse_at = 0  # recorded: from here on it must get in (MAXLEN is the backstop)
            result = await self._append(partition, event.id, payload, dedupe=True, refuse_at=refuse_at)
        except RedisError as exc:
            raise BusUnavailable(f"Redis bus at {self.url} did not take event {event.id!r}: {exc}") from exc
        if result == 0:
            self._stats.duplicates += 1
            return False
        if result == -1:
            raise self._full(partition)
        return True

    async def _append(self, partition: int, event_id: str, payload: str, *, dedupe: bool, refuse_at: int) -> Any:
        return await self._publish_script(
            keys=[self._seen(partition, event_id), self._stream(partition)],
            args=[self._dedupe_ttl_ms if dedupe else 0, refuse_at, 2 * self._max_queued, event_id, payload],
        )

    def _full(self, partition: int) -> BusFull:
        return BusFull(
            f"partition {partition} already holds {self._max_queued} unhandled events: start more workers, "
            "check that they are running, or raise max_queued"
        )

    async def _replay_journal(self) -> None:
        """Re-queue events the journal accepted but nobody finished; the seen-keys skip those still queued."""
        if self._journal is None:
            return
        requeued = 0
        for event in await self._journal.pending():
            partition = self.partition_of(event.conversation.key)
            result = await self._append(partition, event.id, _encode(event), dedupe=True, refuse_at=0)
            requeued += result not in (0, -1)
        if requeued:
            log.info("re-queued journaled events that never reached Redis", extra={"count": requeued})

    # -- consuming -------------------------------------------------------------------------------

    def consume(self, handler: EventHandler) -> None:
        self._handler = handler
        if self._redis is not None and not self._closing:
            self._start_reader()

    def _start_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read_loop(), name="bus:reader")
            self._heartbeat_wake.set()  # take partitions now rather than at the next tick

    async def _read_loop(self) -> None:
        backoff = 0.1
        while not self._closing:
            active = [p for p, lease in self._leases.items() if lease.state is PartitionState.ACTIVE]
            room = self._prefetch - sum(len(lease.held) for lease in self._leases.values())
            if not active or room <= 0:
                self._reader_wake.clear()
                await _wait_event(self._reader_wake, self._interval)
                continue
            self._reading = frozenset(active)
            try:
                response = await self._r.xreadgroup(
                    WORKER_GROUP,
                    self.worker_id,
                    {self._stream(p): ">" for p in active},
                    count=min(room, 100),
                    block=self._block_ms,
                )
                backoff = 0.1
            except RedisError as exc:
                log.warning("reading the partitions failed; retrying", extra={"error": str(exc)})
                if "NOGROUP" in str(exc):  # Redis lost its data (restart without persistence): set up again
                    with contextlib.suppress(RedisError, BusUnavailable):
                        await self._create_groups()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            finally:
                self._reading = frozenset()
            for stream, entries in response or ():
                partition = self._stream_partition[stream]
                lease = self._leases.get(partition)
                if lease is None or lease.state is PartitionState.RECOVERING:
                    continue  # lost it meanwhile: the entries stay pending for the next owner
                for entry_id, fields in entries:
                    await self._accept(lease, entry_id, fields, deliveries=1)

    async def _accept(self, lease: _Lease, entry_id: str, fields: dict[str, str] | None, *, deliveries: int) -> None:
        payload = (fields or {}).get("e", "")
        try:
            event = Event.from_dict(json.loads(payload))
        except (ValueError, KeyError, TypeError) as exc:
            event_id = (fields or {}).get("id", "")
            await self._dead_letter(
                lease.partition, entry_id, event_id, payload, f"undecodable entry: {exc}", deliveries
            )
            return
        item = _Item(entry_id, lease.partition, event, payload, deliveries)
        lease.held[entry_id] = item
        key = event.conversation.key
        lane = lease.lanes.setdefault(key, deque())
        lane.append(item)
        if key not in lease.tasks:
            lease.tasks[key] = asyncio.create_task(self._drain(lease, key), name=f"lane:{key}")

    def _owns(self, lease: _Lease) -> bool:
        return self._leases.get(lease.partition) is lease and time.monotonic() < lease.deadline

    async def _drain(self, lease: _Lease, key: str) -> None:
        lane = lease.lanes[key]
        try:
            # Releasing: finish the running handler only; the rest is parked for the next owner.
            while lane and not self._closing and lease.state is not PartitionState.RELEASING:
                item = lane[0]
                try:
                    if not await self._process(lease, item):
                        return
                except Exception:  # a bug, not a handler error: leave the entry pending for the next owner
                    log.exception("processing an entry failed", extra={"partition": lease.partition})
                    return
                lane.popleft()
                lease.held.pop(item.entry_id, None)
                self._reader_wake.set()
        finally:
            lease.tasks.pop(key, None)
            if not lane:
                lease.lanes.pop(key, None)

    async def _process(self, lease: _Lease, item: _Item) -> bool:
        """Handle one entry; False when the partition was lost and the entry is left to its next owner."""
        if item.deliveries > self._max_deliveries:
            if not self._owns(lease):
                return False
            error = f"handed out {item.deliveries} times without finishing (workers died or stopped mid-run)"
            await self._dead_letter(item.partition, item.entry_id, item.event.id, item.payload, error, item.deliveries)
            return True
        async with self._slots:
            if not self._owns(lease):
                return False
            self._stats.in_flight += 1
            try:
                error = await self._run(item.event)
            finally:
                self._stats.in_flight -= 1
        if error:
            await self._dead_letter(item.partition, item.entry_id, item.event.id, item.payload, error, item.deliveries)
            return True
        await self._complete_journal(item.event.id)
        stream = self._stream(item.partition)
        await self._retrying(
            "ack", lambda pipe: (pipe.xack(stream, WORKER_GROUP, item.entry_id), pipe.xdel(stream, item.entry_id))
        )
        self._stats.handled += 1
        return True

    async def _run(self, event: Event) -> str:
        """Run the handler with in-process retries; the last error, or '' on success."""
        assert self._handler is not None
        return await handle_with_retries(
            self._handler, event, max_attempts=self._max_attempts, retry_delay=self._retry_delay, stats=self._stats
        )

    async def _dead_letter(
        self, partition: int, entry_id: str, event_id: str, payload: str, error: str, deliveries: int
    ) -> None:
        self._stats.dead_lettered += 1
        log.error(
            "event dead-lettered",
            extra={"event_id": event_id, "partition": partition, "error": error, "deliveries": deliveries},
        )
        if event_id:
            await self._complete_journal(event_id, failed=True, error=error)
        stream = self._stream(partition)
        fields = {
            "id": event_id,
            "e": payload,
            "error": error,
            "partition": partition,
            "deliveries": deliveries,
            "worker": self.worker_id,
            "at": time.time(),
        }

        def move(pipe: Any) -> None:  # one MULTI/EXEC: never in both streams, never in neither
            pipe.xadd(self._dead, fields, maxlen=self._dead_maxlen, approximate=True)
            pipe.xack(stream, WORKER_GROUP, entry_id)
            pipe.xdel(stream, entry_id)

        await self._retrying("dead-letter", move, transaction=True)

    async def _complete_journal(self, event_id: str, *, failed: bool = False, error: str = "") -> None:
        if self._journal is None:
            return
        try:
            await self._journal.complete(event_id, failed=failed, error=error)
        except Exception:
            log.exception("could not mark the event complete in the journal", extra={"event_id": event_id})

    async def _retrying(self, what: str, build: Any, *, transaction: bool = False) -> None:
        """Run a small pipeline, retrying through short Redis blips; an entry left unacked is redone later."""
        for attempt in range(4):
            try:
                pipe = self._r.pipeline(transaction=transaction)
                build(pipe)
                await pipe.execute()
                return
            except RedisError as exc:
                if attempt == 3:
                    log.error(f"{what} failed; the entry will be handled again", extra={"error": str(exc)})
                    return
                await asyncio.sleep(0.1 * 2**attempt)

    # -- partition leases ------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while not self._heartbeat_stop:
            began = time.monotonic()
            try:
                async with asyncio.timeout(max(self._interval, 0.5)):
                    await self._tick()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("bus heartbeat failed", extra={"error": str(exc) or type(exc).__name__})
            self._fence_expired()
            if self._heartbeat_stop:
                return
            self._heartbeat_wake.clear()
            await _wait_event(self._heartbeat_wake, max(0.0, self._interval - (time.monotonic() - began)))

    async def _tick(self) -> None:
        r = self._r
        now = time.time()
        sent = time.monotonic()
        leases = list(self._leases.values())
        pipe = r.pipeline(transaction=False)
        me = self._worker_key(self.worker_id)
        pipe.hset(me, mapping=self._announcement(now))
        pipe.pexpire(me, self._vt_ms)
        pipe.zadd(self._workers_key, {self.worker_id: now})
        pipe.zremrangebyscore(self._workers_key, "-inf", now - 10 * self._vt)
        for p in range(self._partitions):
            pipe.xlen(self._stream(p))
        renewals: list[tuple[_Lease, int]] = []
        for lease in leases:
            renewals.append((lease, len(pipe)))
            lease_key = self._lease_key(lease.partition)
            await self._renew_script(keys=[lease_key], args=[self.worker_id, self._vt_ms], client=pipe)  # queues it
            if lease.held:  # reset their idle time: they are being worked on
                stream = self._stream(lease.partition)
                pipe.xclaim(stream, WORKER_GROUP, self.worker_id, 0, list(lease.held), justid=True)
        results = await pipe.execute(raise_on_error=False)
        self._queued = sum(n for n in results[4 : 4 + self._partitions] if isinstance(n, int))
        for lease, index in renewals:
            renewed = results[index]
            if renewed == 1 and self._leases.get(lease.partition) is lease:
                self._extend(lease, sent)
            elif renewed == 0:
                self._fence(lease, "another worker holds its lease")
        if self._handler is not None and not self._closing:
            await self._balance()

    def _announcement(self, now: float) -> dict[str, Any]:
        consuming = self._handler is not None and not self._closing
        return {
            "id": self.worker_id,
            "role": self.role or ("worker" if consuming else "gateway"),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": self._started_at,
            "last_seen": now,
            "in_flight": self._stats.in_flight,
            "handled": self._stats.handled,
            "consuming": int(consuming),
            "partitions": ",".join(str(p) for p in sorted(self._leases)),
        }

    async def _balance(self) -> None:
        """Hold about N / consumers partitions: take free ones, hand back extras after draining them."""
        consumers = {w.id for w in await self.workers() if w.consuming} | {self.worker_id}
        share = math.ceil(self._partitions / len(consumers))
        keeping = [lease for lease in self._leases.values() if lease.state is not PartitionState.RELEASING]
        if len(keeping) > share:
            for lease in sorted(keeping, key=lambda lease: lease.partition)[share:]:
                lease.state = PartitionState.RELEASING
                lease.helper = asyncio.create_task(self._release(lease), name=f"bus:release:{lease.partition}")
            return
        wanted = share - len(keeping)
        start = zlib.crc32(self.worker_id.encode()) % self._partitions
        for offset in range(self._partitions):
            if wanted <= 0 or self._closing:
                break
            p = (start + offset) % self._partitions
            if p in self._leases:
                continue
            sent = time.monotonic()
            if await self._r.set(self._lease_key(p), self.worker_id, nx=True, px=self._vt_ms):
                lease = self._leases[p] = _Lease(p, deadline=0.0)
                self._extend(lease, sent)
                lease.helper = asyncio.create_task(self._recover(lease), name=f"bus:recover:{p}")
                wanted -= 1
                log.info("took partition", extra={"partition": p, "worker": self.worker_id})

    async def _recover(self, lease: _Lease) -> None:
        """Take over what the previous owner left pending, in stream order, before reading anything new."""
        stream = self._stream(lease.partition)
        while self._owns(lease):
            try:
                total = (await self._r.xpending(stream, WORKER_GROUP))["pending"]
                if total:
                    ripe = await self._r.xpending_range(stream, WORKER_GROUP, "-", "+", total, idle=self._vt_ms)
                    if len(ripe) < total:  # the previous owner may still be finishing: wait for the timeout
                        await asyncio.sleep(min(self._interval, 0.25))
                        continue
                    await self._claim_all(lease, stream)
                break
            except RedisError as exc:
                log.warning(
                    "recovering a partition failed; retrying", extra={"partition": lease.partition, "error": str(exc)}
                )
                if "NOGROUP" in str(exc):
                    with contextlib.suppress(RedisError, BusUnavailable):
                        await self._create_groups()
                await asyncio.sleep(self._interval)
        if self._owns(lease):
            lease.state = PartitionState.ACTIVE
            lease.helper = None
            self._reader_wake.set()

    async def _claim_all(self, lease: _Lease, stream: str) -> None:
        claimed: list[tuple[str, dict[str, str] | None]] = []
        cursor = "0-0"
        while True:
            cursor, entries, deleted = (
                await self._r.xautoclaim(stream, WORKER_GROUP, self.worker_id, self._vt_ms, cursor, count=200)
            )[:3]
            claimed.extend(entries)
            if deleted:
                log.error(
                    "pending entries were trimmed from the stream before they were handled",
                    extra={"partition": lease.partition, "entries": len(deleted)},
                )
            if cursor == "0-0":
                break
        if not claimed:
            return
        pending = await self._r.xpending_range(
            stream, WORKER_GROUP, claimed[0][0], claimed[-1][0], len(claimed), consumername=self.worker_id
        )
        deliveries = {row["message_id"]: int(row["times_delivered"]) for row in pending}
        log.warning(
            "reclaimed events a previous worker left unfinished",
            extra={"partition": lease.partition, "entries": len(claimed), "worker": self.worker_id},
        )
        for entry_id, fields in claimed:
            await self._accept(lease, entry_id, fields, deliveries=deliveries.get(entry_id, 2))

    async def _release(self, lease: _Lease) -> None:
        """Hand a partition back once its running handlers finished (bounded by the visibility timeout)."""
        give_up = time.monotonic() + self._vt
        # Polls three conditions that change in different places; 20 ms is cheap next to a hand-over.
        while (lease.tasks or lease.partition in self._reading) and time.monotonic() < give_up and self._owns(lease):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        lease.helper = None
        await self._park(lease)
        self._heartbeat_wake.set()

    async def _park(self, lease: _Lease) -> None:
        """Give a partition up: cancel what still runs and let the next owner take its entries at once."""
        for task in [*lease.tasks.values(), lease.helper]:
            if task is not asyncio.current_task():
                await _cancel(task)
        ids = list(lease.held)
        if self._leases.get(lease.partition) is lease:
            del self._leases[lease.partition]
        if lease.fence_timer is not None:
            lease.fence_timer.cancel()
        try:
            if ids:
                await self._r.xclaim(
                    self._stream(lease.partition),
                    WORKER_GROUP,
                    self.worker_id,
                    0,
                    ids,
                    idle=2 * self._vt_ms,
                    justid=True,
                )
            await self._release_script(keys=[self._lease_key(lease.partition)], args=[self.worker_id])
        except RedisError as exc:
            log.warning(
                "partition left without hand-over; it is taken after the visibility timeout",
                extra={"partition": lease.partition, "error": str(exc)},
            )
        log.info("released partition", extra={"partition": lease.partition, "parked": len(ids)})

    def _extend(self, lease: _Lease, sent: float) -> None:
        """The lease was set or renewed by a command sent at `sent`: Redis keeps it until at least sent + vt.

        We stop acting a little before that (a timer, not the next heartbeat), so a successor never overlaps.
        """
        lease.deadline = sent + self._vt - self._interval / 2
        if lease.fence_timer is not None:
            lease.fence_timer.cancel()
        delay = max(0.0, lease.deadline - time.monotonic())
        lease.fence_timer = asyncio.get_running_loop().call_later(
            delay, self._fence, lease, "its lease could not be renewed in time"
        )

    def _fence_expired(self) -> None:
        now = time.monotonic()
        for lease in list(self._leases.values()):
            if now >= lease.deadline:
                self._fence(lease, "its lease could not be renewed in time")

    def _fence(self, lease: _Lease, reason: str) -> None:
        """Lost a partition: stop at once so we never overlap its next owner; entries stay pending for it."""
        if self._leases.get(lease.partition) is not lease:
            return
        del self._leases[lease.partition]
        if lease.fence_timer is not None:
            lease.fence_timer.cancel()
        for task in [*lease.tasks.values(), lease.helper]:
            if task is not None:
                task.cancel()
        log.warning("gave up a partition", extra={"partition": lease.partition, "reason": reason})

    # -- replies ---------------------------------------------------------------------------------

    async def send(self, reply: Reply) -> None:
        try:
            await self._r.xadd(
                self._reply_stream(reply.conversation.channel),
                {"r": json.dumps(reply.to_dict(), separators=(",", ":"))},
                maxlen=self._reply_maxlen,
                approximate=True,
            )
        except RedisError as exc:
            raise BusUnavailable(f"Redis bus at {self.url} did not take reply {reply.id!r}: {exc}") from exc

    async def replies(self, adapter: str) -> AsyncIterator[Reply]:  # type: ignore[override]
        stream = self._reply_stream(adapter)
        self._reply_readers += 1
        try:
            with contextlib.suppress(ResponseError):  # BUSYGROUP: another gateway made it
                await self._r.xgroup_create(stream, GATEWAY_GROUP, id="0", mkstream=True)
            last_reclaim = 0.0
            backoff = 0.1
            while not self._replies_stop.is_set():
                try:
                    batch: list[tuple[str, dict[str, str] | None]] = []
                    if time.monotonic() - last_reclaim >= self._interval:  # a dead gateway's replies
                        last_reclaim = time.monotonic()
                        batch = (
                            await self._r.xautoclaim(
                                stream, GATEWAY_GROUP, self.worker_id, self._vt_ms, "0-0", count=100
                            )
                        )[1]
                    if not batch:
                        batch = await self._read_replies(stream)
                    backoff = 0.1
                except RedisError as exc:
                    log.warning("reading replies failed; retrying", extra={"adapter": adapter, "error": str(exc)})
                    if "NOGROUP" in str(exc):
                        with contextlib.suppress(RedisError):
                            await self._r.xgroup_create(stream, GATEWAY_GROUP, id="0", mkstream=True)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                for entry_id, fields in batch:
                    try:
                        reply = Reply.from_dict(json.loads((fields or {})["r"]))
                    except (ValueError, KeyError, TypeError) as exc:
                        log.error(
                            "dropped an undecodable reply",
                            extra={"adapter": adapter, "entry": entry_id, "error": str(exc)},
                        )
                    else:
                        yield reply  # resumed once the caller has sent it: only then is it acked
                    if self._redis is None:
                        return  # stopped meanwhile: it stays pending and another gateway sends it
                    await self._retrying(
                        "reply ack",
                        lambda pipe, e=entry_id: (pipe.xack(stream, GATEWAY_GROUP, e), pipe.xdel(stream, e)),
                    )
        finally:
            self._reply_readers -= 1

    async def _read_replies(self, stream: str) -> list[tuple[str, dict[str, str] | None]]:
        read = asyncio.ensure_future(
            self._r.xreadgroup(GATEWAY_GROUP, self.worker_id, {stream: ">"}, count=_REPLY_BATCH, block=self._block_ms)
        )
        stopping = asyncio.ensure_future(self._replies_stop.wait())
        try:
            await asyncio.wait({read, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not read.done():  # stopping: anything delivered meanwhile stays pending and is reclaimed
            await _cancel(read)
            return []
        response = read.result()
        return [entry for _stream, entries in response or () for entry in entries]

    # -- dead letters ----------------------------------------------------------------------------

    async def dead_letters(self, limit: int = 50) -> list[DeadLetter]:
        """The newest dead letters first, for `/sb runs`."""
        letters = []
        for entry_id, fields in await self._r.xrevrange(self._dead, count=limit):
            payload = fields.get("e", "")
            try:
                event: Event | None = Event.from_dict(json.loads(payload))
            except (ValueError, KeyError, TypeError):
                event = None
            letters.append(
                DeadLetter(
                    entry_id=entry_id,
                    event_id=fields.get("id", ""),
                    event=event,
                    payload=payload,
                    error=fields.get("error", ""),
                    failed_at=float(fields.get("at", 0)),
                    deliveries=int(fields.get("deliveries", 0)),
                    worker=fields.get("worker", ""),
                )
            )
        return letters

    async def replay_dead(self, entry_id: str) -> bool:
        """Queue a dead letter again (after the bug is fixed), at the end of its conversation; False if gone."""
        found = await self._r.xrange(self._dead, entry_id, entry_id)
        if not found:
            return False
        fields = found[0][1]
        try:
            partition = self.partition_of(Event.from_dict(json.loads(fields.get("e", ""))).conversation.key)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"dead letter {entry_id} cannot be replayed: its payload does not decode ({exc})") from exc
        moved = await self._replay_script(
            keys=[self._dead, self._stream(partition)], args=[entry_id, 2 * self._max_queued]
        )
        if moved:
            log.info("replayed a dead letter", extra={"event_id": fields.get("id", ""), "entry": entry_id})
        return bool(moved)

    async def discard_dead(self, entry_id: str) -> bool:
        return bool(await self._r.xdel(self._dead, entry_id))

    # -- status ----------------------------------------------------------------------------------

    async def workers(self) -> list[WorkerInfo]:
        """Processes whose heartbeat is fresh (within the visibility timeout)."""
        ids = await self._r.zrangebyscore(self._workers_key, time.time() - self._vt, "+inf")
        if not ids:
            return []
        pipe = self._r.pipeline(transaction=False)
        for worker_id in ids:
            pipe.hgetall(self._worker_key(worker_id))
        return [WorkerInfo.from_hash(data) for data in await pipe.execute() if data]

    async def depth(self) -> int:
        """Events queued or running, over all partitions, right now."""
        pipe = self._r.pipeline(transaction=False)
        for p in range(self._partitions):
            pipe.xlen(self._stream(p))
        self._queued = sum(await pipe.execute())
        return self._queued

    def owned_partitions(self) -> dict[int, PartitionState]:
        return {p: lease.state for p, lease in sorted(self._leases.items())}

    def stats(self) -> BusStats:
        """Counters of this process; `queued` is the whole bus backlog as of the last heartbeat."""
        self._stats.queued = self._queued
        return self._stats


def _encode(event: Event) -> str:
    try:
        return json.dumps(event.to_dict(), separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"event {event.id!r} cannot cross the Redis bus: its meta must be plain JSON ({exc})") from exc


async def _wait_event(event: asyncio.Event, seconds: float) -> None:
    """Sleep until the event is set or the timeout passes.

    `asyncio.timeout`, not `wait_for`: on 3.11 `wait_for` can turn a cancellation that coincides
    with its timeout into a TimeoutError, and a loop that suppresses it would never stop.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


async def _cancel(task: asyncio.Future[Any] | None) -> None:
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
