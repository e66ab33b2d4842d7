"""Discord channel adapter (discord.py gateway client): mentions, DMs, threads, `/sb` slash
command, buttons, reactions, attachments, streaming by edits.

Switched on by `DISCORD_BOT_TOKEN`; `DISCORD_API_URL` points it at another REST base (the gateway
URL then comes from that API's `/gateway/bot`). Setup: docs/adapters/discord.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.discord.adapter import DiscordAdapter
from adapters.discord.options import DiscordOptions, RespondTo, load_options

__all__ = ["DiscordAdapter", "DiscordOptions", "RespondTo", "create"]


def create(options: dict[str, Any], env: Mapping[str, str]) -> DiscordAdapter:
    """Build the adapter from `adapters.discord` options and the environment (ValueError if misconfigured)."""
    return DiscordAdapter(load_options(options, env))
