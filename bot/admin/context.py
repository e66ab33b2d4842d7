"""What every admin command reads from its `CommandContext`, and how it shortens text for chat."""

from __future__ import annotations

from typing import Any

from bot.commands import CommandContext

LIST_LIMIT = 10  # rows a listing shows
_PREVIEW = 60  # characters of free text shown in a listing line


def services_of(ctx: CommandContext) -> Any:
    """The `flows.context.Services` of the process (typed loosely: `bot` may not import `flows`)."""
    return ctx.services["services"]


def runtime_of(ctx: CommandContext) -> Any:
    """The `flows.runtime.FlowRuntime`: flow registry, router, runs in flight."""
    return ctx.services["runtime"]


def prefix_of(ctx: CommandContext) -> str:
    return str(services_of(ctx).config.bot.command_prefix)


def preview(text: str) -> str:
    """One line of at most 60 characters."""
    text = " ".join(text.split())
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 1] + "…"
