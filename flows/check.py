"""Graph and template checks for a flow: dangling and unreachable nodes, cycles, bad templates,
unknown names in templates. Every problem names the file and line."""

from __future__ import annotations

from typing import Any

from bot.yamlsource import SourceError
from flows import templates
from flows.model import END, RESERVED_IDS, FlowSpec
from flows.nodes.base import Node

# Names a template may read besides node ids (see RunContext.scope).
GLOBAL_NAMES = RESERVED_IDS - {END} | {"loop", "range", "dict", "lipsum", "cycler", "joiner", "namespace"}


def edges(spec: FlowSpec, nodes: dict[str, Node[Any]]) -> dict[str, list[str]]:
    """Every node's possible successors (END excluded)."""
    out: dict[str, list[str]] = {}
    for node_spec in spec.nodes:
        node = nodes[node_spec.id]
        targets: list[str] = []
        if not node.ends_run():
            targets.extend(node.branch_targets())
            has_else = getattr(node.options, "else_", None) is not None
            if not node.branch_targets() or not has_else:
                fallthrough = node_spec.next or spec.successor(node_spec.id)
                if fallthrough:
                    targets.append(fallthrough)
        if node_spec.on_error and node_spec.on_error.next:
            targets.append(node_spec.on_error.next)
        out[node_spec.id] = [t for t in dict.fromkeys(targets) if t != END]
    return out


def check_flow(spec: FlowSpec, nodes: dict[str, Node[Any]]) -> list[SourceError]:
    problems: list[SourceError] = []
    ids = {n.id for n in spec.nodes}
    graph = edges(spec, nodes)

    def err(node_id: str, key: str, message: str, line: int | None = None) -> SourceError:
        node_spec = spec.node(node_id)
        where = (
            line or (node_spec.option_lines.get(key) if node_spec else None) or (node_spec.line if node_spec else None)
        )
        return SourceError(spec.file, where, ("nodes", node_id, key) if key else ("nodes", node_id), message)

    for node_spec in spec.nodes:
        for target in graph[node_spec.id]:
            if target not in ids:
                problems.append(
                    err(
                        node_spec.id,
                        "next",
                        f"points to {target!r}, which is not a node of this flow "
                        f"(nodes: {', '.join(sorted(ids))}; use `end` to finish)",
                    )
                )
    if problems:
        return problems

    reachable: set[str] = set()
    stack = [spec.nodes[0].id]
    while stack:
        current = stack.pop()
        if current in reachable:
            continue
        reachable.add(current)
        stack.extend(graph[current])
    for node_spec in spec.nodes:
        if node_spec.id not in reachable:
            problems.append(
                err(node_spec.id, "", f"node {node_spec.id!r} is unreachable from the first node {spec.nodes[0].id!r}")
            )

    cycle = _find_cycle(graph, spec.nodes[0].id)
    if cycle:
        problems.append(err(cycle[0], "", "cycle without a loop node: " + " -> ".join([*cycle, cycle[0]])))

    known = ids | GLOBAL_NAMES
    for node_spec in spec.nodes:
        node = nodes[node_spec.id]
        sources = [(k, v, False) for k, v in node.templates().items()]
        sources += [(f"branches[{i}].if", e, True) for i, e in enumerate(getattr(node, "expressions", list)())]
        for key, source, is_expression in sources:
            top_key = key.split(".")[0].split("[")[0]
            try:
                names = templates.check_expression(source) if is_expression else templates.check_template(source)
            except templates.TemplateError as exc:
                problems.append(err(node_spec.id, top_key, f"{key}: {exc}"))
                continue
            unknown = sorted(names - known)
            if unknown:
                problems.append(
                    err(
                        node_spec.id,
                        top_key,
                        f"{key}: unknown name(s) {', '.join(unknown)} "
                        "(use a node id, or event, person, vars, flow, run, models, bot, now, human_input)",
                    )
                )
    return problems


def _find_cycle(graph: dict[str, list[str]], start: str) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in graph.get(node, []):
            if state.get(target) == 1:
                return path[path.index(target) :]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return None

    for node in [start, *graph]:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None
