"""`template`: render text from earlier values (`{{ node.field }}`)."""

from __future__ import annotations

from flows.context import RunContext
from flows.nodes.base import Node, NodeKind, NodeOptions, NodeResult, node_kind


class TemplateOptions(NodeOptions):
    template: str


@node_kind(NodeKind.TEMPLATE, options=TemplateOptions, summary="Render text from earlier values")
class TemplateNode(Node[TemplateOptions]):
    async def run(self, ctx: RunContext) -> NodeResult:
        return NodeResult(outputs={"text": ctx.render(self.options.template)})

    def templates(self) -> dict[str, str]:
        return {"template": self.options.template}
