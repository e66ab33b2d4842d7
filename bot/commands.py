"""Admin and user commands: `/sb name args...` on every channel.

Parsing lives here so every adapter turns the same text into the same `Command`. Handlers are
registered with the `@command` decorator, which attaches typed metadata (summary, usage, minimum
role) that the router reads at registration; later features add their own command modules.
"""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.events import Command, Event
from bot.store.people import Person, Role

_ROLE_RANK = {Role.BLOCKED: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


def parse_command(text: str, prefix: str = "/sb") -> Command | None:
    """`"/sb remind me in 2h"` → `Command("remind", ("me", "in", "2h"), "me in 2h")`.

    Also accepts the prefix with a mention-style separator (`/sb@botname help`, Telegram) and a
    bare prefix (`/sb` → `help`). Returns None when the text is not a command.
    """
    stripped = text.strip()
    if not stripped.startswith(prefix):
        return None
    rest = stripped[len(prefix) :]
    if rest and not (rest[0].isspace() or rest[0] == "@"):
        return None  # "/sbx" is not ours
    if rest.startswith("@"):
        rest = rest.split(None, 1)[1] if " " in rest else ""
    rest = rest.strip()
    if not rest:
        return Command("help")
    name, _, tail = rest.partition(" ")
    tail = tail.strip()
    try:
        args = tuple(shlex.split(tail))
    except ValueError:  # unbalanced quotes: fall back to plain words
        args = tuple(tail.split())
    return Command(name.lower(), args, tail)


@dataclass(frozen=True, slots=True)
class CommandContext:
    """What a command handler gets: the event, the person, and a way to answer."""

    event: Event
    person: Person
    args: tuple[str, ...]
    text: str
    reply: Callable[[str], Awaitable[None]]
    services: dict[str, Any] = field(default_factory=dict)


CommandHandler = Callable[[CommandContext], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str
    summary: str
    usage: str
    min_role: Role
    handler: CommandHandler
    aliases: tuple[str, ...] = ()


def command(
    name: str, *, summary: str, usage: str = "", min_role: Role = Role.MEMBER, aliases: tuple[str, ...] = ()
) -> Callable[[CommandHandler], CommandHandler]:
    """Attach command metadata to a handler; `CommandRegistry.add_module` collects them."""

    def decorate(handler: CommandHandler) -> CommandHandler:
        handler.__switchboard_command__ = CommandSpec(  # type: ignore[attr-defined]
            name, summary, usage or name, min_role, handler, aliases
        )
        return handler

    return decorate


def role_allows(role: Role, needed: Role) -> bool:
    return _ROLE_RANK[role] >= _ROLE_RANK[needed]


class CommandRegistry:
    def __init__(self, prefix: str = "/sb") -> None:
        self.prefix = prefix
        self._by_name: dict[str, CommandSpec] = {}

    def add(self, spec: CommandSpec) -> None:
        for name in (spec.name, *spec.aliases):
            if name in self._by_name:
                raise ValueError(f"command {name!r} is registered twice")
            self._by_name[name] = spec

    def add_handlers(self, *handlers: CommandHandler) -> None:
        for handler in handlers:
            spec = getattr(handler, "__switchboard_command__", None)
            if not isinstance(spec, CommandSpec):
                raise TypeError(f"{handler!r} is not decorated with @command")
            self.add(spec)

    def get(self, name: str) -> CommandSpec | None:
        return self._by_name.get(name)

    def visible_to(self, role: Role) -> list[CommandSpec]:
        seen: dict[str, CommandSpec] = {}
        for spec in self._by_name.values():
            if role_allows(role, spec.min_role):
                seen.setdefault(spec.name, spec)
        return sorted(seen.values(), key=lambda s: s.name)
