"""The one way Switchboard calls a language model, with our own retries, fallbacks and accounting.

Why not litellm's Router or its `num_retries`: the flow engine records every attempt, token and cent
per step, so retries must happen where we can count them. Each attempt goes through a transport
(`bot.llm.transport`): `DirectTransport` (our OpenAI-compatible HTTP client, ~1 ms of CPU a call) for
`openai/...` models by default, `LiteLLMTransport` for every other provider. Neither retries by itself.

litellm is imported lazily, in a worker thread, and only when a litellm-transport model is configured
or called: its import costs ~5 s and ~185 MiB, and a bot without such a model must start fast.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from bot.config import LLMSection
from bot.llm.accounting import UsageCounter
from bot.llm.completion import Completion
from bot.llm.direct import DirectTransport, close_shared_session
from bot.llm.errors import LLMError, LLMTimeout, ModelNotConfigured, from_exception
from bot.llm.litellm_transport import LiteLLMTransport, prefetch_litellm
from bot.llm.models import ResolvedModel, TransportKind, chain, resolve
from bot.llm.transport import ConsumerFailed, DeltaCallback, Transport

log = logging.getLogger("bot.llm")

__all__ = ["LLM", "DeltaCallback"]


class LLM:
    """Calls models named in `config.llm` (aliases) or by raw litellm model strings."""

    def __init__(
        self,
        config: LLMSection,
        *,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        max_retry_after: float = 60.0,
        prefetch: bool = True,
    ) -> None:
        self._config = config
        # Retry n waits about backoff_base * 2**n seconds (with jitter), at most backoff_max.
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        # A Retry-After longer than this is not waited for: we go to the fallbacks instead.
        self.max_retry_after = max_retry_after
        self._usage = UsageCounter()
        self._transports: dict[TransportKind, Transport] = {
            TransportKind.DIRECT: DirectTransport(),
            TransportKind.LITELLM: LiteLLMTransport(),
        }
        if prefetch and TransportKind.LITELLM in self.transports_in_use():
            # A litellm model is configured, so litellm will be needed: load it while the bot starts up.
            prefetch_litellm()

    # ------------------------------------------------------------------ describing

    @property
    def config(self) -> LLMSection:
        return self._config

    @property
    def default_model(self) -> str:
        """`llm.default` (an alias or a litellm model string); "" when none is configured."""
        return self._config.default.strip()

    def configured(self, model: str | None = None) -> bool:
        """Whether `model` (None: the default) names something we can call."""
        try:
            resolve(self._config, model)
        except ModelNotConfigured:
            return False
        return True

    def resolve(self, model: str | None = None) -> ResolvedModel:
        return resolve(self._config, model)

    def describe(self, model: str | None = None) -> str:
        """`openai/gpt-4o-mini via https://api.openai.com/v1`, with fallbacks; never a key."""
        try:
            targets = chain(self._config, model)
        except ModelNotConfigured:
            return "no model configured"
        text = targets[0].describe()
        if len(targets) > 1:
            text += " (fallbacks: " + ", ".join(t.describe() for t in targets[1:]) + ")"
        return text

    def usage_today(self) -> dict[str, dict[str, Any]]:
        """Per litellm model: calls, failures, attempts, tokens_in, tokens_out, cost since midnight UTC."""
        return self._usage.snapshot()

    def transports_in_use(self) -> set[TransportKind]:
        """The transports the configured models (default, aliases and their fallbacks) are called with."""
        kinds: set[TransportKind] = set()
        for name in [self.default_model, *self._config.models]:
            if not name:
                continue
            try:
                kinds.update(target.transport for target in chain(self._config, name))
            except ModelNotConfigured:
                continue
        return kinds

    async def warm_up(self) -> None:
        """Load what the configured models' first call would wait for (litellm's ~5 s import only when a
        litellm-transport model is configured), so the first person to talk to the bot does not wait."""
        for kind in self.transports_in_use() or {TransportKind.LITELLM}:
            await self._transports[kind].warm_up()

    async def aclose(self) -> None:
        """Close the direct transport's connections (at shutdown; calling again afterwards reopens them)."""
        await close_shared_session()

    # ------------------------------------------------------------------ calling

    async def complete(
        self,
        messages: list[dict],
        *,
        model: str | None = None,
        tools: list[dict] | None = None,
        tool_choice: str | dict | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        timeout: float | None = None,
        on_delta: DeltaCallback | None = None,
        response_format: dict | None = None,
        metadata: dict | None = None,
    ) -> Completion:
        """One answer from the model, retried on transient failures, then from each fallback in order.

        With `on_delta`, the answer is streamed and `on_delta` is awaited with each piece of text as it
        arrives; once a piece has been delivered a failure is no longer retried (the person would see
        the text twice). `timeout` (seconds) overrides the alias's and `llm.timeout`; it bounds each
        attempt, and for a streamed answer the wait for the first piece and every gap after it.
        `metadata` (run id, node...) is added to the call's log line; it is not sent to the provider.
        """
        targets = chain(self._config, model)
        if not messages:
            raise LLMError(f"{targets[0].model}: nothing to send (no messages)", model=targets[0].model)
        call = _Call(requested=targets[0].name, stream=on_delta is not None, metadata=metadata)
        request: dict[str, Any] = {"messages": messages}
        for key, value in (
            ("tools", tools),
            ("tool_choice", tool_choice),
            ("temperature", temperature),
            ("max_tokens", max_tokens),
            ("response_format", response_format),
        ):
            if value is not None:
                request[key] = value
        for position, target in enumerate(targets):
            completion = await self._try_model(target, request, timeout, on_delta, call)
            if completion is not None:
                completion.latency_ms = call.elapsed_ms()
                completion.attempts = call.attempts
                completion.requested = call.requested
                completion.fallbacks_used = position
                self._log_success(completion, call)
                return completion
            if position + 1 < len(targets):
                log.warning(
                    "llm model failed, falling back",
                    extra={"model": target.model, "fallback": targets[position + 1].model},
                )
        raise self._final(call.errors[-1], call)

    async def _try_model(
        self,
        target: ResolvedModel,
        request: dict[str, Any],
        override: float | None,
        on_delta: DeltaCallback | None,
        call: _Call,
    ) -> Completion | None:
        """One model with its retries: its answer, None when it failed in a way a fallback may fix,
        or an exception when nothing should be tried after it."""
        call_timeout = override if override is not None else target.timeout
        transport = self._transports[target.transport]
        attempts = 0
        for retry in range(target.max_retries + 1):
            attempts += 1
            call.attempts += 1
            delivered = [False]
            try:
                completion = await transport.attempt(target, request, call_timeout, on_delta, delivered)
            except ConsumerFailed as exc:
                self._usage.record(target.model, ok=False, attempts=attempts)
                raise exc.original from None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = self._describe_failure(exc, target, call_timeout, delivered[0])
            else:
                usage = completion.usage
                self._usage.record(
                    target.model,
                    ok=True,
                    attempts=attempts,
                    tokens_in=usage.tokens_in,
                    tokens_out=usage.tokens_out,
                    cost=usage.cost,
                )
                return completion
            if not error.retryable or delivered[0]:
                # Permanent, or the person already saw part of an answer: stop here, no fallbacks.
                self._usage.record(target.model, ok=False, attempts=attempts)
                raise self._final(error, call)
            call.errors.append(error)
            delay = self._backoff(retry, error.retry_after) if retry < target.max_retries else None
            if delay is None:
                break
            log.warning(
                "llm attempt failed, retrying",
                extra={
                    "model": target.model,
                    "status": error.status,
                    "error": str(error),
                    "attempt": attempts,
                    "retry_in_s": round(delay, 3),
                },
            )
            await asyncio.sleep(delay)
        self._usage.record(target.model, ok=False, attempts=attempts)
        return None

    @staticmethod
    def _describe_failure(exc: Exception, target: ResolvedModel, call_timeout: float, delivered: bool) -> LLMError:
        error = from_exception(exc, model=target.model, api_key=target.api_key, endpoint=target.endpoint())
        if isinstance(error, LLMTimeout):
            error = LLMTimeout(
                f"{target.model}: the model did not answer within {call_timeout:g} s",
                model=target.model,
                retryable=True,
                status=error.status,
            )
        if delivered:
            error = type(error)(
                f"{target.model}: the answer broke off after it had started "
                f"({str(error).removeprefix(target.model + ': ')})",
                model=target.model,
                retryable=error.retryable,
                status=error.status,
            )
        return error

    def _backoff(self, retry: int, retry_after: float | None) -> float | None:
        """Seconds before the next attempt; None when the provider asks for a longer pause than we wait."""
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            return retry_after + random.uniform(0, min(0.25, retry_after * 0.1))
        ceiling = min(self.backoff_max, self.backoff_base * (2**retry))
        return random.uniform(ceiling / 2, ceiling)

    @staticmethod
    def _final(error: LLMError, call: _Call) -> LLMError:
        """The error the caller sees: the last one, naming the other models that failed before it."""
        others = [e.model for e in call.errors if e.model != error.model]
        message = str(error)
        if others:
            message += " (also tried: " + ", ".join(dict.fromkeys(others)) + ")"
        final = type(error)(
            message, model=error.model, retryable=error.retryable, status=error.status, retry_after=error.retry_after
        )
        final.attempts = call.attempts
        log.warning(
            "llm call failed",
            extra={
                "model": error.model,
                "requested": call.requested,
                "status": error.status,
                "error": message,
                "attempts": call.attempts,
                "latency_ms": round(call.elapsed_ms(), 1),
                "stream": call.stream,
                "meta": _safe_metadata(call.metadata),
            },
        )
        return final

    @staticmethod
    def _log_success(completion: Completion, call: _Call) -> None:
        log.info(
            "llm call",
            extra={
                "model": completion.model,
                "requested": completion.requested,
                "latency_ms": round(completion.latency_ms, 1),
                "tokens_in": completion.usage.tokens_in,
                "tokens_out": completion.usage.tokens_out,
                "cost": completion.usage.cost,
                "attempts": completion.attempts,
                "finish_reason": completion.finish_reason,
                "tool_calls": len(completion.tool_calls),
                "stream": call.stream,
                "meta": _safe_metadata(call.metadata),
            },
        )


@dataclass
class _Call:
    """What one `complete()` has done so far, over all the models it tried."""

    requested: str
    stream: bool
    metadata: dict | None
    attempts: int = 0
    errors: list[LLMError] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000


def _safe_metadata(metadata: dict | None) -> dict[str, Any]:
    """Only short scalar values (run ids, node names) from the caller's metadata go into a log line."""
    if not metadata:
        return {}
    return {
        str(k): v
        for k, v in metadata.items()
        if isinstance(v, int | float | bool) or (isinstance(v, str) and len(v) <= 120)
    }
