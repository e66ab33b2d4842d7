"""`http_request`: call an HTTP API — only hosts on the allow-list, with a timeout and a size cap.

Redirects are followed by hand so every hop is checked against the allow-list too.
"""

from __future__ import annotations

import fnmatch
import json
from enum import StrEnum
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from bot.tools.base import Tool, ToolError
from bot.tools.decorator import function_tool
from bot.tools.settings import HttpToolSettings

MAX_REDIRECTS = 5


class Method(StrEnum):
    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    HEAD = "HEAD"


def host_allowed(url: str, allow_hosts: list[str]) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    host = parts.hostname.lower()
    with_port = f"{host}:{parts.port}" if parts.port else host
    return any(fnmatch.fnmatchcase(host, p.lower()) or fnmatch.fnmatchcase(with_port, p.lower()) for p in allow_hosts)


def http_request_tool(settings: HttpToolSettings) -> Tool:
    async def http_request(url: str, method: Method = Method.GET, body: Any = None,
                           headers: dict[str, str] | None = None) -> dict[str, Any]:
        """Make an HTTP request to an allowed host and return the status, content type and body text.

        Args:
            url: absolute http(s) URL.
            method: GET, POST, PUT, PATCH, DELETE or HEAD.
            body: JSON body for POST/PUT/PATCH (an object, list or string).
            headers: extra request headers.
        """
        if not settings.allow_hosts:
            raise ToolError("http_request is not allowed to reach any host (tools.http_request.allow_hosts is empty)")
        current = url
        async with httpx.AsyncClient(timeout=settings.timeout, follow_redirects=False) as client:
            for _ in range(MAX_REDIRECTS + 1):
                if not host_allowed(current, settings.allow_hosts):
                    raise ToolError(f"host of {current!r} is not on the allow-list "
                                    f"({', '.join(settings.allow_hosts)})")
                request = client.build_request(str(method), current, headers=headers or {},
                                               content=_body(body), )
                if body is not None and not isinstance(body, str):
                    request.headers["content-type"] = "application/json"
                response = await client.send(request, stream=True)
                try:
                    if response.is_redirect and "location" in response.headers:
                        current = urljoin(current, response.headers["location"])
                        continue
                    data, truncated = await _read_capped(response, settings.max_bytes)
                finally:
                    await response.aclose()
                text = data.decode(response.encoding or "utf-8", errors="replace")
                result: dict[str, Any] = {"status": response.status_code,
                                          "content_type": response.headers.get("content-type", ""), "body": text}
                if truncated:
                    result["truncated_at_bytes"] = settings.max_bytes
                return result
        raise ToolError(f"more than {MAX_REDIRECTS} redirects")

    return function_tool(http_request, timeout=settings.timeout + 1, source="builtin")


def _body(body: Any) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


async def _read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False
