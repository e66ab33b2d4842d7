"""`condition`: if / elif / else over Jinja expressions; the first true branch wins.

- id: route
  kind: condition
  branches:
    - if: "not models.configured"
      next: explain_setup
    - if: "'deploy' in event.text"
      next: deploy
  else: chat
"""

from __future__ import annotations

from pydantic import Field

from flows.context import RunContext
from flows.model import _Strict
from flows.nodes.base import Node, NodeKind, NodeOptions, NodeResult, node_kind


class Branch(_Strict):
    if_: str = Field(alias="if")
    next: str


class ConditionOptions(NodeOptions):
    branches: list[Branch] = Field(min_length=1)
    else_: str | None = Field(None, alias="else")  # None: fall through to the node's `next`


@node_kind(NodeKind.CONDITION, options=ConditionOptions, summary="Branch on expressions (if/elif/else)")
class ConditionNode(Node[ConditionOptions]):
    async def run(self, ctx: RunContext) -> NodeResult:
        scope = ctx.scope()
        from flows import templates

        for index, branch in enumerate(self.options.branches):
            if templates.evaluate(branch.if_, scope):
                return NodeResult(outputs={"branch": index, "matched": branch.if_}, next=branch.next)
        return NodeResult(outputs={"branch": "else"}, next=self.options.else_)

    def branch_targets(self) -> list[str]:
        targets = [b.next for b in self.options.branches]
        if self.options.else_:
            targets.append(self.options.else_)
        return targets

    def expressions(self) -> list[str]:
        return [b.if_ for b in self.options.branches]
