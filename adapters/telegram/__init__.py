"""Telegram channel: python-telegram-bot v22, long polling or a webhook on our HTTP server.

Switched on by `TELEGRAM_BOT_TOKEN` (see docs/adapters/telegram.md). The package is split by job:
`settings` (env + options, validated), `inbound` (updates → events, group privacy), `markup`
(markdown → Telegram HTML, split at 4096), `keyboard` (buttons ↔ inline keyboards), `outbox`
(replies → messages, streaming edits, files), `api` (one Bot API call through flood control and
network trouble) and `adapter` (lifecycle, webhook endpoint, per-chat delivery lanes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.telegram.adapter import TelegramAdapter
from adapters.telegram.settings import GroupMessages, TelegramSettings, UpdateMode, settings_from

__all__ = ["GroupMessages", "TelegramAdapter", "TelegramSettings", "UpdateMode", "create"]


def create(options: dict[str, Any], env: Mapping[str, str]) -> TelegramAdapter:
    """Build the adapter from `adapters.telegram` options and the environment (ValueError if misconfigured)."""
    return TelegramAdapter(settings_from(options, env))
