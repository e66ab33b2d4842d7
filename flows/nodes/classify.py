"""`classify`: the model picks one of several classes; the run follows that class's branch.

- id: intent
  kind: classify
  input: "{{ event.text }}"
  classes:
    - {name: billing, description: "invoices, refunds, payment problems", next: billing}
    - {name: bug, description: "something is broken", next: triage}
  else: chat          # when the answer matches no class
"""

from __future__ import annotations

import re

from pydantic import Field

from flows.context import RunContext
from flows.model import _Strict
from flows.nodes.base import Node, NodeKind, NodeOptions, NodeResult, node_kind


class ClassSpec(_Strict):
    name: str
    description: str = ""
    examples: list[str] = []
    next: str


class ClassifyOptions(NodeOptions):
    input: str = "{{ event.text }}"
    classes: list[ClassSpec] = Field(min_length=2)
    model: str | None = None
    instructions: str = ""
    else_: str | None = Field(None, alias="else")


@node_kind(NodeKind.CLASSIFY, options=ClassifyOptions, summary="Let the model pick a branch")
class ClassifyNode(Node[ClassifyOptions]):
    async def run(self, ctx: RunContext) -> NodeResult:
        text = ctx.render(self.options.input)
        lines = []
        for c in self.options.classes:
            line = f"- {c.name}: {c.description}".rstrip(": ")
            if c.examples:
                line += " (e.g. " + "; ".join(c.examples[:3]) + ")"
            lines.append(line)
        system = (
            "Classify the user's message into exactly one of these classes. Answer with the class name only.\n"
            + "\n".join(lines)
            + (f"\n{ctx.render(self.options.instructions)}" if self.options.instructions else "")
        )
        completion = await ctx.services.llm.complete(
            [{"role": "system", "content": system}, {"role": "user", "content": text}],
            model=self.options.model,
            temperature=0,
            max_tokens=20,
        )
        chosen = match_class(completion.text, [c.name for c in self.options.classes])
        target = next((c.next for c in self.options.classes if c.name == chosen), None) or self.options.else_
        return NodeResult(
            outputs={"class": chosen or "", "answer": completion.text.strip()},
            next=target,
            tokens_in=completion.usage.tokens_in,
            tokens_out=completion.usage.tokens_out,
            cost=completion.usage.cost,
        )

    def branch_targets(self) -> list[str]:
        targets = [c.next for c in self.options.classes]
        if self.options.else_:
            targets.append(self.options.else_)
        return targets

    def templates(self) -> dict[str, str]:
        return {"input": self.options.input}


def match_class(answer: str, names: list[str]) -> str | None:
    """Exact name first, then a whole-word mention; models add punctuation and prose."""
    cleaned = answer.strip().strip(".\"'`*").lower()
    for name in names:
        if cleaned == name.lower():
            return name
    for name in sorted(names, key=len, reverse=True):
        if re.search(rf"\b{re.escape(name.lower())}\b", cleaned):
            return name
    return None
