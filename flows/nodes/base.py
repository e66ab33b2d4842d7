"""What a node kind is: a small class with a typed options model, registered by decorator.

    @node_kind(NodeKind.TEMPLATE, options=TemplateOptions, summary="Render text")
    class TemplateNode(Node[TemplateOptions]):
        async def run(self, ctx: RunContext) -> NodeResult: ...

The engine owns retries, timeouts, `on_error`, persistence and limits; a node only does its job
and returns its outputs (and, for branching kinds, which node comes next).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from flows.context import RunContext
    from flows.model import NodeSpec


class NodeKind(StrEnum):
    LLM = "llm"
    TEMPLATE = "template"
    CONDITION = "condition"
    CLASSIFY = "classify"
    SET = "set"
    HTTP = "http"
    REPLY = "reply"
    END = "end"
    RETRIEVE = "retrieve"
    REMEMBER = "remember"
    AGENT = "agent"
    TOOL = "tool"
    ASK = "ask"


class NodeOptions(BaseModel):
    """Base for a node kind's options; unknown keys are errors (typos must not pass silently)."""

    model_config = ConfigDict(extra="forbid")


OptionsT = TypeVar("OptionsT", bound=NodeOptions)


@dataclass(slots=True)
class NodeResult:
    outputs: dict[str, Any] = field(default_factory=dict)
    # For branching kinds: the id of the node to run next (None: follow `next` / document order).
    next: str | None = None
    # Stop the run after this node (the `end` kind).
    stop: bool = False
    # Park the run until the conversation's next event (human input); see the `ask` kind.
    wait: bool = False
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    # What the node actually used (rendered prompt, URL...), recorded in the step row.
    inputs: dict[str, Any] | None = None


class Node(abc.ABC, Generic[OptionsT]):
    """One node of a flow, built once per flow load and run many times (keep it stateless)."""

    kind: ClassVar[str]
    options_model: ClassVar[type[NodeOptions]]
    summary: ClassVar[str] = ""

    def __init__(self, spec: NodeSpec, options: OptionsT) -> None:
        self.spec = spec
        self.id = spec.id
        self.options = options

    @abc.abstractmethod
    async def run(self, ctx: RunContext) -> NodeResult:
        """Do the node's work. Raise to fail (the engine applies retry and on_error)."""

    def branch_targets(self) -> list[str]:
        """Node ids this node may jump to by itself (for graph checks and Mermaid)."""
        return []

    def templates(self) -> dict[str, str]:
        """Template strings in the options, by option name, so `flows check` can compile them."""
        return {}

    def ends_run(self) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class NodeKindInfo:
    kind: str
    cls: type[Node[Any]]
    options: type[NodeOptions]
    summary: str


NODE_KINDS: dict[str, NodeKindInfo] = {}


def node_kind(
    kind: str, *, options: type[NodeOptions], summary: str = ""
) -> Callable[[type[Node[Any]]], type[Node[Any]]]:
    """Register a node class under `kind` with its options model."""

    def register(cls: type[Node[Any]]) -> type[Node[Any]]:
        if kind in NODE_KINDS and NODE_KINDS[kind].cls is not cls:
            raise ValueError(f"node kind {kind!r} is registered twice")
        cls.kind = str(kind)
        cls.options_model = options
        cls.summary = summary
        NODE_KINDS[str(kind)] = NodeKindInfo(str(kind), cls, options, summary)
        return cls

    return register
