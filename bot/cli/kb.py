"""`switchboard kb ingest|search|list|delete`: knowledge collections from the command line.

The operator's CLI may read any file its user can (unlike `/sb kb ingest` from chat, which is held
to `knowledge.allowed_roots`). The collection is `default` unless `--collection` names another.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

_DEFAULT = "default"


def register(sub: Any) -> None:
    kb = sub.add_parser("kb", help="knowledge collections: ingest files, search, list, delete")
    actions = kb.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    ingest = actions.add_parser("ingest", help="add files and folders (text, Markdown, HTML, PDF) to a collection")
    ingest.add_argument("paths", nargs="+", metavar="PATH")
    ingest.add_argument("--collection", "-c", default=_DEFAULT)
    ingest.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                        help="metadata on every chunk, usable as a search filter (repeatable)")
    ingest.add_argument("--no-progress", action="store_true", help="no progress bar")
    ingest.set_defaults(handler=lambda a: _run(a, _ingest))

    search = actions.add_parser("search", help="hybrid (vector + full-text) search of a collection")
    search.add_argument("query")
    search.add_argument("--collection", "-c", default=_DEFAULT)
    search.add_argument("--top", "-k", type=int, default=5)
    search.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                        help="only chunks whose metadata has this value (repeatable), e.g. format=pdf")
    search.add_argument("--min-score", type=float, default=0.0, help="drop hits below this fused score (0..1)")
    search.add_argument("--mode", choices=("hybrid", "vector", "text"), default="hybrid")
    search.add_argument("--json", action="store_true", help="print the hits as a JSON list")
    search.set_defaults(handler=lambda a: _run(a, _search))

    listing = actions.add_parser("list", help="list collections, or the documents of one")
    listing.add_argument("collection", nargs="?")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=lambda a: _run(a, _list))

    delete = actions.add_parser("delete", help="delete a collection, or one document of it")
    delete.add_argument("collection")
    delete.add_argument("--source", help="delete only this document (its path as given at ingest)")
    delete.set_defaults(handler=lambda a: _run(a, _delete))


def _run(args: argparse.Namespace, action: Any) -> int:
    from bot.cli.common import boot_config

    config = boot_config(args, quiet=True)
    return asyncio.run(_with_kb(config, args, action))


async def _with_kb(config: Any, args: argparse.Namespace, action: Any) -> int:
    from bot.cli.common import fail
    from bot.knowledge import KnowledgeBase, KnowledgeError
    from bot.store import Store, StoreError

    try:
        store = await Store.open(config.database.url, data_dir=config.data_path, pool_min=1, pool_max=4)
    except StoreError as exc:
        fail(str(exc))
    try:
        try:
            kb = KnowledgeBase.from_config(store.pool, config)
        except ValueError as exc:
            fail(f"knowledge.embedding: {exc}")
        try:
            return int(await action(kb, args))
        except KnowledgeError as exc:
            print(f"switchboard: {exc}", file=sys.stderr)
            return 1
    finally:
        await store.close()


def _pairs(items: list[str], option: str) -> dict[str, str]:
    from bot.cli.common import fail

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"{option} expects KEY=VALUE, found {item!r}")
        out[key] = value
    return out


async def _ingest(kb: Any, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from bot.knowledge.ingest import expand_paths

    metadata = _pairs(args.meta, "--meta")
    sizes: dict[str, int] = {}
    for source, path, _ in expand_paths(args.paths):
        if path is not None:
            try:
                sizes[source] = os.stat(path).st_size
            except OSError:
                sizes[source] = 0
    bar = tqdm(total=sum(sizes.values()), unit="B", unit_scale=True, desc=f"ingest → {args.collection}",
               disable=args.no_progress or None, file=sys.stderr, dynamic_ncols=True)

    def on_file(outcome: Any) -> None:
        bar.update(sizes.get(outcome.source, 0))
        bar.set_postfix_str(f"{outcome.status}: {os.path.basename(outcome.source)}"[:40], refresh=False)
        if outcome.status == "skipped":
            bar.write(f"skipped {outcome.source}: {outcome.reason}", file=sys.stderr)

    try:
        report = await kb.ingest(args.paths, collection=args.collection, metadata=metadata, on_file=on_file)
    finally:
        bar.close()
    rate = report.megabytes / report.seconds * 60 if report.seconds else 0.0
    print(f"files: {report.files} ingested, {report.unchanged} unchanged, {len(report.skipped)} skipped")
    print(f"chunks: {report.chunks}")
    print(f"MB: {report.megabytes:.2f}")
    print(f"seconds: {report.seconds:.2f} ({rate:.1f} MB/min)")
    return 0 if report.files or report.unchanged or not report.skipped else 1


async def _search(kb: Any, args: argparse.Namespace) -> int:
    from bot.knowledge import SearchMode

    hits = await kb.search(args.query, collection=args.collection, top_k=args.top,
                           filters=_pairs(args.filter, "--filter") or None, min_score=args.min_score,
                           mode=SearchMode(args.mode))
    if args.json:
        print(json.dumps([h.as_dict() for h in hits], indent=2, ensure_ascii=False))
        return 0
    if not hits:
        print(f"no hits in {args.collection!r}")
        return 0
    for n, hit in enumerate(hits, start=1):
        heading = f"  [{hit.heading}]" if hit.heading else ""
        print(f"{n}. {hit.citation}  score {hit.score:.3f}{heading}")
        snippet = " ".join(hit.text.split())
        print(f"   {snippet[:300]}{'…' if len(snippet) > 300 else ''}")
    return 0


async def _list(kb: Any, args: argparse.Namespace) -> int:
    if args.collection:
        documents = await kb.collections.documents(args.collection)
        if args.json:
            print(json.dumps([{"source": d.source, "format": d.format, "title": d.title, "bytes": d.bytes,
                               "chunks": d.chunks, "sha256": d.content_hash,
                               "ingested_at": d.ingested_at.isoformat(timespec="seconds")} for d in documents],
                             indent=2))
            return 0
        for d in documents:
            print(f"{d.source}  {d.format}  {d.chunks} chunks  {d.bytes / 1e6:.2f} MB")
        print(f"{len(documents)} documents in {args.collection!r}")
        return 0
    collections = await kb.collections.list()
    if args.json:
        print(json.dumps([c.as_dict() for c in collections], indent=2))
        return 0
    if not collections:
        print("no collections yet: `switchboard kb ingest PATH...` creates 'default'")
    for c in collections:
        print(f"{c.name}  {c.documents} documents  {c.chunks} chunks  {c.bytes / 1e6:.2f} MB  {c.embedder}")
    return 0


async def _delete(kb: Any, args: argparse.Namespace) -> int:
    if args.source:
        if await kb.collections.delete_document(args.collection, args.source):
            print(f"deleted {args.source!r} from {args.collection!r}")
            return 0
        print(f"switchboard: {args.collection!r} has no document {args.source!r}", file=sys.stderr)
        return 1
    if await kb.collections.delete(args.collection):
        print(f"deleted collection {args.collection!r}")
        return 0
    print(f"switchboard: there is no collection {args.collection!r}", file=sys.stderr)
    return 1
