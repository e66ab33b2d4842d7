"""The neutral shapes every channel speaks: `Event` in, `Reply` out.

Adapters translate platform payloads into these and back; nothing past an adapter ever sees a
platform payload except through `Event.raw`. Both shapes round-trip through plain dicts
(`to_dict` / `from_dict`) so a bus can carry them between processes.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    MESSAGE = "message"
    COMMAND = "command"
    REACTION = "reaction"
    ACTION = "action"  # a button press or a select choice
    JOIN = "join"
    SCHEDULE = "schedule"
    WEBHOOK = "webhook"


class ReplyKind(StrEnum):
    MESSAGE = "message"
    # Sent once after an event has been fully handled, so request/response channels (web API,
    # `switchboard send`) know the turn is over. Chat adapters ignore it.
    TURN_END = "turn_end"


@dataclass(frozen=True, slots=True)
class ConversationRef:
    """Where a conversation lives: the unit of ordering and of history."""

    channel: str
    room: str
    space: str = ""
    thread: str = ""

    @property
    def key(self) -> str:
        """Stable string identity, used for per-conversation ordering and storage."""
        return f"{self.channel}:{self.space}:{self.room}:{self.thread}"

    def without_thread(self) -> ConversationRef:
        return ConversationRef(channel=self.channel, room=self.room, space=self.space)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConversationRef:
        return cls(
            channel=data["channel"],
            room=data["room"],
            space=data.get("space", ""),
            thread=data.get("thread", ""),
        )


@dataclass(frozen=True, slots=True)
class Sender:
    channel: str
    id: str
    name: str = ""
    is_bot: bool = False

    @property
    def key(self) -> str:
        """`channel:id`, the form used in config (`owners: [slack:U123]`) and identities."""
        return f"{self.channel}:{self.id}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sender:
        return cls(data["channel"], data["id"], data.get("name", ""), bool(data.get("is_bot", False)))


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str
    content_type: str = "application/octet-stream"
    url: str = ""
    size: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attachment:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed `/sb name args...` (or a platform slash command)."""

    name: str
    args: tuple[str, ...] = ()
    text: str = ""  # everything after the name, unsplit

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Command:
        return cls(data["name"], tuple(data.get("args", ())), data.get("text", ""))


@dataclass(slots=True)
class Event:
    """One thing that happened on a channel, normalized.

    `id` is `"{channel}:{platform id}"` and is the idempotency key: the bus drops an event whose
    id it has already accepted, which is how platform redeliveries run once.
    """

    id: str
    kind: EventKind
    channel: str
    conversation: ConversationRef
    sender: Sender
    text: str = ""
    attachments: tuple[Attachment, ...] = ()
    command: Command | None = None
    reply_to: str = ""  # platform id of the message this one answers or reacts to
    mentioned: bool = False  # the bot was addressed directly (mention, DM, reply to the bot)
    ts: float = field(default_factory=time.time)
    # Channel-neutral extras: `flow` forces a flow (web API), `history` carries a client-sent
    # transcript (OpenAI endpoint), `action` holds a button value, `reaction` an emoji name.
    meta: dict[str, Any] = field(default_factory=dict)
    raw: Any = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = str(self.kind)
        if not _json_safe(self.raw):
            data["raw"] = None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        command = data.get("command")
        return cls(
            id=data["id"],
            kind=EventKind(data["kind"]),
            channel=data["channel"],
            conversation=ConversationRef.from_dict(data["conversation"]),
            sender=Sender.from_dict(data["sender"]),
            text=data.get("text", ""),
            attachments=tuple(Attachment.from_dict(a) for a in data.get("attachments", ())),
            command=Command.from_dict(command) if command else None,
            reply_to=data.get("reply_to", ""),
            mentioned=bool(data.get("mentioned", False)),
            ts=float(data.get("ts", time.time())),
            meta=dict(data.get("meta") or {}),
            raw=data.get("raw"),
        )


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    value: str
    style: str = ""  # "primary" | "danger" | "" — adapters map what their platform has


@dataclass(frozen=True, slots=True)
class FileOut:
    name: str
    content_type: str = "application/octet-stream"
    url: str = ""
    data_b64: str = ""


@dataclass(slots=True)
class Reply:
    """What a flow sends back.

    Streaming works by editing: the engine sends a first `Reply` with `partial=True`, then replies
    whose `edit_of` is that first reply's `id`, each carrying the full text so far, and finally one
    with `partial=False`. Adapters keep the mapping from `Reply.id` to their platform message id
    and may skip intermediate edits to honour rate limits; the final one is always rendered.
    """

    conversation: ConversationRef
    text: str = ""
    kind: ReplyKind = ReplyKind.MESSAGE
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    in_reply_to: str = ""  # the Event.id this answers
    buttons: tuple[Button, ...] = ()
    files: tuple[FileOut, ...] = ()
    edit_of: str = ""
    partial: bool = False
    ephemeral: bool = False
    in_thread: bool = True
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = str(self.kind)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reply:
        return cls(
            conversation=ConversationRef.from_dict(data["conversation"]),
            text=data.get("text", ""),
            kind=ReplyKind(data.get("kind", ReplyKind.MESSAGE)),
            id=data["id"],
            in_reply_to=data.get("in_reply_to", ""),
            buttons=tuple(Button(**b) for b in data.get("buttons", ())),
            files=tuple(FileOut(**f) for f in data.get("files", ())),
            edit_of=data.get("edit_of", ""),
            partial=bool(data.get("partial", False)),
            ephemeral=bool(data.get("ephemeral", False)),
            in_thread=bool(data.get("in_thread", True)),
            meta=dict(data.get("meta") or {}),
        )

    @classmethod
    def turn_end(cls, event: Event, **meta: Any) -> Reply:
        return cls(conversation=event.conversation, kind=ReplyKind.TURN_END, in_reply_to=event.id, meta=meta)


def _json_safe(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict)
