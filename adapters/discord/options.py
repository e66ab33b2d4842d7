"""The Discord adapter's settings: environment first, then `adapters.discord` in the config file.

Validation happens here, once, with messages that say what to change; a bad value raises
`ValueError`, which `adapters.registry.discover` reports as "misconfigured: ..." at startup.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

DISCORD_API_BASE = "https://discord.com/api/v10"
_VERSIONED = re.compile(r"/v\d+$")
_COMMAND_NAME = re.compile(r"^[-_a-z0-9]{1,32}$")


class RespondTo(StrEnum):
    """Which guild messages become events (DMs, mentions, replies to the bot and commands always do)."""

    MENTIONS = "mentions"
    ALL = "all"


@dataclass(frozen=True, slots=True)
class DiscordOptions:
    token: str
    # The REST base with its version, e.g. https://discord.com/api/v10. Empty: discord.py's default.
    api_url: str = ""
    respond_to: RespondTo = RespondTo.MENTIONS
    # Channels where every message is taken even when respond_to is "mentions".
    listen_channels: frozenset[int] = frozenset()
    # Allow-lists; empty means everyone / every guild.
    allowed_guilds: frozenset[int] = frozenset()
    allowed_users: frozenset[int] = frozenset()
    # Guilds the slash command is registered in (instantly); empty registers it globally (up to an hour).
    guilds: tuple[int, ...] = ()
    # Slash command name; empty: derived from the command prefix ("/sb" -> "sb").
    slash_command: str = ""
    sync_commands: bool = True
    # The privileged MESSAGE CONTENT intent: without it, guild messages that do not mention the bot
    # arrive with empty text. Switch it on in the developer portal, or set this to false.
    message_content: bool = True
    # The privileged SERVER MEMBERS intent, needed for JOIN events.
    member_events: bool = False
    # Take messages from other bots (off by default: two bots answering each other never stop).
    answer_bots: bool = False
    # Seconds between edits of a streamed message.
    edit_interval: float = 1.0


_KEYS = {
    "api_url",
    "respond_to",
    "listen_channels",
    "allowed_guilds",
    "allowed_users",
    "guilds",
    "slash_command",
    "sync_commands",
    "message_content",
    "member_events",
    "answer_bots",
    "edit_interval",
}


def load_options(options: Mapping[str, Any], env: Mapping[str, str]) -> DiscordOptions:
    """Build validated options; raise ValueError naming the key and the fix."""
    if "token" in options or "bot_token" in options:
        raise ValueError("the bot token belongs in the DISCORD_BOT_TOKEN environment variable, not in the config file")
    unknown = sorted(set(options) - _KEYS)
    if unknown:
        raise ValueError(f"unknown option(s) adapters.discord.{', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}")
    token = (env.get("DISCORD_BOT_TOKEN") or "").strip()
    if not token:
        raise ValueError("set DISCORD_BOT_TOKEN to the bot token from the developer portal (Bot → Reset Token)")
    if token.lower().startswith("bot "):
        raise ValueError("DISCORD_BOT_TOKEN must be the bare token, without the 'Bot ' prefix")
    if any(c.isspace() for c in token):
        raise ValueError("DISCORD_BOT_TOKEN contains whitespace; paste the token exactly as the portal shows it")

    respond_to = str(options.get("respond_to", RespondTo.MENTIONS))
    if respond_to not in RespondTo._value2member_map_:
        raise ValueError(
            f"adapters.discord.respond_to must be one of {[m.value for m in RespondTo]}, not {respond_to!r}"
        )
    guilds = _ids("guilds", options.get("guilds", ()))
    if not guilds and env.get("DISCORD_GUILDS"):
        guilds = _ids("DISCORD_GUILDS", env["DISCORD_GUILDS"])
    slash = str(options.get("slash_command", "") or "")
    if slash and not _COMMAND_NAME.match(slash):
        raise ValueError(
            f"adapters.discord.slash_command {slash!r} is not a valid Discord command name (1-32 of a-z 0-9 - _)"
        )
    interval = options.get("edit_interval", 1.0)
    if not isinstance(interval, int | float) or isinstance(interval, bool) or not 0.2 <= interval <= 30:
        raise ValueError(
            f"adapters.discord.edit_interval must be a number of seconds between 0.2 and 30, not {interval!r}"
        )
    return DiscordOptions(
        token=token,
        api_url=normalize_api_url(str(options.get("api_url") or env.get("DISCORD_API_URL") or "")),
        respond_to=RespondTo(respond_to),
        listen_channels=frozenset(_ids("listen_channels", options.get("listen_channels", ()))),
        allowed_guilds=frozenset(_ids("allowed_guilds", options.get("allowed_guilds", ()))),
        allowed_users=frozenset(_ids("allowed_users", options.get("allowed_users", ()))),
        guilds=guilds,
        slash_command=slash,
        sync_commands=_flag("sync_commands", options.get("sync_commands", True)),
        message_content=_flag("message_content", options.get("message_content", True)),
        member_events=_flag("member_events", options.get("member_events", False)),
        answer_bots=_flag("answer_bots", options.get("answer_bots", False)),
        edit_interval=float(interval),
    )


def normalize_api_url(url: str) -> str:
    """`http://host:8080/api` → `http://host:8080/api/v10`: discord.py's REST base carries the version."""
    url = url.strip().rstrip("/")
    if not url:
        return ""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"DISCORD_API_URL must start with http:// or https://, not {url!r}")
    return url if _VERSIONED.search(url) else f"{url}/v10"


def _ids(key: str, value: Any) -> tuple[int, ...]:
    """Discord ids (snowflakes) from a list, a single id, or a comma-separated string."""
    if isinstance(value, str):
        items: list[Any] = [v for v in re.split(r"[,\s]+", value) if v]
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ValueError(f"{_where(key)} must be a list of Discord ids, not {value!r}")
    out: list[int] = []
    for item in items:
        text = str(item).strip()
        if isinstance(item, bool) or not text.isdigit():
            raise ValueError(f"{_where(key)}: {item!r} is not a Discord id (enable Developer Mode, then Copy ID)")
        out.append(int(text))
    return tuple(out)


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"adapters.discord.{key} must be true or false, not {value!r}")
    return value


def _where(key: str) -> str:
    return key if key.isupper() else f"adapters.discord.{key}"
