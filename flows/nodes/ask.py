"""`ask`: put a question (or a choice) to the person and continue the flow with their answer.

The node sends the question (choices as buttons; channels without buttons show a numbered list)
and parks the run. The person's next message or button press in the conversation resumes it:
a press carries the button's value, a typed answer may be the number, the label or the value.
An answer that matches no choice gets the question again. With `answer_timeout`, the run resumes on its
own when time is up and goes to `timeout_next` (or carries on with `timeout_answer`).

Outputs: `answer` (the text or the chosen value), `label`, `timed_out`; `{{ human_input.text }}`
also works in the node right after.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.events import Button
from bot.tools.waits import HumanWaits, WaitKind, WaitStatus, is_wake_for, match_choice
from flows.context import RunContext
from flows.nodes.base import Node, NodeKind, NodeOptions, NodeResult, node_kind


class Choice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(min_length=1)
    value: str = ""
    style: str = ""


class AskOptions(NodeOptions):
    question: str
    choices: list[Choice] = Field(default_factory=list)
    # Seconds to wait for the answer; then `timeout_next` / `timeout_answer`. (`timeout` is the engine's
    # limit on running the node itself, which for `ask` is only the sending of the question.)
    answer_timeout: float | None = Field(None, gt=0)
    timeout_next: str | None = None
    timeout_answer: str = ""
    retry_text: str = "Please pick one of the options."

    @field_validator("choices", mode="before")
    @classmethod
    def _plain_strings(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"label": str(c), "value": str(c)} if isinstance(c, str | int | float) else c for c in value]
        return value

    def buttons(self) -> tuple[Button, ...]:
        return tuple(Button(c.label, c.value or c.label, c.style) for c in self.choices)


@node_kind(NodeKind.ASK, options=AskOptions, summary="Ask the person and wait for the answer")
class AskNode(Node[AskOptions]):
    async def run(self, ctx: RunContext) -> NodeResult:
        saved = ctx.values.get(self.id) if ctx.answer is not None else None
        waits = HumanWaits(ctx.services.store.pool)
        if not (isinstance(saved, dict) and saved.get("waiting") and saved.get("wait_id")):
            question = ctx.render(self.options.question).strip()
            wait = await waits.open(run_id=ctx.run_id, node_id=self.id, kind=WaitKind.ASK,
                                    conversation=ctx.event.conversation, requester=ctx.event.sender,
                                    arguments={"question": question}, expires_in=self.options.answer_timeout)
            await ctx.send(question, buttons=self.options.buttons())
            return self._park(wait.id, question)

        wait_id, question = saved["wait_id"], saved.get("question", "")
        answer = ctx.answer
        assert answer is not None
        current = await waits.get(wait_id)
        if current is not None and current.status is WaitStatus.TIMED_OUT:
            return NodeResult(outputs={"answer": ctx.render(self.options.timeout_answer), "label": "",
                                       "timed_out": True}, next=self.options.timeout_next)
        if answer.meta.get("action") and answer.meta.get("wait_id") and not is_wake_for(answer, wait_id):
            return self._park(wait_id, question)  # a wake-up meant for another wait
        if is_wake_for(answer, wait_id):
            return self._park(wait_id, question)
        buttons = self.options.buttons()
        if buttons:
            chosen = match_choice(answer, buttons)
            if chosen is None:
                await ctx.send(f"{ctx.render(self.options.retry_text)}\n{question}".strip(), buttons=buttons)
                return self._park(wait_id, question)
            value, label = chosen.value, chosen.label
        else:
            value, label = (answer.text or "").strip(), ""
        decided = await waits.decide(wait_id, WaitStatus.ANSWERED, answer=value, decided_by=answer.sender.key)
        if decided is not None and decided.status is WaitStatus.TIMED_OUT:
            return NodeResult(outputs={"answer": ctx.render(self.options.timeout_answer), "label": "",
                                       "timed_out": True}, next=self.options.timeout_next)
        return NodeResult(outputs={"answer": value, "label": label, "timed_out": False},
                          inputs={"question": question, "answered_by": answer.sender.key})

    @staticmethod
    def _park(wait_id: str, question: str) -> NodeResult:
        return NodeResult(outputs={"waiting": True, "wait_id": wait_id, "question": question}, wait=True,
                          inputs={"question": question})

    def branch_targets(self) -> list[str]:
        return [self.options.timeout_next] if self.options.timeout_next else []

    def templates(self) -> dict[str, str]:
        return {"question": self.options.question}
