"""Calling tools on behalf of a run: context, parallel execution and the `tool_calls` record.

Used by the `agent` and `tool` nodes, so both record every call the same way.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.tools.base import ToolContext, ToolResult, ToolStatus
from bot.tools.records import ToolCallLog, ToolCallRecord

if TYPE_CHECKING:
    from flows.context import RunContext


@dataclass(slots=True)
class PlannedCall:
    """One call to make: the model's (or a flow's) request, JSON-safe so a waiting run can persist it."""

    call_id: str
    tool: str
    arguments: dict[str, Any]
    raw_arguments: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "tool": self.tool, "arguments": self.arguments,
                "raw_arguments": self.raw_arguments}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlannedCall:
        return cls(data["call_id"], data["tool"], dict(data.get("arguments") or {}), data.get("raw_arguments"))


def coerce_to_schema(arguments: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Templated flow arguments are text: turn "15" into 15 (or "true" into True) where the tool's schema
    wants a number or boolean, so JSON-schema tools (MCP, composite) accept what a flow renders."""
    properties = schema.get("properties") or {}
    coerced = dict(arguments)
    for key, value in arguments.items():
        wanted = (properties.get(key) or {}).get("type")
        if not isinstance(value, str) or wanted not in ("integer", "number", "boolean", "object", "array"):
            continue
        try:
            parsed = json.loads(value)
        except ValueError:
            continue
        if wanted == "integer" and isinstance(parsed, float) and parsed.is_integer():
            parsed = int(parsed)
        kinds = {"integer": int, "number": (int, float), "boolean": bool, "object": dict, "array": list}
        if isinstance(parsed, kinds[wanted]) and not (wanted != "boolean" and isinstance(parsed, bool)):
            coerced[key] = parsed
    return coerced


def tool_context(ctx: RunContext, node_id: str) -> ToolContext:
    return ToolContext(services=ctx.services, person=ctx.person, event=ctx.event, run_id=ctx.run_id, node_id=node_id)


async def execute(ctx: RunContext, node_id: str, calls: Sequence[PlannedCall], *,
                  timeout: float | None = None) -> list[ToolResult]:
    """Run calls concurrently and record them all (one round trip). Never raises for a tool's failure."""
    registry = ctx.services.tools
    tctx = tool_context(ctx, node_id)
    if registry is None:
        results = [ToolResult(ToolStatus.UNKNOWN, "Error: no tools are configured on this bot.",
                              error="no tool registry") for _ in calls]
    else:
        results = list(await asyncio.gather(*(
            registry.invoke(c.tool, c.arguments, tctx, timeout=timeout, raw_arguments=c.raw_arguments)
            for c in calls)))
    await record(ctx, node_id, calls, results)
    return results


async def record(ctx: RunContext, node_id: str, calls: Sequence[PlannedCall], results: Sequence[ToolResult]) -> None:
    await ToolCallLog(ctx.services.store.pool).record([
        ToolCallRecord.of(r, run_id=ctx.run_id, node_id=node_id, call_id=c.call_id, tool=c.tool,
                          arguments=c.arguments if c.arguments or not c.raw_arguments else {"_raw": c.raw_arguments})
        for c, r in zip(calls, results, strict=True)
    ])
