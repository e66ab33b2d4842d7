"""`/sb remember`, `/sb memory`, `/sb forget`, `/sb link`: a person sees and controls what we keep."""

from __future__ import annotations

import json
from typing import Any

from bot.commands import CommandContext, command
from bot.memory import MemoryService
from bot.memory.linking import LinkError
from bot.memory.store import MemoryKind, MemoryRequestError

_NOT_ENABLED = "Memory is not enabled on this bot."
# Lines of `/sb memory` before it points at `memory export`.
_LIST_LIMIT = 50


def memory_service(ctx: CommandContext) -> MemoryService | None:
    """The app's MemoryService: `services.memory` from the runtime, or a `memory` entry (tests, tools)."""
    services: Any = ctx.services.get("services")
    found = getattr(services, "memory", None) if services is not None else None
    return found or ctx.services.get("memory")


def _prefix(ctx: CommandContext) -> str:
    services: Any = ctx.services.get("services")
    config = getattr(services, "config", None)
    return config.bot.command_prefix if config is not None else "/sb"


@command("remember", summary="Keep a fact or preference about you for later conversations",
         usage="remember <fact>  (e.g. remember I prefer answers in French)")
async def remember_command(ctx: CommandContext) -> str:
    memory = memory_service(ctx)
    if memory is None:
        return _NOT_ENABLED
    text = ctx.text.strip()
    kind = MemoryKind.FACT
    for candidate in MemoryKind:
        if text.lower().startswith(f"{candidate}:"):
            kind, text = candidate, text[len(candidate) + 1:].strip()
    if not text:
        return f"Tell me what to remember: `{_prefix(ctx)} remember I work on the payments team`."
    try:
        saved = await memory.memories.remember(ctx.person.id, text, kind=kind, source=ctx.event.channel)
    except MemoryRequestError as exc:
        return f"I can't remember that: {exc}."
    return f"Noted (#{saved.id}): {saved.content}"


@command("memory", summary="See what I remember about you, or export it as JSON",
         usage="memory [export]")
async def memory_command(ctx: CommandContext) -> str:
    memory = memory_service(ctx)
    if memory is None:
        return _NOT_ENABLED
    if ctx.args[:1] == ("export",):
        data = await memory.memories.export(ctx.person.id)
        return "```json\n" + json.dumps(data, indent=2, ensure_ascii=False) + "\n```"
    items = await memory.memories.list(ctx.person.id)
    prefix = _prefix(ctx)
    if not items:
        return f"I don't remember anything about you yet. Teach me with `{prefix} remember ...`."
    lines = [f"I remember {len(items)} thing{'s' if len(items) != 1 else ''} about you:"]
    lines += [f"#{m.id} {m.content}" + (f" ({m.kind})" if m.kind is not MemoryKind.FACT else "")
              for m in items[:_LIST_LIMIT]]
    if len(items) > _LIST_LIMIT:
        lines.append(f"… and {len(items) - _LIST_LIMIT} more: `{prefix} memory export` has them all.")
    lines.append(f"Delete one with `{prefix} forget #ID` or `{prefix} forget <words>`; "
                 f"`{prefix} forget everything` deletes all.")
    return "\n".join(lines)


@command("forget", summary="Delete memories: one by #id, those containing some words, or everything",
         usage="forget #ID | forget <words> | forget everything")
async def forget_command(ctx: CommandContext) -> str:
    memory = memory_service(ctx)
    if memory is None:
        return _NOT_ENABLED
    text = ctx.text.strip()
    prefix = _prefix(ctx)
    if not text:
        return f"Say what to forget: `{prefix} forget #12`, `{prefix} forget coffee` or `{prefix} forget everything`."
    if text.lower() in ("everything", "all", "everything about me"):
        count = await memory.memories.forget_all(ctx.person.id)
        return f"Done: I forgot everything I remembered about you ({count} memor{'ies' if count != 1 else 'y'})."
    if text.lstrip("#").isdigit():
        memory_id = int(text.lstrip("#"))
        if await memory.memories.delete(ctx.person.id, memory_id):
            return f"Forgot #{memory_id}."
        return f"You have no memory #{memory_id}; `{prefix} memory` lists them."
    removed = await memory.memories.forget_matching(ctx.person.id, text)
    if not removed:
        return f"Nothing I remember about you contains {text!r}; `{prefix} memory` lists what I keep."
    listed = "\n".join(f"#{m.id} {m.content}" for m in removed)
    return f"Forgot {len(removed)} memor{'ies' if len(removed) != 1 else 'y'}:\n{listed}"


@command("link", summary="Link your accounts on several channels into one (memories follow you)",
         usage="link  (gives a code)  |  link CODE  (from your other account)")
async def link_command(ctx: CommandContext) -> str:
    memory = memory_service(ctx)
    if memory is None:
        return _NOT_ENABLED
    prefix = _prefix(ctx)
    if not ctx.args:
        code = await memory.linker.create_code(ctx.person.id, ctx.event.channel)
        minutes = max(1, round(memory.linker.ttl_seconds / 60))
        return (f"Your link code is {code}. From your other account (another channel), send "
                f"`{prefix} link {code}` within {minutes} minutes. Anyone with the code can join your accounts: "
                "do not share it.")
    try:
        result = await memory.linker.redeem(ctx.args[0], ctx.person.id)
    except LinkError as exc:
        return f"Could not link: {exc}."
    where = ", ".join(channel for channel, _ in result.identities)
    return f"Linked. You are now one person across {where}; your memories follow you."


COMMANDS = [remember_command, memory_command, forget_command, link_command]
