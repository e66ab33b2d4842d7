"""The `scheduler:` config section: defaults, and errors that name the key."""

from __future__ import annotations

import pytest

from bot.scheduler.settings import SchedulerSettings


def test_defaults_fire_late_jobs_within_an_hour() -> None:
    settings = SchedulerSettings.from_config({})
    assert settings.enabled and settings.misfire_grace == 3600 and settings.min_interval == 60


def test_a_bad_value_names_the_key() -> None:
    with pytest.raises(ValueError, match=r"invalid scheduler config: scheduler\.misfire_grace: "):
        SchedulerSettings.from_config({"misfire_grace": -1})
    with pytest.raises(ValueError, match=r"scheduler\.grace: Extra inputs are not permitted"):
        SchedulerSettings.from_config({"grace": 10})
