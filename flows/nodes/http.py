"""`http`: call an HTTP API. Response size is capped, hosts can be allow-listed, and a non-2xx
status fails the node (so `retry` and `on_error` apply) unless `fail_on_status: false`."""

from __future__ import annotations

import json
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import Field

from flows.context import RunContext
from flows.nodes.base import Node, NodeKind, NodeOptions, NodeResult, node_kind


class HttpStatusError(RuntimeError):
    pass


class HttpOptions(NodeOptions):
    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    headers: dict[str, str] = {}
    params: dict[str, Any] = {}
    json_body: Any = Field(None, alias="json")
    body: str | None = None
    allow_hosts: list[str] | None = None
    max_response_bytes: int = Field(1_000_000, ge=1)
    fail_on_status: bool = True


_client: httpx.AsyncClient | None = None


def _shared_client() -> httpx.AsyncClient:
    # One pooled client for all http nodes: connection reuse matters for flows that poll APIs.
    global _client
    if _client is None or _client.is_closed:
        _client = httpx.AsyncClient(follow_redirects=True, timeout=httpx.Timeout(30.0))
    return _client


@node_kind(NodeKind.HTTP, options=HttpOptions, summary="Call an HTTP API")
class HttpNode(Node[HttpOptions]):
    async def run(self, ctx: RunContext) -> NodeResult:
        o = self.options
        scope = ctx.scope()
        from flows import templates

        url = templates.render(o.url, scope)
        host = urlsplit(url).hostname or ""
        if o.allow_hosts is not None and host not in o.allow_hosts:
            raise PermissionError(f"host {host!r} is not in this node's allow_hosts {o.allow_hosts}")
        request = _shared_client().build_request(
            o.method,
            url,
            headers=templates.render_value(o.headers, scope),
            params=templates.render_value(o.params, scope),
            json=templates.render_value(o.json_body, scope) if o.json_body is not None else None,
            content=templates.render(o.body, scope).encode() if o.body is not None else None,
        )
        response = await _shared_client().send(request, stream=True)
        try:
            chunks = bytearray()
            async for chunk in response.aiter_bytes():
                chunks.extend(chunk)
                if len(chunks) > o.max_response_bytes:
                    raise ValueError(f"response from {host} is over the {o.max_response_bytes}-byte limit")
        finally:
            await response.aclose()
        text = chunks.decode(response.encoding or "utf-8", errors="replace")
        parsed: Any = None
        if "json" in response.headers.get("content-type", ""):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
        outputs = {
            "status": response.status_code,
            "ok": response.is_success,
            "text": text,
            "json": parsed,
            "headers": dict(response.headers),
        }
        if o.fail_on_status and not response.is_success:
            raise HttpStatusError(f"{o.method} {url} answered {response.status_code}: {text[:200]}")
        return NodeResult(outputs=outputs, inputs={"method": o.method, "url": url})

    def templates(self) -> dict[str, str]:
        found = {"url": self.options.url}
        if self.options.body:
            found["body"] = self.options.body
        return found
