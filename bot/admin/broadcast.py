"""Broadcasts: `/sb optin` (who wants them, and where to reach them) and `/sb broadcast` (one text,
many conversations)."""

from __future__ import annotations

import logging

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from bot.admin.context import prefix_of, services_of
from bot.bus import Bus
from bot.commands import CommandContext, command
from bot.events import ConversationRef, Reply
from bot.store.people import Role

log = logging.getLogger("switchboard.broadcast")


def parse_target(text: str) -> ConversationRef | None:
    """`slack:C123` → room C123 on slack; `slack:T1:C123` adds the space; a 4th part is the thread."""
    parts = text.split(":")
    if len(parts) < 2 or not all(parts[:2]) or len(parts) > 4:
        return None
    if len(parts) == 2:
        return ConversationRef(channel=parts[0], room=parts[1])
    if len(parts) == 3:
        return ConversationRef(channel=parts[0], space=parts[1], room=parts[2])
    return ConversationRef(channel=parts[0], space=parts[1], room=parts[2], thread=parts[3])


class OptIns:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def set(self, person_id: int, conversation: ConversationRef | None) -> bool:
        """Opt in (to be reached in `conversation`) or, with None, out. Returns whether anything changed."""
        async with self._pool.connection() as conn:
            if conversation is None:
                cur = await conn.execute("DELETE FROM broadcast_optins WHERE person_id = %s", (person_id,))
                return cur.rowcount > 0
            ref = {"channel": conversation.channel, "space": conversation.space, "room": conversation.room,
                   "thread": conversation.thread}
            await conn.execute(
                "INSERT INTO broadcast_optins (person_id, conversation) VALUES (%s, %s) "
                "ON CONFLICT (person_id) DO UPDATE SET conversation = EXCLUDED.conversation, opted_in_at = now()",
                (person_id, Jsonb(ref)),
            )
            return True

    async def conversations(self) -> list[ConversationRef]:
        """Where to reach everyone who opted in, each conversation once."""
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT DISTINCT conversation FROM broadcast_optins")
            return [ConversationRef.from_dict(row[0]) for row in await cur.fetchall()]


async def send_to(bus: Bus, targets: list[ConversationRef], text: str) -> int:
    """Send `text` into each conversation; returns how many were sent."""
    sent = 0
    for ref in targets:
        await bus.send(Reply(conversation=ref, text=text, in_thread=bool(ref.thread), meta={"broadcast": True}))
        sent += 1
    log.info("broadcast sent", extra={"conversations": sent})
    return sent


@command("broadcast", summary="Send a message to a channel conversation or to everyone who opted in",
         usage="broadcast <optins|channel:room> <message>", min_role=Role.ADMIN)
async def broadcast_command(ctx: CommandContext) -> str:
    services = services_of(ctx)
    usage = (f"Usage: `{prefix_of(ctx)} broadcast optins <message>` (everyone who opted in) or "
             f"`{prefix_of(ctx)} broadcast slack:C123 <message>` "
             "(one conversation: channel:room or channel:space:room)")
    target, _, message = ctx.text.strip().partition(" ")
    message = message.strip()
    if not target or not message:
        return usage
    if target.lower() in ("optins", "everyone", "all"):
        targets = await OptIns(services.store.pool).conversations()
        if not targets:
            return f"Nobody has opted in yet (people opt in with `{prefix_of(ctx)} optin`)."
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
    optins = OptIns(services_of(ctx).store.pool)
    if choice in ("on", "yes"):
        await optins.set(ctx.person.id, ctx.event.conversation)
        return f"You'll receive broadcasts here. `{prefix_of(ctx)} optin off` stops them."
    if choice in ("off", "no"):
        changed = await optins.set(ctx.person.id, None)
        return "You won't receive broadcasts any more." if changed else "You were not receiving broadcasts."
    return f"Usage: `{prefix_of(ctx)} optin [on|off]`"
