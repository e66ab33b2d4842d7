"""Discord payloads → `Event`s: which messages count, and how each becomes the neutral shape.

Ids are Discord snowflakes, unique platform-wide, so `discord:<message id>` is stable across
gateway RESUME replays and reconnects: the bus drops a replayed message by that id.
"""

from __future__ import annotations

import re
from typing import Any

import discord

from adapters.discord.options import DiscordOptions, RespondTo
from bot.commands import parse_command
from bot.events import Attachment, ConversationRef, Event, EventKind, Sender

NAME = "discord"
DM_SPACE = "@me"  # Discord's own name for the direct-message "guild"
_TAKEN_TYPES = frozenset({discord.MessageType.default, discord.MessageType.reply})


def conversation_of(channel: Any, guild_id: int | None) -> ConversationRef:
    """A thread is the conversation when there is one; its parent channel is the room."""
    space = str(guild_id) if guild_id else DM_SPACE
    if isinstance(channel, discord.Thread) and channel.parent_id:
        return ConversationRef(channel=NAME, space=space, room=str(channel.parent_id), thread=str(channel.id))
    return ConversationRef(channel=NAME, space=space, room=str(channel.id))


def sender_of(user: discord.abc.User | discord.Object | None, user_id: int) -> Sender:
    name = getattr(user, "display_name", "") or getattr(user, "name", "") or ""
    return Sender(channel=NAME, id=str(user_id), name=name, is_bot=bool(getattr(user, "bot", False)))


def addresses_bot(message: discord.Message, bot_id: int) -> bool:
    """A DM, a mention of the bot (or of its own role), or a reply to one of the bot's messages."""
    if message.guild is None:
        return True
    if any(user.id == bot_id for user in message.mentions) or _bot_roles(message, bot_id):
        return True
    resolved = message.reference.resolved if message.reference else None
    return isinstance(resolved, discord.Message) and resolved.author.id == bot_id


def _bot_roles(message: discord.Message, bot_id: int) -> list[discord.Role]:
    """Mentions of the bot's managed role: Discord's autocomplete often offers `@Switchboard` the
    role rather than `@Switchboard` the user, and people mean the bot either way."""
    return [r for r in message.role_mentions if r.tags is not None and r.tags.bot_id == bot_id]


def admits(message: discord.Message, options: DiscordOptions, bot_id: int, prefix: str) -> bool:
    """Should this message become an event at all? (Own messages, other bots, allow-lists, noise.)"""
    if message.author.id == bot_id or message.type not in _TAKEN_TYPES:
        return False
    if not message.content and not message.attachments:
        return False  # nothing to act on (a sticker, or text hidden without the message content intent)
    if message.author.bot and not options.answer_bots:
        return False
    if options.allowed_users and message.author.id not in options.allowed_users:
        return False
    if message.guild is None:
        return True
    if options.allowed_guilds and message.guild.id not in options.allowed_guilds:
        return False
    if options.respond_to is RespondTo.ALL or addresses_bot(message, bot_id):
        return True
    channel = message.channel
    if channel.id in options.listen_channels or getattr(channel, "parent_id", None) in options.listen_channels:
        return True
    if isinstance(channel, discord.Thread) and channel.owner_id == bot_id:
        return True  # a thread the bot started is a conversation with it
    return parse_command(message.content, prefix) is not None


def clean_text(message: discord.Message, bot_id: int) -> str:
    """The message text with the bot's own mention removed and other mentions made readable."""
    text = re.sub(rf"<@!?{bot_id}>", "", message.content)
    for role in _bot_roles(message, bot_id):
        text = text.replace(f"<@&{role.id}>", "")
    for user in message.mentions:
        text = re.sub(rf"<@!?{user.id}>", f"@{user.display_name}", text)
    for role in message.role_mentions:
        text = text.replace(f"<@&{role.id}>", f"@{role.name}")
    for channel in message.channel_mentions:
        text = text.replace(f"<#{channel.id}>", f"#{getattr(channel, 'name', channel.id)}")
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def message_event(message: discord.Message, bot_id: int, prefix: str) -> Event:
    text = clean_text(message, bot_id)
    command = parse_command(text, prefix)
    reference = message.reference.message_id if message.reference and message.reference.message_id else None
    return Event(
        id=f"{NAME}:{message.id}",
        kind=EventKind.COMMAND if command else EventKind.MESSAGE,
        channel=NAME,
        conversation=conversation_of(message.channel, message.guild.id if message.guild else None),
        sender=sender_of(message.author, message.author.id),
        text=text,
        attachments=tuple(
            Attachment(
                name=a.filename, content_type=a.content_type or "application/octet-stream", url=a.url, size=a.size
            )
            for a in message.attachments
        ),
        command=command,
        reply_to=str(reference) if reference else "",
        mentioned=addresses_bot(message, bot_id),
        ts=message.created_at.timestamp(),
        raw=message_raw(message),
    )


