"""The `scheduler:` section of the config."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class SchedulerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # A job whose time passed while no Switchboard process ran still fires at the next start if it is
    # at most this many seconds late; older occurrences are skipped (a one-off is then marked missed).
    misfire_grace: float = Field(3600.0, ge=0)
    # How often a process that does not hold the scheduler lock tries to take it over (seconds).
    leader_retry: float = Field(5.0, gt=0)
    # The leader re-reads all jobs this often even without a change notification (seconds).
    resync: float = Field(30.0, gt=0)
    # Guards against chat-made jobs flooding a conversation; admins and owners are exempt.
    min_interval: float = Field(60.0, ge=1)  # shortest `every` / remind interval a member may set (seconds)
    max_jobs_per_person: int = Field(20, ge=1)  # active or paused jobs a member may have at once

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> SchedulerSettings:
        try:
            return cls.model_validate(section or {})
        except ValidationError as exc:
            details = "; ".join(f"scheduler.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"invalid scheduler config: {details}") from None
