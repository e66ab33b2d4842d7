"""Choose a bus implementation from its URL."""

from __future__ import annotations

from bot.bus.base import Bus, EventJournal


class UnsupportedBusURL(ValueError):
    pass


def open_bus(url: str, *, journal: EventJournal | None = None, max_concurrency: int = 256, role: str = "all") -> Bus:
    """`memory://` for one process, `redis://host:port/db` for Redis Streams.

    `role` (all, gateway, worker) labels the process in the Redis bus's worker registry.
    """
    scheme = url.split("://", 1)[0] if "://" in url else url
    if scheme in ("memory", ""):
        from bot.bus.memory import MemoryBus

        return MemoryBus(journal=journal, max_concurrency=max_concurrency)
    if scheme in ("redis", "rediss"):
        try:
            from bot.bus.redis import RedisBus
        except ImportError as exc:  # pragma: no cover - arrives with the Redis bus
            raise UnsupportedBusURL(f"bus {url!r}: the Redis Streams bus is not available ({exc})") from exc
        bus = RedisBus(url, journal=journal, max_concurrency=max_concurrency)
        bus.role = role
        return bus
    raise UnsupportedBusURL(f"bus URL {url!r}: unknown scheme {scheme!r}; use memory:// or redis://host:6379/0")
