"""The conversation bus: events in, replies out, ordered per conversation.

`memory://` (one process) is the default; `redis://` runs gateways and workers apart. Callers only
ever see `Bus`; `open_bus(url)` picks the implementation.
"""

from bot.bus.base import Bus, EventHandler, EventJournal
from bot.bus.factory import open_bus

__all__ = ["Bus", "EventHandler", "EventJournal", "open_bus"]
