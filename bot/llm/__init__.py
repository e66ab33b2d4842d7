"""Switchboard's language-model layer: `LLM.complete()` with aliases, streaming, tool calls, retries,
fallbacks and per-model accounting, over our own OpenAI-compatible client (`openai/` models) or litellm.

Importing this package never imports litellm (~5 s, ~185 MiB): that happens only when a model that
uses the litellm transport is configured or called.
"""

from bot.llm.client import LLM, DeltaCallback
from bot.llm.completion import Completion, ToolCall, Usage
from bot.llm.errors import NOT_CONFIGURED_MESSAGE, LLMError, LLMTimeout, ModelNotConfigured
from bot.llm.models import ResolvedModel

__all__ = [
    "LLM",
    "NOT_CONFIGURED_MESSAGE",
    "Completion",
    "DeltaCallback",
    "LLMError",
    "LLMTimeout",
    "ModelNotConfigured",
    "ResolvedModel",
    "ToolCall",
    "Usage",
]
