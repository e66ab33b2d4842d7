"""Wires the admin feature into `Services`: the audit log and, when configured, the rate limits."""

from __future__ import annotations

from typing import Any

from bot.admin.audit import AuditLog
from bot.admin.limits import LimitSettings, RateLimits


async def attach(services: Any) -> None:
    services.audit = AuditLog(services.store.pool)
    settings = LimitSettings.from_config(services.config.limits)
    services.limits = RateLimits(services.store.pool, settings) if settings.configured else None
