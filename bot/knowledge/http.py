"""The knowledge API over HTTP: the same operations as `switchboard kb`, for other services.

    GET    /api/v1/kb/collections                      collections with document/chunk counts
    POST   /api/v1/kb/search   {query, collection?, top_k?, filters?, min_score?}
    POST   /api/v1/kb/ingest   {paths: [...], collection?, metadata?}  (only inside knowledge.allowed_roots)
    DELETE /api/v1/kb/collections/{name}[?source=PATH]

An HTTP caller is not the operator: ingestion reads only inside `knowledge.allowed_roots`, as from
chat. With `SWITCHBOARD_API_KEY` set, every call needs `Authorization: Bearer <key>`.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.knowledge import DEFAULT_COLLECTION, KnowledgeBase, KnowledgeError, PathNotAllowed, UnknownCollection
from bot.server import RequestTooLarge, api_key_ok, json_error, read_body_capped

_MAX_TOP_K = 50


class _BadRequest(ValueError):
    pass


def knowledge_routes(
    knowledge: KnowledgeBase, *, api_key: str = "", max_body_bytes: int = 64 * 1024
) -> list[BaseRoute]:
    async def body_of(request: Request) -> dict[str, Any]:
        raw = await read_body_capped(request, max_body_bytes)
        try:
            data = json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise _BadRequest(f"the request body is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise _BadRequest("the request body must be a JSON object")
        return data

    def guarded(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            if not api_key_ok(request, api_key):
                return json_error(
                    401,
                    "missing or wrong API key: send Authorization: Bearer <SWITCHBOARD_API_KEY>",
                    code="unauthorized",
                )
            try:
                return await handler(request)
            except RequestTooLarge as exc:
                return json_error(413, str(exc), code="too_large")
            except _BadRequest as exc:
                return json_error(400, str(exc), code="bad_request")
            except PathNotAllowed as exc:
                return json_error(403, str(exc), code="path_not_allowed")
            except UnknownCollection as exc:
                return json_error(404, str(exc), code="not_found")
            except KnowledgeError as exc:
                return json_error(400, str(exc), code="knowledge_error")

        return endpoint

    async def collections(request: Request) -> Response:
        found = await knowledge.collections.list()
        return JSONResponse(
            {
                "collections": [
                    {
                        "name": c.name,
                        "documents": c.documents,
                        "chunks": c.chunks,
                        "bytes": c.bytes,
                        "embedder": c.embedder,
                    }
                    for c in found
                ]
            }
        )

    async def search(request: Request) -> Response:
        data = await body_of(request)
        query = data.get("query")
        if not isinstance(query, str) or not query.strip():
            raise _BadRequest("`query` is required (a non-empty string)")
        top_k = data.get("top_k", 5)
        if not isinstance(top_k, int) or not 1 <= top_k <= _MAX_TOP_K:
            raise _BadRequest(f"`top_k` must be a whole number from 1 to {_MAX_TOP_K}")
        filters = data.get("filters")
        if filters is not None and not isinstance(filters, dict):
            raise _BadRequest("`filters` must be an object of metadata keys and values")
        min_score = data.get("min_score", 0.0)
        if not isinstance(min_score, int | float):
            raise _BadRequest("`min_score` must be a number")
        hits = await knowledge.search(
            query,
            collection=str(data.get("collection") or DEFAULT_COLLECTION),
            top_k=top_k,
            filters=filters,
            min_score=float(min_score),
        )
        return JSONResponse({"hits": [h.as_dict() for h in hits]})

    async def ingest(request: Request) -> Response:
        data = await body_of(request)
        paths = data.get("paths")
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
            raise _BadRequest("`paths` must be a non-empty list of file or folder paths on the bot's machine")
        metadata = data.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise _BadRequest("`metadata` must be an object")
        report = await knowledge.ingest(
            paths, collection=str(data.get("collection") or DEFAULT_COLLECTION), metadata=metadata, from_chat=True
        )
        return JSONResponse(report.as_dict())

    async def delete(request: Request) -> Response:
        name = request.path_params["name"]
        source = request.query_params.get("source")
        if source:
            if not await knowledge.collections.delete_document(name, source):
                return json_error(404, f"no document {source!r} in collection {name!r}", code="not_found")
            return JSONResponse({"deleted": {"collection": name, "source": source}})
        if not await knowledge.collections.delete(name):
            return json_error(404, f"no collection named {name!r}", code="not_found")
        return JSONResponse({"deleted": {"collection": name}})

    return [
        Route("/api/v1/kb/collections", guarded(collections), methods=["GET"]),
        Route("/api/v1/kb/search", guarded(search), methods=["POST"]),
        Route("/api/v1/kb/ingest", guarded(ingest), methods=["POST"]),
        Route("/api/v1/kb/collections/{name}", guarded(delete), methods=["DELETE"]),
    ]
