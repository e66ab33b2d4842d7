"""`end`: finish the run, optionally naming its outputs (returned by the API for this run)."""

from __future__ import annotations

from typing import Any

from flows.context import RunContext
from flows.nodes.base import Node, NodeKind, NodeOptions, NodeResult, node_kind


class EndOptions(NodeOptions):
    outputs: dict[str, Any] = {}


@node_kind(NodeKind.END, options=EndOptions, summary="Finish the run")
class EndNode(Node[EndOptions]):
    async def run(self, ctx: RunContext) -> NodeResult:
        return NodeResult(outputs=ctx.render_value(self.options.outputs), stop=True)

    def ends_run(self) -> bool:
        return True

    def templates(self) -> dict[str, str]:
        return {f"outputs.{k}": v for k, v in self.options.outputs.items() if isinstance(v, str)}