def message_raw(message: discord.Message) -> dict[str, Any]:
    """The gateway fields we read, JSON-safe (discord.py does not keep the original payload)."""
    return {
        "id": str(message.id),
        "channel_id": str(message.channel.id),
        "guild_id": str(message.guild.id) if message.guild else None,
        "author": {"id": str(message.author.id), "username": message.author.name, "bot": message.author.bot},
        "content": message.content,
        "type": message.type.value,
        "attachments": [
            {"id": str(a.id), "filename": a.filename, "url": a.url, "size": a.size} for a in message.attachments
        ],
        "message_reference": {"message_id": str(message.reference.message_id)} if message.reference else None,
    }


def interaction_raw(interaction: discord.Interaction) -> dict[str, Any]:
    return {
        "id": str(interaction.id),
        "type": interaction.type.value,
        "channel_id": str(interaction.channel_id) if interaction.channel_id else None,
        "guild_id": str(interaction.guild_id) if interaction.guild_id else None,
        "user": {"id": str(interaction.user.id), "username": interaction.user.name, "bot": interaction.user.bot},
        "data": interaction.data,
    }


def interaction_conversation(interaction: discord.Interaction) -> ConversationRef:
    channel = interaction.channel
    if channel is None:
        return ConversationRef(
            channel=NAME, space=str(interaction.guild_id or DM_SPACE), room=str(interaction.channel_id)
        )
    return conversation_of(channel, interaction.guild_id)


def slash_event(interaction: discord.Interaction, text: str, prefix: str) -> Event:
    command = parse_command(f"{prefix} {text}".strip(), prefix)
    return Event(
        id=f"{NAME}:interaction:{interaction.id}",
        kind=EventKind.COMMAND,
        channel=NAME,
        conversation=interaction_conversation(interaction),
        sender=sender_of(interaction.user, interaction.user.id),
        text=f"{prefix} {text}".strip(),
        command=command,
        mentioned=True,
        ts=interaction.created_at.timestamp(),
        meta={"slash": True},
        raw=interaction_raw(interaction),
    )


def action_event(interaction: discord.Interaction, value: str, label: str) -> Event:
    message = interaction.message
    return Event(
        id=f"{NAME}:interaction:{interaction.id}",
        kind=EventKind.ACTION,
        channel=NAME,
        conversation=interaction_conversation(interaction),
        sender=sender_of(interaction.user, interaction.user.id),
        text=label,
        reply_to=str(message.id) if message else "",
        mentioned=True,
        ts=interaction.created_at.timestamp(),
        meta={"action": value, "label": label},
        raw=interaction_raw(interaction),
    )


def reaction_event(payload: discord.RawReactionActionEvent, channel: Any, user: Any, bot_id: int) -> Event:
    emoji = payload.emoji
    key = emoji.id or emoji.name
    conversation = (
        conversation_of(channel, payload.guild_id)
        if channel is not None
        else ConversationRef(channel=NAME, space=str(payload.guild_id or DM_SPACE), room=str(payload.channel_id))
    )
    return Event(
        id=f"{NAME}:reaction:{payload.message_id}:{payload.user_id}:{key}",
        kind=EventKind.REACTION,
        channel=NAME,
        conversation=conversation,
        sender=sender_of(payload.member or user, payload.user_id),
        text=str(emoji),
        reply_to=str(payload.message_id),
        mentioned=payload.message_author_id == bot_id,
        meta={"reaction": emoji.name or "", "emoji": str(emoji)},
        raw={
            "message_id": str(payload.message_id),
            "channel_id": str(payload.channel_id),
            "guild_id": str(payload.guild_id) if payload.guild_id else None,
            "user_id": str(payload.user_id),
            "emoji": {"id": str(emoji.id) if emoji.id else None, "name": emoji.name},
        },
    )


def join_event(member: discord.Member) -> Event:
    guild = member.guild
    room = str(guild.system_channel.id) if guild.system_channel else ""
    joined = member.joined_at.timestamp() if member.joined_at else 0.0
    return Event(
        id=f"{NAME}:join:{guild.id}:{member.id}:{int(joined)}",
        kind=EventKind.JOIN,
        channel=NAME,
        conversation=ConversationRef(channel=NAME, space=str(guild.id), room=room),
        sender=sender_of(member, member.id),
        raw={"guild_id": str(guild.id), "user_id": str(member.id)},
    )
