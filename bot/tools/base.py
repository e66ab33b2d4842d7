"""What a tool is, what it is called with, and what a call gives back.

A `Tool` is a name, a description and a JSON schema the model sees, plus an async `call` that
receives already-validated arguments. Python functions (`@tool`), MCP servers, composite YAML
tools and the built-ins all become `Tool`s, so the agent loop treats them the same.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from bot.store.people import Role

if TYPE_CHECKING:
    from bot.events import Event
    from bot.store.people import Person

DEFAULT_TIMEOUT = 30.0  # seconds a tool may take unless it or the node says otherwise
MAX_RESULT_CHARS = 16_000  # what the model gets back from one call; longer results are cut


class ToolStatus(StrEnum):
    OK = "ok"
    ERROR = "error"  # the tool raised
    INVALID = "invalid"  # the arguments did not match the schema (the tool did not run)
    TIMEOUT = "timeout"
    GARBAGE = "garbage"  # the tool returned something that cannot be shown as text
    UNKNOWN = "unknown"  # no tool of that name
    REFUSED = "refused"  # the person's role is too low
    DENIED = "denied"  # a human denied the approval
    APPROVAL_TIMEOUT = "approval_timed_out"


class ToolError(Exception):
    """Raise from a tool for an expected failure: the message goes to the model as is."""


@dataclass(slots=True)
class ToolContext:
    """Who is calling and from where. Tools that declare a `ToolContext` parameter receive it."""

    services: Any = None  # flows.context.Services (None in plain unit use)
    person: Person | None = None
    event: Event | None = None
    run_id: str = ""
    node_id: str = ""


@dataclass(slots=True)
class ToolResult:
    status: ToolStatus
    content: str  # what the model reads
    duration_ms: float = 0.0
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is ToolStatus.OK


ToolCallable = Callable[[dict[str, Any], ToolContext], Awaitable[Any]]
Validator = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments object
    call: ToolCallable
    # Turns raw model arguments into the call's arguments; raises ValueError with a readable message.
    validate: Validator | None = None
    role: Role = Role.MEMBER
    approval: bool = False
    timeout: float | None = None
    source: str = "python"  # python | builtin | mcp:<server> | composite
    meta: dict[str, Any] = field(default_factory=dict)

    def openai_schema(self) -> dict[str, Any]:
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}
