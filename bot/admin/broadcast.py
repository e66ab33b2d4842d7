"""Broadcasts: who opted in (and where to reach them), and sending one text to many conversations."""

from __future__ import annotations

import logging

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from bot.bus import Bus
from bot.events import ConversationRef, Reply

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
