"""The adapter contract: normalize inbound to `Event`, render `Reply` outbound.

An adapter is a thin translator. Platform details (payload shapes, markdown dialect, rate limits,
message length) stay inside it; the rest of Switchboard only sees `Event` and `Reply`.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from bot.events import Reply, ReplyKind

if TYPE_CHECKING:
    from bot.bus import Bus
    from bot.server import HttpServer

log = logging.getLogger("switchboard.adapters")

_FINALIZED_MEMORY = 10_000  # message keys remembered per adapter for dropping re-sent replies


class Capability(StrEnum):
    BUTTONS = "buttons"
    EDIT = "edit"  # can edit a sent message (streaming)
    THREADS = "threads"
    FILES = "files"
    REACTIONS = "reactions"
    EPHEMERAL = "ephemeral"
    MARKDOWN = "markdown"


@dataclass(slots=True)
class AdapterStatus:
    name: str
    live: bool
    detail: str = ""


@dataclass(slots=True)
class AdapterContext:
    """What the composition root hands an adapter at start."""

    bus: Bus
    server: HttpServer | None = None
    command_prefix: str = "/sb"
    options: dict[str, Any] = field(default_factory=dict)
    # The active flows as [{name, description, example}] (web API model list, help texts).
    catalog: Callable[[], list[dict[str, Any]]] = field(default=lambda: [])
    # Largest inbound message (bytes) an adapter accepts; larger ones are refused with a clear error.
    max_message_bytes: int = 64 * 1024


class Adapter(abc.ABC):
    """One channel. Subclasses implement `start`, `send` and `stop`."""

    name: str = ""
    capabilities: frozenset[Capability] = frozenset()
    # Longest text one platform message may carry; longer replies are split.
    max_message_chars: int = 4000

    @abc.abstractmethod
    async def start(self, context: AdapterContext) -> None:
        """Connect to the platform (or mount webhooks) and begin publishing events."""

    @abc.abstractmethod
    async def send(self, reply: Reply) -> str:
        """Render one reply on the platform; return the platform id of the (first) message sent."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Disconnect. Must be safe to call twice."""

    async def stop_intake(self) -> None:  # noqa: B027 - an optional hook; push-style adapters need nothing
        """Stop taking new events from the platform but keep sending replies.

        A graceful stop calls this first, lets the bus finish the runs in flight (whose replies
        still go out through `send`), and only then calls `stop`. Adapters that pull events
        (polling, IMAP) override it so nothing is fetched that can no longer be handled.
        """

    async def deliver_forever(self, bus: Bus) -> None:
        """Pump replies addressed to this adapter from the bus to `send`, never dying on one.

        Returns when the bus ends the stream (it stopped). If reading from the bus fails (Redis
        restarting), the pump logs it and reconnects with backoff instead of going silent.
        """
        delay = 0.5
        finalized = DeliveredReplies()
        while True:
            try:
                async for reply in bus.replies(self.name):
                    delay = 0.5
                    if reply.kind is ReplyKind.TURN_END and not self.wants_turn_end:
                        continue
                    if finalized.seen(reply):
                        log.info(
                            "dropped a reply already delivered", extra={"adapter": self.name, "reply_id": reply.id}
                        )
                        continue
                    try:
                        await self.send(reply)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception(
                            "reply could not be delivered", extra={"adapter": self.name, "reply_id": reply.id}
                        )
                        continue
                    finalized.mark(reply)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading replies from the bus failed; retrying", extra={"adapter": self.name})
                await asyncio.sleep(delay + random.uniform(0, delay / 2))
                delay = min(delay * 2, 30.0)

    # Request/response channels (web API, console) need to know when a turn is over.
    wants_turn_end: bool = False


class DeliveredReplies:
    """Messages already shown in full, by message key (the first reply's id), bounded.

    A flow step run again after a worker crash sends the same (deterministic) reply ids; an adapter's
    pump asks `seen` before sending and calls `mark` after a successful send, so the person sees each
    message once. Partial edits of a message already shown in full are dropped too.
    """

    def __init__(self, capacity: int = _FINALIZED_MEMORY) -> None:
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def seen(self, reply: Reply) -> bool:
        return reply.kind is ReplyKind.MESSAGE and (reply.edit_of or reply.id) in self._keys

    def mark(self, reply: Reply) -> None:
        if reply.kind is ReplyKind.MESSAGE and not reply.partial:
            self._keys[reply.edit_of or reply.id] = None
            if len(self._keys) > self._capacity:
                self._keys.popitem(last=False)


def split_text(text: str, limit: int) -> list[str]:
    """Split text into chunks of at most `limit` characters, preferring paragraph, line, then word
    boundaries, and never splitting inside a fenced code block when a boundary outside exists."""
    if len(text) <= limit:
        return [text]
    chunks: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = -1
        for sep in ("\n\n", "\n", " "):
            pos = window.rfind(sep)
            if pos > limit // 3:
                cut = pos + len(sep)
                break
        if cut <= 0:
            cut = limit
        piece = rest[:cut]
        # Keep fenced code balanced: close the fence in this chunk and reopen it in the next.
        if piece.count("```") % 2 == 1:
            if len(piece) + 4 > limit:
                piece = piece[: limit - 4]
                cut = len(piece)
            chunks.append(piece.rstrip("\n") + "\n```")
            rest = "```\n" + rest[cut:]
        else:
            chunks.append(piece.rstrip())
            rest = rest[cut:].lstrip("\n") if rest[cut:].startswith("\n") else rest[cut:]
    if rest.strip():
        chunks.append(rest)
    return chunks


def buttons_as_text(reply: Reply) -> str:
    """Degrade buttons to a numbered list for channels without buttons: the person answers with
    the number or the label, which the adapter maps back to the button's value."""
    if not reply.buttons:
        return reply.text
    lines = [reply.text.rstrip(), ""] if reply.text else []
    lines += [f"{i}. {b.label}" for i, b in enumerate(reply.buttons, start=1)]
    lines.append("Reply with a number to choose.")
    return "\n".join(lines)
