"""The Slack adapter's settings, from the environment (secrets) and `adapters.slack` (behaviour).

Every problem is reported as a `ValueError` naming the variable or option to fix, which
`switchboard run` shows as "slack: misconfigured: ...". Secrets never appear in `repr`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from adapters.slack.inbound import ChannelMessages

DEFAULT_API_URL = "https://slack.com/api/"


class SlackMode(StrEnum):
    SOCKET = "socket"  # outbound websocket; no public URL needed
    HTTP = "http"  # Slack POSTs to /slack/events on our HttpServer


@dataclass(frozen=True, slots=True)
class SlackSettings:
    bot_token: str = field(repr=False)
    mode: SlackMode
    app_token: str = field(default="", repr=False)
    signing_secret: str = field(default="", repr=False)
    api_url: str = DEFAULT_API_URL
    slash_command: str = "/sb"
    events_path: str = "/slack/events"
    channel_messages: ChannelMessages = ChannelMessages.MENTIONS
    reply_in_thread: bool = True
    ignore_bots: bool = True
    allowed_channels: frozenset[str] = frozenset()
    allowed_users: frozenset[str] = frozenset()
    edit_interval: float = 1.0  # seconds between two edits of a streamed message
    max_retries: int = 5  # per Web API call, on 429 (after Retry-After) and connection errors
    ping_interval: float = 10.0  # Socket Mode keep-alive


_OPTIONS = frozenset({
    "mode", "api_url", "slash_command", "events_path", "channel_messages", "reply_in_thread", "ignore_bots",
    "allowed_channels", "allowed_users", "edit_interval", "max_retries", "ping_interval",
})


def settings_from(options: Mapping[str, Any], env: Mapping[str, str]) -> SlackSettings:
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise ValueError(f"unknown option(s) adapters.slack.{', '.join(unknown)}; known: {', '.join(sorted(_OPTIONS))}")
    bot_token = env.get("SLACK_BOT_TOKEN", "").strip()
    app_token = env.get("SLACK_APP_TOKEN", "").strip()
    signing_secret = env.get("SLACK_SIGNING_SECRET", "").strip()
    if not bot_token:
        raise ValueError("SLACK_BOT_TOKEN is not set (the xoxb-... Bot User OAuth Token)")
    if not bot_token.startswith("xoxb-"):
        raise ValueError("SLACK_BOT_TOKEN must be a bot token starting with xoxb- (OAuth & Permissions page)")
    mode = _mode(options.get("mode", "auto"), app_token, signing_secret)
    if mode is SlackMode.SOCKET and not app_token.startswith("xapp-"):
        raise ValueError("Socket Mode needs SLACK_APP_TOKEN, an app-level token starting with xapp- "
                         "with the connections:write scope")
    if mode is SlackMode.HTTP and not signing_secret:
        raise ValueError("the HTTP Events API needs SLACK_SIGNING_SECRET (Basic Information > Signing Secret)")
    api_url = str(options.get("api_url") or env.get("SLACK_API_URL") or DEFAULT_API_URL)
    if not api_url.startswith(("http://", "https://")):
        raise ValueError(f"SLACK_API_URL must be an http(s) URL, got {api_url!r}")
    slash = str(options.get("slash_command", "/sb"))
    if not slash.startswith("/") or " " in slash:
        raise ValueError(f"adapters.slack.slash_command must look like /name, got {slash!r}")
    events_path = str(options.get("events_path", "/slack/events"))
    if not events_path.startswith("/"):
        raise ValueError(f"adapters.slack.events_path must start with /, got {events_path!r}")
    try:
        channel_messages = ChannelMessages(options.get("channel_messages", ChannelMessages.MENTIONS))
    except ValueError:
        raise ValueError("adapters.slack.channel_messages must be 'mentions' or 'all'") from None
    return SlackSettings(
        bot_token=bot_token,
        mode=mode,
        app_token=app_token if mode is SlackMode.SOCKET else "",
        signing_secret=signing_secret,
        # slack_sdk drops the last path segment of a base URL without a trailing slash.
        api_url=api_url if api_url.endswith("/") else api_url + "/",
        slash_command=slash,
        events_path=events_path,
        channel_messages=channel_messages,
        reply_in_thread=_bool(options, "reply_in_thread", True),
        ignore_bots=_bool(options, "ignore_bots", True),
        allowed_channels=_ids(options, "allowed_channels"),
        allowed_users=_ids(options, "allowed_users"),
        edit_interval=_number(options, "edit_interval", 1.0, minimum=0.0),
        max_retries=int(_number(options, "max_retries", 5, minimum=0)),
        ping_interval=_number(options, "ping_interval", 10.0, minimum=1.0),
    )


def _mode(value: Any, app_token: str, signing_secret: str) -> SlackMode:
    if value in ("auto", None, ""):
        if app_token:
            return SlackMode.SOCKET
        if signing_secret:
            return SlackMode.HTTP
        raise ValueError("set SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP Events API)")
    try:
        return SlackMode(value)
    except ValueError:
        raise ValueError(f"adapters.slack.mode must be auto, socket or http, got {value!r}") from None


def _bool(options: Mapping[str, Any], key: str, default: bool) -> bool:
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"adapters.slack.{key} must be true or false, got {value!r}")
    return value


def _number(options: Mapping[str, Any], key: str, default: float, *, minimum: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ValueError(f"adapters.slack.{key} must be a number >= {minimum:g}, got {value!r}")
    return float(value)


def _ids(options: Mapping[str, Any], key: str) -> frozenset[str]:
    value = options.get(key) or []
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"adapters.slack.{key} must be a list of Slack ids (C0123..., U0123...)")
    return frozenset(value)
