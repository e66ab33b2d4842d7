"""`/sb status`: is the bot healthy, how busy is it, and what has it cost today."""

from __future__ import annotations

import time

from bot.admin.context import preview, runtime_of, services_of
from bot.commands import CommandContext, command
from bot.logging import redact_url
from bot.scheduler.timing import human_duration
from bot.store.people import Role


@command("status", summary="Uptime, adapters, queue, runs in flight, errors and model use today", usage="status",
         min_role=Role.ADMIN)
async def status_command(ctx: CommandContext) -> str:
    services, runtime = services_of(ctx), runtime_of(ctx)
    lines = [f"*{services.config.bot.name} status*"]
    started = services.catalog.get("started_at")
    lines.append(f"• uptime: {human_duration(time.time() - started)}" if started else "• uptime: unknown")
    adapters = services.catalog.get("adapters") or []
    shown = [f"{a.name} (live)" if a.live else f"{a.name} (off: {preview(a.detail)})" for a in adapters]
    lines.append(f"• adapters: {', '.join(shown) if shown else 'none in this process'}")
    stats = services.bus.stats()
    lines.append(f"• queue: {stats.queued} waiting, {stats.in_flight} being handled "
                 f"(bus {redact_url(services.bus.url)})")
    lines.append(f"• runs in flight: {runtime.runs_in_flight}")
    list_workers = getattr(services.bus, "workers", None)  # the Redis bus: every process announces itself
    if list_workers is not None:
        workers = await list_workers()
        described = [f"{w.role or 'worker'} {w.host}/{w.pid} ({w.in_flight} in flight, {len(w.partitions)} partitions)"
                     for w in workers]
        lines.append(f"• processes on the bus: {len(workers)} — {'; '.join(described) if described else 'none'}")
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
