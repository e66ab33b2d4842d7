"""Approval of dangerous tool calls by a person, in the chat.

A tool marked `approval=True` does not run when the model asks for it: the run parks (WAITING,
persisted) and Approve / Deny buttons go to the requester — or, with `approvers: admins`, a request
goes to the admin rooms, answered with `/sb approve <id>` / `/sb deny <id>`. When the run resumes
(on the answer, after a restart too, or when the timer says the time is up) the decision is read
back from the `human_waits` row, which is the one source of truth.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from bot.events import Button, Reply
from bot.tools.base import ToolResult, ToolStatus
from bot.tools.settings import ApprovalSettings, Approvers
from bot.tools.waits import HumanWait, HumanWaits, WaitKind, WaitStatus, is_wake_for, match_choice

if TYPE_CHECKING:
    from flows.context import RunContext

APPROVE = Button("Approve", "approve", "primary")
DENY = Button("Deny", "deny", "danger")
_YES = {"yes", "y", "ok", "approve", "approved", "allow"}
_NO = {"no", "n", "deny", "denied", "reject", "refuse"}


def approval_settings(ctx: RunContext) -> ApprovalSettings:
    tools = ctx.services.tools
    settings = getattr(tools, "settings", None)
    return settings.approvals if settings is not None else ApprovalSettings()


def describe_call(tool: str, arguments: dict[str, Any]) -> str:
    shown = json.dumps(arguments, ensure_ascii=False, indent=2)
    if len(shown) > 1500:
        shown = shown[:1500] + "\n…"
    return f"`{tool}` with:\n```\n{shown}\n```"


async def request_approval(ctx: RunContext, node_id: str, tool: str, arguments: dict[str, Any]) -> HumanWait:
    """Open the wait and ask for a decision where the policy says."""
    settings = approval_settings(ctx)
    waits = HumanWaits(ctx.services.store.pool)
    wait = await waits.open(run_id=ctx.run_id, node_id=node_id, kind=WaitKind.APPROVAL,
                            conversation=ctx.event.conversation, requester=ctx.event.sender, tool=tool,
                            arguments=arguments, approvers=str(settings.approvers), expires_in=settings.timeout)
    await post_request(ctx, wait)
    return wait


async def post_request(ctx: RunContext, wait: HumanWait, *, reminder: bool = False) -> None:
    settings = approval_settings(ctx)
    what = describe_call(wait.tool, wait.arguments)
    minutes = max(1, round(settings.timeout / 60))
    if wait.approvers == Approvers.ADMINS:
        if reminder:
            await ctx.send(f"This request is still waiting for an admin to approve `{wait.tool}` "
                           f"(id {wait.short_id}); your message was not used.")
            return
        prefix = ctx.services.config.bot.command_prefix
        text = (f"**Approval needed** for {ctx.event.sender.name or ctx.event.sender.key}: run {what}\n"
                f"Answer with `{prefix} approve {wait.short_id}` or `{prefix} deny {wait.short_id}` "
                f"(expires in {minutes} min).")
        for room in settings.admin_rooms:
            from bot.events import ConversationRef

            target = ConversationRef(room.channel, room.room, room.space, room.thread)
            await ctx.services.bus.send(Reply(conversation=target, text=text, meta={"wait_id": wait.id}))
        await ctx.send(f"I need an admin's approval to run `{wait.tool}`; I asked them (id {wait.short_id}).")
        return
    lead = f"{wait.requester.name or wait.requester.key}, please answer Approve or Deny. " if reminder else ""
    await ctx.send(f"{lead}**Approval needed**: may I run {what}(expires in {minutes} min)",
                   buttons=(APPROVE, DENY))


async def resolve_approval(ctx: RunContext, wait_id: str) -> WaitStatus | None:
    """The decision for `wait_id`, reading the answer that resumed the run; None while undecided."""
    waits = HumanWaits(ctx.services.store.pool)
    wait = await waits.get(wait_id)
    if wait is None:
        return WaitStatus.DENIED
    if wait.status is not WaitStatus.PENDING:
        return wait.status
    answer = ctx.answer
    if answer is None or is_wake_for(answer, wait_id) or wait.approvers != Approvers.REQUESTER:
        return None
    if answer.sender.key != wait.requester.key:
        return None  # in a shared room, only the person who asked may approve their request
    choice = match_choice(answer, (APPROVE, DENY))
    word = (answer.text or "").strip().strip(".!").casefold()
    if choice is None and word in _YES:
        choice = APPROVE
    elif choice is None and word in _NO:
        choice = DENY
    if choice is None:
        return None
    status = WaitStatus.APPROVED if choice is APPROVE else WaitStatus.DENIED
    decided = await waits.decide(wait_id, status, answer=choice.value, decided_by=answer.sender.key)
    return decided.status if decided else status


def refusal(status: WaitStatus, tool: str, duration_ms: float = 0.0) -> ToolResult:
    """What the model reads for a call a person did not approve."""
    if status is WaitStatus.TIMED_OUT:
        return ToolResult(ToolStatus.APPROVAL_TIMEOUT, f"timed out: nobody approved {tool} in time, so it did not "
                          "run. Tell the person.", duration_ms, "approval timed out")
    return ToolResult(ToolStatus.DENIED, f"denied: the person did not approve {tool}, so it did not run. Do not "
                      "retry it; tell the person.", duration_ms, "approval denied")
