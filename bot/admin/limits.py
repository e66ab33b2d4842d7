"""Rate limits per person and per channel: messages per minute and model spend per day.

Message counts live in PostgreSQL (fixed one-minute windows), so the limit holds across every
worker process; model spend is summed from the runs table (each run records its cost). Owners are
exempt by default so a flood can never lock the people who fix things out of their own bot.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.events import Event, EventKind
from bot.store.people import Person, Role

log = logging.getLogger("switchboard.limits")

ANY_CHANNEL = "*"


class LimitRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages_per_minute: int | None = Field(None, ge=1)
    spend_per_day: float | None = Field(None, ge=0)  # in the model provider's currency (USD for litellm costs)


class LimitSettings(BaseModel):
    """The `limits:` config section."""

    model_config = ConfigDict(extra="forbid")

    person: LimitRule = Field(default_factory=LimitRule)  # each person, across channels
    # Per adapter name (slack, telegram, web, ...); "*" applies to every channel not named.
    channels: dict[str, LimitRule] = Field(default_factory=dict)
    exempt_roles: list[Role] = Field(default_factory=lambda: [Role.OWNER])

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> LimitSettings:
        try:
            return cls.model_validate(section or {})
        except ValidationError as exc:
            details = "; ".join(f"limits.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"invalid limits config: {details}") from None

    def channel_rule(self, channel: str) -> LimitRule:
        return self.channels.get(channel) or self.channels.get(ANY_CHANNEL) or LimitRule()

    @property
    def configured(self) -> bool:
        rules = [self.person, *self.channels.values()]
        return any(r.messages_per_minute or r.spend_per_day is not None for r in rules)


_COUNT = """
INSERT INTO rate_counters (key, window_start, count)
SELECT k, date_trunc('minute', now()), 1 FROM unnest(%s::text[]) AS k
ON CONFLICT (key, window_start) DO UPDATE SET count = rate_counters.count + 1
RETURNING key, count
"""

_SPEND_PERSON = ("SELECT coalesce(sum(cost), 0) FROM runs WHERE person_id = %s "
                 "AND started_at >= date_trunc('day', now(), 'UTC')")
_SPEND_CHANNEL = ("SELECT coalesce(sum(cost), 0) FROM runs WHERE started_at >= date_trunc('day', now(), 'UTC') "
                  "AND conversation LIKE %s")


class RateLimits:
    def __init__(self, pool: AsyncConnectionPool, settings: LimitSettings) -> None:
        self._pool = pool
        self.settings = settings
        self._pruned_at = datetime.min.replace(tzinfo=UTC)

    async def check(self, event: Event, person: Person) -> str | None:
        """None to go ahead, or the reply that tells the person why not and when to try again."""
        if event.kind is EventKind.SCHEDULE or person.role in self.settings.exempt_roles:
            return None
        person_rule = self.settings.person
        channel_rule = self.settings.channel_rule(event.channel)
        keys = []
        if person_rule.messages_per_minute:
            keys.append(f"person:{person.id}")
        if channel_rule.messages_per_minute:
            keys.append(f"channel:{event.channel}")
        async with self._pool.connection() as conn:
            counts: dict[str, int] = {}
            if keys:
                cur = await conn.execute(_COUNT, (keys,))
                counts = {k: c for k, c in await cur.fetchall()}
            now = datetime.now(UTC)
            wait = 60 - now.second
            person_max, channel_max = person_rule.messages_per_minute, channel_rule.messages_per_minute
            if person_max and counts.get(f"person:{person.id}", 0) > person_max:
                return self._refuse(event, person, "person-messages",
                                    f"You're sending messages faster than I take them (limit: "
                                    f"{person_max} a minute). Try again in {wait} s.")
            if channel_max and counts.get(f"channel:{event.channel}", 0) > channel_max:
                return self._refuse(event, person, "channel-messages",
                                    f"This bot is busy on {event.channel} (limit: {channel_max} "
                                    f"messages a minute for the channel). Try again in {wait} s.")
            resets = _until_midnight(now)
            if person_rule.spend_per_day is not None:
                spent = float((await (await conn.execute(_SPEND_PERSON, (person.id,))).fetchone() or (0,))[0])
                if spent >= person_rule.spend_per_day:
                    return self._refuse(event, person, "person-spend",
                                        f"You've used today's model budget (${spent:.2f} of "
                                        f"${person_rule.spend_per_day:.2f}). It resets at midnight UTC, in {resets}.")
            if channel_rule.spend_per_day is not None:
                pattern = event.channel.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ":%"
                spent = float((await (await conn.execute(_SPEND_CHANNEL, (pattern,))).fetchone() or (0,))[0])
                if spent >= channel_rule.spend_per_day:
                    return self._refuse(event, person, "channel-spend",
                                        f"Today's model budget for {event.channel} is used up (${spent:.2f} of "
                                        f"${channel_rule.spend_per_day:.2f}). It resets at midnight UTC, in {resets}.")
            if keys and now - self._pruned_at > timedelta(minutes=10):
                self._pruned_at = now
                await conn.execute("DELETE FROM rate_counters WHERE window_start < now() - interval '1 hour'")
        return None

    @staticmethod
    def _refuse(event: Event, person: Person, limit: str, message: str) -> str:
        log.info("rate limit hit", extra={"person": person.id, "channel": event.channel, "limit": limit,
                                          "event_id": event.id})
        return message


def _until_midnight(now: datetime) -> str:
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    minutes = int((midnight - now).total_seconds() // 60)
    return f"{minutes // 60}h {minutes % 60:02d}m"
