"""`Reply` to Slack message payloads: mrkdwn section blocks, Block Kit buttons, size limits.

Slack caps a section block's text at 3,000 characters and shows long messages poorly, so a reply is
cut into messages of at most `MESSAGE_CHARS` (each a few section blocks) after conversion to mrkdwn,
which is what Slack counts. Buttons go on the last message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from adapters.base import split_text
from adapters.slack.mrkdwn import to_mrkdwn
from bot.events import Button, FileOut


class Limit(IntEnum):
    BLOCK_CHARS = 3000  # section block text
    MESSAGE_CHARS = 12000  # our cut per message: 4 full section blocks, well under Slack's 40,000
    BUTTON_LABEL_CHARS = 75
    BUTTON_VALUE_CHARS = 2000
    BUTTONS_PER_BLOCK = 25


# Every button we render has an action_id with this prefix; the action listener matches on it.
ACTION_PREFIX = "sb:"
_STYLES = frozenset({"primary", "danger"})


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """One chat.postMessage / chat.update body (minus channel and thread)."""

    text: str  # the mrkdwn shown in notifications and by clients that cannot draw blocks
    blocks: list[dict[str, Any]]


def reply_markdown(text: str, files: Sequence[FileOut]) -> str:
    """The reply text plus links for files that are only URLs (uploaded files are sent apart)."""
    links = [f"[{f.name}]({f.url})" for f in files if f.url and not f.data_b64]
    return "\n".join([text, *links] if text else links)


def chunks(markdown: str) -> list[str]:
    """The mrkdwn of each message a reply becomes (at least one, possibly empty)."""
    return split_text(to_mrkdwn(markdown), Limit.MESSAGE_CHARS) if markdown.strip() else [""]


def message(chunk: str, buttons: Sequence[Button] = (), encode_value: Callable[[str], str] = str) -> SlackMessage:
    """Section blocks for one chunk, plus an actions block per 25 buttons."""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": piece}}
        for piece in split_text(chunk, Limit.BLOCK_CHARS)
        if piece.strip()
    ]
    for start in range(0, len(buttons), Limit.BUTTONS_PER_BLOCK):
        group = buttons[start : start + Limit.BUTTONS_PER_BLOCK]
        blocks.append({"type": "actions", "elements": [
            _button(start + i, b, encode_value) for i, b in enumerate(group)
        ]})
    text = chunk or " · ".join(b.label for b in buttons) or " "
    return SlackMessage(text=text, blocks=blocks)


def _button(index: int, button: Button, encode_value: Callable[[str], str]) -> dict[str, Any]:
    label = button.label if len(button.label) <= Limit.BUTTON_LABEL_CHARS else button.label[:74] + "…"
    element: dict[str, Any] = {
        "type": "button",
        "action_id": f"{ACTION_PREFIX}{index}",
        "text": {"type": "plain_text", "text": label or "·", "emoji": True},
        "value": encode_value(button.value),
    }
    if button.style in _STYLES:
        element["style"] = button.style
    return element


def section_texts(blocks: Sequence[dict[str, Any]]) -> list[str]:
    """The mrkdwn of each section block (what a person reads), for logs and tests."""
    return [b["text"]["text"] for b in blocks if b.get("type") == "section" and isinstance(b.get("text"), dict)]
