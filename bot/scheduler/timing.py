"""When a job fires: parse what people and flows write ("in 2h", "every 15m", a crontab line, an ISO
time) into APScheduler triggers, and compute the next fire time after a firing.

APScheduler's triggers do the calendar arithmetic (cron fields, time zones, DST); this module only
adds our small grammar on top and turns its errors into messages a person can act on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger


class TimingError(ValueError):
    """A schedule a person or a flow wrote that cannot be understood; `str()` says how to fix it."""


class TriggerKind(StrEnum):
    CRON = "cron"
    INTERVAL = "interval"  # expr: whole seconds
    DATE = "date"  # expr: ISO date-time, fires once


_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hr": 3600, "hour": 3600,
          "d": 86400, "day": 86400, "w": 604800, "week": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+?)s?(?=\d|\s|$)")
MIN_INTERVAL = 1  # seconds
MAX_DURATION = 366 * 86400


def parse_duration(text: str) -> timedelta:
    """`"2h"`, `"90s"`, `"1h30m"`, `"2 hours"`, `"3 days"` → a timedelta."""
    cleaned = text.strip().lower()
    if not cleaned:
        raise TimingError("expected a duration such as 30s, 15m, 2h or 1d")
    total = 0.0
    pos = 0
    for match in _DURATION.finditer(cleaned):
        if cleaned[pos:match.start()].strip():
            break
        unit = _UNITS.get(match.group(2))
        if unit is None:
            raise TimingError(f"unknown time unit {match.group(2)!r} in {text!r} (use s, m, h, d or w)")
        total += float(match.group(1)) * unit
        pos = match.end()
    if pos == 0 or cleaned[pos:].strip():
        raise TimingError(f"cannot read {text!r} as a duration: write it like 30s, 15m, 2h, 1h30m or 1d")
    if total < MIN_INTERVAL:
        raise TimingError(f"{text!r} is too short: the shortest duration is {MIN_INTERVAL} s")
    if total > MAX_DURATION:
        raise TimingError(f"{text!r} is too long: the longest duration is 366 days")
    return timedelta(seconds=total)


_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")  # crontab numbering: 0 and 7 are Sunday
_NUMERIC_DAYS = re.compile(r"^(\*|\d+)(?:-(\d+))?(?:/(\d+))?$")


def crontab_weekdays(cron: str) -> str:
    """Rewrite a crontab line's numeric weekdays as names.

    APScheduler 3.x numbers weekdays from Monday (0 = Monday), while crontab numbers them from
    Sunday (0 and 7 = Sunday, 1-5 = Monday to Friday), and `CronTrigger.from_crontab` passes the
    numbers through (apscheduler issues #286, #455). Names mean the same in both, so numbers become names.
    """
    fields = cron.split()
    if len(fields) != 5:
        return cron  # from_crontab reports the wrong field count
    tokens = []
    for token in fields[4].lower().split(","):
        match = _NUMERIC_DAYS.match(token)
        if match is None or (match.group(1) == "*" and not match.group(3)):
            tokens.append(token)  # names, "*" and anything odd go through unchanged (and are checked there)
            continue
        first, last, step = match.groups()
        start = 0 if first == "*" else int(first)
        end = 6 if first == "*" else int(last) if last is not None else (7 if step else start)
        if not 0 <= start <= 7 or not 0 <= end <= 7 or start > end:
            raise TimingError(f"invalid weekday {token!r} in {cron!r} (use 0-7, where 0 and 7 are Sunday, or names)")
        days = {_CRON_DAYS[d] for d in range(start, end + 1, int(step or 1))}
        tokens.extend(d for d in _CRON_DAYS[:7] if d in days)
    fields[4] = ",".join(dict.fromkeys(tokens))
    return " ".join(fields)


def parse_every(text: str) -> int:
    """An interval as whole seconds."""
    return max(MIN_INTERVAL, round(parse_duration(text).total_seconds()))


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimingError(f"unknown time zone {name!r} (use an IANA name such as UTC or Europe/Berlin)") from None


def trigger_for(*, cron: str | None = None, every: str | None = None, at: datetime | None = None,
                timezone: str = "UTC", anchor: datetime | None = None) -> BaseTrigger:
    """The APScheduler trigger for one of cron / every / at. Raises TimingError with a readable reason."""
    tz = zone(timezone)
    if cron is not None:
        try:
            return CronTrigger.from_crontab(crontab_weekdays(cron), timezone=tz)
        except ValueError as exc:
            raise TimingError(f"invalid cron expression {cron!r}: {exc} (format: minute hour day month weekday, "
                              "e.g. \"0 9 * * 1-5\")") from None
    if every is not None:
        seconds = parse_every(every)
        start = anchor or datetime.now(UTC) + timedelta(seconds=seconds)
        return IntervalTrigger(seconds=seconds, start_date=start, timezone=tz)
    if at is not None:
        when = at if at.tzinfo else at.replace(tzinfo=tz)
        return DateTrigger(run_date=when, timezone=tz)
    raise TimingError("a schedule needs one of cron, every or at")


@dataclass(frozen=True, slots=True)
class Timing:
    """How a job's trigger is stored: kind, expression and time zone, plus the interval's anchor."""

    kind: TriggerKind
    expr: str
    timezone: str = "UTC"
    anchor: datetime | None = None

    def trigger(self) -> BaseTrigger:
        if self.kind is TriggerKind.CRON:
            return trigger_for(cron=self.expr, timezone=self.timezone)
        if self.kind is TriggerKind.INTERVAL:
            return trigger_for(every=f"{self.expr}s", timezone=self.timezone, anchor=self.anchor)
        return trigger_for(at=datetime.fromisoformat(self.expr), timezone=self.timezone)

    def first(self, now: datetime | None = None) -> datetime:
        """The first fire time (for a one-off in the past: that time; it may still fire within the grace)."""
        now = now or datetime.now(UTC)
        if self.kind is TriggerKind.DATE:
            return datetime.fromisoformat(self.expr)
        fire = self.trigger().get_next_fire_time(None, now)
        assert fire is not None
        return fire

    def after(self, now: datetime) -> datetime | None:
        """The next fire time strictly after `now` (None: a one-off that has fired)."""
        if self.kind is TriggerKind.DATE:
            return None
        return self.trigger().get_next_fire_time(None, now + timedelta(milliseconds=1))

    def describe(self) -> str:
        if self.kind is TriggerKind.CRON:
            return f'cron "{self.expr}"' + (f" ({self.timezone})" if self.timezone != "UTC" else "")
        if self.kind is TriggerKind.INTERVAL:
            return f"every {human_duration(int(self.expr))}"
        return f"once at {datetime.fromisoformat(self.expr):%Y-%m-%d %H:%M:%S %Z}".rstrip()

    @classmethod
    def from_schedule(cls, *, cron: str | None, every: str | None, at: datetime | None, timezone: str = "UTC",
                      now: datetime | None = None) -> Timing:
        """Validate and normalise one of cron / every / at."""
        trigger_for(cron=cron, every=every, at=at, timezone=timezone)
        if cron is not None:
            return cls(TriggerKind.CRON, " ".join(cron.split()), timezone)
        if every is not None:
            seconds = parse_every(every)
            return cls(TriggerKind.INTERVAL, str(seconds), timezone,
                       (now or datetime.now(UTC)) + timedelta(seconds=seconds))
        assert at is not None
        when = at if at.tzinfo else at.replace(tzinfo=zone(timezone))
        return cls(TriggerKind.DATE, when.isoformat(), timezone)


def human_duration(seconds: float) -> str:
    seconds = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
