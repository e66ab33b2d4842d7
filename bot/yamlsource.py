"""YAML loading that remembers where every value came from.

Config and flow errors must name the file, the line and the key path; PyYAML's composer knows the
line of every node, so we keep a map from key path to line while building plain Python values.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KeyPath = tuple[str | int, ...]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class SourceError(ValueError):
    """A problem in a YAML file, located: `file:line: key.path: message`."""

    def __init__(self, file: str, line: int | None, path: KeyPath, message: str) -> None:
        self.file = file
        self.line = line
        self.path = path
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = format_path(self.path)
        return f"{where}: {key + ': ' if key else ''}{self.message}"


def format_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass(slots=True)
class SourceDoc:
    """A parsed YAML document plus the line (1-based) of every key path in it."""

    file: str
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())

    def error(self, path: KeyPath, message: str) -> SourceError:
        return SourceError(self.file, self.line_of(path), path, message)


def interpolate(value: str, env: dict[str, str] | os._Environ[str] | None = None) -> str:
    """Expand `${VAR}` and `${VAR:-default}`. An unset `${VAR}` without default becomes ""."""
    environ = os.environ if env is None else env

    def expand(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        current = environ.get(name, "")
        if current == "" and default is not None:
            return default
        return current

    return _VAR.sub(expand, value)


def load_yaml(text: str, file: str, *, interpolate_env: bool = False, env: dict[str, str] | None = None) -> SourceDoc:
    """Parse one YAML document, keeping line numbers; errors become `SourceError`s."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark is not None and "stream end" in (exc.problem or ""):
            mark = exc.context_mark  # "unexpected end of file": point at what was left open
        line = mark.line + 1 if mark else None
        problem = exc.problem or "invalid YAML"
        raise SourceError(file, line, (), f"invalid YAML: {problem}") from None
    doc = SourceDoc(file=file, data=None)
    if node is None:
        doc.data = {}
        return doc
    doc.lines[()] = node.start_mark.line + 1
    loader = yaml.SafeLoader("")
    doc.data = _build(node, (), doc, loader, interpolate_env, env)
    return doc


def load_yaml_file(path: Path, *, interpolate_env: bool = False) -> SourceDoc:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceError(str(path), None, (), f"cannot read file: {exc.strerror}") from None
    return load_yaml(text, str(path), interpolate_env=interpolate_env)


def _build(
    node: yaml.Node,
    path: KeyPath,
    doc: SourceDoc,
    loader: yaml.SafeLoader,
    interp: bool,
    env: dict[str, str] | None,
) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node)  # scalars only
            if isinstance(key, bool | int | float) or key is None:
                key = str(key).lower() if isinstance(key, bool) else str(key)
            child = (*path, key)
            doc.lines[child] = key_node.start_mark.line + 1
            if key in out:
                raise doc.error(child, f"duplicate key {key!r}")
            out[key] = _build(value_node, child, doc, loader, interp, env)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            child = (*path, index)
            doc.lines[child] = item.start_mark.line + 1
            items.append(_build(item, child, doc, loader, interp, env))
        return items
    value = loader.construct_object(node)
    if interp and isinstance(value, str) and "${" in value:
        expanded = interpolate(value, env)
        # An interpolated scalar is re-read as YAML so `${PORT:-8080}` is an int, `${X:-true}` a bool.
        if expanded != value and node.style is None:
            try:
                reread = yaml.safe_load(expanded) if expanded.strip() else ""
            except yaml.YAMLError:
                reread = expanded
            return reread if isinstance(reread, str | int | float | bool) or reread is None else expanded
        return expanded
    return value
