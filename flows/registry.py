"""Loads every flow from the configured folders, builds its nodes and checks its graph.

A flow with problems is not loaded (and the problems are reported with file and line); the others
still load, so one bad file never takes the bot down. `reload()` swaps the set atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.yamlsource import SourceError
from flows.check import check_flow
from flows.engine import CompiledFlow
from flows.loader import FlowErrors, flow_files, load_flow_file
from flows.model import FlowSpec
from flows.nodes import NODE_KINDS, load_builtin_nodes
from flows.nodes.base import Node

log = logging.getLogger("switchboard.flows")


@dataclass(slots=True)
class LoadReport:
    flows: dict[str, CompiledFlow] = field(default_factory=dict)
    problems: list[SourceError] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def compile_flow(spec: FlowSpec) -> CompiledFlow:
    """Build node objects (validating each kind's options) and check the graph. Raises FlowErrors."""
    load_builtin_nodes()
    problems: list[SourceError] = []
    nodes: dict[str, Node[Any]] = {}
    for node_spec in spec.nodes:
        info = NODE_KINDS.get(node_spec.kind)
        if info is None:
            known = ", ".join(sorted(NODE_KINDS))
            problems.append(
                SourceError(
                    spec.file,
                    node_spec.line,
                    ("nodes", node_spec.id, "kind"),
                    f"unknown node kind {node_spec.kind!r} (known kinds: {known})",
                )
            )
            continue
        try:
            options = info.options.model_validate(node_spec.options)
        except ValidationError as exc:
            for err in exc.errors():
                key = str(err["loc"][0]) if err["loc"] else ""
                line = node_spec.option_lines.get(key) or node_spec.line
                if err["type"] == "extra_forbidden":
                    allowed = sorted({f.alias or n for n, f in info.options.model_fields.items()})
                    message = f"unknown option {key!r} for a {node_spec.kind} node (options: {', '.join(allowed)})"
                elif err["type"] == "missing":
                    message = f"a {node_spec.kind} node needs `{key}`"
                else:
                    message = str(err["msg"]).removeprefix("Value error, ")
                problems.append(SourceError(spec.file, line, ("nodes", node_spec.id, *err["loc"]), message))
            continue
        nodes[node_spec.id] = info.cls(node_spec, options)
    if not problems:
        problems.extend(check_flow(spec, nodes))
    if problems:
        raise FlowErrors(problems)
    return CompiledFlow(spec, nodes)


def load_flows(dirs: Iterable[Path]) -> LoadReport:
    report = LoadReport()
    report.files = flow_files(dirs)
    for file in report.files:
        try:
            compiled = compile_flow(load_flow_file(file))
        except FlowErrors as exc:
            report.problems.extend(exc.problems)
            continue
        except SourceError as exc:
            report.problems.append(exc)
            continue
        name = compiled.spec.name
        if name in report.flows:
            other = report.flows[name].spec.file
            report.problems.append(
                SourceError(str(file), compiled.spec.line, ("name",), f"flow name {name!r} is already used by {other}")
            )
            continue
        report.flows[name] = compiled
    return report


class FlowRegistry:
    def __init__(self, dirs: list[Path]) -> None:
        self.dirs = dirs
        self._flows: dict[str, CompiledFlow] = {}
        self._disabled: set[str] = set()
        self.problems: list[SourceError] = []

    def load(self) -> LoadReport:
        report = load_flows(self.dirs)
        self._flows = report.flows
        self.problems = report.problems
        for problem in report.problems:
            log.error("flow not loaded", extra={"problem": str(problem)})
        return report

    reload = load

    def get(self, name: str) -> CompiledFlow | None:
        flow = self._flows.get(name)
        return flow if flow is not None and self.enabled(name) else None

    def enabled(self, name: str) -> bool:
        flow = self._flows.get(name)
        return flow is not None and flow.spec.enabled and name not in self._disabled

    def set_enabled(self, name: str, enabled: bool) -> None:
        if name not in self._flows:
            raise KeyError(name)
        (self._disabled.discard if enabled else self._disabled.add)(name)

    def all(self) -> list[CompiledFlow]:
        return list(self._flows.values())

    def active(self) -> list[CompiledFlow]:
        return [f for f in self._flows.values() if self.enabled(f.spec.name)]
