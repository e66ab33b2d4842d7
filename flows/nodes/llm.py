"""`llm`: one model call through `bot.llm` (litellm), with conversation history.

With `reply: true` the answer streams into the conversation as it is generated (one message,
edited as text arrives) and is recorded in history; otherwise later nodes use `{{ id.text }}`.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from flows.context import RunContext
from flows.nodes.base import Node, NodeKind, NodeOptions, NodeResult, node_kind

# Intermediate edits are sent at most this often; adapters throttle further for their platform.
STREAM_EDIT_INTERVAL = 0.25


class MemoryOptions(NodeOptions):
    """What of the person's long-term memory goes into the prompt."""

    recall: int | bool = True  # how many memories (True: the configured default; 0/False: none)
    summary: bool = False  # the summary of this conversation's older turns
    min_similarity: float | None = Field(None, ge=-1, le=1)


class LLMOptions(NodeOptions):
    model: str | None = None  # alias or litellm model string; default: llm.default
    system: str | None = None
    prompt: str = "{{ event.text }}"
    history: int | None = Field(None, ge=0)  # turns of this conversation to include (default: flow's)
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)
    reply: bool = False  # stream the answer to the person
    # Per-person memory in the prompt (see docs/memory.md): e.g. {recall: 5, summary: true}
    memory: MemoryOptions | None = None


@node_kind(NodeKind.LLM, options=LLMOptions, summary="Call a language model")
class LLMNode(Node[LLMOptions]):
    async def run(self, ctx: RunContext) -> NodeResult:
        messages = await build_messages(
            ctx, self.options.system, self.options.prompt, self.options.history, self.options.memory
        )
        streamer = ReplyStreamer(ctx) if self.options.reply else None
        completion = await ctx.services.llm.complete(
            messages,
            model=self.options.model,
            temperature=self.options.temperature,
            max_tokens=self.options.max_tokens,
            on_delta=streamer.delta if streamer else None,
            metadata={"run_id": ctx.run_id, "node": self.id},
        )
        text = completion.text.strip()
        if streamer is not None:
            await streamer.finish(text)
            await ctx.record_assistant_text(text)
        return NodeResult(
            outputs={"text": text, "model": completion.model, "finish_reason": completion.finish_reason},
            tokens_in=completion.usage.tokens_in,
            tokens_out=completion.usage.tokens_out,
            cost=completion.usage.cost,
            inputs={"model": completion.model, "messages": len(messages), "attempts": completion.attempts},
        )

    def templates(self) -> dict[str, str]:
        found = {"prompt": self.options.prompt}
        if self.options.system:
            found["system"] = self.options.system
        return found


async def build_messages(
    ctx: RunContext,
    system: str | None,
    prompt: str,
    history_turns: int | None,
    memory: MemoryOptions | dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """System prompt (+ recalled memories), conversation history, then the rendered prompt.

    History: the client's transcript when it sent one (OpenAI-compatible API); else `history_turns`
    turns when the node names a number; else, with the memory feature, the newest turns that fit its
    token budget plus a summary of the older ones; else the flow's `history.turns`.
    """
    messages: list[dict[str, Any]] = []
    system_text = ctx.render(system).strip() if system else ""
    memory_service = ctx.services.memory
    conversation = ctx.event.conversation.key
    if isinstance(memory, dict):
        memory = MemoryOptions.model_validate(memory)
    if memory is not None and memory_service is not None:
        extra: dict[str, Any] = {"recall": memory.recall, "summary": memory.summary, "conversation": conversation}
        if memory.min_similarity is not None:
            extra["min_similarity"] = memory.min_similarity
        recalled = await memory_service.prompt_context(ctx.person.id, ctx.event.text, **extra)
        if recalled:
            system_text = f"{system_text}\n\n{recalled}".strip()
    if system_text:
        messages.append({"role": "system", "content": system_text})
    turns = ctx.flow.history.turns if history_turns is None else history_turns
    client_history = ctx.event.meta.get("history")
    if isinstance(client_history, list):
        messages.extend(m for m in client_history[-turns * 2 or None :] if turns and _valid_turn(m))
    elif turns and history_turns is None and memory_service is not None:
        window = await memory_service.history_window(conversation, before_event=ctx.event.id)
        messages.extend(window.messages())
    elif turns:
        for turn in await ctx.services.store.history.recent(conversation, turns * 2, before_event=ctx.event.id):
            messages.append({"role": turn.role, "content": turn.content})
    messages.append({"role": "user", "content": ctx.render(prompt)})
    return messages


def _valid_turn(message: Any) -> bool:
    return (
        isinstance(message, dict)
        and message.get("role") in ("user", "assistant", "system")
        and isinstance(message.get("content"), str)
    )


class ReplyStreamer:
    """Turns text deltas into one reply that is edited as the text grows."""

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self._text = ""
        self._first_id = ""
        self._last_sent = 0.0
        self._sent_text = ""

    async def delta(self, piece: str) -> None:
        self._text += piece
        now = time.monotonic()
        if not self._text.strip():
            return
        if not self._first_id:
            reply = await self._ctx.send(self._text, partial=True)
            self._first_id = reply.id
            self._last_sent, self._sent_text = now, self._text
        elif now - self._last_sent >= STREAM_EDIT_INTERVAL and self._text != self._sent_text:
            await self._ctx.send(self._text, partial=True, edit_of=self._first_id)
            self._last_sent, self._sent_text = now, self._text

    @property
    def started(self) -> bool:
        """Whether part of the answer has already been shown to the person."""
        return bool(self._first_id)

    async def finish(self, text: str) -> None:
        if self._first_id:
            await self._ctx.send(text, edit_of=self._first_id)
        elif text:
            await self._ctx.send(text)
