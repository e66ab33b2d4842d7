"""What can go wrong when calling a model, as a few exceptions a flow can act on.

Callers (the flow engine, the commands) only need three answers: which model failed, whether trying
again later could help, and a short message for a person. litellm's many exception classes are mapped
onto that here, and every message is scrubbed of secrets before it leaves this package.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import IntEnum

from bot.logging import SecretRedactor

NOT_CONFIGURED_MESSAGE = (
    "No language model is configured. Set SWITCHBOARD_MODEL (e.g. SWITCHBOARD_MODEL=openai/gpt-4o-mini with "
    "OPENAI_API_KEY, or ollama/llama3 with OLLAMA_API_BASE) and restart, or set llm.default in config/switchboard.yaml."
)

# litellm prefixes its messages with its own class chain ("litellm.RateLimitError: RateLimitError: OpenAIException - ").
_NOISE = re.compile(r"^(?:litellm\.\w+:\s*|\w+Error:\s*|\w+Exception\s*-\s*)+")
# Key-shaped strings a provider might echo back (OpenAI masks them, not every provider does).
_KEY_SHAPED = re.compile(r"\b(?:sk|pk|rk|key|api)[-_][A-Za-z0-9_\-]{8,}\b")
_MAX_DETAIL = 300
# The provider SDK refusing to start without a key: a configuration problem, not a transient one.
_MISSING_KEY = re.compile(
    r"missing credentials|api_key client option must be set|no api key|missing \w+ api key", re.IGNORECASE
)
# Transport failures litellm reports with a made-up 500.
_UNREACHABLE = re.compile(
    r"^connection error|cannot connect to host|connection refused|name or service not known", re.IGNORECASE
)


class Status(IntEnum):
    """HTTP statuses that decide what we do with a failure."""

    BAD_REQUEST = 400
    UNAUTHORIZED = 401
    FORBIDDEN = 403
    NOT_FOUND = 404
    TIMEOUT = 408
    CONFLICT = 409
    UNPROCESSABLE = 422
    RATE_LIMITED = 429
    SERVER_ERROR = 500


class LLMError(Exception):
    """A model call failed. `str()` is a short message for a person, without secrets or prompt text."""

    def __init__(
        self,
        message: str,
        *,
        model: str = "",
        retryable: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.model = model
        self.retryable = retryable
        self.status = status
        # Seconds the provider asked us to wait (Retry-After), when it said.
        self.retry_after = retry_after
        # HTTP attempts made before giving up, over every model tried (set by LLM.complete).
        self.attempts = 0


class ModelNotConfigured(LLMError):
    """No model was named and `llm.default` is empty: the message says exactly how to set one."""

    def __init__(self, message: str = NOT_CONFIGURED_MESSAGE) -> None:
        super().__init__(message, model="", retryable=False, status=None)


class LLMTimeout(LLMError):
    """The model did not answer within the call's timeout."""


def is_retryable_status(status: int | None) -> bool:
    """429, 408/409 and every 5xx may succeed later; other 4xx will fail the same way again."""
    if status is None:
        return True  # no HTTP answer at all: a connection problem
    return status in (Status.TIMEOUT, Status.CONFLICT, Status.RATE_LIMITED) or status >= Status.SERVER_ERROR


def scrub(text: str, *secrets: str | None) -> str:
    """Remove litellm's class-name noise, secrets and key-shaped strings; keep it short."""
    text = _NOISE.sub("", text.strip())
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _KEY_SHAPED.sub("***", SecretRedactor()(text))
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def missing_key_error(model: str, status: int | None = None) -> LLMError:
    """No key for a provider that needs one: a configuration problem, so not retryable."""
    provider = model.split("/", 1)[0] if "/" in model else "openai"
    return LLMError(
        f"{model}: no API key for {provider}; set {provider.upper()}_API_KEY (any placeholder for a local "
        "server that ignores keys) or the alias's api_key",
        model=model,
        status=status,
    )


def from_exception(
    exc: BaseException, *, model: str, api_key: str | None = None, endpoint: str | None = None
) -> LLMError:
    """Map any exception raised by litellm, the direct transport or the HTTP stack under them onto an LLMError.

    `endpoint` (no secrets in it) is named when the provider could not be reached at all.
    """
    if isinstance(exc, LLMError):
        return exc
    name = type(exc).__name__
    status = _status_of(exc)
    detail = scrub(str(getattr(exc, "message", "") or exc) or name, api_key)
    if _is_timeout(exc):
        return LLMTimeout(f"{model}: the model did not answer in time", model=model, retryable=True, status=status)
    if _MISSING_KEY.search(detail):
        return missing_key_error(model, status)
    if "LLM Provider NOT provided" in detail or "LiteLLMUnknownProvider" in name:
        return LLMError(
            f"{model}: not a model alias nor a litellm model string; use an alias from llm.models or "
            "provider/model, e.g. openai/gpt-4o-mini or ollama/llama3",
            model=model,
            status=status,
        )
    if "ContextWindowExceeded" in name:
        return LLMError(f"{model}: the conversation is too long for this model ({detail})", model=model, status=status)
    if status == Status.RATE_LIMITED:
        message = f"{model}: rate limited by the provider ({detail})"
    elif status in (Status.UNAUTHORIZED, Status.FORBIDDEN):
        message = f"{model}: the provider refused the credentials (HTTP {status}); check the API key ({detail})"
    elif status == Status.NOT_FOUND:
        message = f"{model}: model or endpoint not found (HTTP 404); check the model name and api_base ({detail})"
    elif status is None or "Connection" in name or _UNREACHABLE.search(detail):
        where = f" at {scrub(endpoint)}" if endpoint else ""
        message = f"{model}: could not reach the provider{where} ({detail})"
    else:
        message = f"{model}: the provider answered HTTP {status} ({detail})"
    retryable = is_retryable_status(status) or "Connection" in name or bool(_UNREACHABLE.search(detail))
    if "BadRequest" in name or "UnsupportedParams" in name or "LiteLLMUnknownProvider" in name:
        retryable = False
    return LLMError(message, model=model, retryable=retryable, status=status, retry_after=_retry_after(exc))


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    return code if isinstance(code, int) else None


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError):
        return True
    return any(cls.__name__ in ("Timeout", "APITimeoutError", "TimeoutException") for cls in type(exc).__mro__)


def _retry_after(exc: BaseException) -> float | None:
    """Seconds from `retry-after-ms` / `retry-after` (number or HTTP date) wherever litellm kept the headers."""
    sources = [getattr(exc, "litellm_response_headers", None), getattr(exc, "headers", None)]
    response = getattr(exc, "response", None)
    if response is not None:
        sources.append(getattr(response, "headers", None))
    for headers in sources:
        if not headers:
            continue
        try:
            millis = headers.get("retry-after-ms")
            if millis is not None:
                return max(0.0, float(millis) / 1000)
            value = headers.get("retry-after")
        except (AttributeError, TypeError, ValueError):
            continue
        if value is None:
            continue
        seconds = _parse_retry_after(str(value))
        if seconds is not None:
            return seconds
    return None


def _parse_retry_after(value: str) -> float | None:
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
