"""`/sb flows`: list the flows, reload them from disk without a restart, switch one on or off.

A reload swaps the registry's set of flows at once; a run in flight holds its own compiled flow, so
it finishes on the version it started with while new events get the new one."""

from __future__ import annotations

from typing import Any

from bot.admin.context import prefix_of, runtime_of, services_of
from bot.commands import CommandContext, command
from bot.store.people import Role


async def _refresh(ctx: CommandContext) -> None:
    """After the set of flows changed: help texts, and the jobs of `schedule:` triggers."""
    services, runtime = services_of(ctx), runtime_of(ctx)
    kept = {k: v for k, v in services.catalog.items() if k not in ("flows", "commands")}
    runtime.refresh_catalog()
    services.catalog.update(kept)
    if services.scheduler is not None:
        await services.scheduler.sync_flows(runtime.registry.active())


@command("flows", summary="List flows; reload them from disk; enable or disable one",
         usage="flows [list|reload|enable <name>|disable <name>]", min_role=Role.ADMIN)
async def flows_command(ctx: CommandContext) -> str:
    registry = runtime_of(ctx).registry
    action = ctx.args[0].lower() if ctx.args else "list"
    if action == "list":
        flows = registry.all()
        if not flows:
            return "No flows are loaded." + _problems(registry)
        lines = ["Flows:"]
        for flow in flows:
            state = "on" if registry.enabled(flow.spec.name) else "off"
            lines.append(f"• {flow.spec.name} [{state}] — {flow.spec.description or 'no description'}")
        return "\n".join(lines) + _problems(registry)
    if action == "reload":
        return await _reload(ctx)
    if action in ("enable", "disable"):
        if len(ctx.args) != 2:
            return f"Usage: `{prefix_of(ctx)} flows {action} <name>`"
        name = ctx.args[1]
        try:
            registry.set_enabled(name, action == "enable")
        except KeyError:
            return f"No flow named {name!r}. `{prefix_of(ctx)} flows` lists them."
        await _refresh(ctx)
        return f"Flow {name} is {'enabled' if action == 'enable' else 'disabled'} (in this process, until restart)."
    return f"Unknown action {action!r}. Usage: `{prefix_of(ctx)} flows [list|reload|enable <name>|disable <name>]`"


async def _reload(ctx: CommandContext) -> str:
    runtime = runtime_of(ctx)
    registry = runtime.registry
    before = {f.spec.name for f in registry.all()}
    in_flight = runtime.runs_in_flight
    report = registry.reload()
    await _refresh(ctx)
    after = set(report.flows)
    lines = [f"Reloaded {len(after)} flows from {len(report.files)} files."]
    if in_flight:
        lines.append(f"{in_flight} runs in flight finish with the version they started with.")
    if after - before:
        lines.append(f"New: {', '.join(sorted(after - before))}.")
    if before - after:
        lines.append(f"No longer loaded: {', '.join(sorted(before - after))}.")
    return "\n".join(lines) + _problems(registry)


def _problems(registry: Any) -> str:
    if not registry.problems:
        return ""
    return "\n⚠ Not loaded because of problems:\n" + "\n".join(f"• {p}" for p in registry.problems)
