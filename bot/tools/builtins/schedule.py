"""`schedule`: a reminder into the current conversation, later or repeatedly (bot/scheduler)."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.tools.base import ToolContext, ToolError
from bot.tools.decorator import tool


@tool(timeout=10)
async def schedule(ctx: ToolContext, text: str, after: str | None = None, at: str | None = None,
                   every: str | None = None) -> str:
    """Schedule a reminder message into this conversation: once after a delay, once at a time, or repeatedly.

    Args:
        text: the reminder to send.
        after: a delay such as "10m", "2h" or "1d".
        at: an ISO time such as "2026-12-01T09:00+01:00" (UTC when no offset is given).
        every: a repeat interval such as "1d" or "30m".
    """
    scheduler = getattr(ctx.services, "scheduler", None)
    if scheduler is None:
        raise ToolError("the scheduler is not configured on this bot")
    if ctx.event is None or ctx.person is None:
        raise ToolError("a reminder needs a conversation to go to")
    if sum(x is not None for x in (after, at, every)) != 1:
        raise ToolError("give exactly one of `after`, `at` or `every`")
    from bot.scheduler.jobs import JobKind
    from bot.scheduler.timing import Timing, TimingError, parse_duration

    try:
        if after is not None:
            timing = Timing.from_schedule(cron=None, every=None, at=datetime.now(UTC) + parse_duration(after))
        elif at is not None:
            when = datetime.fromisoformat(at.strip())
            when = when if when.tzinfo else when.replace(tzinfo=UTC)
            if when <= datetime.now(UTC):
                raise ToolError(f"{when.isoformat()} is in the past")
            timing = Timing.from_schedule(cron=None, every=None, at=when)
        else:
            timing = Timing.from_schedule(cron=None, every=every, at=None)
    except (TimingError, ValueError) as exc:
        raise ToolError(str(exc)) from None
    job = await scheduler.jobs.add(kind=JobKind.REMINDER, timing=timing, conversation=ctx.event.conversation,
                                   sender=ctx.event.sender, person_id=ctx.person.id, text=text)
    return f"Scheduled reminder {job.id}: {timing.describe()}: {text}"
