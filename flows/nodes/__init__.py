"""Node kinds. Each module registers its kind with `@node_kind`; `load_builtin_nodes()` imports
them all so the registry is complete before flows are checked or run."""

from __future__ import annotations

import importlib

from flows.nodes.base import NODE_KINDS, Node, NodeKind, NodeResult, node_kind

_BUILTIN = (
    "flows.nodes.llm",
    "flows.nodes.template",
    "flows.nodes.condition",
    "flows.nodes.classify",
    "flows.nodes.set",
    "flows.nodes.http",
    "flows.nodes.reply",
    "flows.nodes.end",
    # Later features add their modules here (retrieve, remember, agent, tool, ask, ...).
    "flows.nodes.retrieve",
    "flows.nodes.remember",
    "flows.nodes.agent",
    "flows.nodes.tool",
    "flows.nodes.ask",
)


def load_builtin_nodes() -> None:
    for name in _BUILTIN:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


__all__ = ["NODE_KINDS", "Node", "NodeKind", "NodeResult", "load_builtin_nodes", "node_kind"]
