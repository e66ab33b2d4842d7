"""The registry: loading tools from modules and packages, and calling them safely — a failure of
any kind is a result the model can read, never an exception that ends the run."""

from __future__ import annotations

import asyncio
import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from bot.store.people import Person, Role
from bot.tools import ToolContext, ToolError, ToolLoadError, ToolRegistry, ToolStatus, tool


@tool
def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b


@tool(timeout=0.2)
async def sleepy(seconds: float) -> str:
    """Sleep."""
    await asyncio.sleep(seconds)
    return "awake"


@tool
def expected_failure() -> str:
    """Fails the documented way."""
    raise ToolError("the ticket system is read-only today")


@tool
def huge() -> str:
    """A very long answer."""
    return "x" * 50_000


@tool
def unserializable() -> set[int]:
    """Returns a set, which JSON cannot carry."""
    return {1, 2}


@tool
def nothing() -> None:
    """Returns None."""


@tool(role=Role.ADMIN)
def admin_thing() -> str:
    """Admins only."""
    return "done"


@pytest.fixture
def registry() -> ToolRegistry:
    reg = ToolRegistry(default_timeout=5, max_result_chars=1000)
    reg.add(divide, sleepy, expected_failure, huge, unserializable, nothing, admin_thing)
    return reg


MEMBER = Person(1, "mo", Role.MEMBER)
ADMIN = Person(2, "ad", Role.ADMIN)


async def test_a_good_call_returns_the_value_as_text(registry: ToolRegistry) -> None:
    result = await registry.invoke("divide", {"a": 1, "b": 4}, ToolContext())
    assert (result.status, result.content, result.error) == (ToolStatus.OK, "0.25", "")
    assert (await registry.invoke("nothing", {}, ToolContext())).content == "(no result)"


@pytest.mark.parametrize(("name", "arguments", "status", "says"), [
    ("divide", {"a": 1, "b": 0}, ToolStatus.ERROR, "ZeroDivisionError: float division by zero"),
    ("expected_failure", {}, ToolStatus.ERROR, "Error: the ticket system is read-only today"),
    ("sleepy", {"seconds": 5}, ToolStatus.TIMEOUT, "did not finish within 0.2 s"),
    ("unserializable", {}, ToolStatus.GARBAGE, "a set is not JSON"),
    ("divide", {"a": "one", "b": 2}, ToolStatus.INVALID, "a: Input should be a valid number"),
    ("divide", {"a": 1}, ToolStatus.INVALID, "missing required argument 'b'"),
    ("missing", {}, ToolStatus.UNKNOWN, "no tool named 'missing'"),
])
async def test_failures_come_back_as_explained_results(
    registry: ToolRegistry, name: str, arguments: dict, status: ToolStatus, says: str
) -> None:
    result = await registry.invoke(name, arguments, ToolContext())
    assert result.status is status and says in result.content and result.error


async def test_arguments_that_are_not_a_json_object_are_reported(registry: ToolRegistry) -> None:
    result = await registry.invoke("divide", {}, ToolContext(), raw_arguments='{"a": 1,')
    assert result.status is ToolStatus.INVALID and "not a JSON object" in result.content


async def test_the_stricter_of_the_tool_and_caller_timeouts_applies(registry: ToolRegistry) -> None:
    result = await registry.invoke("sleepy", {"seconds": 0.15}, ToolContext(), timeout=0.05)
    assert result.status is ToolStatus.TIMEOUT and "0.05 s" in result.content


async def test_long_results_are_cut_with_a_note(registry: ToolRegistry) -> None:
    result = await registry.invoke("huge", {}, ToolContext())
    assert result.ok and len(result.content) < 1100 and result.content.endswith("[... 49000 more characters cut]")


async def test_a_tool_needing_a_role_is_refused_to_people_below_it(registry: ToolRegistry) -> None:
    refused = await registry.invoke("admin_thing", {}, ToolContext(person=MEMBER))
    assert refused.status is ToolStatus.REFUSED and "needs the admin role" in refused.content
    assert (await registry.invoke("admin_thing", {}, ToolContext(person=ADMIN))).ok
    assert [t.name for t in registry.select(["admin_thing", "divide"], role=Role.MEMBER)] == ["divide"]


def test_selection_by_name_and_prefix(registry: ToolRegistry) -> None:
    assert [t.name for t in registry.select(["div*", "nothing"])] == ["divide", "nothing"]
    assert len(registry.select(None)) == 7


def test_two_tools_with_one_name_are_a_load_error(registry: ToolRegistry) -> None:
    @tool(name="divide")
    def other(a: int) -> int:
        """Another divide."""
        return a

    with pytest.raises(ToolLoadError, match="defined twice"):
        registry.add(other)


def _write_package(root: Path, module: str, dist: str) -> None:
    (root / f"{module}.py").write_text(textwrap.dedent('''
        from bot.tools import tool

        @tool
        def shout(text: str) -> str:
            """Upper-case the text."""
            return text.upper()

        TOOLS = [shout]
    '''))
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[switchboard.tools]\nacme = {module}\n")


async def test_tools_load_from_a_module_and_from_an_installed_packages_entry_point(tmp_path: Path) -> None:
    _write_package(tmp_path, "acme_switchboard_tools", "acme_switchboard_tools")
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    try:
        from_module = ToolRegistry()
        assert [t.name for t in from_module.load_module("acme_switchboard_tools")] == ["shout"]
        from_package = ToolRegistry()
        loaded = from_package.load_entry_points()
        assert [t.name for t in loaded] == ["shout"] and loaded[0].source == "package:acme"
        assert (await from_package.invoke("shout", {"text": "hi"}, ToolContext())).content == "HI"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("acme_switchboard_tools", None)


def test_a_module_that_cannot_be_imported_is_a_clear_error() -> None:
    with pytest.raises(ToolLoadError, match="tools module 'no_such_tools_module' cannot be imported"):
        ToolRegistry().load_module("no_such_tools_module")
