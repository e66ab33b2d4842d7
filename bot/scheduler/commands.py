"""`/sb remind` and `/sb schedule`: people schedule reminders and flow runs from any chat.

A person manages their own jobs; admins and owners see and manage everyone's. Jobs that come from a
flow's `schedule:` trigger can be paused and resumed here but are removed by editing the flow.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from bot.commands import CommandContext, command, role_allows
from bot.scheduler.jobs import Job, JobKind, JobSource, JobStatus
from bot.scheduler.timing import Timing, TimingError, TriggerKind, human_duration, parse_duration
from bot.store.people import Role

_REMIND = re.compile(r"^(?:me\s+)?(?P<how>in|at|every)\s+(?P<when>.+?)\s+to\s+(?P<what>.+)$", re.IGNORECASE | re.S)
_REMIND_USAGE = "remind me in <2h|30m|1d> to <what>  (or: at <2026-12-01T09:00>, every <1d>)"
_SCHEDULE_USAGE = 'schedule "<cron>"|every <15m>|at <time> <flow> · schedule list|pause|resume|remove <id>'


def _scheduler(ctx: CommandContext) -> Any:
    return ctx.services["services"].scheduler


def _off() -> str:
    return "The scheduler is switched off on this bot (scheduler.enabled is false in the config)."


def _when(job: Job) -> str:
    if job.status is JobStatus.PAUSED:
        return "paused"
    if job.next_run_at is None:
        return str(job.status)
    return f"next {job.next_run_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _at(job: Job) -> str:
    """When a one-off reminder fires, as a person would say it."""
    if job.next_run_at is None:
        return "as scheduled"
    return f"at {job.next_run_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def describe(job: Job) -> str:
    where = job.conversation.channel + (f":{job.conversation.room}" if job.conversation.room else "")
    origin = " (from the flow file)" if job.source is JobSource.FLOW else ""
    return f"`{job.id}` {job.what()} — {job.timing.describe()}, {_when(job)}, in {where}{origin}"


def _parse_time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise TimingError(f"cannot read {text!r} as a time: write it like 2026-12-01T09:00 (UTC) "
                          "or 2026-12-01T09:00+01:00") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@command("remind", summary="Remind yourself of something later", usage=_REMIND_USAGE)
async def remind_command(ctx: CommandContext) -> str:
    scheduler = _scheduler(ctx)
    if scheduler is None:
        return _off()
    match = _REMIND.match(ctx.text.strip())
    if match is None:
        return f"I could not read that. Usage: `{_prefix(ctx)} {_REMIND_USAGE}`"
    how, when, what = match.group("how").lower(), match.group("when"), match.group("what").strip()
    try:
        if how == "in":
            timing = Timing.from_schedule(cron=None, every=None, at=datetime.now(UTC) + parse_duration(when))
        elif how == "at":
            at = _parse_time(when)
            if at <= datetime.now(UTC):
                return f"{at:%Y-%m-%d %H:%M %Z} is in the past; pick a time in the future."
            timing = Timing.from_schedule(cron=None, every=None, at=at)
        else:
            timing = Timing.from_schedule(cron=None, every=when, at=None)
    except TimingError as exc:
        return f"{exc}. Usage: `{_prefix(ctx)} {_REMIND_USAGE}`"
    refusal = await _over_quota(ctx, scheduler, timing)
    if refusal:
        return refusal
    job = await scheduler.jobs.add(kind=JobKind.REMINDER, timing=timing, conversation=ctx.event.conversation,
                                   sender=ctx.event.sender, person_id=ctx.person.id, text=what)
    when = timing.describe() if how == "every" else _at(job)
    return f"OK, I'll remind you {when}: {what} (job `{job.id}`)"


@command("schedule", summary="Run a flow on a schedule here; list, pause, resume or remove jobs",
         usage=_SCHEDULE_USAGE)
async def schedule_command(ctx: CommandContext) -> str:
    scheduler = _scheduler(ctx)
    if scheduler is None:
        return _off()
    args = ctx.args
    action = args[0].lower() if args else "list"
    if action == "list":
        everyone = role_allows(ctx.person.role, Role.ADMIN)
        jobs = await scheduler.jobs.list(person_id=None if everyone else ctx.person.id)
        if not everyone:
            jobs = [j for j in jobs if j.person_id == ctx.person.id]
        if not jobs:
            return "No scheduled jobs." if everyone else "You have no scheduled jobs."
        return "Scheduled jobs:\n" + "\n".join(f"• {describe(j)}" for j in jobs)
    if action in ("pause", "resume", "remove"):
        if len(args) != 2:
            return f"Usage: `{_prefix(ctx)} schedule {action} <job id>` (ids are in `{_prefix(ctx)} schedule list`)"
        return await _change(ctx, scheduler, action, args[1])
    return await _add(ctx, scheduler, args)


async def _change(ctx: CommandContext, scheduler: Any, action: str, job_id: str) -> str:
    job = await scheduler.jobs.get(job_id)
    mine = job is not None and job.person_id == ctx.person.id
    if job is None or not (mine or role_allows(ctx.person.role, Role.ADMIN)):
        return f"No job `{job_id}` of yours. `{_prefix(ctx)} schedule list` shows your jobs."
    if not mine and ctx.services["services"].audit is not None:  # an admin acting on someone else's job
        await ctx.services["services"].audit.record(ctx.event, ctx.person, "schedule",
                                                    f"ok: {action} job {job_id} of person #{job.person_id}")
    if action == "remove":
        if job.source is JobSource.FLOW:
            return (f"`{job_id}` comes from the `schedule:` trigger of flow {job.flow}: remove it there and run "
                    f"`{_prefix(ctx)} flows reload` (or pause it here).")
        await scheduler.jobs.remove(job_id)
        return f"Removed `{job_id}` ({job.what()})."
    if job.status in (JobStatus.DONE, JobStatus.MISSED):
        ended = "fired" if job.status is JobStatus.DONE else "been missed"
        return f"`{job_id}` has already {ended}; nothing to {action}."
    updated = await scheduler.jobs.set_status(job_id, JobStatus.PAUSED if action == "pause" else JobStatus.ACTIVE)
    return f"{'Paused' if action == 'pause' else 'Resumed'}: {describe(updated)}"


async def _add(ctx: CommandContext, scheduler: Any, args: tuple[str, ...]) -> str:
    usage = f"Usage: `{_prefix(ctx)} {_SCHEDULE_USAGE}`, e.g. `{_prefix(ctx)} schedule \"0 9 * * 1-5\" standup`"
    head = args[0].lower()
    try:
        if head in ("every", "at") and len(args) == 3:
            flow_name = args[2]
            timing = (Timing.from_schedule(cron=None, every=args[1], at=None) if head == "every"
                      else Timing.from_schedule(cron=None, every=None, at=_parse_time(args[1])))
        elif len(args) == 2:
            flow_name = args[1]
            timing = Timing.from_schedule(cron=args[0], every=None, at=None)
        else:
            return usage
    except TimingError as exc:
        return f"{exc}. {usage}"
    runtime = ctx.services["runtime"]
    if runtime.registry.get(flow_name) is None:
        names = ", ".join(sorted(f.spec.name for f in runtime.registry.active())) or "none"
        return f"There is no enabled flow named {flow_name!r} (flows: {names})."
    refusal = await _over_quota(ctx, scheduler, timing)
    if refusal:
        return refusal
    job = await scheduler.jobs.add(kind=JobKind.FLOW, timing=timing, conversation=ctx.event.conversation,
                                   sender=ctx.event.sender, person_id=ctx.person.id, flow=flow_name)
    return f"Scheduled: {describe(job)}"


async def _over_quota(ctx: CommandContext, scheduler: Any, timing: Timing) -> str | None:
    """Members may not set very frequent jobs or pile up many; admins and owners may."""
    if role_allows(ctx.person.role, Role.ADMIN):
        return None
    settings = scheduler.settings
    if timing.kind is TriggerKind.INTERVAL and int(timing.expr) < settings.min_interval:
        return f"That is too often: the shortest repeat is every {human_duration(settings.min_interval)}."
    if timing.kind is TriggerKind.CRON:
        first = timing.first()
        following = timing.after(first)
        if following is not None and (following - first).total_seconds() < settings.min_interval:
            return f"That is too often: the shortest repeat is every {human_duration(settings.min_interval)}."
    if len(await scheduler.jobs.list(person_id=ctx.person.id)) >= settings.max_jobs_per_person:
        return (f"You already have {settings.max_jobs_per_person} scheduled jobs; remove one first "
                f"(`{_prefix(ctx)} schedule list`).")
    return None


def _prefix(ctx: CommandContext) -> str:
    return str(ctx.services["services"].config.bot.command_prefix)


COMMANDS = [remind_command, schedule_command]
