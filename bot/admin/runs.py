"""`/sb runs`: recent runs, one run with its steps, cancelling a parked run, dead letters and replay."""

from __future__ import annotations

import uuid

from bot.admin.context import LIST_LIMIT, prefix_of, preview, services_of
from bot.commands import CommandContext, command
from bot.events import Event
from bot.store.people import Role
from bot.store.runs import RunRecord, RunStatus


@command("runs", summary="Recent runs; show one with its steps; cancel; dead letters and replay",
         usage="runs [<id>|cancel <id>|dead|replay <event id>]", min_role=Role.ADMIN)
async def runs_command(ctx: CommandContext) -> str:
    store = services_of(ctx).store
    args = ctx.args
    action = args[0].lower() if args else "list"
    if action == "list":
        runs = await store.runs.recent(LIST_LIMIT)
        if not runs:
            return "No runs yet."
        return "Recent runs:\n" + "\n".join(
            f"• `{r.id[:8]}` {r.flow} — {r.status}, {r.steps} steps, {r.started_at:%Y-%m-%d %H:%M:%S}" for r in runs)
    if action == "dead":
        dead = await store.journal.dead(LIST_LIMIT)
        if not dead:
            return "No dead letters."
        return "Dead letters (events that kept failing):\n" + "\n".join(
            f"• `{e.id}` {e.channel} {preview(e.text) or e.kind} — {preview(err) or 'no error recorded'}"
            for e, err in dead) + f"\nReplay one with `{prefix_of(ctx)} runs replay <id>`."
    if action == "replay":
        if len(args) != 2:
            return f"Usage: `{prefix_of(ctx)} runs replay <event id>` (ids are in `{prefix_of(ctx)} runs dead`)"
        return await _replay(ctx, args[1])
    if action in ("cancel", "show"):
        if len(args) != 2:
            return f"Usage: `{prefix_of(ctx)} runs {action} <run id>`"
        run_id = args[1]
    elif len(args) == 1:
        action, run_id = "show", args[0]
    else:
        return f"Usage: `{prefix_of(ctx)} runs [<id>|cancel <id>|dead|replay <event id>]`"
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
    store = services_of(ctx).store
    prefix = given.strip().lower()
    if not prefix or any(c not in "0123456789abcdef-" for c in prefix):
        return f"{given!r} is not a run id (ids look like `3f2a9c1e`; `{prefix_of(ctx)} runs` lists recent runs)."
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
        lines.append(f"error: {preview(run.error)}")
    if run.next_node and run.status in (RunStatus.WAITING, RunStatus.INTERRUPTED):
        lines.append(f"next node: {run.next_node}")
    for index, step in enumerate(run.step_records, 1):
        extra = f" — {preview(step.error)}" if step.error else ""
        tries = f", {step.attempts} attempts" if step.attempts > 1 else ""
        lines.append(f"{index}. {step.node_id} ({step.kind}) {step.status}, {step.duration_ms:.0f} ms{tries}{extra}")
    return "\n".join(lines)


async def _replay(ctx: CommandContext, event_id: str) -> str:
    services = services_of(ctx)
    async with services.store.pool.connection() as conn:
        row = await (await conn.execute("SELECT payload FROM events WHERE id = %s AND status = 'dead'",
                                        (event_id,))).fetchone()
    if row is None:
        return f"No dead letter `{event_id}`. `{prefix_of(ctx)} runs dead` lists them."
    original = Event.from_dict(row[0])
    copy = Event.from_dict({**original.to_dict(), "id": f"{original.id}~replay-{uuid.uuid4().hex[:6]}"})
    # The copy has a new id (the journal dedupes on ids). It is accepted before the dead letter is
    # marked as handed on, so a failure in between leaves the dead letter listed, never lost.
    await services.bus.publish(copy)
    async with services.store.pool.connection() as conn:
        await conn.execute("UPDATE events SET status = 'done', error = %s WHERE id = %s AND status = 'dead'",
                           (f"replayed as {copy.id}", event_id))
    return f"Replayed `{event_id}` as `{copy.id}`."
