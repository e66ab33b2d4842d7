"""`/sb tools`, `/sb approve <id>`, `/sb deny <id>`: what the bot can do, and admins' decisions.

An admin's decision is written to the wait row, then a wake-up event goes into the requester's
conversation, which resumes the parked run exactly as a button press there would.
"""

from __future__ import annotations

from typing import Any

from bot.commands import CommandContext, command, role_allows
from bot.store.people import Role
from bot.tools.waits import HumanWaits, WaitKind, WaitStatus, wake_event


def _services(ctx: CommandContext) -> Any:
    return ctx.services.get("services")


@command("tools", summary="List the tools the assistant can use", usage="tools")
async def tools_command(ctx: CommandContext) -> str:
    services = _services(ctx)
    registry = getattr(services, "tools", None)
    if registry is None:
        return "No tools are configured."
    usable = [t for t in registry.all() if role_allows(ctx.person.role, t.role)]
    if not usable:
        return "No tools are available to you."
    lines = [f"Tools ({len(usable)}):"]
    for item in usable:
        flags = " (needs approval)" if item.approval else ""
        summary = item.description.splitlines()[0] if item.description else ""
        lines.append(f"- `{item.name}`{flags} [{item.source}]: {summary}")
    return "\n".join(lines)


async def _decide(ctx: CommandContext, status: WaitStatus) -> str:
    prefix = ctx.services["services"].config.bot.command_prefix
    verb = "approve" if status is WaitStatus.APPROVED else "deny"
    if len(ctx.args) != 1:
        return f"Usage: `{prefix} {verb} <id>` (the id is in the approval request)."
    services = _services(ctx)
    waits = HumanWaits(services.store.pool)
    wait = await waits.find(ctx.args[0])
    if wait is None or wait.kind is not WaitKind.APPROVAL:
        return f"No pending approval has the id {ctx.args[0]!r} (it may have been answered or timed out)."
    decided = await waits.decide(wait.id, status, answer=verb, decided_by=ctx.event.sender.key)
    if decided is None or decided.status is not status:
        return f"Approval {wait.short_id} was already {decided.status if decided else 'removed'}."
    await services.bus.publish(wake_event(decided, "decided"))
    return f"{'Approved' if status is WaitStatus.APPROVED else 'Denied'}: `{wait.tool}` (id {wait.short_id})."


@command("approve", summary="Approve a tool call waiting for an admin", usage="approve <id>", min_role=Role.ADMIN)
async def approve_command(ctx: CommandContext) -> str:
    return await _decide(ctx, WaitStatus.APPROVED)


@command("deny", summary="Deny a tool call waiting for an admin", usage="deny <id>", min_role=Role.ADMIN)
async def deny_command(ctx: CommandContext) -> str:
    return await _decide(ctx, WaitStatus.DENIED)


COMMANDS = [tools_command, approve_command, deny_command]
