"""Telegram updates (as python-telegram-bot parsed them) → `Event`s.

Event ids are built from platform ids that stay the same when Telegram sends an update again
(a webhook retry, a poll after a crash): `telegram:<chat id>:<message id>` for messages,
`telegram:cb:<callback query id>` for button presses, `telegram:update:<update id>` for reactions.
The bus drops an id it has seen, so a re-sent update runs once.

Group privacy lives here too: in groups the bot is addressed by an @mention, a reply to one of its
messages or a command; everything else is dropped unless `group_messages: all`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from telegram import CallbackQuery, Chat, Message, MessageEntity, MessageReactionUpdated, ReactionTypeEmoji, Update
from telegram import User as TgUser

from adapters.telegram.settings import GroupMessages, TelegramSettings
from bot.commands import parse_command
from bot.events import Attachment, Command, ConversationRef, Event, EventKind, Sender

CHANNEL = "telegram"
# "/name", "/name@bot", then anything: the form of a Telegram bot command.
_BOT_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]+))?(?=\s|$)(.*)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class BotIdentity:
    id: int
    username: str  # without "@"


def conversation_of(message: Message) -> ConversationRef:
    """A forum topic is the thread; otherwise the chat is the conversation."""
    thread = str(message.message_thread_id) if message.is_topic_message and message.message_thread_id else ""
    return ConversationRef(channel=CHANNEL, room=str(message.chat.id), thread=thread)


def sender_of(user: TgUser | None, chat: Chat) -> Sender:
    if user is None:  # anonymous group admins and channel posts speak as the chat
        return Sender(CHANNEL, str(chat.id), chat.title or chat.username or "", False)
    return Sender(CHANNEL, str(user.id), user.full_name or user.username or str(user.id), user.is_bot)


class Normalizer:
    """Turns one update into at most a few events, or nothing when it is not for us."""

    def __init__(self, settings: TelegramSettings, bot: BotIdentity, command_prefix: str) -> None:
        self.settings = settings
        self.bot = bot
        self.prefix = command_prefix

    def allowed(self, chat_id: int | str) -> bool:
        return not self.settings.allowed_chats or str(chat_id) in self.settings.allowed_chats

    # -- messages ------------------------------------------------------------------------------

    def message(self, update: Update) -> list[Event]:
        message = update.message
        if message is None or not self.allowed(message.chat.id):
            return []
        if message.from_user is not None and message.from_user.id == self.bot.id:
            return []  # our own message (Telegram does not echo them, but a self-hosted API might)
        if message.new_chat_members:
            return self._joins(update, message)

        text = message.text or message.caption or ""
        command, for_us = self._command(text)
        if not for_us:
            return []  # "/cmd@OtherBot": addressed to another bot in the group
        private = message.chat.type == Chat.PRIVATE
        mentioned = private or command is not None or self._mentions_us(message) or self._replies_to_us(message)
        if not mentioned and self.settings.group_messages is GroupMessages.MENTIONS:
            return []
        attachments = _attachments(message)
        if not text and not attachments:
            return []  # service messages (pins, title changes) carry nothing to answer
        return [
            Event(
                id=f"{CHANNEL}:{message.chat.id}:{message.message_id}",
                kind=EventKind.COMMAND if command else EventKind.MESSAGE,
                channel=CHANNEL,
                conversation=conversation_of(message),
                # Anonymous admins and linked channels speak as a chat (sender_chat), not as a user.
                sender=sender_of(None, message.sender_chat) if message.sender_chat
                else sender_of(message.from_user, message.chat),
                text=text if command else self._strip_mention(text),
                attachments=attachments,
                command=command,
                reply_to=str(message.reply_to_message.message_id) if message.reply_to_message else "",
                mentioned=mentioned,
                ts=message.date.timestamp(),
                meta={"chat_type": message.chat.type, "update_id": update.update_id},
                raw=update.to_dict(),
            )
        ]

    def _joins(self, update: Update, message: Message) -> list[Event]:
        return [
            Event(
                id=f"{CHANNEL}:{message.chat.id}:{message.message_id}:join:{member.id}",
                kind=EventKind.JOIN,
                channel=CHANNEL,
                conversation=conversation_of(message),
                sender=sender_of(member, message.chat),
                ts=message.date.timestamp(),
                meta={"chat_type": message.chat.type, "update_id": update.update_id},
                raw=update.to_dict(),
            )
            for member in message.new_chat_members or ()
            if member.id != self.bot.id
        ]

    def _command(self, text: str) -> tuple[Command | None, bool]:
        """(command, addressed to us). Handles `/sb ...`, `/sb@Bot ...` and shortcuts like `/start`."""
        match = _BOT_COMMAND.match(text.strip())
        if match is None:
            return parse_command(text, self.prefix), True
        name, target, tail = match.group(1), match.group(2), match.group(3).strip()
        if target and target.lower() != self.bot.username.lower():
            return None, False
        if f"/{name}" == self.prefix:
            return parse_command(f"{self.prefix} {tail}", self.prefix), True
        mapped = self.settings.shortcuts.get(name.lower())
        if mapped is None:
            return None, True  # some other slash word: plain text
        return parse_command(f"{self.prefix} {mapped} {tail}", self.prefix), True

    def _mentions_us(self, message: Message) -> bool:
        handle = f"@{self.bot.username}".lower()
        entities = message.parse_entities() or message.parse_caption_entities()
        for entity, value in entities.items():
            if entity.type == MessageEntity.MENTION and value.lower() == handle:
                return True
            if entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == self.bot.id:
                return True
        return False

    def _replies_to_us(self, message: Message) -> bool:
        replied = message.reply_to_message
        return bool(replied and replied.from_user and replied.from_user.id == self.bot.id)

    def _strip_mention(self, text: str) -> str:
        """`@bot what's up` → `what's up`: the mention addressed us, it is not part of the question."""
        handle = f"@{self.bot.username}"
        if text[: len(handle)].lower() == handle.lower():
            return text[len(handle):].lstrip(" ,:")
        return text

    # -- buttons and reactions -------------------------------------------------------------------

    def action(self, update: Update, value: str) -> Event | None:
        query: CallbackQuery | None = update.callback_query
        if query is None or query.message is None or not self.allowed(query.message.chat.id):
            return None
        chat = query.message.chat
        message = query.message if isinstance(query.message, Message) else None
        conversation = (
            conversation_of(message) if message else ConversationRef(channel=CHANNEL, room=str(chat.id))
        )
        return Event(
            id=f"{CHANNEL}:cb:{query.id}",
            kind=EventKind.ACTION,
            channel=CHANNEL,
            conversation=conversation,
            sender=sender_of(query.from_user, chat),
            text=value,
            reply_to=str(query.message.message_id),
            mentioned=True,
            meta={"action": value, "chat_type": chat.type, "update_id": update.update_id},
            raw=update.to_dict(),
        )

    def reactions(self, update: Update) -> list[Event]:
        """One REACTION event per emoji newly added (removals are not reported)."""
        reaction: MessageReactionUpdated | None = update.message_reaction
        if reaction is None or not self.allowed(reaction.chat.id):
            return []
        if reaction.user is not None and reaction.user.id == self.bot.id:
            return []
        before = {_reaction_name(r) for r in reaction.old_reaction}
        added = [name for r in reaction.new_reaction if (name := _reaction_name(r)) not in before]
        return [
            Event(
                id=f"{CHANNEL}:update:{update.update_id}:{i}",
                kind=EventKind.REACTION,
                channel=CHANNEL,
                conversation=ConversationRef(channel=CHANNEL, room=str(reaction.chat.id)),
                sender=sender_of(reaction.user, reaction.chat),
                reply_to=str(reaction.message_id),
                mentioned=reaction.chat.type == Chat.PRIVATE,
                ts=reaction.date.timestamp(),
                meta={"reaction": name, "chat_type": reaction.chat.type, "update_id": update.update_id},
                raw=update.to_dict(),
            )
            for i, name in enumerate(added)
        ]


def _reaction_name(reaction: object) -> str:
    if isinstance(reaction, ReactionTypeEmoji):
        return reaction.emoji
    return str(getattr(reaction, "custom_emoji_id", None) or getattr(reaction, "type", "reaction"))


def _attachments(message: Message) -> tuple[Attachment, ...]:
    """Files as `Attachment`s. `url` is `tg-file:<file_id>`, not a download URL: Telegram's download
    URLs embed the bot token, which must never reach the event journal or logs."""
    found: list[Attachment] = []
    if message.photo:
        largest = max(message.photo, key=lambda p: p.width * p.height)
        found.append(Attachment(f"photo_{largest.file_unique_id}.jpg", "image/jpeg",
                                f"tg-file:{largest.file_id}", largest.file_size or 0))
    for kind in ("document", "video", "audio", "voice", "animation", "video_note"):
        media = getattr(message, kind, None)
        if media is None:
            continue
        name = getattr(media, "file_name", None) or f"{kind}_{media.file_unique_id}"
        content_type = getattr(media, "mime_type", None) or "application/octet-stream"
        found.append(Attachment(name, content_type, f"tg-file:{media.file_id}", media.file_size or 0))
    return tuple(found)
