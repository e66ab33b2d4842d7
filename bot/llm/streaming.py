"""Reassembling a streamed answer (text, tool calls, finish reason, usage) from its chunks.

Chunks are litellm's objects (litellm transport) or the decoded JSON of OpenAI's SSE events (direct
transport); both have the same shape, so one assembler serves both. `litellm.stream_chunk_builder`
does the same but re-prices and deep-copies every chunk (~2 ms a call here); this keeps only what a
Completion needs, as the chunks arrive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.llm.completion import ToolCall, parse_tool_calls


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class StreamAssembler:
    """Feed every chunk to `add()`; it returns the text delta (if any) for the caller to pass on."""

    text: list[str] = field(default_factory=list)
    calls: dict[int, _PartialCall] = field(default_factory=dict)
    finish_reason: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    chunks: int = 0

    def add(self, chunk: Any) -> str | None:
        self.chunks += 1
        usage = _get(chunk, "usage")
        if usage is not None and _get(usage, "prompt_tokens") is not None:
            self.tokens_in = int(_get(usage, "prompt_tokens") or 0)
            self.tokens_out = int(_get(usage, "completion_tokens") or 0)
        choices = _get(chunk, "choices") or []
        if not choices:
            return None
        choice = choices[0]
        finish = _get(choice, "finish_reason")
        if finish:
            self.finish_reason = str(finish)
        delta = _get(choice, "delta")
        if delta is None:
            return None
        for position, fragment in enumerate(_get(delta, "tool_calls") or []):
            index = _get(fragment, "index")
            partial = self.calls.setdefault(index if isinstance(index, int) else position, _PartialCall())
            call_id = _get(fragment, "id")
            if call_id:
                partial.id = call_id
            function = _get(fragment, "function")
            if function is not None:
                name = _get(function, "name")
                if name and not partial.name:
                    partial.name = name
                arguments = _get(function, "arguments")
                if arguments:
                    partial.arguments.append(arguments)
        content = _get(delta, "content")
        if content:
            self.text.append(content)
            return content
        return None

    def tool_calls(self) -> list[ToolCall]:
        return parse_tool_calls(
            {"id": c.id, "function": {"name": c.name, "arguments": "".join(c.arguments)}}
            for _, c in sorted(self.calls.items())
        )

    @property
    def full_text(self) -> str:
        return "".join(self.text)
