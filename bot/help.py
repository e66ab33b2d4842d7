"""`/sb help`: what the bot can do, for the person asking (commands filtered by their role)."""

from __future__ import annotations

from typing import Any

from bot.commands import CommandContext, command, role_allows


@command("help", summary="What this bot can do", usage="help")
async def help_command(ctx: CommandContext) -> str | None:
    runtime: Any = ctx.services["runtime"]
    flow = runtime.registry.get("help")
    if flow is not None:
        await runtime.run_flow(flow, ctx.event, ctx.person)
        return None
    return help_text(ctx)


def help_text(ctx: CommandContext) -> str:
    services: Any = ctx.services["services"]
    prefix = services.config.bot.command_prefix
    lines = [f"I'm {services.config.bot.name}. Here is what I can do:"]
    for flow in services.catalog.get("flows", []):
        if flow["description"]:
            lines.append(f"• {flow['name']}: {flow['description']}")
    lines.append("")
    lines.append("Commands:")
    for spec in services.commands.visible_to(ctx.person.role) if services.commands else []:
        if role_allows(ctx.person.role, spec.min_role):
            lines.append(f"• {prefix} {spec.usage} — {spec.summary}")
    return "\n".join(lines)
