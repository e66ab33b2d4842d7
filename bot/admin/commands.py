"""Admin commands: status, flows, runs, users, audit, broadcast — and `optin` for everyone.

Each handler gets the runtime (flows, router, runs in flight) and the services through its
`CommandContext`; the runtime has already checked the caller's role and audits the outcome.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from bot.admin.broadcast import OptIns, parse_target, send_to
from bot.admin.directory import Directory, PersonInfo
from bot.commands import CommandContext, command, role_allows
from bot.events import Event
from bot.logging import redact_url
from bot.scheduler.timing import human_duration
from bot.store.people import Role
from bot.store.runs import RunRecord, RunStatus

_LIST_LIMIT = 10
_TEXT_PREVIEW = 60


def _services(ctx: CommandContext) -> Any:
    return ctx.services["services"]


def _runtime(ctx: CommandContext) -> Any:
    return ctx.services["runtime"]


def _prefix(ctx: CommandContext) -> str:
    return str(_services(ctx).config.bot.command_prefix)


def _preview(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _TEXT_PREVIEW else text[: _TEXT_PREVIEW - 1] + "…"


# -- status ---------------------------------------------------------------------------------


@command("status", summary="Uptime, adapters, queue, runs in flight, errors and model use today", usage="status",
         min_role=Role.ADMIN)
async def status_command(ctx: CommandContext) -> str:
    services, runtime = _services(ctx), _runtime(ctx)
    lines = [f"*{services.config.bot.name} status*"]
    started = services.catalog.get("started_at")
    lines.append(f"• uptime: {human_duration(time.time() - started)}" if started else "• uptime: unknown")
    adapters = services.catalog.get("adapters") or []
    shown = [f"{a.name} (live)" if a.live else f"{a.name} (off: {_preview(a.detail)})" for a in adapters]
    lines.append(f"• adapters: {', '.join(shown) if shown else 'none in this process'}")
    stats = services.bus.stats()
    lines.append(f"• queue: {stats.queued} waiting, {stats.in_flight} being handled "
                 f"(bus {redact_url(services.bus.url)})")
    lines.append(f"• runs in flight: {runtime.runs_in_flight}")
    async with services.store.pool.connection() as conn:
        row = await (await conn.execute(
            "SELECT (SELECT count(*) FROM runs WHERE started_at >= date_trunc('day', now(), 'UTC')), "
            "(SELECT count(*) FROM runs WHERE status = 'failed' AND started_at >= date_trunc('day', now(), 'UTC')), "
            "(SELECT count(*) FROM events WHERE status = 'dead' AND completed_at >= date_trunc('day', now(), 'UTC'))"
        )).fetchone()
    runs, failed, dead = row if row else (0, 0, 0)
    lines.append(f"• today (UTC): {runs} runs, {failed} failed, {dead} dead letters")
    usage = services.llm.usage_today()
    if usage:
        parts = [f"{model}: {u.get('calls', 0)} calls ({u.get('failures', 0)} failed), "
                 f"{u.get('tokens_in', 0) + u.get('tokens_out', 0):,} tokens, ${u.get('cost', 0.0):.4f}"
                 for model, u in sorted(usage.items())]
        total = sum(float(u.get("cost", 0.0)) for u in usage.values())
        lines.append(f"• models today (this process): {'; '.join(parts)} — total ${total:.4f}")
    else:
        lines.append("• models today (this process): no calls")
    scheduler = services.scheduler
    if scheduler is not None:
        jobs = await scheduler.jobs.list()
        role = "fires jobs here" if scheduler.is_leader else "standing by (another process fires jobs)"
        lines.append(f"• scheduler: {role}; {sum(1 for j in jobs if str(j.status) == 'active')} active jobs")
    return "\n".join(lines)


# -- flows ----------------------------------------------------------------------------------


async def _refresh(ctx: CommandContext) -> None:
    """After the set of flows changed: help texts, and the jobs of `schedule:` triggers."""
    services, runtime = _services(ctx), _runtime(ctx)
    kept = {k: v for k, v in services.catalog.items() if k not in ("flows", "commands")}
    runtime.refresh_catalog()
    services.catalog.update(kept)
    if services.scheduler is not None:
        await services.scheduler.sync_flows(runtime.registry.active())


@command("flows", summary="List flows; reload them from disk; enable or disable one",
         usage="flows [list|reload|enable <name>|disable <name>]", min_role=Role.ADMIN)
async def flows_command(ctx: CommandContext) -> str:
    registry = _runtime(ctx).registry
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
            return f"Usage: `{_prefix(ctx)} flows {action} <name>`"
        name = ctx.args[1]
        try:
            registry.set_enabled(name, action == "enable")
        except KeyError:
            return f"No flow named {name!r}. `{_prefix(ctx)} flows` lists them."
        await _refresh(ctx)
        return f"Flow {name} is {'enabled' if action == 'enable' else 'disabled'} (in this process, until restart)."
    return f"Unknown action {action!r}. Usage: `{_prefix(ctx)} flows [list|reload|enable <name>|disable <name>]`"


async def _reload(ctx: CommandContext) -> str:
    runtime = _runtime(ctx)
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


# -- runs -----------------------------------------------------------------------------------


@command("runs", summary="Recent runs; show one with its steps; cancel; dead letters and replay",
         usage="runs [<id>|cancel <id>|dead|replay <event id>]", min_role=Role.ADMIN)
async def runs_command(ctx: CommandContext) -> str:
    store = _services(ctx).store
    args = ctx.args
    action = args[0].lower() if args else "list"
    if action == "list":
        runs = await store.runs.recent(_LIST_LIMIT)
        if not runs:
            return "No runs yet."
        return "Recent runs:\n" + "\n".join(
            f"• `{r.id[:8]}` {r.flow} — {r.status}, {r.steps} steps, {r.started_at:%Y-%m-%d %H:%M:%S}" for r in runs)
    if action == "dead":
        dead = await store.journal.dead(_LIST_LIMIT)
        if not dead:
            return "No dead letters."
        return "Dead letters (events that kept failing):\n" + "\n".join(
            f"• `{e.id}` {e.channel} {_preview(e.text) or e.kind} — {_preview(err) or 'no error recorded'}"
            for e, err in dead) + f"\nReplay one with `{_prefix(ctx)} runs replay <id>`."
    if action == "replay":
        if len(args) != 2:
            return f"Usage: `{_prefix(ctx)} runs replay <event id>` (ids are in `{_prefix(ctx)} runs dead`)"
        return await _replay(ctx, args[1])
    if action in ("cancel", "show"):
        if len(args) != 2:
            return f"Usage: `{_prefix(ctx)} runs {action} <run id>`"
        run_id = args[1]
    elif len(args) == 1:
        action, run_id = "show", args[0]
    else:
        return f"Usage: `{_prefix(ctx)} runs [<id>|cancel <id>|dead|replay <event id>]`"
    run = await _find_run(ctx, run_id)
    if isinstance(run, str):
        return run
    if action == "show":
        return _show_run(run)
    if run.status in (RunStatus.WAITING, RunStatus.INTERRUPTED):
        await store.runs.finish(run.id, RunStatus.CANCELLED, error=f"cancelled by {ctx.person.display_name}")
        return f"Cancelled run `{run.id[:8]}` ({run.flow}, was {run.status})."
    if run.status is RunStatus.RUNNING:
        return (f"Run `{run.id[:8]}` is executing right now; it ends by itself at its step or time limit. "
                "Waiting and interrupted runs can be cancelled.")
    return f"Run `{run.id[:8]}` has already ended ({run.status}); nothing to cancel."


async def _find_run(ctx: CommandContext, given: str) -> RunRecord | str:
    store = _services(ctx).store
    prefix = given.strip().lower()
    if not prefix or any(c not in "0123456789abcdef-" for c in prefix):
        return f"{given!r} is not a run id (ids look like `3f2a9c1e`; `{_prefix(ctx)} runs` lists recent runs)."
    async with store.pool.connection() as conn:
        rows = await (await conn.execute("SELECT id::text FROM runs WHERE id::text LIKE %s LIMIT 2",
                                         (prefix + "%",))).fetchall()
    if not rows:
        return f"No run `{given}`."
    if len(rows) > 1:
        return f"`{given}` matches several runs; give more of the id."
    run = await store.runs.get(rows[0][0], with_steps=True)
    return run if run is not None else f"No run `{given}`."


def _show_run(run: RunRecord) -> str:
    lines = [f"Run `{run.id}` — flow {run.flow}, {run.status}",
             f"started {run.started_at:%Y-%m-%d %H:%M:%S}, {run.steps} steps, "
             f"{run.tokens_in + run.tokens_out} tokens, ${run.cost:.4f}"]
    if run.error:
        lines.append(f"error: {_preview(run.error)}")
    if run.next_node and run.status in (RunStatus.WAITING, RunStatus.INTERRUPTED):
        lines.append(f"next node: {run.next_node}")
    for index, step in enumerate(run.step_records, 1):
        extra = f" — {_preview(step.error)}" if step.error else ""
        tries = f", {step.attempts} attempts" if step.attempts > 1 else ""
        lines.append(f"{index}. {step.node_id} ({step.kind}) {step.status}, {step.duration_ms:.0f} ms{tries}{extra}")
    return "\n".join(lines)


async def _replay(ctx: CommandContext, event_id: str) -> str:
    services = _services(ctx)
    async with services.store.pool.connection() as conn:
        row = await (await conn.execute("SELECT payload FROM events WHERE id = %s AND status = 'dead'",
                                        (event_id,))).fetchone()
    if row is None:
        return f"No dead letter `{event_id}`. `{_prefix(ctx)} runs dead` lists them."
    original = Event.from_dict(row[0])
    copy = Event.from_dict({**original.to_dict(), "id": f"{original.id}~replay-{uuid.uuid4().hex[:6]}"})
    # The copy has a new id (the journal dedupes on ids); the dead letter is marked as handed on.
    async with services.store.pool.connection() as conn:
        await conn.execute("UPDATE events SET status = 'done', error = %s WHERE id = %s AND status = 'dead'",
                           (f"replayed as {copy.id}", event_id))
    await services.bus.publish(copy)
    return f"Replayed `{event_id}` as `{copy.id}`."


# -- users ----------------------------------------------------------------------------------


def _person_line(info: PersonInfo) -> str:
    ids = ", ".join(info.identities) or "no identities"
    return f"#{info.id} {info.name} — {info.role} ({ids})"


@command("users", summary="List people; show one; set a role; block or unblock",
         usage="users [show <who>|role <who> <owner|admin|member>|block <who>|unblock <who>]", min_role=Role.ADMIN)
async def users_command(ctx: CommandContext) -> str:
    services = _services(ctx)
    directory = Directory(services.store.pool)
    args = ctx.args
    action = args[0].lower() if args else "list"
    who_help = "(who: a number like 12, or a channel identity like slack:U123)"
    if action == "list":
        people = await directory.recent(20)
        return "People (newest first):\n" + "\n".join(f"• {_person_line(p)}" for p in people)
    wanted = {"show": 2, "block": 2, "unblock": 2, "role": 3}
    if action not in wanted:
        return f"Unknown action {action!r}. Usage: `{_prefix(ctx)} users [show|role|block|unblock] <who>` {who_help}"
    if len(args) != wanted[action]:
        usage = f"users role <who> <{'|'.join(r for r in Role if r is not Role.BLOCKED)}>" if action == "role" \
            else f"users {action} <who>"
        return f"Usage: `{_prefix(ctx)} {usage}` {who_help}"
    target = await directory.find(args[1])
    if target is None:
        return f"I know nobody as {args[1]!r} {who_help}."
    if action == "show":
        return _person_line(target)
    new_role = {"block": Role.BLOCKED, "unblock": Role.MEMBER}.get(action)
    if new_role is None:
        try:
            new_role = Role(args[2].lower())
        except ValueError:
            return f"{args[2]!r} is not a role; roles are owner, admin, member and blocked."
    if action == "unblock" and target.role is not Role.BLOCKED:
        return f"#{target.id} {target.name} is not blocked."
    refusal = _may_set_role(ctx, target, new_role)
    if refusal:
        return refusal
    await services.store.people.set_role(target.id, new_role)
    note = ""
    owners = set(services.config.bot.owners)
    if owners & set(target.identities) and new_role is not Role.OWNER:
        note = " Note: they are named in bot.owners, so they become owner again when they next write; edit the config."
    return f"#{target.id} {target.name} is now {new_role} (was {target.role}).{note}"


def _may_set_role(ctx: CommandContext, target: PersonInfo, role: Role) -> str | None:
    """Admins manage members and blocked people; only owners grant or take admin and owner."""
    if target.id == ctx.person.id:
        return "You cannot change your own role; ask another owner."
    if role_allows(ctx.person.role, Role.OWNER):
        return None
    if role in (Role.ADMIN, Role.OWNER) or target.role in (Role.ADMIN, Role.OWNER):
        return f"Only an owner can make someone {role} or change an {target.role}'s role."
    return None


# -- audit ----------------------------------------------------------------------------------


@command("audit", summary="Recent admin actions and refused attempts", usage="audit [<who>] [<count>]",
         min_role=Role.ADMIN)
async def audit_command(ctx: CommandContext) -> str:
    services = _services(ctx)
    if services.audit is None:
        return "The audit log is not available in this process."
    limit, person_id = 15, None
    for arg in ctx.args:
        if arg.isdigit() and int(arg) <= 200 and not arg.startswith("#"):
            limit = int(arg)
        else:
            found = await Directory(services.store.pool).find(arg)
            if found is None:
                return f"I know nobody as {arg!r}."
            person_id = found.id
    entries = await services.audit.recent(limit, person_id=person_id)
    if not entries:
        return "The audit log is empty."
    return "Audit log (newest first):\n" + "\n".join(
        f"• {e.at:%Y-%m-%d %H:%M:%S} {e.actor_name or e.actor} ({e.role}, {e.channel}): "
        f"{e.command}{' ' + _preview(e.args) if e.args else ''} → {e.outcome}" for e in entries)


# -- broadcast ------------------------------------------------------------------------------


@command("broadcast", summary="Send a message to a channel conversation or to everyone who opted in",
         usage="broadcast <optins|channel:room> <message>", min_role=Role.ADMIN)
async def broadcast_command(ctx: CommandContext) -> str:
    services = _services(ctx)
    usage = (f"Usage: `{_prefix(ctx)} broadcast optins <message>` (everyone who opted in) or "
             f"`{_prefix(ctx)} broadcast slack:C123 <message>` (one conversation: channel:room or channel:space:room)")
    target, _, message = ctx.text.strip().partition(" ")
    message = message.strip()
    if not target or not message:
        return usage
    if target.lower() in ("optins", "everyone", "all"):
        targets = await OptIns(services.store.pool).conversations()
        if not targets:
            return f"Nobody has opted in yet (people opt in with `{_prefix(ctx)} optin`)."
    else:
        ref = parse_target(target)
        if ref is None:
            return f"{target!r} is not a conversation. {usage}"
        adapters = services.catalog.get("adapters") or []
        live = sorted(a.name for a in adapters if a.live)
        if adapters and ref.channel not in live:  # a worker process has no adapters and cannot tell
            return f"No live adapter named {ref.channel!r} (live: {', '.join(live) or 'none'})."
        targets = [ref]
    sent = await send_to(services.bus, targets, message)
    return f"Broadcast sent to {sent} conversation{'s' if sent != 1 else ''}."


@command("optin", summary="Receive (or stop receiving) the bot's broadcasts here", usage="optin [on|off]")
async def optin_command(ctx: CommandContext) -> str:
    choice = ctx.args[0].lower() if ctx.args else "on"
    optins = OptIns(_services(ctx).store.pool)
    if choice in ("on", "yes"):
        await optins.set(ctx.person.id, ctx.event.conversation)
        return f"You'll receive broadcasts here. `{_prefix(ctx)} optin off` stops them."
    if choice in ("off", "no"):
        changed = await optins.set(ctx.person.id, None)
        return "You won't receive broadcasts any more." if changed else "You were not receiving broadcasts."
    return f"Usage: `{_prefix(ctx)} optin [on|off]`"


COMMANDS = [status_command, flows_command, runs_command, users_command, audit_command, broadcast_command,
            optin_command]
