"""What people and flows may write as a schedule, and what they are told when it is wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.scheduler.timing import Timing, TimingError, TriggerKind, human_duration, parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("2h", 7200), ("90s", 90), ("1h30m", 5400), ("2 hours", 7200), ("3 days", 259200), ("1w", 604800),
    ("15 min", 900),
])
def test_durations_read_like_people_write_them(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(("text", "message"), [
    ("", "expected a duration"), ("soon", "cannot read 'soon'"), ("2x", "unknown time unit 'x'"),
    ("0s", "too short"), ("400d", "too long"),
])
def test_bad_durations_say_how_to_write_them(text: str, message: str) -> None:
    with pytest.raises(TimingError, match=message):
        parse_duration(text)


def test_a_cron_schedule_fires_on_its_fields_and_names_the_format_when_wrong() -> None:
    timing = Timing.from_schedule(cron="0 9 * * 1-5", every=None, at=None)
    monday_night = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)
    assert timing.first(monday_night) == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    friday_ten = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    assert timing.after(friday_ten) == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # skips the weekend
    with pytest.raises(TimingError, match=r"invalid cron expression .*minute hour day month weekday"):
        Timing.from_schedule(cron="0 9 * *", every=None, at=None)


def test_cron_honours_the_time_zone() -> None:
    timing = Timing.from_schedule(cron="0 9 * * *", every=None, at=None, timezone="Europe/Berlin")
    assert timing.first(datetime(2026, 11, 24, 0, 0, tzinfo=UTC)) == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    with pytest.raises(TimingError, match="unknown time zone 'Mars/Base'"):
        Timing.from_schedule(cron="0 9 * * *", every=None, at=None, timezone="Mars/Base")


def test_an_interval_keeps_its_grid_across_firings() -> None:
    start = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    timing = Timing.from_schedule(cron=None, every="15m", at=None, now=start)
    assert timing.kind is TriggerKind.INTERVAL and timing.expr == "900"
    assert timing.first(start) == start + timedelta(minutes=15)
    late = start + timedelta(minutes=31)  # a firing that ran late does not shift the grid
    assert timing.after(late) == start + timedelta(minutes=45)
    assert timing.describe() == "every 15m"


def test_a_one_off_fires_once() -> None:
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    timing = Timing.from_schedule(cron=None, every=None, at=at)
    assert timing.first() == at and timing.after(at) is None


def test_human_durations() -> None:
    assert human_duration(3725) == "1h2m5s" and human_duration(0) == "0s"


@pytest.mark.parametrize(("cron", "weekdays"), [
    ("0 9 * * 1-5", {0, 1, 2, 3, 4}),  # Monday to Friday, as in crontab(5) — not APScheduler 3's Tuesday to Saturday
    ("0 9 * * 0", {6}), ("0 9 * * 7", {6}), ("0 9 * * 6,0", {5, 6}), ("0 9 * * mon-fri", {0, 1, 2, 3, 4}),
])
def test_cron_weekday_numbers_follow_crontab(cron: str, weekdays: set[int]) -> None:
    timing = Timing.from_schedule(cron=cron, every=None, at=None)
    fire, seen = datetime(2026, 11, 23, 0, 0, tzinfo=UTC), set()
    for _ in range(14):
        fire = timing.after(fire)
        assert fire is not None
        seen.add(fire.weekday())
    assert seen == weekdays


def test_a_bad_weekday_is_named() -> None:
    with pytest.raises(TimingError, match="invalid weekday '9'"):
        Timing.from_schedule(cron="0 9 * * 9", every=None, at=None)
