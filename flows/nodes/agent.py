"""`agent`: the tool-calling loop — the model picks tools, they run (in parallel), their results go
back to the model, until it answers (streamed to the person) or the step limit is reached.

Every call is recorded in `tool_calls`. A tool that needs approval parks the run: the loop's state
(messages so far, calls still to make) is the node's output, which the engine persists with the
WAITING run, so the loop continues where it stopped when the answer comes — even after a restart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from bot.commands import role_allows
from bot.tools.approvals import post_request, refusal, request_approval, resolve_approval
from bot.tools.base import ToolResult
from bot.tools.execution import PlannedCall, execute, record
from bot.tools.waits import HumanWaits, WaitStatus
from flows.context import RunContext
from flows.nodes.base import Node, NodeKind, NodeOptions, NodeResult, node_kind
from flows.nodes.llm import MemoryOptions, ReplyStreamer, build_messages

log = logging.getLogger("switchboard.agent")

STEP_LIMIT_NOTE = "You have used all your tool steps: answer now with what you have, without calling tools."


class AgentOptions(NodeOptions):
    model: str | None = None
    system: str | None = None
    prompt: str = "{{ event.text }}"
    history: int | None = Field(None, ge=0)
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)
    memory: MemoryOptions | None = None
    # Tool names, or `server__*` for every tool of an MCP server; omitted: every tool the bot has.
    tools: list[str] | None = None
    max_steps: int = Field(6, ge=1, le=50)  # model turns that may call tools
    tool_timeout: float | None = Field(None, gt=0)  # per call, capped by a tool's own; default: tools.timeout
    parallel: bool = True  # run the tool calls of one turn concurrently
    reply: bool = True  # stream the final answer to the person


@dataclass
class AgentState:
    messages: list[dict[str, Any]]
    pending: list[dict[str, Any]] = field(default_factory=list)  # approval calls still to make, in order
    wait_id: str = ""
    steps: int = 0
    calls: list[dict[str, Any]] = field(default_factory=list)  # {tool, status} per call, for outputs
    model: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"messages": self.messages, "pending": self.pending, "wait_id": self.wait_id, "steps": self.steps,
                "calls": self.calls, "model": self.model}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgentState:
        return cls(list(data["messages"]), list(data.get("pending") or []), data.get("wait_id", ""),
                   int(data.get("steps", 0)), list(data.get("calls") or []), data.get("model", ""))


@dataclass
class _Usage:
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0


@node_kind(NodeKind.AGENT, options=AgentOptions, summary="Let the model call tools until it can answer")
class AgentNode(Node[AgentOptions]):
    async def run(self, ctx: RunContext) -> NodeResult:
        usage = _Usage()
        saved = ctx.values.get(self.id) if ctx.answer is not None else None
        if isinstance(saved, dict) and saved.get("waiting"):
            state = AgentState.from_dict(saved["state"])
            if not await self._settle_approval(ctx, state):
                return self._park(state, usage)
        else:
            messages = await build_messages(ctx, self.options.system, self.options.prompt, self.options.history,
                                            self.options.memory)
            state = AgentState(messages=messages)
        return await self._loop(ctx, state, usage)

    # ------------------------------------------------------------------ the loop

    async def _loop(self, ctx: RunContext, state: AgentState, usage: _Usage) -> NodeResult:
        registry = ctx.services.tools
        offered = registry.select(self.options.tools, role=ctx.person.role) if registry is not None else []
        missing = [n for n in self.options.tools or () if "*" not in n and (registry is None or n not in registry)]
        if missing:
            log.warning("agent names tools the bot does not have", extra={"node": self.id, "tools": missing,
                                                                          "flow": ctx.flow.name})
        schemas = [t.openai_schema() for t in offered] or None
        while True:
            if state.pending:
                return await self._ask_approval(ctx, state, usage)
            last_turn = state.steps >= self.options.max_steps
            if last_turn and schemas:
                state.messages.append({"role": "system", "content": STEP_LIMIT_NOTE})
            streamer = ReplyStreamer(ctx) if self.options.reply else None
            completion = await ctx.services.llm.complete(
                state.messages, model=self.options.model, tools=schemas,
                tool_choice="none" if last_turn and schemas else None,
                temperature=self.options.temperature, max_tokens=self.options.max_tokens,
                on_delta=streamer.delta if streamer else None,
                metadata={"run_id": ctx.run_id, "node": self.id, "step": state.steps},
            )
            usage.tokens_in += completion.usage.tokens_in
            usage.tokens_out += completion.usage.tokens_out
            usage.cost += completion.usage.cost
            state.model = completion.model
            if not completion.tool_calls or last_turn:
                text = completion.text.strip() or (
                    f"I stopped after {state.steps} tool steps without reaching an answer." if last_turn else "")
                if streamer is not None:
                    await streamer.finish(text)
                    await ctx.record_assistant_text(text)
                return self._done(state, usage, text)
            if streamer is not None and streamer.started:
                await streamer.finish(completion.text.strip())  # close an interim "let me check" message
            state.steps += 1
            state.messages.append(completion.as_message())
            planned = [PlannedCall(c.id, c.name, c.arguments, c.raw_arguments) for c in completion.tool_calls]
            now = [c for c in planned if not self._needs_approval(ctx, c)]
            state.pending = [c.as_dict() for c in planned if c not in now]
            results = await self._run_now(ctx, now)
            for call, result in zip(now, results, strict=True):
                self._add_result(state, call, result)

    async def _run_now(self, ctx: RunContext, calls: list[PlannedCall]) -> list[ToolResult]:
        if not calls:
            return []
        if self.options.parallel:
            return await execute(ctx, self.id, calls, timeout=self.options.tool_timeout)
        results: list[ToolResult] = []
        for call in calls:
            results.extend(await execute(ctx, self.id, [call], timeout=self.options.tool_timeout))
        return results

    def _needs_approval(self, ctx: RunContext, call: PlannedCall) -> bool:
        registry = ctx.services.tools
        found = registry.get(call.tool) if registry is not None else None
        # A call the person may not make is refused by the registry; no need to ask anyone.
        return bool(found and found.approval and role_allows(ctx.person.role, found.role))

    @staticmethod
    def _add_result(state: AgentState, call: PlannedCall, result: ToolResult) -> None:
        state.messages.append({"role": "tool", "tool_call_id": call.call_id, "content": result.content})
        state.calls.append({"tool": call.tool, "status": str(result.status)})

    # ------------------------------------------------------------------ approvals

    async def _ask_approval(self, ctx: RunContext, state: AgentState, usage: _Usage) -> NodeResult:
        call = PlannedCall.from_dict(state.pending[0])
        wait = await request_approval(ctx, self.id, call.tool, call.arguments)
        state.wait_id = wait.id
        return self._park(state, usage)

    async def _settle_approval(self, ctx: RunContext, state: AgentState) -> bool:
        """Apply the answer to the pending approval; False if it is still undecided (keep waiting)."""
        status = await resolve_approval(ctx, state.wait_id)
        if status is None:
            wait = await HumanWaits(ctx.services.store.pool).get(state.wait_id)
            if wait is not None and not _is_wake(ctx):
                await post_request(ctx, wait, reminder=True)
            return False
        call = PlannedCall.from_dict(state.pending.pop(0))
        if status is WaitStatus.APPROVED:
            (result,) = await execute(ctx, self.id, [call], timeout=self.options.tool_timeout)
        else:
            result = refusal(status, call.tool)
            await record(ctx, self.id, [call], [result])
        self._add_result(state, call, result)
        state.wait_id = ""
        return True

    # ------------------------------------------------------------------ results

    def _park(self, state: AgentState, usage: _Usage) -> NodeResult:
        return NodeResult(outputs={"waiting": True, "state": state.as_dict(), "text": ""}, wait=True,
                          tokens_in=usage.tokens_in, tokens_out=usage.tokens_out, cost=usage.cost,
                          inputs={"waiting_for": state.pending[0]["tool"] if state.pending else ""})

    def _done(self, state: AgentState, usage: _Usage, text: str) -> NodeResult:
        return NodeResult(
            outputs={"text": text, "steps": state.steps, "tool_calls": state.calls, "model": state.model},
            tokens_in=usage.tokens_in, tokens_out=usage.tokens_out, cost=usage.cost,
            inputs={"model": state.model, "messages": len(state.messages), "tools": len(state.calls)},
        )

    def templates(self) -> dict[str, str]:
        found = {"prompt": self.options.prompt}
        if self.options.system:
            found["system"] = self.options.system
        return found


def _is_wake(ctx: RunContext) -> bool:
    from bot.tools.waits import WAKE_ACTION

    return bool(ctx.answer is not None and ctx.answer.meta.get("action") == WAKE_ACTION)
