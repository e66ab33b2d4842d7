"""Runs a flow node by node, writing every step to PostgreSQL as it goes.

Per node: retry with backoff, a timeout, then the node's `on_error` policy (fail the run, take a
fail branch, or use default outputs). Per run: a step limit and a time limit. After every node the
step row and the run's resumable state (outputs so far, vars, next node) are committed together,
so a crash resumes at exactly the node after the last one recorded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.store.runs import NewRun, RunStatus, StepRecord, StepStatus
from flows.context import RunContext
from flows.model import END, ErrorAction, FlowSpec, NodeSpec
from flows.nodes.base import Node, NodeResult

log = logging.getLogger("switchboard.engine")


class RunFailed(Exception):
    """The run stopped on an error no `on_error` caught; `node_id` says where."""

    def __init__(self, node_id: str, message: str, cause: BaseException | None = None) -> None:
        self.node_id = node_id
        self.message = message
        self.cause = cause
        super().__init__(f"node {node_id!r}: {message}")


class RunLimitExceeded(RunFailed):
    pass


@dataclass(slots=True)
class RunOutcome:
    run_id: str
    status: RunStatus
    outputs: dict[str, Any]
    error: str = ""
    failed_node: str = ""
    cause: BaseException | None = None


class CompiledFlow:
    """A `FlowSpec` with its nodes built (options validated) once, ready to run many times."""

    def __init__(self, spec: FlowSpec, nodes: dict[str, Node[Any]]) -> None:
        self.spec = spec
        self.nodes = nodes
        self.first = spec.nodes[0].id

    def next_of(self, node: NodeSpec, result: NodeResult) -> str | None:
        if result.stop:
            return None
        target = result.next or node.next or self.spec.successor(node.id)
        return None if target in (None, END) else target


class Engine:
    def __init__(self, *, default_max_steps: int = 100, default_max_seconds: float = 300.0) -> None:
        self.default_max_steps = default_max_steps
        self.default_max_seconds = default_max_seconds

    async def start(self, flow: CompiledFlow, ctx: RunContext) -> RunOutcome:
        ctx.run_id = str(uuid.uuid4())
        new_run = NewRun(
            flow=flow.spec.name, event_id=ctx.event.id, conversation=ctx.event.conversation.key, person_id=ctx.person.id
        )
        return await self._run(flow, ctx, flow.first, seq=0, header=new_run)

    async def resume(
        self,
        flow: CompiledFlow,
        ctx: RunContext,
        *,
        next_node: str,
        state: dict[str, Any],
        run_event_id: str | None,
        conversation: str,
    ) -> RunOutcome:
        """Continue a run from its persisted state (after a crash, or with a waited-for answer)."""
        ctx.values = dict(state.get("values", {}))
        ctx.vars = dict(state.get("vars", {}))
        seq = int(state.get("seq", 0))
        await ctx.services.store.runs.finish(ctx.run_id, RunStatus.RUNNING)
        header = NewRun(flow=flow.spec.name, event_id=run_event_id, conversation=conversation, person_id=ctx.person.id)
        return await self._run(flow, ctx, next_node, seq=seq, header=header)

    async def _run(
        self, flow: CompiledFlow, ctx: RunContext, node_id: str | None, *, seq: int, header: NewRun
    ) -> RunOutcome:
        spec = flow.spec
        max_steps = spec.limits.max_steps or self.default_max_steps
        max_seconds = spec.limits.max_seconds or self.default_max_seconds
        deadline = ctx.started + max_seconds
        runs = ctx.services.store.runs
        try:
            while node_id is not None:
                if seq >= max_steps:
                    raise RunLimitExceeded(node_id, f"the run reached its limit of {max_steps} steps")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RunLimitExceeded(node_id, f"the run reached its time limit of {max_seconds:g} s")
                node = flow.nodes[node_id]
                seq += 1
                ctx.step_seq = seq
                result, step, cause = await self._execute(node, ctx, remaining)
                ctx.values[node.id] = result.outputs
                if step.status is StepStatus.FAILED and node.spec.on_error is None:
                    await runs.record_step(
                        ctx.run_id,
                        seq,
                        step,
                        next_node=node_id,
                        state=_state(ctx, seq - 1, node_id),
                        finish=RunStatus.FAILED,
                        error=f"{node_id}: {step.error}",
                        header=header,
                    )
                    raise RunFailed(node_id, step.error, cause)
                next_id = flow.next_of(node.spec, result)
                if result.wait:
                    state = _state(ctx, seq, node_id)
                    state["waiting_on"] = node_id
                    await runs.record_step(
                        ctx.run_id, seq, step, next_node=node_id, state=state, finish=RunStatus.WAITING, header=header
                    )
                    return RunOutcome(ctx.run_id, RunStatus.WAITING, ctx.values)
                finish = RunStatus.SUCCEEDED if next_id is None else None
                await runs.record_step(
                    ctx.run_id,
                    seq,
                    step,
                    next_node=next_id,
                    state=_state(ctx, seq, next_id),
                    finish=finish,
                    header=header,
                )
                ctx.answer = None  # an answer feeds only the node that waited for it
                node_id = next_id
            return RunOutcome(ctx.run_id, RunStatus.SUCCEEDED, ctx.values)
        except RunFailed as exc:
            if isinstance(exc, RunLimitExceeded):
                await runs.finish(ctx.run_id, RunStatus.FAILED, error=str(exc))
            log.warning(
                "run failed", extra={"run_id": ctx.run_id, "flow": spec.name, "node": exc.node_id, "error": exc.message}
            )
            return RunOutcome(ctx.run_id, RunStatus.FAILED, ctx.values, exc.message, exc.node_id, exc.cause)
        except asyncio.CancelledError:
            # Shutdown mid-node: the last committed step stands; the run resumes at the next start.
            await asyncio.shield(runs.finish(ctx.run_id, RunStatus.INTERRUPTED))
            raise

    async def _execute(
        self, node: Node[Any], ctx: RunContext, remaining: float
    ) -> tuple[NodeResult, StepRecord, BaseException | None]:
        spec = node.spec
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        attempts = 0
        delay = spec.retry.interval
        error = ""
        cause: BaseException | None = None
        while True:
            attempts += 1
            ctx.sends_in_step = 0  # a retried attempt re-sends the same reply ids (and is deduplicated)
            timeout = min(spec.timeout or remaining, remaining)
            try:
                result = await asyncio.wait_for(node.run(ctx), timeout=timeout)
            except TimeoutError as exc:
                error, cause = f"timed out after {timeout:g} s", exc
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error, cause = _describe(exc), exc
            else:
                return result, _step(spec, StepStatus.SUCCEEDED, started_at, t0, attempts, result), None
            if attempts >= spec.retry.max_attempts:
                break
            log.info(
                "node failed, retrying",
                extra={"run_id": ctx.run_id, "node": spec.id, "attempt": attempts, "error": error},
            )
            await asyncio.sleep(delay)
            delay *= spec.retry.backoff

        policy = spec.on_error
        if policy is not None and policy.action is ErrorAction.DEFAULT:
            result = NodeResult(outputs={**(policy.default or {}), "error": error})
            return result, _step(spec, StepStatus.DEFAULTED, started_at, t0, attempts, result, error), cause
        if policy is not None and policy.action is ErrorAction.BRANCH:
            result = NodeResult(outputs={"error": error}, next=policy.next)
            return result, _step(spec, StepStatus.FAILED, started_at, t0, attempts, result, error), cause
        result = NodeResult(outputs={"error": error})
        return result, _step(spec, StepStatus.FAILED, started_at, t0, attempts, result, error), cause


def _step(
    spec: NodeSpec,
    status: StepStatus,
    started_at: datetime,
    t0: float,
    attempts: int,
    result: NodeResult,
    error: str = "",
) -> StepRecord:
    return StepRecord(
        node_id=spec.id,
        kind=spec.kind,
        status=status,
        started_at=started_at,
        duration_ms=(time.perf_counter() - t0) * 1000,
        attempts=attempts,
        inputs=_json_safe(result.inputs),
        outputs=_json_safe(result.outputs),
        error=error,
        tokens_in=result.tokens_in,
        tokens_out=result.tokens_out,
        cost=result.cost,
    )


def _state(ctx: RunContext, seq: int, next_node: str | None) -> dict[str, Any]:
    return {"values": _json_safe(ctx.values), "vars": _json_safe(ctx.vars), "seq": seq, "next": next_node}


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=str))


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return (
        text if text and type(exc).__name__ in text else f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    )
