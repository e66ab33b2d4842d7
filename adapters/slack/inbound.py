"""Slack payloads (Events API, slash commands, Block Kit actions) to neutral `Event`s.

Everything here is pure: payload in, `Event` (or None for "not for us") out, so each rule can be
tested without a socket. Identity rules that make redeliveries run once:

* a message's id is its workspace, channel and `ts` — the same for a retried delivery and for the
  `message` + `app_mention` pair Slack sends when the bot is mentioned, so both collapse to one event;
* reactions and joins use Slack's `event_id` (stable across retries);
* actions and slash commands use the `trigger_id` Slack mints once per click or command.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from adapters.slack.lru import BoundedDict
from bot.commands import parse_command
from bot.events import Attachment, ConversationRef, Event, EventKind, Sender

NAME = "slack"

# Message subtypes a person produces; the rest (edits, deletions, joins, topic changes...) are not chat.
_CHAT_SUBTYPES = frozenset({"", "file_share", "thread_broadcast", "me_message", "bot_message"})
_LINK = re.compile(r"<((?:https?|mailto|tel):[^|>]+)(?:\|([^>]*))?>")
_CHANNEL = re.compile(r"<#([A-Z0-9]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!(here|channel|everyone)(?:\|[^>]*)?>")
_SUBTEAM = re.compile(r"<!subteam\^[A-Z0-9]+(?:\|([^>]*))?>")


class ChannelMessages(StrEnum):
    """Which messages in channels (not DMs) the bot answers."""

    MENTIONS = "mentions"  # only when @-mentioned, or in a thread the bot is part of
    ALL = "all"


@dataclass(slots=True)
class InboundPolicy:
    command_prefix: str = "/sb"
    channel_messages: ChannelMessages = ChannelMessages.MENTIONS
    reply_in_thread: bool = True
    ignore_bots: bool = True
    allowed_channels: frozenset[str] = frozenset()  # empty: every channel the bot is in
    allowed_users: frozenset[str] = frozenset()  # empty: everyone


@dataclass(slots=True)
class Inbound:
    """Normalizes payloads; remembers (bounded) where the bot has spoken, to recognise follow-ups."""

    policy: InboundPolicy
    # (channel, thread_ts) of threads the bot has posted in: a reply there is addressed to the bot.
    bot_threads: BoundedDict[tuple[str, str], bool] = field(default_factory=lambda: BoundedDict(20_000))
    # (channel, ts) of the bot's own messages -> the conversation they belong to (for reactions).
    bot_messages: BoundedDict[tuple[str, str], ConversationRef] = field(default_factory=lambda: BoundedDict(20_000))

    def allowed(self, channel: str, user: str) -> bool:
        policy = self.policy
        if policy.allowed_channels and channel not in policy.allowed_channels:
            return False
        return not (policy.allowed_users and user not in policy.allowed_users)

    def thread_for(self, *, dm: bool, ts: str, thread_ts: str) -> str:
        """The conversation's thread: the Slack thread if there is one; in channels a top-level
        message starts one (the bot answers under it), in DMs the DM itself is the conversation."""
        if thread_ts:
            return thread_ts
        return "" if dm or not self.policy.reply_in_thread else ts

    def message(self, body: Mapping[str, Any], event: Mapping[str, Any], bot_user_id: str) -> Event | None:
        """A `message` or `app_mention` event, or None when the bot should not see it."""
        subtype = event.get("subtype") or ""
        if subtype not in _CHAT_SUBTYPES:
            return None
        is_bot = bool(event.get("bot_id")) or subtype == "bot_message"
        user = event.get("user") or event.get("bot_id") or ""  # integrations post as a bot id only
        if not user or user == bot_user_id or (is_bot and self.policy.ignore_bots):
            return None
        channel = event.get("channel") or ""
        if not self.allowed(channel, user):
            return None
        text = event.get("text") or ""
        ts = event.get("ts") or ""
        thread_ts = event.get("thread_ts") or ""
        dm = event.get("channel_type") == "im" or channel.startswith("D")
        mentioned = (
            dm
            or event.get("type") == "app_mention"
            or (bool(bot_user_id) and f"<@{bot_user_id}" in text)
            or (bool(thread_ts) and event.get("parent_user_id") == bot_user_id)
            or (bool(thread_ts) and (channel, thread_ts) in self.bot_threads)
        )
        if not mentioned and self.policy.channel_messages is ChannelMessages.MENTIONS:
            return None
        clean = plain_text(text, bot_user_id)
        command = parse_command(clean, self.policy.command_prefix)
        team = _team(body, event)
        return Event(
            id=f"{NAME}:{team}:{channel}:{ts}",
            kind=EventKind.COMMAND if command else EventKind.MESSAGE,
            channel=NAME,
            conversation=ConversationRef(NAME, channel, team, self.thread_for(dm=dm, ts=ts, thread_ts=thread_ts)),
            sender=Sender(NAME, user, "", is_bot),
            text=clean,
            attachments=tuple(_attachment(f) for f in event.get("files") or () if isinstance(f, Mapping)),
            command=command,
            reply_to=thread_ts if thread_ts != ts else "",
            mentioned=mentioned,
            ts=_ts(ts),
            meta={"slack_ts": ts, "dm": dm},
            raw=_raw(body),
        )

    def slash_command(self, body: Mapping[str, Any]) -> Event | None:
        """A native slash command (`/sb deploy api`): always a COMMAND, always addressed to the bot."""
        user = body.get("user_id") or ""
        channel = body.get("channel_id") or ""
        if not self.allowed(channel, user):
            return None
        prefix = self.policy.command_prefix
        text = plain_text(body.get("text") or "", "")
        command = parse_command(f"{prefix} {text}", prefix)
        team = body.get("team_id") or ""
        return Event(
            id=f"{NAME}:command:{body.get('trigger_id') or body.get('response_url') or ''}",
            kind=EventKind.COMMAND,
            channel=NAME,
            conversation=ConversationRef(NAME, channel, team, ""),
            sender=Sender(NAME, user, body.get("user_name") or ""),
            text=f"{prefix} {text}".strip(),
            command=command,
            mentioned=True,
            meta={"slash_command": body.get("command") or "", "dm": channel.startswith("D")},
            raw=_raw(body),
        )

    def block_action(self, body: Mapping[str, Any]) -> Event | None:
        """A Block Kit button press: ACTION with `meta["action"]` = the button's value."""
        actions = body.get("actions") or []
        if not actions:
            return None
        action = actions[0]
        user = body.get("user") or {}
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or ""
        if not self.allowed(channel, user.get("id", "")):
            return None
        message = body.get("message") or {}
        container = body.get("container") or {}
        message_ts = message.get("ts") or container.get("message_ts") or ""
        # The press belongs to the conversation the button message was posted in.
        thread = message.get("thread_ts") or container.get("thread_ts") or ""
        team = (body.get("team") or {}).get("id") or user.get("team_id") or ""
        label = ((action.get("text") or {}).get("text")) or ""
        unique = body.get("trigger_id") or f"{channel}:{message_ts}:{action.get('action_ts', '')}"
        return Event(
            id=f"{NAME}:action:{unique}",
            kind=EventKind.ACTION,
            channel=NAME,
            conversation=ConversationRef(NAME, channel, team, thread),
            sender=Sender(NAME, user.get("id", ""), user.get("name") or user.get("username") or ""),
            text=label,
            reply_to=message_ts,
            mentioned=True,
            meta={"action": action.get("value", ""), "action_id": action.get("action_id", ""),
                  "dm": channel.startswith("D")},
            raw=_raw(body),
        )

    def reaction(self, body: Mapping[str, Any], event: Mapping[str, Any], bot_user_id: str) -> Event | None:
        """`reaction_added` on the bot's messages (feedback), or on any message when the bot reads all."""
        item = event.get("item") or {}
        user = event.get("user") or ""
        channel = item.get("channel") or ""
        ts = item.get("ts") or ""
        if item.get("type") != "message" or not user or user == bot_user_id or not self.allowed(channel, user):
            return None
        on_bot = event.get("item_user") == bot_user_id or (channel, ts) in self.bot_messages
        if not on_bot and self.policy.channel_messages is ChannelMessages.MENTIONS:
            return None
        team = _team(body, event)
        dm = channel.startswith("D")
        where = self.bot_messages.get((channel, ts)) or ConversationRef(
            NAME, channel, team, self.thread_for(dm=dm, ts=ts, thread_ts="")
        )
        unique = body.get("event_id") or f"reaction:{channel}:{ts}:{user}:{event.get('reaction')}"
        return Event(
            id=f"{NAME}:{unique}",
            kind=EventKind.REACTION,
            channel=NAME,
            conversation=where,
            sender=Sender(NAME, user),
            text=f":{event.get('reaction', '')}:",
            reply_to=ts,
            mentioned=on_bot,
            ts=_ts(event.get("event_ts") or ""),
            meta={"reaction": event.get("reaction", ""), "dm": dm},
            raw=_raw(body),
        )

    def join(self, body: Mapping[str, Any], event: Mapping[str, Any], bot_user_id: str) -> Event | None:
        """`member_joined_channel`: someone (not the bot) joined a channel the bot is in."""
        user = event.get("user") or ""
        channel = event.get("channel") or ""
        if not user or user == bot_user_id or not self.allowed(channel, user):
            return None
        team = _team(body, event)
        unique = body.get("event_id") or f"join:{channel}:{user}:{event.get('event_ts', '')}"
        return Event(
            id=f"{NAME}:{unique}",
            kind=EventKind.JOIN,
            channel=NAME,
            conversation=ConversationRef(NAME, channel, team, ""),
            sender=Sender(NAME, user),
            ts=_ts(event.get("event_ts") or ""),
            raw=_raw(body),
        )


