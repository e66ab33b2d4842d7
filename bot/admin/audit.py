"""The audit log: every admin action and every refused attempt, with who, what, when, where and outcome.

`FlowRuntime` calls `services.audit.record(...)` after each admin command (and after refusing one),
so the log is complete without each command remembering to write it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import AsyncConnectionPool

from bot.admin.context import preview, services_of
from bot.admin.directory import Directory
from bot.commands import CommandContext, command
from bot.events import Event
from bot.store.people import Person, Role

log = logging.getLogger("switchboard.audit")

MAX_ARGS = 500  # characters of the command's arguments kept per row


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    person_id: int | None
    actor: str  # channel:user id
    actor_name: str
    role: str
    channel: str
    conversation: str
    command: str
    args: str
    outcome: str


class AuditLog:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def record(self, event: Event, person: Person, command: str, outcome: str) -> None:
        args = event.command.text if event.command else ""
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO audit_log (person_id, actor, actor_name, role, channel, conversation, command, args, "
                "outcome) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (person.id, event.sender.key, event.sender.name or person.display_name, str(person.role),
                 event.channel, event.conversation.key, command, args[:MAX_ARGS], outcome[:MAX_ARGS]),
            )
        log.info("audited", extra={"person": person.id, "command": command, "outcome": outcome[:80],
                                   "channel": event.channel})

    async def recent(self, limit: int = 20, *, person_id: int | None = None) -> list[AuditEntry]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT at, person_id, actor, actor_name, role, channel, conversation, command, args, outcome "
                "FROM audit_log WHERE %(person)s::bigint IS NULL OR person_id = %(person)s "
                "ORDER BY id DESC LIMIT %(limit)s",
                {"person": person_id, "limit": limit},
            )
            return [AuditEntry(*row) for row in await cur.fetchall()]


@command("audit", summary="Recent admin actions and refused attempts", usage="audit [<who>] [<count>]",
         min_role=Role.ADMIN)
async def audit_command(ctx: CommandContext) -> str:
    services = services_of(ctx)
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
        f"{e.command}{' ' + preview(e.args) if e.args else ''} → {e.outcome}" for e in entries)
