"""`send_message`: post into another conversation or channel, through the bus like any reply."""

from __future__ import annotations

from bot.events import ConversationRef, Reply
from bot.store.people import Role
from bot.tools.base import ToolContext, ToolError
from bot.tools.decorator import tool


@tool(role=Role.ADMIN, approval=True, timeout=10)
async def send_message(ctx: ToolContext, channel: str, room: str, text: str, space: str = "", thread: str = "") -> str:
    """Send a message to another conversation (a channel, chat or thread), e.g. to notify a team.

    Args:
        channel: the adapter: slack, discord, telegram, email, web or console.
        room: the platform's channel/chat id (for email: the address).
        text: the message, in Markdown.
        space: the workspace/guild id where the platform has one.
        thread: a thread id to post into.
    """
    if ctx.services is None or getattr(ctx.services, "bus", None) is None:
        raise ToolError("no message bus is available")
    if not text.strip():
        raise ToolError("the message is empty")
    target = ConversationRef(channel=channel, room=room, space=space, thread=thread)
    reply = Reply(conversation=target, text=text, in_thread=bool(thread),
                  meta={"run_id": ctx.run_id, "sent_by_tool": "send_message"})
    await ctx.services.bus.send(reply)
    return f"Sent to {channel}:{room}" + (f" (thread {thread})" if thread else "")
