"""`current_time`: models do not know what time it is."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.tools.base import ToolError
from bot.tools.decorator import tool


@tool(timeout=5)
def current_time(timezone: str = "UTC") -> dict[str, str]:
    """The current date and time.

    Args:
        timezone: an IANA time zone name such as "Europe/Paris" or "America/New_York".
    """
    try:
        zone = ZoneInfo(timezone) if timezone.upper() != "UTC" else UTC
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(f"unknown time zone {timezone!r}; use an IANA name like Europe/Paris") from None
    now = datetime.now(zone)
    return {"iso": now.isoformat(timespec="seconds"), "weekday": now.strftime("%A"), "timezone": timezone}
