"""How provider failures become LLMErrors: retryable or not, how long to wait, and no secrets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from bot.llm.errors import LLMTimeout, from_exception, is_retryable_status, scrub


class ProviderError(Exception):
    """Shaped like litellm's exceptions: a status code, a message and the response headers."""

    def __init__(self, status: int | None, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status_code = status
        self.message = message
        self.litellm_response_headers = headers or {}


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (None, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (408, True),
        (409, True),
        (422, False),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (529, True),
    ],
)
def test_which_statuses_are_worth_another_attempt(status: int | None, retryable: bool) -> None:
    assert is_retryable_status(status) is retryable


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read_from_the_provider_headers(headers: dict[str, str], seconds: float | None) -> None:
    error = from_exception(ProviderError(429, "slow down", headers), model="openai/m")

    assert error.retryable and error.status == 429
    assert error.retry_after == seconds


def test_retry_after_may_be_an_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)

    error = from_exception(ProviderError(503, "busy", {"retry-after": when}), model="openai/m")

    assert error.retry_after is not None and 25 <= error.retry_after <= 30


def test_messages_lose_litellm_noise_and_every_secret() -> None:
    raw = (
        "litellm.AuthenticationError: AuthenticationError: OpenAIException - "
        "Incorrect API key provided: sk-live-abcdef1234567890"
    )

    error = from_exception(ProviderError(401, raw), model="openai/gpt-4o-mini", api_key="sk-live-abcdef1234567890")

    assert str(error) == (
        "openai/gpt-4o-mini: the provider refused the credentials (HTTP 401); check the API key "
        "(Incorrect API key provided: ***)"
    )
    assert not error.retryable


def test_scrub_masks_key_shaped_strings_and_url_passwords_and_stays_short() -> None:
    text = scrub("key sk-proj-0123456789abcdef at https://u:pw123456@host/v1 " + "x" * 500)

    assert "0123456789abcdef" not in text and "pw123456" not in text
    assert len(text) <= 300


def test_a_timeout_is_an_llm_timeout_and_retryable() -> None:
    error = from_exception(TimeoutError(), model="ollama/llama3")

    assert isinstance(error, LLMTimeout) and error.retryable
