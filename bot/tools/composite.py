"""Composite tools: a YAML recipe of tool calls that feed each other, usable wherever a tool is.

    name: weather_report
    description: Today's forecast for a city.
    parameters:
      city: {type: string, description: "City name"}
    steps:
      - id: geo
        tool: geocode
        arguments: {q: "{{ args.city }}"}
        fallback: {tool: geocode_backup, arguments: {name: "{{ args.city }}"}}
      - id: forecast
        tool: http_request
        arguments: {url: "https://api.example.com/forecast?lat={{ geo.lat }}&lon={{ geo.lon }}"}
        fallback: {value: "no forecast available"}
    result: "{{ forecast.body }}"
    error: "I could not get the weather for {{ args.city }}."

Each step's result is parsed as JSON when it is JSON, so later templates can index into it. A step
that fails tries its fallback (another tool, or a fixed value); if that fails too, the composite
fails with the rendered `error` message plus the reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.store.people import Role
from bot.tools.base import Tool, ToolContext, ToolError, ToolResult
from bot.tools.execution import coerce_to_schema
from bot.tools.records import ToolCallLog, ToolCallRecord
from bot.tools.registry import ToolLoadError, ToolRegistry

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Fallback(_Strict):
    tool: str | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    value: Any = None

    @model_validator(mode="after")
    def _one(self) -> Fallback:
        if self.tool is None and self.value is None:
            raise ValueError("a fallback needs `tool` (with `arguments`) or `value`")
        return self


class Step(_Strict):
    id: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    fallback: Fallback | None = None


class CompositeSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str
    parameters: dict[str, dict[str, Any]] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)
    result: str | None = None  # template; default: the last step's result
    error: str = "The {{ tool }} tool failed."
    approval: bool = False
    role: str = "member"

    @model_validator(mode="after")
    def _unique_steps(self) -> CompositeSpec:
        ids = [s.id for s in self.steps]
        if len(ids) != len(set(ids)) or "args" in ids:
            raise ValueError("step ids must be unique and not `args`")
        return self


def _render(value: Any, scope: dict[str, Any]) -> Any:
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        return _ENV.from_string(value).render(scope)
    if isinstance(value, dict):
        return {k: _render(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, scope) for v in value]
    return value


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return text


def composite_tool(spec: CompositeSpec, registry: ToolRegistry) -> Tool:
    required = [n for n, p in spec.parameters.items() if "default" not in p]
    schema: dict[str, Any] = {"type": "object", "properties": spec.parameters, "required": required,
                              "additionalProperties": False}
    validator = jsonschema.Draft202012Validator(schema)

    def validate(arguments: dict[str, Any]) -> dict[str, Any]:
        arguments = coerce_to_schema(arguments, schema)
        problems = list(validator.iter_errors(arguments))
        if problems:
            raise ValueError("; ".join(p.message for p in problems[:5]))
        defaults = {n: p["default"] for n, p in spec.parameters.items() if "default" in p}
        return {**defaults, **arguments}

    async def step_call(step_id: str, name: str, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        result = await registry.invoke(name, arguments, ctx)
        store = getattr(ctx.services, "store", None)
        if store is not None and ctx.run_id:  # inner calls are recorded like any other
            await ToolCallLog(store.pool).record([ToolCallRecord.of(
                result, run_id=ctx.run_id, node_id=ctx.node_id, call_id=f"{spec.name}.{step_id}", tool=name,
                arguments=arguments)])
        return result

    async def call(arguments: dict[str, Any], ctx: ToolContext) -> Any:
        scope: dict[str, Any] = {"args": arguments, "tool": spec.name}
        last: Any = None
        for step in spec.steps:
            try:
                result = await step_call(step.id, step.tool, _render(step.arguments, scope), ctx)
                if not result.ok and step.fallback is not None:
                    reason = result.error
                    if step.fallback.tool is not None:
                        result = await step_call(f"{step.id}.fallback", step.fallback.tool,
                                                 _render(step.fallback.arguments, scope), ctx)
                        if not result.ok:
                            reason = f"{reason}; fallback {step.fallback.tool}: {result.error}"
                    else:
                        scope[step.id] = last = _render(step.fallback.value, scope)
                        continue
                    if not result.ok:
                        raise ToolError(f"step {step.id}: {reason}")
                elif not result.ok:
                    raise ToolError(f"step {step.id} ({step.tool}): {result.error}")
            except ToolError as exc:
                raise ToolError(f"{_render(spec.error, scope)} ({exc})") from None
            except Exception as exc:  # a template error names the step that has it
                raise ToolError(f"{_render(spec.error, scope)} (step {step.id}: {exc})") from None
            scope[step.id] = last = _parsed(result.content)
        return _render(spec.result, scope) if spec.result else last

    return Tool(name=spec.name, description=spec.description, parameters=schema, call=call, validate=validate,
                approval=spec.approval, role=Role(spec.role),
                source="composite", meta={"steps": [s.tool for s in spec.steps]})


def load_composites(sources: Iterable[str | dict[str, Any]], registry: ToolRegistry,
                    base_dir: Path | None = None) -> list[Tool]:
    """Composite tools from inline definitions and YAML files (a file holds one definition or a list)."""
    loaded: list[Tool] = []
    for source in sources:
        if isinstance(source, dict):
            definitions, origin = [source], "tools.composite"
        else:
            paths = sorted((base_dir or Path(".")).glob(source)) if any(c in source for c in "*?[") else [
                (base_dir or Path(".")) / source]
            definitions, origin = [], source
            for path in paths:
                try:
                    data = yaml.safe_load(path.read_text(encoding="utf-8"))
                except (OSError, yaml.YAMLError) as exc:
                    raise ToolLoadError(f"composite tool file {path}: {exc}") from exc
                definitions.extend(data if isinstance(data, list) else [data])
        for definition in definitions:
            try:
                spec = CompositeSpec.model_validate(definition)
            except ValidationError as exc:
                problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
                raise ToolLoadError(f"composite tool in {origin}: {problems}") from None
            built = composite_tool(spec, registry)
            registry.add(built)
            loaded.append(built)
    return loaded
