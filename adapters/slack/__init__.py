"""Slack channel adapter (slack-bolt `AsyncApp`): Socket Mode or the HTTP Events API.

Switched on by `SLACK_BOT_TOKEN` plus `SLACK_APP_TOKEN` (Socket Mode) or `SLACK_SIGNING_SECRET`
(HTTP at `/slack/events`); `SLACK_API_URL` points the Web API elsewhere. See docs/adapters/slack.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.slack.adapter import SlackAdapter
from adapters.slack.settings import SlackMode, SlackSettings, settings_from

__all__ = ["SlackAdapter", "SlackMode", "SlackSettings", "create"]


def create(options: dict[str, Any], env: Mapping[str, str]) -> SlackAdapter:
    """Build the adapter from `adapters.slack` options and the environment; ValueError if misconfigured."""
    return SlackAdapter(settings_from(options, env))
