"""`set`: assign variables (`vars.name`) from templates; later nodes read `{{ vars.name }}`."""

from __future__ import annotations

from typing import Any

from flows.context import RunContext
from flows.nodes.base import Node, NodeKind, NodeOptions, NodeResult, node_kind


class SetOptions(NodeOptions):
    values: dict[str, Any]


@node_kind(NodeKind.SET, options=SetOptions, summary="Assign variables")
class SetNode(Node[SetOptions]):
    async def run(self, ctx: RunContext) -> NodeResult:
        rendered = ctx.render_value(self.options.values)
        ctx.vars.update(rendered)
        return NodeResult(outputs=dict(rendered))

    def templates(self) -> dict[str, str]:
        return {f"values.{k}": v for k, v in self.options.values.items() if isinstance(v, str)}
