"""`Reply.buttons` ↔ Telegram inline keyboards.

Telegram's `callback_data` holds at most 64 bytes, while a button value may be longer. Short values
travel as they are; longer ones (and any that look like our own tokens) are replaced by a token
`sb~<digest>` kept in a bounded in-memory map. A token that is no longer known (the process
restarted, or the map overflowed) is reported as expired to the person instead of guessed.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.events import Button

CALLBACK_DATA_BYTES = 64
_TOKEN_PREFIX = "sb~"
_ONE_ROW_MAX_BUTTONS = 3
_ONE_ROW_MAX_LABEL_CHARS = 30


class CallbackValues:
    """Encodes button values into callback_data and back."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._long: OrderedDict[str, str] = OrderedDict()

    def encode(self, value: str) -> str:
        if len(value.encode()) <= CALLBACK_DATA_BYTES and not value.startswith(_TOKEN_PREFIX):
            return value
        token = _TOKEN_PREFIX + hashlib.sha256(value.encode()).hexdigest()[:32]
        self._long[token] = value
        self._long.move_to_end(token)
        while len(self._long) > self._capacity:
            self._long.popitem(last=False)
        return token

    def decode(self, data: str) -> str | None:
        """The button value, or None when the token has expired."""
        if not data.startswith(_TOKEN_PREFIX):
            return data
        return self._long.get(data)

    def keyboard(self, buttons: tuple[Button, ...]) -> InlineKeyboardMarkup:
        """A few short buttons share one row; otherwise one button per row, so labels stay readable."""
        keys = [InlineKeyboardButton(b.label, callback_data=self.encode(b.value)) for b in buttons]
        short = sum(len(b.label) for b in buttons) <= _ONE_ROW_MAX_LABEL_CHARS
        if len(keys) <= _ONE_ROW_MAX_BUTTONS and short:
            return InlineKeyboardMarkup([keys])
        return InlineKeyboardMarkup([[k] for k in keys])
