"""The scheduler: fires reminders and scheduled flow runs, once, from whichever process leads.

Every Switchboard process runs one `Scheduler`, but only the process holding a PostgreSQL advisory
lock (taken with `pg_try_advisory_lock` on a dedicated connection, re-tried by the others every
`leader_retry` seconds) loads the jobs into an APScheduler `AsyncIOScheduler` and fires them. If the
leader dies its connection closes, the lock is released, and another process takes over. The jobs
themselves live in PostgreSQL (`bot/scheduler/jobs.py`), so they survive restarts; APScheduler's
misfire grace decides whether an occurrence missed while nothing ran still fires.

A firing first claims the occurrence in the database (compare-and-set on `next_run_at`), then:
a reminder is sent straight into its conversation as a `Reply`; a flow job publishes a `schedule`
event (`meta.flow` names the flow) into its conversation, so the flow runs like any other and
replies proactively through the normal bus and adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.events import ConversationRef, Event, EventKind, Reply, Sender
from bot.scheduler.jobs import CHANNEL, Job, JobKind, JobStore
from bot.scheduler.settings import SchedulerSettings
from bot.scheduler.timing import Timing, TimingError

log = logging.getLogger("switchboard.scheduler")

LOCK_KEY = 0x5357_5343  # "SWSC": one scheduler leader per database
SCHEDULER_USER = "switchboard-scheduler"


@dataclass(slots=True)
class _Loaded:
    revision: int
    expected: datetime | None  # the job's next_run_at as this leader last saw or set it
    job: Job


class Scheduler:
    def __init__(self, services: Any, settings: SchedulerSettings) -> None:
        self.services = services
        self.settings = settings
        self.jobs = JobStore(services.store.pool)
        self.is_leader = False
        self.fired = 0  # occurrences this process fired (for `/sb status` and tests)
        self._aps: AsyncIOScheduler | None = None
        self._loaded: dict[str, _Loaded] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._leading = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._aps = AsyncIOScheduler(timezone=UTC, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": max(1, int(self.settings.misfire_grace)),
        })
        self._aps.add_listener(self._on_missed, EVENT_JOB_MISSED)
        self._aps.start(paused=True)
        self._task = asyncio.create_task(self._lead_forever(), name="scheduler-leader")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._aps is not None and self._aps.running:
            self._aps.shutdown(wait=False)

    async def wait_leading(self, within: float) -> bool:
        """True once this process leads (tests and `status`)."""
        try:
            await asyncio.wait_for(self._leading.wait(), within)
            return True
        except TimeoutError:
            return False

    async def _lead_forever(self) -> None:
        url = self.services.store.url
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                    while not await self._try_lock(conn):  # noqa: ASYNC110 -- polling the lock is the election
                        await asyncio.sleep(self.settings.leader_retry)
                    await conn.execute(f"LISTEN {CHANNEL}")
                    await self._step_up()
                    while True:
                        async for _note in conn.notifies(timeout=self.settings.resync, stop_after=1):
                            pass
                        await conn.execute("SELECT 1")  # notices a dead connection (and so a lost lock)
                        await self.reconcile()
            except asyncio.CancelledError:
                self._step_down()
                raise
            except Exception as exc:
                if self.is_leader:
                    log.warning("scheduler lost its lock connection; stepping down",
                                extra={"error": f"{type(exc).__name__}: {exc}"})
                else:
                    log.warning("scheduler cannot reach the database", extra={"error": f"{type(exc).__name__}"})
                self._step_down()
            await asyncio.sleep(self.settings.leader_retry)

    @staticmethod
    async def _try_lock(conn: psycopg.AsyncConnection) -> bool:
        row = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,))).fetchone()
        return bool(row and row[0])

    async def _step_up(self) -> None:
        assert self._aps is not None
        self.is_leader = True
        log.info("this process now fires scheduled jobs")
        await self.reconcile()
        self._aps.resume()
        self._leading.set()

    def _step_down(self) -> None:
        self.is_leader = False
        self._leading.clear()
        if self._aps is not None and self._aps.running:
            self._aps.pause()
            self._aps.remove_all_jobs()
        self._loaded.clear()

    # -- keeping APScheduler in step with the table ----------------------------------------

    async def reconcile(self) -> None:
        """Load new and changed active jobs into APScheduler and drop the ones that are gone or paused."""
        if not self.is_leader or self._aps is None:
            return
        async with self._lock:
            active = await self.jobs.active()
            seen = set()
            for job in active:
                seen.add(job.id)
                loaded = self._loaded.get(job.id)
                if loaded and loaded.revision == job.revision and loaded.expected == job.next_run_at:
                    continue
                if job.next_run_at is None:
                    continue
                try:
                    trigger = job.timing.trigger()
                except TimingError as exc:  # e.g. a time zone this machine's tz database lacks
                    log.error("scheduled job cannot be timed; skipped", extra={"job": job.id, "error": str(exc)})
                    continue
                # The name is what APScheduler logs: never the reminder's text.
                self._aps.add_job(self._fire, trigger=trigger, id=job.id, args=[job.id],
                                  name=f"{job.kind}:{job.id}", next_run_time=job.next_run_at, replace_existing=True)
                self._loaded[job.id] = _Loaded(job.revision, job.next_run_at, job)
            for job_id in set(self._loaded) - seen:
                self._forget(job_id)

    def _forget(self, job_id: str) -> None:
        self._loaded.pop(job_id, None)
        if self._aps is not None:
            with contextlib.suppress(JobLookupError):
                self._aps.remove_job(job_id)

    # -- firing ----------------------------------------------------------------------------

    async def _fire(self, job_id: str) -> None:
        async with self._lock:
            loaded = self._loaded.get(job_id)
            if not self.is_leader or loaded is None or loaded.expected is None:
                return
            scheduled = loaded.expected
            next_run = loaded.job.timing.after(datetime.now(UTC))
            job = await self.jobs.claim(job_id, expected=scheduled, next_run=next_run)
            if job is None:
                log.info("job occurrence not claimed (changed, paused or taken elsewhere)", extra={"job": job_id})
                self._loaded.pop(job_id, None)
                refresh = True
            else:
                refresh = False
                if job.next_run_at is None:
                    self._forget(job_id)
                else:
                    self._loaded[job_id] = _Loaded(job.revision, job.next_run_at, job)
        if refresh:
            await self.reconcile()
            return
        assert job is not None
        try:
            await self._deliver(job, scheduled)
        except Exception as exc:
            # Hand the occurrence back so the next leader (or start) fires it within the misfire grace.
            await self.jobs.release(job_id, taken=job.next_run_at, back_to=scheduled)
            async with self._lock:
                self._loaded.pop(job_id, None)
            log.warning("scheduled job could not be delivered; it will be retried",
                        extra={"job": job_id, "error": f"{type(exc).__name__}: {exc}"})
            return
        self.fired += 1
        log.info("scheduled job fired", extra={"job": job_id, "kind": str(job.kind), "flow": job.flow,
                                               "scheduled_for": scheduled.isoformat()})

    async def _deliver(self, job: Job, scheduled: datetime) -> None:
        bus = self.services.bus
        if job.kind is JobKind.REMINDER:
            who = f" for {job.sender.name}" if job.sender and job.sender.name else ""
            await bus.send(Reply(conversation=job.conversation, text=f"⏰ Reminder{who}: {job.text}",
                                 in_thread=bool(job.conversation.thread), meta={"job": job.id}))
            return
        sender = job.sender or Sender(job.conversation.channel, SCHEDULER_USER, "scheduler", is_bot=True)
        await bus.publish(Event(
            id=f"schedule:{job.id}:{int(scheduled.timestamp())}", kind=EventKind.SCHEDULE,
            channel=job.conversation.channel, conversation=job.conversation, sender=sender, text=job.text,
            meta={"flow": job.flow, "job": job.id, "scheduled_for": scheduled.isoformat()},
        ))

    def _on_missed(self, event: JobExecutionEvent) -> None:
        task = asyncio.get_running_loop().create_task(self._missed(event.job_id, event.scheduled_run_time))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _missed(self, job_id: str, scheduled: datetime) -> None:
        async with self._lock:
            loaded = self._loaded.get(job_id)
            if loaded is None or loaded.expected is None:
                return
            next_run = loaded.job.timing.after(datetime.now(UTC))
            await self.jobs.skip(job_id, expected=loaded.expected, next_run=next_run)
            if next_run is None:
                self._forget(job_id)
            else:
                loaded.expected = next_run
        log.warning("scheduled job missed its time by more than the misfire grace; skipped",
                    extra={"job": job_id, "scheduled_for": scheduled.isoformat(),
                           "misfire_grace": self.settings.misfire_grace})

    # -- flows with `schedule:` triggers ---------------------------------------------------

    async def sync_flows(self, flows: Iterable[Any]) -> tuple[int, int]:
        """Give every `schedule:` trigger of the given (active) flows a job; drop jobs of the others."""
        wanted: dict[str, tuple[str, Timing, ConversationRef]] = {}
        for flow in flows:
            for index, trigger in enumerate(flow.spec.triggers):
                schedule = getattr(trigger, "schedule", None)
                if schedule is None:
                    continue
                timing = Timing.from_schedule(cron=schedule.cron, every=schedule.every, at=schedule.at,
                                              timezone=schedule.timezone)
                ref = ConversationRef(channel=schedule.channel, room=schedule.room, space=schedule.space,
                                      thread=schedule.thread)
                wanted[f"flow:{flow.spec.name}:{index}"] = (flow.spec.name, timing, ref)
        changed, removed = await self.jobs.sync_flow_jobs(wanted)
        if changed or removed:
            log.info("flow schedules updated", extra={"changed": changed, "removed": removed})
        return changed, removed


async def attach(services: Any) -> None:
    """Start this process's scheduler (it fires jobs only while it holds the leader lock)."""
    settings = SchedulerSettings.from_config(services.config.scheduler)
    if not settings.enabled:
        return
    scheduler = Scheduler(services, settings)
    await scheduler.start()
    services.scheduler = scheduler
