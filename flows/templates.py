"""Jinja2 in a sandbox: the only way values flow between nodes.

`{{ node_id.field }}`, `{{ event.text }}`, `{{ person.name }}`, `{{ vars.x }}`. Templates are
compiled once per distinct string and cached; flow authors cannot reach Python internals
(SandboxedEnvironment) or the process environment (no `env` in scope: secrets stay out).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateError(ValueError):
    pass


def _tojson(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


_env = ImmutableSandboxedEnvironment(
    autoescape=False,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
    # A node that did not run on this path reads as empty (Dify's semantics); `flows check`
    # still reports names that are no node at all.
    undefined=ChainableUndefined,
)
_env.filters["tojson"] = _tojson


@lru_cache(maxsize=4096)
def _compiled(source: str) -> Any:
    try:
        return _env.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template error on its line {exc.lineno}: {exc.message}") from None


@lru_cache(maxsize=4096)
def _compiled_expression(source: str) -> Any:
    try:
        return _env.compile_expression(source, undefined_to_none=True)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"expression error: {exc.message}") from None


def render(source: str, scope: dict[str, Any]) -> str:
    """Render a template string; plain strings without `{{`/`{%` are returned as they are."""
    if "{" not in source:
        return source
    try:
        return _compiled(source).render(scope)
    except TemplateError:
        raise
    except Exception as exc:
        raise TemplateError(f"template failed: {type(exc).__name__}: {exc}") from None


def evaluate(expression: str, scope: dict[str, Any]) -> Any:
    """Evaluate a Jinja expression (`event.text == 'hi' and not vars.done`)."""
    try:
        return _compiled_expression(expression)(**scope)
    except TemplateError:
        raise
    except Exception as exc:
        raise TemplateError(f"expression {expression!r} failed: {type(exc).__name__}: {exc}") from None


def render_value(value: Any, scope: dict[str, Any]) -> Any:
    """Render every string inside a nested structure (for http bodies, set values, ...)."""
    if isinstance(value, str):
        return render(value, scope)
    if isinstance(value, dict):
        return {k: render_value(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, scope) for v in value]
    return value


def check_template(source: str) -> set[str]:
    """Compile a template; return the top-level names it reads. Raises TemplateError."""
    try:
        ast = _env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template error on its line {exc.lineno}: {exc.message}") from None
    return set(meta.find_undeclared_variables(ast))


def check_expression(source: str) -> set[str]:
    try:
        ast = _env.parse("{{ " + source + " }}")
    except TemplateSyntaxError as exc:
        raise TemplateError(f"expression error: {exc.message}") from None
    return {n.name for n in ast.find_all(nodes.Name) if n.ctx == "load"} - _locals_of(ast)


def _locals_of(ast: nodes.Template) -> set[str]:
    return {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
