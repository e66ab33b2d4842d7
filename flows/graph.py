"""Mermaid diagrams of flows (`switchboard flows graph NAME`)."""

from __future__ import annotations

from flows.check import edges
from flows.engine import CompiledFlow


def mermaid(flow: CompiledFlow) -> str:
    lines = ["flowchart TD", f"    start([{_label(flow.spec.name)}]) --> {flow.first}"]
    for node_spec in flow.spec.nodes:
        shape = "{%s}" if node_spec.kind in ("condition", "classify") else "[%s]"
        lines.append(f"    {node_spec.id}" + shape % _label(f"{node_spec.id}: {node_spec.kind}"))
    graph = edges(flow.spec, flow.nodes)
    for node_spec in flow.spec.nodes:
        node = flow.nodes[node_spec.id]
        labels = _branch_labels(node)
        targets = graph[node_spec.id]
        if not targets and not node.ends_run():
            lines.append(f"    {node_spec.id} --> finish([end])")
        for target in targets:
            if node_spec.on_error and node_spec.on_error.next == target:
                lines.append(f"    {node_spec.id} -. on error .-> {target}")
            elif target in labels:
                lines.append(f"    {node_spec.id} -->|{_label(labels[target])}| {target}")
            else:
                lines.append(f"    {node_spec.id} --> {target}")
        if node.ends_run():
            lines.append(f"    {node_spec.id} --> finish([end])")
    return "\n".join(dict.fromkeys(lines)) + "\n"


def _branch_labels(node: object) -> dict[str, str]:
    options = getattr(node, "options", None)
    labels: dict[str, str] = {}
    for branch in getattr(options, "branches", []) or []:
        labels.setdefault(branch.next, branch.if_)
    for cls in getattr(options, "classes", []) or []:
        labels.setdefault(cls.next, cls.name)
    if getattr(options, "else_", None):
        labels.setdefault(options.else_, "else")  # type: ignore[union-attr]
    return labels


def _label(text: str) -> str:
    return '"' + text.replace('"', "'").replace("\n", " ")[:60] + '"'
