"""The litellm transport: every provider litellm knows (Anthropic, Ollama, Azure, Gemini, Bedrock...).

litellm is imported lazily, in a worker thread, the first time a litellm-transport model is called
(or on `warm_up()` / `prefetch_litellm()`): its import costs ~5 s and ~185 MiB, and a bot whose models
all use the direct transport (or that has none) must never pay for it. litellm is told never to retry
by itself: retries are `LLM`'s, so every attempt is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from types import ModuleType
from typing import Any

from bot.llm.completion import Completion, ToolCall, Usage, parse_tool_calls
from bot.llm.errors import LLMError
from bot.llm.models import ResolvedModel
from bot.llm.pricing import COST_PARAMS, alias_cost
from bot.llm.streaming import StreamAssembler
from bot.llm.transport import DeltaCallback, deliver

log = logging.getLogger("bot.llm")

_litellm: ModuleType | None = None
# litellm model strings litellm has no price for (their cost is reported as 0.0).
_UNPRICED: set[str] = set()
_import_lock = threading.Lock()
_prefetch_lock = threading.Lock()
_prefetching = False


def load_litellm() -> ModuleType:
    """Import and configure litellm once (blocking: call through `litellm_module()` from async code)."""
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


async def litellm_module() -> ModuleType:
    if _litellm is not None:
        return _litellm
    # In a thread so that a 5 s import does not freeze every other conversation on the loop.
    return await asyncio.to_thread(load_litellm)


class LiteLLMTransport:
    """One attempt through `litellm.acompletion` (plain, or streamed and reassembled as it arrives)."""

    async def warm_up(self) -> None:
        await litellm_module()

    async def attempt(
        self,
        target: ResolvedModel,
        request: dict[str, Any],
        call_timeout: float,
        on_delta: DeltaCallback | None,
        delivered: list[bool],
    ) -> Completion:
        litellm = await litellm_module()
        kwargs = target.call_kwargs()
        for key in COST_PARAMS:
            kwargs.pop(key, None)
        kwargs.update(request)
        # Exact accounting: litellm and the provider SDK under it must not retry behind our back.
        kwargs.update(model=target.model, timeout=call_timeout, num_retries=0, max_retries=0)
        if on_delta is None:
            async with asyncio.timeout(call_timeout):
                response = await litellm.acompletion(**kwargs)
            return _to_completion(litellm, target, response)
        return await _stream(litellm, target, kwargs, call_timeout, on_delta, delivered)


async def _stream(
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
                    await deliver(on_delta, text, delivered)
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
        usage=Usage(tokens_in, tokens_out, _cost(litellm, target, None, tokens_in, tokens_out)),
        finish_reason=assembler.finish_reason or ("tool_calls" if tool_calls else "stop"),
        latency_ms=0.0,
        attempts=0,
    )


def _to_completion(litellm: ModuleType, target: ResolvedModel, response: Any) -> Completion:
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
        usage=Usage(tokens_in, tokens_out, _cost(litellm, target, response, tokens_in, tokens_out)),
        finish_reason=str(getattr(choice, "finish_reason", None) or ("tool_calls" if tool_calls else "stop")),
        latency_ms=0.0,
        attempts=0,
        raw=response,
    )


def _cost(litellm: ModuleType, target: ResolvedModel, response: Any, tokens_in: int, tokens_out: int) -> float:
    """The call's cost in USD: the alias's own prices, else litellm's price map, else 0.0. Never raises."""
    own = alias_cost(target.params, tokens_in, tokens_out)
    if own is not None:
        return own
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
