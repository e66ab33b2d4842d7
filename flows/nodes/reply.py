"""`reply`: send a message (optionally with buttons) into the conversation."""

from __future__ import annotations

from bot.events import Button
from flows.context import RunContext
from flows.model import _Strict
from flows.nodes.base import Node, NodeKind, NodeOptions, NodeResult, node_kind


class ButtonSpec(_Strict):
    label: str
    value: str = ""
    style: str = ""


class ReplyOptions(NodeOptions):
    text: str
    buttons: list[ButtonSpec] = []
    in_thread: bool = True
    ephemeral: bool = False


@node_kind(NodeKind.REPLY, options=ReplyOptions, summary="Send a message")
class ReplyNode(Node[ReplyOptions]):
    async def run(self, ctx: RunContext) -> NodeResult:
        text = ctx.render(self.options.text).strip()
        buttons = tuple(
            Button(ctx.render(b.label), ctx.render(b.value or b.label), b.style) for b in self.options.buttons
        )
        reply = await ctx.send(
            text, buttons=buttons, in_thread=self.options.in_thread, ephemeral=self.options.ephemeral
        )
        await ctx.record_assistant_text(text)
        return NodeResult(outputs={"text": text, "reply_id": reply.id})

    def templates(self) -> dict[str, str]:
        found = {"text": self.options.text}
        for i, b in enumerate(self.options.buttons):
            found[f"buttons[{i}].label"] = b.label
        return found
