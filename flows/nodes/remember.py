"""`remember`: keep a fact about the person in long-term memory, or let the model pick the facts.

    - id: note
      kind: remember
      text: "{{ event.text }}"   # stored as is ...
      extract: true              # ... or: the model lists durable facts in it, each stored

Memories are per person (they follow linked identities) and come back through the llm node's
`memory:` option in later conversations.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bot.memory.store import MemoryKind
from flows.context import RunContext
from flows.nodes.base import Node, NodeKind, NodeOptions, NodeResult, node_kind

EXTRACT_PROMPT = (
    "List the durable facts and preferences about the person in the message below that would help in "
    "later conversations (name, role, team, timezone, preferences, ongoing projects). Ignore questions, "
    "greetings and one-off requests. Answer with a JSON array of short third-person strings, or [] if "
    "there are none.\n\nMessage:\n"
)
_MAX_EXTRACTED = 5


class RememberOptions(NodeOptions):
    text: str = "{{ event.text }}"
    kind: MemoryKind = MemoryKind.FACT
    extract: bool = False
    model: str | None = None  # for `extract`; default: llm.default


def parse_facts(answer: str) -> list[str]:
    """The model's JSON array of facts (tolerating code fences or a sentence around it)."""
    match = re.search(r"\[.*\]", answer, re.DOTALL)
    if not match:
        return []
    try:
        data = json.loads(match.group(0))
    except json.JSONDecodeError:
        return []
    return [str(item).strip() for item in data if isinstance(item, str | int | float) and str(item).strip()]


@node_kind(NodeKind.REMEMBER, options=RememberOptions, summary="Keep facts about the person for later")
class RememberNode(Node[RememberOptions]):
    async def run(self, ctx: RunContext) -> NodeResult:
        memory: Any = ctx.services.memory
        if memory is None:
            raise RuntimeError("the remember node needs memory, which is not enabled on this bot")
        text = ctx.render(self.options.text).strip()
        kind = self.options.kind
        tokens_in = tokens_out = 0
        cost = 0.0
        if self.options.extract:
            completion = await ctx.services.llm.complete(
                [{"role": "user", "content": EXTRACT_PROMPT + text}], model=self.options.model,
                metadata={"run_id": ctx.run_id, "node": self.id},
            )
            facts = parse_facts(completion.text)[:_MAX_EXTRACTED]
            tokens_in, tokens_out, cost = (completion.usage.tokens_in, completion.usage.tokens_out,
                                           completion.usage.cost)
        else:
            facts = [text] if text else []
        saved = [await memory.memories.remember(ctx.person.id, fact, kind=kind, source=ctx.event.channel)
                 for fact in facts]
        return NodeResult(
            outputs={"memories": [m.as_dict() for m in saved], "count": len(saved),
                     "text": "\n".join(m.content for m in saved)},
            tokens_in=tokens_in, tokens_out=tokens_out, cost=cost, inputs={"text": text},
        )

    def templates(self) -> dict[str, str]:
        return {"text": self.options.text}
