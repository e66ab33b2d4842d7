"""Waiting out what discord.py's own rate-limit handling hands back to us.

discord.py already sleeps `retry_after` on an ordinary 429 and retries 5xx answers a few times.
What still reaches the adapter is a 429 it will not retry (no `Via` header: a proxy's or a
Cloudflare limit), a `RateLimited` past its timeout, or a server/network failure after its own
retries. Sends carry a nonce Discord enforces, so retrying one never posts twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import discord

log = logging.getLogger("switchboard.adapters.discord")

ATTEMPTS = 6
_MAX_BACKOFF = 30.0


async def with_retries(call: Callable[..., Awaitable[Any]], *args: Any, attempts: int = ATTEMPTS) -> Any:
    """`await call(*args)`, waiting the advertised delay after a rate limit and backing off after
    server or network failures; other errors (403, 404, 400) are raised at once."""
    for attempt in range(1, attempts + 1):
        try:
            return await call(*args)
        except discord.RateLimited as exc:
            if attempt == attempts:
                raise
            delay = exc.retry_after
        except discord.HTTPException as exc:
            if (exc.status != 429 and exc.status < 500) or attempt == attempts:
                raise
            delay = retry_after(exc) if exc.status == 429 else min(2.0**attempt, _MAX_BACKOFF)
        except (aiohttp.ClientError, OSError) as exc:
            if attempt == attempts:
                raise
            delay = min(2.0**attempt, _MAX_BACKOFF)
            # The class name only: aiohttp's message can carry the URL, and interaction URLs hold a token.
            log.warning("discord request failed; retrying", extra={"error": type(exc).__name__, "attempt": attempt})
        log.warning("discord asked us to wait; retrying after the delay", extra={"delay": delay, "attempt": attempt})
        await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def retry_after(exc: discord.HTTPException) -> float:
    """The advertised delay: Discord's JSON body `retry_after`, else the Retry-After header, else 1 s."""
    match = re.search(r'"retry_after"\s*:\s*([0-9.]+)', getattr(exc, "text", "") or "")
    response = getattr(exc, "response", None)
    header = response.headers.get("Retry-After") if response is not None else None
    for candidate in (match.group(1) if match else None, header):
        with contextlib.suppress(TypeError, ValueError):
            if candidate is not None:
                return max(0.0, float(candidate))
    return 1.0
