"""Telegram adapter settings: environment variables plus `adapters.telegram` options, checked once.

Secrets (the bot token, the webhook secret) come only from the environment; every other knob may
also be set in `config/switchboard.yaml`. Problems raise ValueError with the fix in the message,
which `switchboard run` shows as "telegram: misconfigured: ...".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import urlsplit

DEFAULT_BASE_URL = "https://api.telegram.org"
WEBHOOK_PATH = "/telegram/webhook"
# Telegram's own rules: a token is "<bot id>:<secret>"; a webhook secret is 1-256 of [A-Za-z0-9_-].
_TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]{20,}$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")
E = TypeVar("E", bound=StrEnum)


class UpdateMode(StrEnum):
    POLLING = "polling"  # getUpdates long polling: works behind NAT, the default
    WEBHOOK = "webhook"  # Telegram POSTs to our HTTP server at /telegram/webhook


class GroupMessages(StrEnum):
    """Which group messages the bot answers (private chats are always answered)."""

    MENTIONS = "mentions"  # only when @mentioned, replied to, or sent a command
    ALL = "all"  # every message (needs privacy mode off in BotFather, or admin rights)


# Telegram users expect one-word commands in the menu; each maps to a `/sb` command.
DEFAULT_SHORTCUTS = {"start": "help", "help": "help", "status": "status", "remind": "remind", "memory": "memory"}


@dataclass(frozen=True, slots=True)
class TelegramSettings:
    token: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    mode: UpdateMode = UpdateMode.POLLING
    webhook_url: str = ""  # the public HTTPS URL Telegram posts to; empty: registered elsewhere
    webhook_secret: str = field(default="", repr=False)
    group_messages: GroupMessages = GroupMessages.MENTIONS
    # Native-looking commands: `/start`, `/help@bot args` become `Command(<mapped name>, args)`.
    shortcuts: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_SHORTCUTS))
    allowed_chats: frozenset[str] = frozenset()  # empty: every chat
    poll_timeout: float = 30.0
    edit_interval: float = 1.0  # seconds between streaming edits in private chats
    group_edit_interval: float = 3.0  # groups allow ~20 messages a minute
    drop_pending_updates: bool = False
    publish_commands: bool = True  # setMyCommands with the shortcuts, for Telegram's command menu

    @property
    def bot_id(self) -> str:
        return self.token.split(":", 1)[0]


def settings_from(options: Mapping[str, Any], env: Mapping[str, str]) -> TelegramSettings:
    """Build settings from env + options, or raise ValueError saying what to fix."""
    token = (env.get("TELEGRAM_BOT_TOKEN") or "").strip()
    if not token:
        raise ValueError("set TELEGRAM_BOT_TOKEN to the token BotFather gave you")
    if not _TOKEN.match(token):
        raise ValueError("TELEGRAM_BOT_TOKEN does not look like a BotFather token (<digits>:<secret>)")
    unknown = set(options) - _OPTION_NAMES
    if unknown:
        raise ValueError(f"unknown adapters.telegram option(s): {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(sorted(_OPTION_NAMES))}")

    base_url = (env.get("TELEGRAM_BASE_URL") or str(options.get("base_url") or DEFAULT_BASE_URL)).rstrip("/")
    if urlsplit(base_url).scheme not in ("http", "https"):
        raise ValueError(f"TELEGRAM_BASE_URL must be an http(s) URL, got {base_url!r}")
    webhook_url = (env.get("TELEGRAM_WEBHOOK_URL") or str(options.get("webhook_url") or "")).strip()
    secret = (env.get("TELEGRAM_WEBHOOK_SECRET") or "").strip()
    mode = _enum(UpdateMode, options.get("mode") or (UpdateMode.WEBHOOK if webhook_url else UpdateMode.POLLING),
                 "mode")
    if mode is UpdateMode.WEBHOOK:
        if not secret:
            raise ValueError("webhook mode needs TELEGRAM_WEBHOOK_SECRET (1-256 characters of A-Z a-z 0-9 _ -) "
                             "so forged updates can be refused")
        if not _SECRET.match(secret):
            raise ValueError("TELEGRAM_WEBHOOK_SECRET may only hold 1-256 characters of A-Z a-z 0-9 _ -")
        if webhook_url and urlsplit(webhook_url).scheme not in ("http", "https"):
            raise ValueError(f"TELEGRAM_WEBHOOK_URL must be an https URL ending in {WEBHOOK_PATH}")

    shortcuts = options.get("shortcuts", dict(DEFAULT_SHORTCUTS)) or {}
    if not isinstance(shortcuts, Mapping):
        raise ValueError("adapters.telegram.shortcuts must map Telegram commands to ours, e.g. {start: help}")
    for name in shortcuts:
        if not _COMMAND.match(str(name)):
            raise ValueError(f"Telegram command names are 1-32 of a-z 0-9 _; {name!r} is not")

    return TelegramSettings(
        token=token,
        base_url=base_url,
        mode=mode,
        webhook_url=webhook_url,
        webhook_secret=secret,
        group_messages=_enum(GroupMessages, options.get("group_messages", GroupMessages.MENTIONS), "group_messages"),
        shortcuts={str(k): str(v).lower() for k, v in shortcuts.items()},
        allowed_chats=frozenset(str(c) for c in options.get("allowed_chats") or ()),
        poll_timeout=_positive(options, "poll_timeout", 30.0),
        edit_interval=_positive(options, "edit_interval", 1.0),
        group_edit_interval=_positive(options, "group_edit_interval", 3.0),
        drop_pending_updates=bool(options.get("drop_pending_updates", False)),
        publish_commands=bool(options.get("publish_commands", True)),
    )


_OPTION_NAMES = {
    "base_url", "mode", "webhook_url", "group_messages", "shortcuts", "allowed_chats", "poll_timeout",
    "edit_interval", "group_edit_interval", "drop_pending_updates", "publish_commands",
}


def _enum(kind: type[E], value: Any, name: str) -> E:
    try:
        return kind(str(value))
    except ValueError:
        raise ValueError(
            f"adapters.telegram.{name} must be one of {', '.join(m.value for m in kind)}; got {value!r}"
        ) from None


def _positive(options: Mapping[str, Any], name: str, default: float) -> float:
    value = options.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number <= 0:
        raise ValueError(f"adapters.telegram.{name} must be a positive number of seconds; got {value!r}")
    return number
