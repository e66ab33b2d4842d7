"""`@tool`: a plain Python function (sync or async) becomes a `Tool`.

The schema comes from the type hints and the docstring (first paragraph = description, an
`Args:` section = parameter descriptions) through a pydantic model, which also validates the
model's arguments before the function runs. A parameter typed `ToolContext` is injected, not
shown to the model. Sync functions run in a worker thread so they never block the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
import typing
from collections.abc import Callable
from typing import Any, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from bot.store.people import Role
from bot.tools.base import Tool, ToolContext

_ARG_LINE = re.compile(r"^\s{0,8}(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Returns|Raises|Yields|Examples?|Notes?)\s*:\s*$")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(description, {parameter: description}) from a Google-style docstring."""
    if not doc:
        return "", {}
    text = inspect.cleandoc(doc)
    lines = text.splitlines()
    description: list[str] = []
    params: dict[str, str] = {}
    section = ""
    current = ""
    for line in lines:
        header = _SECTION.match(line)
        if header:
            section, current = header.group(1).lower(), ""
            continue
        if not section:
            description.append(line)
        elif section in ("args", "arguments", "parameters"):
            match = _ARG_LINE.match(line)
            if match and not line.startswith(" " * 9):
                current = match.group(1).lstrip("*")
                params[current] = match.group(2).strip()
            elif current and line.strip():
                params[current] = f"{params[current]} {line.strip()}".strip()
    return "\n".join(description).strip(), params


def _strip_titles(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_titles(v) for k, v in schema.items() if k != "title" or not isinstance(v, str)}
    if isinstance(schema, list):
        return [_strip_titles(v) for v in schema]
    return schema


def validation_message(exc: ValidationError) -> str:
    """One readable line per problem, for the model to correct its call."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown argument {where!r}")
        elif err["type"] == "missing":
            parts.append(f"missing required argument {where!r}")
        else:
            parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def function_tool(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    role: Role | str = Role.MEMBER,
    approval: bool = False,
    timeout: float | None = None,
    source: str = "python",
) -> Tool:
    """Build a `Tool` from a function (what `@tool` does)."""
    tool_name = name or fn.__name__
    if not _NAME.match(tool_name):
        raise ValueError(f"tool name {tool_name!r} must be 1-64 letters, digits, '_' or '-'")
    summary, arg_docs = parse_docstring(fn.__doc__)
    hints = typing.get_type_hints(fn, include_extras=True)
    fields: dict[str, Any] = {}
    context_param: str | None = None
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool {tool_name!r}: *args/**kwargs cannot be described to a model")
        annotation = hints.get(param.name, Any)
        if annotation is ToolContext:
            context_param = param.name
            continue
        default = ... if param.default is inspect.Parameter.empty else param.default
        described = arg_docs.get(param.name)
        fields[param.name] = (annotation, Field(default, description=described) if described else Field(default))
    model = create_model(f"{tool_name}_args", __base__=_Args, **fields)
    schema = _strip_titles(model.model_json_schema())
    schema.setdefault("properties", {})
    is_async = inspect.iscoroutinefunction(fn)

    def validate(arguments: dict[str, Any]) -> dict[str, Any]:
        try:
            parsed = model.model_validate(arguments)
        except ValidationError as exc:
            raise ValueError(validation_message(exc)) from None
        return {key: getattr(parsed, key) for key in fields}

    async def call(arguments: dict[str, Any], ctx: ToolContext) -> Any:
        if context_param is not None:
            arguments = {**arguments, context_param: ctx}
        if is_async:
            return await fn(**arguments)
        return await asyncio.to_thread(functools.partial(fn, **arguments))

    return Tool(
        name=tool_name,
        description=(description or summary or tool_name).strip(),
        parameters=schema,
        call=call,
        validate=validate,
        role=Role(role),
        approval=approval,
        timeout=timeout,
        source=source,
        meta={"function": f"{fn.__module__}.{fn.__qualname__}"},
    )


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *, name: str | None = None, description: str | None = None, role: Role | str = Role.MEMBER,
    approval: bool = False, timeout: float | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    role: Role | str = Role.MEMBER,
    approval: bool = False,
    timeout: float | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a function a tool: `@tool` or `@tool(role="admin", approval=True, timeout=10)`.

    The decorated name becomes a `Tool`; modules listed under `tools.modules` (or exposed through the
    `switchboard.tools` entry point group) are scanned for them.
    """

    def wrap(func: Callable[..., Any]) -> Tool:
        return function_tool(func, name=name, description=description, role=role, approval=approval,
                             timeout=timeout)

    return wrap(fn) if fn is not None else wrap
