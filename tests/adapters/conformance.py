"""The adapter conformance contract: what every channel adapter must do, tested one way.

A new adapter is one fake plus one harness away from this suite: write
`tests/adapters/harness_<name>.py` with an async fixture named `<name>_harness` (module scope)
that yields a `PlatformHarness`; `test_conformance.py` finds it and runs every check below on it.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from adapters.base import Adapter
from bot.bus.memory import MemoryBus


@dataclass(slots=True)
class SentMessage:
    """A message the fake platform received from the adapter, in neutral terms."""

    room: str
    text: str
    thread: str = ""
    buttons: list[str] = field(default_factory=list)  # button labels, when rendered natively
    edited: bool = False


class PlatformHarness(abc.ABC):
    """A started adapter wired to a `MemoryBus` and to a local fake of its platform."""

    name: str
    adapter: Adapter
    bus: MemoryBus
    supports_buttons: bool
    max_chars: int
    # A room (channel/chat/mailbox) where the bot answers every message.
    room: str

    @abc.abstractmethod
    async def deliver_message(self, text: str, *, message_id: str, user: str = "U1") -> None:
        """Have the fake platform deliver an inbound message; the same `message_id` again is a
        platform redelivery (Slack retry, Telegram update re-sent, IMAP message seen twice)."""

    @abc.abstractmethod
    async def sent(self) -> list[SentMessage]:
        """Everything the adapter has sent to the fake platform so far, oldest first."""

    @abc.abstractmethod
    async def reset(self) -> None:
        """Forget what was sent (between tests)."""

    @abc.abstractmethod
    def rate_limit_next_send(self, retry_after: float) -> None:
        """Make the fake answer the adapter's next send with the platform's 429 / flood error."""
