"""Flow YAML → `FlowSpec`, reporting every problem with file and line.

`load_flow_file` raises `FlowErrors` holding all problems found (not just the first), so
`switchboard flows check` can list them at once. Graph-level checks live in `flows.check`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bot.yamlsource import SourceDoc, SourceError, load_yaml, load_yaml_file
from flows.model import (
    COMMON_NODE_KEYS,
    END,
    FlowSpec,
    HistoryPolicy,
    Limits,
    NodeSpec,
    OnError,
    Retry,
    Trigger,
    valid_node_id,
)

_FLOW_KEYS = {"name", "description", "triggers", "nodes", "limits", "history", "example", "enabled"}


class FlowErrors(ValueError):
    def __init__(self, problems: list[SourceError]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def load_flow_file(path: Path) -> FlowSpec:
    try:
        doc = load_yaml_file(path)
    except SourceError as exc:
        raise FlowErrors([exc]) from None
    return parse_flow(doc)


def load_flow_text(text: str, file: str = "<flow>") -> FlowSpec:
    try:
        doc = load_yaml(text, file)
    except SourceError as exc:
        raise FlowErrors([exc]) from None
    return parse_flow(doc)


def flow_files(dirs: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for folder in dirs:
        if folder.is_file():
            files.append(folder)
        elif folder.is_dir():
            files.extend(sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml")))
    return files


def parse_flow(doc: SourceDoc) -> FlowSpec:
    problems: list[SourceError] = []
    data = doc.data
    if not isinstance(data, dict):
        raise FlowErrors([doc.error((), f"a flow file must be a mapping, found {type(data).__name__}")])

    for key in data:
        if key not in _FLOW_KEYS:
            problems.append(doc.error((key,), f"unknown key {key!r} (known keys: {', '.join(sorted(_FLOW_KEYS))})"))

    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(doc.error(("name",), "a flow needs a `name` (a short identifier such as `assistant`)"))
        name = Path(doc.file).stem
    elif not valid_name(name):
        problems.append(doc.error(("name",), f"flow name {name!r} may only use letters, digits, '-' and '_'"))

    triggers: list[Trigger] = []
    raw_triggers = data.get("triggers", [])
    if not isinstance(raw_triggers, list):
        problems.append(doc.error(("triggers",), "expected a list of triggers"))
        raw_triggers = []
    for index, raw in enumerate(raw_triggers):
        trigger = _model(Trigger, raw, ("triggers", index), doc, problems)
        if trigger is not None:
            triggers.append(trigger)

    limits = _model(Limits, data.get("limits", {}), ("limits",), doc, problems) or Limits()
    history = _model(HistoryPolicy, data.get("history", {}), ("history",), doc, problems) or HistoryPolicy()

    nodes: list[NodeSpec] = []
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        problems.append(doc.error(("nodes",), "a flow needs a non-empty list of `nodes`"))
        raw_nodes = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_nodes):
        node = _node(raw, ("nodes", index), doc, problems)
        if node is None:
            continue
        if node.id in seen:
            problems.append(
                doc.error(("nodes", index, "id"), f"duplicate node id {node.id!r} (first on line {seen[node.id]})")
            )
            continue
        seen[node.id] = node.line or 0
        nodes.append(node)

    if problems:
        raise FlowErrors(problems)
    return FlowSpec(
        name=name,
        description=str(data.get("description", "") or "").strip(),
        triggers=triggers,
        nodes=nodes,
        limits=limits,
        history=history,
        example=str(data.get("example", "") or ""),
        enabled=bool(data.get("enabled", True)),
        file=doc.file,
        line=doc.line_of(()),
    )


def valid_name(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "-_" for c in name)


def _node(raw: Any, path: tuple[Any, ...], doc: SourceDoc, problems: list[SourceError]) -> NodeSpec | None:
    if not isinstance(raw, dict):
        problems.append(doc.error(path, f"a node must be a mapping with `id` and `kind`, found {type(raw).__name__}"))
        return None
    node_id = raw.get("id")
    kind = raw.get("kind")
    ok = True
    if not isinstance(node_id, str) or not valid_node_id(node_id):
        problems.append(
            doc.error(
                (*path, "id"),
                f"node id {node_id!r} must be an identifier (letters, digits, _) and not a "
                "reserved name (event, person, vars, flow, run, models, bot, catalog, now, end, human_input)",
            )
        )
        ok = False
    if not isinstance(kind, str):
        problems.append(doc.error((*path, "kind"), "a node needs a `kind` (llm, template, condition, reply, ...)"))
        ok = False
    nxt = raw.get("next")
    if nxt is not None and not isinstance(nxt, str):
        problems.append(doc.error((*path, "next"), f"`next` must be a node id or `{END}`"))
        ok = False
    retry = _model(Retry, raw.get("retry", {}), (*path, "retry"), doc, problems)
    on_error = _model(OnError, raw["on_error"], (*path, "on_error"), doc, problems) if "on_error" in raw else None
    if "on_error" in raw and raw["on_error"] == "fail":
        on_error = None
    timeout = raw.get("timeout")
    if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
        problems.append(doc.error((*path, "timeout"), f"expected a positive number of seconds, found {timeout!r}"))
        ok = False
    if not ok or retry is None or ("on_error" in raw and raw["on_error"] != "fail" and on_error is None):
        return None
    options = {k: v for k, v in raw.items() if k not in COMMON_NODE_KEYS}
    return NodeSpec(
        id=node_id,  # type: ignore[arg-type]
        kind=kind,  # type: ignore[arg-type]
        options=options,
        next=nxt,
        retry=retry,
        timeout=float(timeout) if timeout is not None else None,
        on_error=on_error,
        description=str(raw.get("description", "") or ""),
        line=doc.line_of(path),
        option_lines={k: doc.lines.get((*path, k), 0) for k in options},
    )


def _model(model: type[BaseModel], raw: Any, path: tuple[Any, ...], doc: SourceDoc, problems: list[SourceError]) -> Any:
    if model is OnError and raw == "fail":
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            loc = (*path, *err["loc"])
            kind = err["type"]
            if kind == "extra_forbidden":
                message = f"unknown key {err['loc'][-1]!r} (known: {', '.join(sorted(model.model_fields))})"
            elif kind == "missing":
                message = "required key is missing"
            else:
                message = str(err["msg"]).removeprefix("Value error, ")
                if "input" in err and kind not in ("value_error",) and not isinstance(err["input"], dict):
                    message += f" (found {err['input']!r})"
            problems.append(doc.error(loc, message))
        return None
