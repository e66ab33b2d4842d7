"""Reply buttons as Discord components, and clicks back to button values.

Buttons are `discord.ui.DynamicItem`s: a click is matched by its `custom_id` pattern, not by an
in-memory view tied to one message, so buttons keep working after a restart and never time out
(an `ask` node may wait days for the click). The value travels inside the custom_id when it fits
Discord's 100 characters; longer values are kept in a bounded in-process map.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from bot.events import Button

MAX_BUTTONS = 25  # 5 rows of 5
_LABEL_MAX = 80
_CUSTOM_ID_MAX = 100
_INLINE = "sb:v:"
_BY_REF = "sb:r:"
_STYLES = {"primary": discord.ButtonStyle.primary, "danger": discord.ButtonStyle.danger}

ClickHandler = Callable[[discord.Interaction, str, str], Awaitable[None]]


class ButtonValues:
    """custom_id ↔ button value. Bounded, so a long-running bot does not grow without limit."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._by_ref: OrderedDict[str, str] = OrderedDict()

    def encode(self, reply_id: str, index: int, value: str, taken: set[str]) -> str:
        inline = _INLINE + value
        if len(inline) <= _CUSTOM_ID_MAX and inline not in taken:
            return inline
        ref = f"{_BY_REF}{reply_id}:{index}"
        self._by_ref[ref] = value
        if len(self._by_ref) > self._capacity:
            self._by_ref.popitem(last=False)
        return ref

    def decode(self, custom_id: str) -> str | None:
        if custom_id.startswith(_INLINE):
            return custom_id[len(_INLINE) :]
        return self._by_ref.get(custom_id)


class ReplyButton(discord.ui.DynamicItem[discord.ui.Button], template=r"^sb:[vr]:.+"):  # type: ignore[call-arg]
    """One reply button; the click is routed to the adapter that owns the client."""

    def __init__(self, custom_id: str, label: str, style: discord.ButtonStyle) -> None:
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=custom_id))

    @classmethod
    async def from_custom_id(  # type: ignore[override]
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: Any
    ) -> ReplyButton:
        return cls(item.custom_id or "", item.label or "", item.style)

    async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
        on_click: ClickHandler | None = getattr(interaction.client, "switchboard_on_click", None)
        if on_click is not None:
            await on_click(interaction, self.item.custom_id or "", self.item.label or "")


def build_view(buttons: tuple[Button, ...], reply_id: str, values: ButtonValues) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    taken: set[str] = set()
    for index, button in enumerate(buttons[:MAX_BUTTONS]):
        custom_id = values.encode(reply_id, index, button.value, taken)
        taken.add(custom_id)
        style = _STYLES.get(button.style, discord.ButtonStyle.secondary)
        view.add_item(ReplyButton(custom_id, button.label[:_LABEL_MAX] or button.value[:_LABEL_MAX], style))
    return view
