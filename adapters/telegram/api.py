"""One Bot API call, made to survive flood control and network trouble.

python-telegram-bot's `AIORateLimiter` already paces calls and retries `RetryAfter` a few times;
`call_api` is the outer loop that keeps a reply from being dropped when Telegram asks for longer
pauses, follows a group that became a supergroup, and retries network failures with backoff and
jitter.
"""

from __future__ import annotations

import asyncio
import logging
import random
import warnings
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from telegram.error import BadRequest, ChatMigrated, NetworkError, RetryAfter

from adapters.telegram.inbound import CHANNEL

log = logging.getLogger("switchboard.adapters.telegram")

T = TypeVar("T")
_NETWORK_ATTEMPTS = 6
_MAX_FLOOD_WAIT_S = 600.0


async def call_api(method: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """Await `method(*args, **kwargs)`; BadRequest is final (PTB makes it a NetworkError subclass,
    so it is re-raised before the network retry)."""
    waited = 0.0
    attempt = 0
    while True:
        try:
            return await method(*args, **kwargs)
        except RetryAfter as exc:
            delay = retry_after_seconds(exc)
            waited += delay
            if waited > _MAX_FLOOD_WAIT_S:
                raise
            log.warning("Telegram flood control; waiting", extra={"adapter": CHANNEL, "retry_after_s": delay})
            await asyncio.sleep(delay)
        except ChatMigrated as exc:  # a group became a supergroup: same chat, new id
            if "chat_id" not in kwargs:
                raise
            log.info("the chat moved to a new id; resending there",
                     extra={"adapter": CHANNEL, "chat_id": kwargs["chat_id"], "new_chat_id": exc.new_chat_id})
            kwargs["chat_id"] = exc.new_chat_id
        except BadRequest:
            raise
        except NetworkError as exc:
            attempt += 1
            if attempt >= _NETWORK_ATTEMPTS:
                raise
            delay = min(2.0 ** attempt, 30.0) * random.uniform(0.5, 1.0)
            log.warning("Telegram call failed; retrying",
                        extra={"adapter": CHANNEL, "error": str(exc), "retry_in_s": round(delay, 2)})
            await asyncio.sleep(delay)


def retry_after_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns while moving retry_after from int to timedelta
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def entity_error(exc: BadRequest) -> bool:
    """Telegram could not parse the formatting ("can't parse entities")."""
    return "parse entities" in str(exc).lower()
