"""The one way Switchboard calls a language model: litellm, with our own retries, fallbacks and accounting.

Why not litellm's Router or its `num_retries`: the flow engine records every attempt, token and cent
per step, so retries must happen where we can count them. litellm is told never to retry by itself.

litellm is imported lazily, in a worker thread, the first time a model is actually called (or on
`warm_up()`): its import costs ~5 s and ~185 MiB, and a bot with no model configured must start fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from bot.config import LLMSection
from bot.llm.accounting import UsageCounter
from bot.llm.completion import Completion, ToolCall, Usage, parse_tool_calls
from bot.llm.errors import LLMError, LLMTimeout, ModelNotConfigured, from_exception
from bot.llm.models import ResolvedModel, chain, resolve
from bot.llm.streaming import StreamAssembler

log = logging.getLogger("bot.llm")

DeltaCallback = Callable[[str], Awaitable[None]]

# Parameters of ours an alias may carry in `params` that must not reach litellm.
_COST_PARAMS = ("input_cost_per_token", "output_cost_per_token")

_litellm: ModuleType | None = None
# litellm model strings litellm has no price for (their cost is reported as 0.0).
_UNPRICED: set[str] = set()
_import_lock = threading.Lock()
_prefetch_lock = threading.Lock()
_prefetching = False


def load_litellm() -> ModuleType:
    """Import and configure litellm once (blocking: call through `_litellm_module()` from async code)."""
    global _litellm
    if _litellm is None:
        with _import_lock:
            if _litellm is None:
                # Must be set before the import, or litellm fetches its cost map over the network at import.
                os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
                import litellm

                litellm.suppress_debug_info = True
                # We register no litellm callbacks, so its per-stream logging pass is pure CPU cost (~ms a call).
                # Nor `turn_off_message_logging`: its redaction pass deep-copies every request and response.
                litellm.disable_streaming_logging = True
                _route_litellm_logs()
                _warm_up(litellm)
                _litellm = litellm
    return _litellm


def _warm_up(litellm: ModuleType) -> None:
    """Load now what litellm otherwise loads inside the first calls, on the event loop: the openai SDK's
    resources (~1.5 s) and the tokenizers it counts a streamed prompt with (~0.5 s each)."""
    import openai.resources  # noqa: F401

    for model in ("gpt-4o-mini", "warm-up"):  # o200k for current OpenAI models; the default for the rest
        with contextlib.suppress(Exception):
            litellm.token_counter(model=model, messages=[{"role": "user", "content": "warm up"}])


def _route_litellm_logs() -> None:
    """litellm logs every call at INFO through its own plain-text handler, past our JSON formatter and
    secret redaction. Send its records through ours instead, and only from WARNING up unless
    LITELLM_LOG asks for more."""
    level = os.environ.get("LITELLM_LOG", "WARNING").upper()
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.setLevel(getattr(logging, level, logging.WARNING))
        logger.propagate = True


def prefetch_litellm() -> None:
    """Start importing litellm in a background thread (once), so the first call does not wait for it."""
    global _prefetching
    with _prefetch_lock:
        if _litellm is not None or _prefetching:
            return
        _prefetching = True
    threading.Thread(target=_prefetch, name="litellm-import", daemon=True).start()


def _prefetch() -> None:
    try:
        load_litellm()
    except Exception:  # the first real call imports again and reports the problem where it matters
        log.warning("importing litellm in the background failed", exc_info=True)


async def _litellm_module() -> ModuleType:
    if _litellm is not None:
        return _litellm
    # In a thread so that a 5 s import does not freeze every other conversation on the loop.
    return await asyncio.to_thread(load_litellm)


class _ConsumerFailed(Exception):
    """The caller's `on_delta` raised: not the model's fault, so never retried or wrapped."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


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
        if prefetch and (self.default_model or config.models):
            # A model is configured, so litellm will be needed: load it while the bot starts up.
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

    async def warm_up(self) -> None:
        """Import litellm now (in a thread) so the first person to talk to the bot does not wait ~5 s."""
        await _litellm_module()

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
        timeout: float | None = None,  # noqa: ASYNC109 -- part of the contract: per-attempt, see docstring
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
        litellm = await _litellm_module()
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
            completion = await self._try_model(litellm, target, request, timeout, on_delta, call)
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
        litellm: ModuleType,
        target: ResolvedModel,
        request: dict[str, Any],
        override: float | None,
        on_delta: DeltaCallback | None,
        call: _Call,
    ) -> Completion | None:
        """One model with its retries: its answer, None when it failed in a way a fallback may fix,
        or an exception when nothing should be tried after it."""
        call_timeout = override if override is not None else target.timeout
        attempts = 0
        for retry in range(target.max_retries + 1):
            attempts += 1
            call.attempts += 1
            delivered = [False]
            try:
                completion = await self._attempt(litellm, target, request, call_timeout, on_delta, delivered)
            except _ConsumerFailed as exc:
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

    async def _attempt(
        self,
        litellm: ModuleType,
        target: ResolvedModel,
        request: dict[str, Any],
        call_timeout: float,
        on_delta: DeltaCallback | None,
        delivered: list[bool],
    ) -> Completion:
        kwargs = target.call_kwargs()
        for key in _COST_PARAMS:
            kwargs.pop(key, None)
        kwargs.update(request)
        # Exact accounting: litellm and the provider SDK under it must not retry behind our back.
        kwargs.update(model=target.model, timeout=call_timeout, num_retries=0, max_retries=0)
        if on_delta is None:
            async with asyncio.timeout(call_timeout):
                response = await litellm.acompletion(**kwargs)
            return self._to_completion(litellm, target, response)
        return await self._stream(litellm, target, kwargs, call_timeout, on_delta, delivered)

    async def _stream(
        self,
        litellm: ModuleType,
        target: ResolvedModel,
        kwargs: dict[str, Any],
        call_timeout: float,
        on_delta: DeltaCallback,
        delivered: list[bool],
    ) -> Completion:
        kwargs.update(stream=True, stream_options={"include_usage": True})
        loop = asyncio.get_running_loop()
        assembler = StreamAssembler()
        async with asyncio.timeout(call_timeout) as deadline:
            stream = await litellm.acompletion(**kwargs)
            try:
                async for chunk in stream:
                    deadline.reschedule(loop.time() + call_timeout)
                    text = assembler.add(chunk)
                    if text:
                        delivered[0] = True
                        try:
                            await on_delta(text)
                        except Exception as exc:
                            raise _ConsumerFailed(exc) from exc
                        deadline.reschedule(loop.time() + call_timeout)
            except BaseException:
                # Stop reading (and free the connection) when we give up on a stream half-way.
                close = getattr(stream, "aclose", None)
                if close is not None:
                    with contextlib.suppress(Exception):
                        await close()
                raise
        if not assembler.chunks:
            raise LLMError(f"{target.model}: the model sent an empty stream", model=target.model, retryable=True)
        tool_calls = assembler.tool_calls()
        text = assembler.full_text
        tokens_in, tokens_out = assembler.tokens_in, assembler.tokens_out
        if tokens_in is None or tokens_out is None:
            # The provider ignored stream_options.include_usage: count locally rather than record zero.
            tokens_in, tokens_out = _count_tokens(litellm, target.model, kwargs["messages"], text, tool_calls)
        return Completion(
            text=text,
            tool_calls=tool_calls,
            model=target.model,
            usage=Usage(tokens_in, tokens_out, self._cost(litellm, target, None, tokens_in, tokens_out)),
            finish_reason=assembler.finish_reason or ("tool_calls" if tool_calls else "stop"),
            latency_ms=0.0,
            attempts=0,
        )

    def _to_completion(self, litellm: ModuleType, target: ResolvedModel, response: Any) -> Completion:
        choices = getattr(response, "choices", None) or []
        if not choices:
            raise LLMError(f"{target.model}: the model sent no choices", model=target.model, retryable=True)
        choice = choices[0]
        message = getattr(choice, "message", None)
        text = getattr(message, "content", None) or ""
        tool_calls = parse_tool_calls(getattr(message, "tool_calls", None))
        usage = getattr(response, "usage", None)
        tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
        tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
        return Completion(
            text=text if isinstance(text, str) else str(text),
            tool_calls=tool_calls,
            model=target.model,
            usage=Usage(tokens_in, tokens_out, self._cost(litellm, target, response, tokens_in, tokens_out)),
            finish_reason=str(getattr(choice, "finish_reason", None) or ("tool_calls" if tool_calls else "stop")),
            latency_ms=0.0,
            attempts=0,
            raw=response,
        )

    @staticmethod
    def _cost(litellm: ModuleType, target: ResolvedModel, response: Any, tokens_in: int, tokens_out: int) -> float:
        """The call's cost in USD: the alias's own prices, else litellm's price map, else 0.0. Never raises."""
        price_in = target.params.get("input_cost_per_token")
        price_out = target.params.get("output_cost_per_token")
        if price_in is not None or price_out is not None:
            try:
                return tokens_in * float(price_in or 0) + tokens_out * float(price_out or 0)
            except (TypeError, ValueError):
                return 0.0
        # litellm prices a plain response while building it; reuse that rather than pricing it twice.
        hidden = getattr(response, "_hidden_params", None)
        known = hidden.get("response_cost") if isinstance(hidden, dict) else None
        if isinstance(known, int | float):
            return float(known)
        if target.model in _UNPRICED:
            return 0.0
        try:
            cost_in, cost_out = litellm.cost_per_token(
                model=target.model, prompt_tokens=tokens_in, completion_tokens=tokens_out
            )
            return float(cost_in) + float(cost_out)
        except Exception:  # not in litellm's price map: cost unknown, never fatal
            # Failing lookups are slow (~2 ms); an unpriced model stays unpriced for the process.
            _UNPRICED.add(target.model)
            return 0.0

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


def _count_tokens(
    litellm: ModuleType, model: str, messages: list[dict], text: str, tool_calls: list[ToolCall]
) -> tuple[int, int]:
    """litellm's local tokenizer estimate, for providers that stream no usage; (0, 0) if even that fails."""
    try:
        tokens_in = int(litellm.token_counter(model=model, messages=messages))
        answer = text + "".join(c.name + c.raw_arguments for c in tool_calls)
        tokens_out = int(litellm.token_counter(model=model, text=answer)) if answer else 0
    except Exception:
        return 0, 0
    return tokens_in, tokens_out


def _safe_metadata(metadata: dict | None) -> dict[str, Any]:
    """Only short scalar values (run ids, node names) from the caller's metadata go into a log line."""
    if not metadata:
        return {}
    return {
        str(k): v
        for k, v in metadata.items()
        if isinstance(v, int | float | bool) or (isinstance(v, str) and len(v) <= 120)
    }
