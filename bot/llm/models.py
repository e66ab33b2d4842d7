"""Turning a model name from a flow or the config into exactly what is called, and through which transport.

A name is either an alias from `llm.models` (its own model string, endpoint, key, timeout, retries,
fallbacks and extra parameters) or a raw litellm model string (`openai/gpt-4o-mini`, `ollama/llama3`)
whose endpoint and key come from the provider's usual environment variables. Resolution is pure
(no litellm import), so the bot can say what it would use without paying for loading litellm.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bot.config import LLMSection
from bot.llm.errors import ModelNotConfigured
from bot.logging import redact_url


class TransportKind(StrEnum):
    """How a model is called (`llm.transport`, or an alias's own `transport`)."""

    AUTO = "auto"  # DIRECT for `openai/...` models, LITELLM for every other provider
    LITELLM = "litellm"
    DIRECT = "direct"


def choose_transport(model: str, setting: str | None) -> TransportKind:
    """`auto` means direct exactly for the `openai/` prefix: the OpenAI wire format is all we speak."""
    kind = TransportKind(setting or TransportKind.AUTO)
    if kind is TransportKind.AUTO:
        return TransportKind.DIRECT if model.startswith("openai/") else TransportKind.LITELLM
    return kind


# Where a provider's endpoint comes from when an alias names none (litellm reads the same variables).
_BASE_ENV = {
    "openai": ("OPENAI_BASE_URL", "OPENAI_API_BASE"),
    "text-completion-openai": ("OPENAI_BASE_URL", "OPENAI_API_BASE"),
    "azure": ("AZURE_API_BASE",),
    "anthropic": ("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"),
    "ollama": ("OLLAMA_API_BASE",),
    "ollama_chat": ("OLLAMA_API_BASE",),
    "openrouter": ("OPENROUTER_API_BASE",),
    "groq": ("GROQ_API_BASE",),
    "mistral": ("MISTRAL_API_BASE",),
    "hosted_vllm": ("HOSTED_VLLM_API_BASE",),
    "lm_studio": ("LM_STUDIO_API_BASE",),
}
# Public defaults, only to tell a person where calls go.
_DEFAULT_BASE = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "ollama": "http://localhost:11434",
    "ollama_chat": "http://localhost:11434",
    "groq": "https://api.groq.com/openai/v1",
    "mistral": "https://api.mistral.ai/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "gemini": "https://generativelanguage.googleapis.com",
}


@dataclass(frozen=True)
class ResolvedModel:
    """One concrete way to call a model; `name` is what was asked for (alias or raw string)."""

    name: str
    model: str
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 60.0
    max_retries: int = 2
    fallbacks: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    # What carries the call: `direct` (our OpenAI-compatible HTTP client) or `litellm`; never `auto`.
    transport: TransportKind = TransportKind.LITELLM

    @property
    def provider(self) -> str:
        return self.model.split("/", 1)[0] if "/" in self.model else "openai"

    @property
    def wire_model(self) -> str:
        """The model name an OpenAI-compatible server is sent: the litellm string without its provider prefix."""
        return self.model.split("/", 1)[1] if "/" in self.model else self.model

    def endpoint(self, environ: Mapping[str, str] | None = None) -> str:
        """Where calls go: the alias's api_base, else the provider's env variable, else its public default."""
        return self.configured_endpoint(environ) or _DEFAULT_BASE.get(
            self.provider, f"{self.provider}'s default endpoint"
        )

    def configured_endpoint(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The alias's api_base, else the provider's env variable; None when neither is set."""
        if self.api_base:
            return self.api_base
        env = os.environ if environ is None else environ
        for var in _BASE_ENV.get(self.provider, ()):
            if env.get(var):
                return env[var]
        return None

    def describe(self, environ: Mapping[str, str] | None = None) -> str:
        """`model via endpoint`, for people: a password inside the endpoint URL is masked."""
        return f"{self.model} via {redact_url(self.endpoint(environ))}"

    def call_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for litellm naming the endpoint and key (only when the alias sets them)."""
        kwargs: dict[str, Any] = dict(self.params)
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.api_key:
            kwargs["api_key"] = self.api_key
        return kwargs


def default_name(config: LLMSection) -> str:
    return config.default.strip()


def resolve(config: LLMSection, name: str | None) -> ResolvedModel:
    """The model `name` stands for (None: `llm.default`). Raises ModelNotConfigured when there is none."""
    chosen = (name or "").strip() or default_name(config)
    if not chosen:
        raise ModelNotConfigured()
    alias = config.models.get(chosen)
    if alias is None:
        return ResolvedModel(
            name=chosen,
            model=chosen,
            timeout=config.timeout,
            max_retries=config.max_retries,
            transport=choose_transport(chosen, config.transport),
        )
    return ResolvedModel(
        name=chosen,
        model=alias.model,
        api_base=alias.api_base or None,
        api_key=alias.api_key or None,
        timeout=alias.timeout if alias.timeout is not None else config.timeout,
        max_retries=alias.max_retries if alias.max_retries is not None else config.max_retries,
        fallbacks=tuple(alias.fallbacks),
        params=dict(alias.params),
        transport=choose_transport(alias.model, alias.transport or config.transport),
    )


def chain(config: LLMSection, name: str | None) -> list[ResolvedModel]:
    """The model and then its fallbacks in order (each fallback's own fallbacks too), without repeats."""
    first = resolve(config, name)
    seen = {first.name}
    order = [first]
    index = 0
    while index < len(order):
        for fallback in order[index].fallbacks:
            if fallback.strip() and fallback not in seen:
                seen.add(fallback)
                order.append(resolve(config, fallback))
        index += 1
    return order
