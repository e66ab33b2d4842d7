"""`/sb kb ...` for admins: list, search, ingest (only inside `knowledge.allowed_roots`) and delete."""

from __future__ import annotations

from typing import Any

from bot.commands import CommandContext, command
from bot.knowledge import DEFAULT_COLLECTION, KnowledgeBase, KnowledgeError, PathNotAllowed
from bot.store.people import Role

USAGE = "kb list | kb search <query> [--collection NAME] | kb ingest PATH... [--collection NAME] | kb delete NAME"
_SKIPS_SHOWN = 10


def knowledge_base(ctx: CommandContext) -> KnowledgeBase | None:
    services: Any = ctx.services.get("services")
    found = getattr(services, "knowledge", None) if services is not None else None
    return found or ctx.services.get("knowledge")


def _split_collection(args: tuple[str, ...]) -> tuple[list[str], str]:
    rest, collection = [], DEFAULT_COLLECTION
    items = iter(args)
    for arg in items:
        if arg in ("--collection", "-c"):
            collection = next(items, DEFAULT_COLLECTION)
        elif arg.startswith("--collection="):
            collection = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return rest, collection


@command("kb", summary="Knowledge collections: list, search, ingest files, delete", usage=USAGE, min_role=Role.ADMIN)
async def kb_command(ctx: CommandContext) -> str:
    kb = knowledge_base(ctx)
    if kb is None:
        return "Knowledge is not enabled on this bot."
    action = ctx.args[0].lower() if ctx.args else "list"
    rest, collection = _split_collection(ctx.args[1:])
    try:
        if action == "list":
            return await _list(kb)
        if action == "search":
            return await _search(kb, " ".join(rest), collection)
        if action == "ingest":
            return await _ingest(kb, rest, collection)
        if action == "delete":
            name = rest[0] if rest else ""
            if not name:
                return "Say which collection: `kb delete NAME` (`kb list` shows them)."
            deleted = await kb.collections.delete(name)
            return f"Deleted collection {name!r}." if deleted else f"There is no collection {name!r}."
    except PathNotAllowed as exc:
        return f"Refused: {exc}."
    except KnowledgeError as exc:
        return f"{exc}."
    return f"Unknown kb action {action!r}. Usage: {USAGE}"


async def _list(kb: KnowledgeBase) -> str:
    collections = await kb.collections.list()
    if not collections:
        return "No collections yet: `kb ingest PATH` (or `switchboard kb ingest PATH` on the server) adds one."
    lines = ["Collections:"]
    lines += [f"• {c.name}: {c.documents} documents, {c.chunks} chunks, {c.bytes / 1e6:.2f} MB ({c.embedder})"
              for c in collections]
    return "\n".join(lines)


async def _search(kb: KnowledgeBase, query: str, collection: str) -> str:
    if not query.strip():
        return "Say what to look for: `kb search how do I rotate keys`."
    hits = await kb.search(query, collection=collection, top_k=5)
    if not hits:
        return f"Nothing in {collection!r} matches {query!r}."
    lines = []
    for n, hit in enumerate(hits, start=1):
        snippet = " ".join(hit.text.split())[:200]
        lines.append(f"[{n}] {hit.citation} (score {hit.score:.2f})\n{snippet}")
    return "\n\n".join(lines)


async def _ingest(kb: KnowledgeBase, paths: list[str], collection: str) -> str:
    if not paths:
        return "Say which files or folders: `kb ingest /srv/docs --collection handbook`."
    report = await kb.ingest(paths, collection=collection, from_chat=True)
    lines = [report.summary() + "."]
    for skipped in report.skipped[:_SKIPS_SHOWN]:
        lines.append(f"• skipped {skipped.source}: {skipped.reason}")
    if len(report.skipped) > _SKIPS_SHOWN:
        lines.append(f"• … and {len(report.skipped) - _SKIPS_SHOWN} more skipped")
    return "\n".join(lines)


COMMANDS = [kb_command]
