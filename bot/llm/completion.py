"""What a model call gives back, in plain dataclasses the rest of the bot can rely on.

litellm's response objects are large pydantic models that change between releases; flows, run
records and the agent loop only see these small types.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("bot.llm")


@dataclass
class ToolCall:
    """A tool the model asked for. Bad JSON arguments are kept in `raw_arguments` with `arguments == {}`."""

    id: str
    name: str
    arguments: dict
    raw_arguments: str

    @property
    def valid(self) -> bool:
        """False when the model sent arguments that are not a JSON object (the agent can tell it so)."""
        return bool(self.arguments) or self.raw_arguments.strip() in ("", "{}")

    def as_message(self) -> dict[str, Any]:
        """The OpenAI-shaped entry for an assistant message's `tool_calls`, to send the history back."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.raw_arguments}}


@dataclass
class Usage:
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0


@dataclass
class Completion:
    """One answer. `model` is the litellm model that answered (a fallback's, if one was used)."""

    text: str
    tool_calls: list[ToolCall]
    model: str
    usage: Usage
    finish_reason: str
    # Wall time of the whole call, retries and fallbacks included: what the person waited.
    latency_ms: float
    # HTTP attempts made, over every model tried.
    attempts: int
    # The alias or model string that was asked for (the answer may come from one of its fallbacks).
    requested: str = ""
    fallbacks_used: int = 0
    raw: Any = field(default=None, repr=False, compare=False)

    def as_message(self) -> dict[str, Any]:
        """The assistant message to append to the conversation history."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if self.tool_calls:
            message["tool_calls"] = [call.as_message() for call in self.tool_calls]
        return message


def parse_tool_calls(raw_calls: Any) -> list[ToolCall]:
    """Tool calls from a litellm message (objects or dicts); never raises on bad arguments."""
    calls: list[ToolCall] = []
    for index, raw in enumerate(raw_calls or []):
        function = _get(raw, "function")
        name = str(_get(function, "name") or "")
        raw_arguments = _get(function, "arguments")
        if raw_arguments is None:
            raw_arguments = ""
        elif not isinstance(raw_arguments, str):
            raw_arguments = json.dumps(raw_arguments)
        arguments: dict = {}
        if raw_arguments.strip():
            try:
                decoded = json.loads(raw_arguments)
            except json.JSONDecodeError:
                log.warning("model sent invalid JSON tool arguments", extra={"tool": name, "chars": len(raw_arguments)})
            else:
                if isinstance(decoded, dict):
                    arguments = decoded
                else:
                    log.warning("model sent non-object tool arguments", extra={"tool": name})
        call_id = str(_get(raw, "id") or f"call_{index}")
        calls.append(ToolCall(id=call_id, name=name, arguments=arguments, raw_arguments=raw_arguments))
    return calls


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)
