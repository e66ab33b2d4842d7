"""The set of tools a bot has, and the one place a tool is called.

`invoke()` is the safety net: unknown names, bad arguments, a too-low role, exceptions, timeouts
and results that cannot be shown as text all come back as a `ToolResult` the model can read, so a
failing tool never fails the run. Tools load from Python modules (`tools.modules` in config) and
from the `switchboard.tools` entry point group, so a team can ship tools as a normal package.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import logging
import time
from collections.abc import Iterable
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from bot.commands import role_allows
from bot.store.people import Role
from bot.tools.base import DEFAULT_TIMEOUT, MAX_RESULT_CHARS, Tool, ToolContext, ToolError, ToolResult, ToolStatus

log = logging.getLogger("switchboard.tools")

ENTRY_POINT_GROUP = "switchboard.tools"


class ToolLoadError(ValueError):
    """A configured tool source could not be loaded; the message names it and says why."""


class ToolRegistry:
    def __init__(self, *, default_timeout: float = DEFAULT_TIMEOUT, max_result_chars: int = MAX_RESULT_CHARS) -> None:
        self.default_timeout = default_timeout
        self.max_result_chars = max_result_chars
        self._tools: dict[str, Tool] = {}
        # Long-lived parts (MCP connections...) closed with the registry.
        self._closers: list[Any] = []

    # ------------------------------------------------------------------ contents

    def add(self, *tools: Tool, replace: bool = False) -> None:
        for item in tools:
            if item.name in self._tools and not replace and self._tools[item.name] is not item:
                raise ToolLoadError(f"tool {item.name!r} is defined twice ({self._tools[item.name].source} "
                                    f"and {item.source})")
            self._tools[item.name] = item

    def remove(self, name: str) -> None:
        self._tools.pop(name, None)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return sorted(self._tools)

    def all(self) -> list[Tool]:
        return [self._tools[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def select(self, patterns: Iterable[str] | None, role: Role | None = None) -> list[Tool]:
        """Tools by name; `server.*` takes every tool of an MCP server; None means all. Filters by role."""
        chosen: list[Tool] = []
        wanted = list(patterns) if patterns is not None else ["*"]
        for pattern in wanted:
            if pattern == "*":
                matches = self.all()
            elif pattern.endswith("*"):
                matches = [t for t in self.all() if t.name.startswith(pattern[:-1])]
            else:
                found = self.get(pattern)
                matches = [found] if found else []
            chosen.extend(t for t in matches if t not in chosen)
        if role is not None:
            chosen = [t for t in chosen if role_allows(role, t.role)]
        return chosen

    def add_closer(self, closer: Any) -> None:
        self._closers.append(closer)

    async def aclose(self) -> None:
        for closer in reversed(self._closers):
            try:
                await closer()
            except Exception:  # closing must go on for the others
                log.exception("closing a tool source failed")
        self._closers.clear()

    # ------------------------------------------------------------------ loading

    def load_module(self, module: str | ModuleType, *, source: str = "python") -> list[Tool]:
        """Every `Tool` defined at the top level of a module (and its `TOOLS` list, if any)."""
        if isinstance(module, str):
            try:
                module = importlib.import_module(module)
            except ImportError as exc:
                raise ToolLoadError(f"tools module {module!r} cannot be imported: {exc}") from exc
        found = tools_in(module)
        for item in found:
            if item.source == "python":
                item.source = source
        self.add(*found)
        return found

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[Tool]:
        """Tools from installed packages: `[project.entry-points."switchboard.tools"] name = "pkg.tools"`."""
        loaded: list[Tool] = []
        for point in entry_points(group=group):
            try:
                target = point.load()
            except Exception as exc:
                log.error("tool entry point failed to load", extra={"entry_point": point.name, "error": str(exc)})
                continue
            if isinstance(target, ModuleType):
                found = tools_in(target)
            elif isinstance(target, Tool):
                found = [target]
            else:
                found = [t for t in (target if isinstance(target, Iterable) else []) if isinstance(t, Tool)]
            for item in found:
                item.source = f"package:{point.name}"
            self.add(*found)
            loaded.extend(found)
        return loaded

    # ------------------------------------------------------------------ calling

    async def invoke(
        self,
        name: str,
        arguments: dict[str, Any],
        ctx: ToolContext,
        *,
        timeout: float | None = None,
        raw_arguments: str | None = None,
        check_role: bool = True,
    ) -> ToolResult:
        """Call a tool; never raises except for cancellation."""
        t0 = time.perf_counter()
        found = self._tools.get(name)
        if found is None:
            known = ", ".join(self.names()) or "none"
            return _result(ToolStatus.UNKNOWN, f"Error: there is no tool named {name!r}. Available tools: {known}.",
                           t0, "unknown tool")
        if raw_arguments is not None and not arguments and raw_arguments.strip() not in ("", "{}"):
            return _result(ToolStatus.INVALID, "Error: the arguments were not a JSON object. Call the tool again "
                           f"with a JSON object matching its schema. Received: {raw_arguments[:200]}", t0,
                           "arguments are not a JSON object")
        if check_role and ctx.person is not None and not role_allows(ctx.person.role, found.role):
            return _result(ToolStatus.REFUSED, f"Error: {name} needs the {found.role} role; this person is "
                           f"{ctx.person.role}. Tell them it is not allowed.", t0, "role too low")
        try:
            checked = found.validate(arguments) if found.validate else dict(arguments)
        except ValueError as exc:
            return _result(ToolStatus.INVALID, f"Error: invalid arguments for {name}: {exc}. Fix them and retry.",
                           t0, str(exc))
        # The tool's own limit and the caller's (a node's `tool_timeout`): the stricter one wins.
        limit = min((t for t in (timeout, found.timeout) if t), default=self.default_timeout)
        try:
            value = await asyncio.wait_for(found.call(checked, ctx), timeout=limit)
        except TimeoutError:
            return _result(ToolStatus.TIMEOUT, f"Error: {name} did not finish within {limit:g} s and was stopped.",
                           t0, f"timed out after {limit:g} s")
        except asyncio.CancelledError:
            raise
        except ToolError as exc:
            return _result(ToolStatus.ERROR, f"Error: {exc}", t0, str(exc))
        except Exception as exc:
            log.warning("tool raised", extra={"tool": name, "run_id": ctx.run_id, "error": repr(exc)[:300]})
            return _result(ToolStatus.ERROR, f"Error: {name} failed: {type(exc).__name__}: {exc}"[:2000], t0,
                           f"{type(exc).__name__}: {exc}"[:2000])
        try:
            text = as_text(value)
        except ValueError as exc:
            return _result(ToolStatus.GARBAGE, f"Error: {name} returned something unusable: {exc}", t0, str(exc))
        if len(text) > self.max_result_chars:
            cut = len(text) - self.max_result_chars
            text = f"{text[: self.max_result_chars]}\n[... {cut} more characters cut]"
        return _result(ToolStatus.OK, text, t0)


def tools_in(module: ModuleType) -> list[Tool]:
    found = [v for v in vars(module).values() if isinstance(v, Tool)]
    for extra in getattr(module, "TOOLS", ()) or ():
        if isinstance(extra, Tool) and extra not in found:
            found.append(extra)
    return found


def _result(status: ToolStatus, content: str, t0: float, error: str = "") -> ToolResult:
    return ToolResult(status, content, (time.perf_counter() - t0) * 1000, error)


def as_text(value: Any) -> str:
    """What the model reads for a tool's return value. Raises ValueError for values with no text form."""
    if value is None:
        return "(no result)"
    if isinstance(value, str):
        text = value
    elif isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", errors="replace")
    elif isinstance(value, bool | int | float):
        text = json.dumps(value)
    elif isinstance(value, BaseModel):
        text = value.model_dump_json()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        text = json.dumps(dataclasses.asdict(value), default=str, ensure_ascii=False)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"a {type(value).__name__} is not JSON ({exc})") from None
    # NUL and other control characters break some providers; keep tabs and newlines.
    return "".join(ch for ch in text if ch >= " " or ch in "\t\n\r")