def plain_text(text: str, bot_user_id: str) -> str:
    """Slack's wire text to what a person typed: the bot's own mention removed, links and channel
    names readable, entities unescaped. Other people's mentions stay as `<@U…>` (flows may use them)."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>:?\s*", "", text)
    text = _CHANNEL.sub(lambda m: f"#{m.group(2) or m.group(1)}", text)
    text = _SPECIAL.sub(lambda m: f"@{m.group(1)}", text)
    text = _SUBTEAM.sub(lambda m: m.group(1) or "@team", text)
    text = _LINK.sub(_readable_link, text)
    return html.unescape(text).strip()


def _readable_link(match: re.Match[str]) -> str:
    url, label = match.group(1), match.group(2)
    bare = url.removeprefix("mailto:").removeprefix("tel:")
    if not label or label in (url, bare) or url.endswith("//" + label):
        return bare
    return f"{label} ({url})"


def _attachment(file: Mapping[str, Any]) -> Attachment:
    return Attachment(
        name=file.get("name") or file.get("title") or file.get("id") or "file",
        content_type=file.get("mimetype") or "application/octet-stream",
        # Private to the workspace: fetching it needs the bot token (files:read).
        url=file.get("url_private_download") or file.get("url_private") or "",
        size=int(file.get("size") or 0),
    )


def _raw(body: Mapping[str, Any]) -> dict[str, Any]:
    # Slack's legacy verification token rides in every payload; it is a credential, so it stays here.
    return {k: v for k, v in body.items() if k != "token"}


def _team(body: Mapping[str, Any], event: Mapping[str, Any]) -> str:
    return body.get("team_id") or event.get("team") or ""


def _ts(ts: str) -> float:
    try:
        return float(ts)
    except (TypeError, ValueError):
        return time.time()
