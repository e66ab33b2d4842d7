"""`switchboard flows check|list|graph`: validate flows, list them, draw one as Mermaid."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    flows = sub.add_parser("flows", help="check, list and draw flows")
    actions = flows.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    check = actions.add_parser("check", help="report every problem in flow files, with file and line")
    check.add_argument("paths", nargs="*", help="flow files or folders (default: the configured flow folders)")
    check.set_defaults(handler=_check)
    listing = actions.add_parser("list", help="list the flows and their triggers")
    listing.set_defaults(handler=_list)
    graph = actions.add_parser("graph", help="print a flow as a Mermaid diagram")
    graph.add_argument("name", help="the flow's name")
    graph.set_defaults(handler=_graph)


def _dirs(args: argparse.Namespace) -> list[Path]:
    if getattr(args, "paths", None):
        return [Path(p) for p in args.paths]
    from bot.cli.common import boot_config

    return boot_config(args, quiet=True).flow_dirs()


def _check(args: argparse.Namespace) -> int:
    from flows.registry import load_flows

    dirs = _dirs(args)
    missing = [d for d in dirs if not d.exists()]
    for d in missing:
        print(f"{d}: no such file or folder", file=sys.stderr)
    report = load_flows(dirs)
    for problem in report.problems:
        print(problem, file=sys.stderr)
    print(f"{len(report.files)} file(s), {len(report.flows)} flow(s) ok, {len(report.problems)} problem(s)")
    return 1 if report.problems or missing or not report.files else 0


def _list(args: argparse.Namespace) -> int:
    from flows.registry import load_flows

    report = load_flows(_dirs(args))
    for flow in report.flows.values():
        triggers = (
            "; ".join(
                ", ".join(f"{k}={v}" for k, v in t.model_dump(exclude_defaults=True).items())
                for t in flow.spec.triggers
            )
            or "(no triggers: reached by name only)"
        )
        print(f"{flow.spec.name:<16} {len(flow.spec.nodes)} node(s)  {triggers}")
        if flow.spec.description:
            print(f"{'':<16} {flow.spec.description}")
    for problem in report.problems:
        print(problem, file=sys.stderr)
    return 1 if report.problems else 0


def _graph(args: argparse.Namespace) -> int:
    from flows.graph import mermaid
    from flows.registry import load_flows

    report = load_flows(_dirs(args))
    flow = report.flows.get(args.name)
    if flow is None:
        known = ", ".join(sorted(report.flows)) or "none"
        print(f"switchboard: no flow named {args.name!r} (flows: {known})", file=sys.stderr)
        return 1
    sys.stdout.write(mermaid(flow))
    return 0
