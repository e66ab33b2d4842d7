"""The shape of a flow: triggers, limits, and nodes with their error policy.

These are plain validated models; the loader builds them from YAML (keeping line numbers for
errors) and the engine runs them. Error policy follows Dify's semantics so its DSL maps onto ours:
`retry` (max attempts, interval, backoff), `timeout`, and `on_error` = fail the run (default), a
fail branch (`{next: node}`), or a default value (`{default: {...}}`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

END = "end"  # `next: end` finishes the run
_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_IDS = frozenset(
    {"event", "person", "vars", "flow", "run", "models", "bot", "catalog", "now", END, "human_input"}
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Schedule(_Strict):
    """A timer trigger: exactly one of `cron` (crontab, 5 fields), `every` ("90s", "15m", "2h", "1d") or `at`
    (an ISO date-time, one-off). Replies go to the conversation named by channel/room (space, thread optional)."""

    cron: str | None = None
    every: str | None = None
    at: datetime | None = None
    timezone: str = "UTC"
    channel: str
    room: str
    space: str = ""
    thread: str = ""

    @model_validator(mode="after")
    def _one_timer(self) -> Schedule:
        given = [k for k in ("cron", "every", "at") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a schedule takes exactly one of `cron`, `every` or `at`")
        from bot.scheduler.timing import TimingError, parse_every, trigger_for

        try:
            if self.every is not None:
                parse_every(self.every)
            trigger_for(cron=self.cron, every=self.every, at=self.at, timezone=self.timezone)
        except TimingError as exc:
            raise ValueError(str(exc)) from None
        return self


class Trigger(_Strict):
    """When a flow starts. Fields given together must all match; a flow's triggers are alternatives."""

    default: bool = False  # the flow for messages nothing else claims
    command: str | None = None  # `/sb <command> ...` (or a platform slash command of that name)
    regex: str | None = None  # searched in the message text, case-insensitive
    keywords: list[str] | None = None  # any whole word/phrase, case-insensitive
    mention: bool = False  # only when the bot is addressed (mention, DM, reply to the bot)
    channels: list[str] | None = None  # only on these adapters (slack, discord, telegram, email, web, console)
    kinds: list[str] | None = None  # event kinds (message, command, action, reaction, ...); default message/command
    priority: int = 0  # higher wins among matching flows of the same trigger type
    schedule: Schedule | None = None  # run on a timer (cron, interval or one-off); see docs/admin.md

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _says_something(self) -> Trigger:
        if not (
            self.default
            or self.command
            or self.regex
            or self.keywords
            or self.mention
            or self.channels
            or self.kinds
            or self.schedule
        ):
            raise ValueError(
                "a trigger needs at least one of default, command, regex, keywords, mention, channels, schedule"
            )
        if self.schedule is not None and self.kinds is None:
            self.kinds = ["schedule"]  # a timer trigger never claims chat messages
        return self


class Retry(_Strict):
    max_attempts: int = Field(1, ge=1, le=20)
    interval: float = Field(1.0, ge=0)  # seconds before the 2nd attempt
    backoff: float = Field(2.0, ge=1)  # multiplier per further attempt


class ErrorAction(StrEnum):
    FAIL = "fail"
    BRANCH = "branch"
    DEFAULT = "default"


class OnError(_Strict):
    next: str | None = None  # fail branch: go here with `{error}` as the node's outputs
    default: dict[str, Any] | None = None  # default value: use these outputs and carry on

    @model_validator(mode="after")
    def _one_policy(self) -> OnError:
        if (self.next is None) == (self.default is None):
            raise ValueError("on_error takes exactly one of `next` (a fail branch) or `default` (default outputs)")
        return self

    @property
    def action(self) -> ErrorAction:
        return ErrorAction.BRANCH if self.next else ErrorAction.DEFAULT


class Limits(_Strict):
    max_steps: int | None = Field(None, ge=1)
    max_seconds: float | None = Field(None, gt=0)


class HistoryPolicy(_Strict):
    """What of a conversation this flow records and feeds back to its llm nodes."""

    record: bool = True  # store the person's message and the bot's replies
    turns: int = Field(10, ge=0)  # default history turns for llm nodes


COMMON_NODE_KEYS = frozenset({"id", "kind", "next", "retry", "timeout", "on_error", "description"})


@dataclass(slots=True)
class NodeSpec:
    id: str
    kind: str
    options: dict[str, Any]
    next: str | None = None
    retry: Retry = field(default_factory=Retry)
    timeout: float | None = None
    on_error: OnError | None = None
    description: str = ""
    line: int | None = None
    # line of each option key, for errors that point inside a node
    option_lines: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class FlowSpec:
    name: str
    description: str
    triggers: list[Trigger]
    nodes: list[NodeSpec]
    limits: Limits = field(default_factory=Limits)
    history: HistoryPolicy = field(default_factory=HistoryPolicy)
    example: str = ""
    enabled: bool = True
    file: str = ""
    line: int | None = None

    def node(self, node_id: str) -> NodeSpec | None:
        for node in self.nodes:
            if node.id == node_id:
                return node
        return None

    def successor(self, node_id: str) -> str | None:
        """The node that follows in document order (the default `next`)."""
        for index, node in enumerate(self.nodes):
            if node.id == node_id:
                return self.nodes[index + 1].id if index + 1 < len(self.nodes) else None
        return None


def valid_node_id(node_id: str) -> bool:
    return bool(_ID.match(node_id)) and node_id not in RESERVED_IDS
