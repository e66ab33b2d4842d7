"""`tool`: call one tool from a flow with templated arguments.

Outputs: `result` (the text the tool returned; parsed JSON as `data` when it is JSON), `status`,
`ok`, `error`. A failed call is a normal outcome with `ok: false`, unless `fail: true`, which fails
the node so `retry` / `on_error` apply. A tool that needs approval parks the run like in `agent`.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from bot.commands import role_allows
from bot.tools.approvals import post_request, refusal, request_approval, resolve_approval
from bot.tools.base import ToolResult
from bot.tools.execution import PlannedCall, coerce_to_schema, execute, record
from bot.tools.waits import WAKE_ACTION, HumanWaits, WaitStatus
from flows.context import RunContext
from flows.nodes.base import Node, NodeKind, NodeOptions, NodeResult, node_kind


class ToolNodeError(RuntimeError):
    pass


class ToolOptions(NodeOptions):
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    timeout: float | None = Field(None, gt=0)
    fail: bool = False  # a failed call fails the node (for retry / on_error)


@node_kind(NodeKind.TOOL, options=ToolOptions, summary="Call one tool")
class ToolNode(Node[ToolOptions]):
    async def run(self, ctx: RunContext) -> NodeResult:
        saved = ctx.values.get(self.id) if ctx.answer is not None else None
        if isinstance(saved, dict) and saved.get("waiting"):
            call = PlannedCall.from_dict(saved["call"])
            status = await resolve_approval(ctx, saved["wait_id"])
            if status is None:
                wait = await HumanWaits(ctx.services.store.pool).get(saved["wait_id"])
                if wait is not None and ctx.answer is not None and ctx.answer.meta.get("action") != WAKE_ACTION:
                    await post_request(ctx, wait, reminder=True)
                return NodeResult(outputs=saved, wait=True)
            if status is WaitStatus.APPROVED:
                (result,) = await execute(ctx, self.id, [call], timeout=self.options.timeout)
            else:
                result = refusal(status, call.tool)
                await record(ctx, self.id, [call], [result])
            return self._result(call, result)

        registry = ctx.services.tools
        found = registry.get(self.options.tool) if registry is not None else None
        arguments = ctx.render_value(self.options.arguments)
        if found is not None:
            arguments = coerce_to_schema(arguments, found.parameters)
        call = PlannedCall(call_id=f"{ctx.run_id}:{self.id}", tool=self.options.tool, arguments=arguments)
        if found is not None and found.approval and role_allows(ctx.person.role, found.role):
            wait = await request_approval(ctx, self.id, call.tool, call.arguments)
            return NodeResult(outputs={"waiting": True, "wait_id": wait.id, "call": call.as_dict()}, wait=True)
        (result,) = await execute(ctx, self.id, [call], timeout=self.options.timeout)
        return self._result(call, result)

    def _result(self, call: PlannedCall, result: ToolResult) -> NodeResult:
        if self.options.fail and not result.ok:
            raise ToolNodeError(f"{call.tool}: {result.error or result.status}")
        outputs: dict[str, Any] = {"result": result.content, "status": str(result.status), "ok": result.ok,
                                   "error": result.error}
        try:
            outputs["data"] = json.loads(result.content)
        except (json.JSONDecodeError, TypeError):
            outputs["data"] = None
        return NodeResult(outputs=outputs, inputs={"tool": call.tool, "arguments": call.arguments,
                                                   "duration_ms": round(result.duration_ms, 3)})
