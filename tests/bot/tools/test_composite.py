"""Composite tools defined in YAML: steps feed each other, a failing step tries its fallback, and
when nothing works the model gets the composite's own error message with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.tools import ToolContext, ToolError, ToolLoadError, ToolRegistry, ToolStatus, tool
from bot.tools.composite import load_composites

WEATHER = """
name: weather_report
description: Today's forecast for a city.
parameters:
  city: {type: string, description: City name}
  unit: {type: string, enum: [C, F], default: C}
steps:
  - id: geo
    tool: geocode
    arguments: {name: "{{ args.city }}"}
    fallback: {tool: geocode_backup, arguments: {q: "{{ args.city }}"}}
  - id: forecast
    tool: forecast
    arguments: {lat: "{{ geo.lat }}", lon: "{{ geo.lon }}", unit: "{{ args.unit }}"}
    fallback: {value: "no forecast"}
result: "{{ args.city }} ({{ geo.source }}): {{ forecast }}"
error: "I could not get the weather for {{ args.city }}."
"""


@tool
def geocode(name: str) -> dict:
    """Primary geocoder."""
    if name == "Paris":
        return {"lat": 48.85, "lon": 2.35, "source": "primary"}
    raise ToolError(f"{name} not found")


@tool
def geocode_backup(q: str) -> dict:
    """Backup geocoder."""
    if q == "Lyon":
        return {"lat": 45.76, "lon": 4.84, "source": "backup"}
    raise ToolError("backup geocoder has no entry")


@tool
def forecast(lat: float, lon: float, unit: str) -> str:
    """Forecast."""
    if lat > 47:
        return f"sunny, 21°{unit}"
    raise RuntimeError("forecast service down")


@pytest.fixture
def registry(tmp_path: Path) -> ToolRegistry:
    reg = ToolRegistry()
    reg.add(geocode, geocode_backup, forecast)
    (tmp_path / "weather.yaml").write_text(WEATHER)
    (loaded,) = load_composites(["*.yaml"], reg, tmp_path)
    assert loaded.name == "weather_report" and loaded.source == "composite"
    return reg


async def test_steps_feed_each_other(registry: ToolRegistry) -> None:
    result = await registry.invoke("weather_report", {"city": "Paris"}, ToolContext())
    assert result.ok and result.content == "Paris (primary): sunny, 21°C"
    schema = registry.get("weather_report").parameters  # type: ignore[union-attr]
    assert schema["required"] == ["city"] and schema["properties"]["unit"]["enum"] == ["C", "F"]


async def test_a_failing_step_uses_its_fallback_tool_or_value(registry: ToolRegistry) -> None:
    result = await registry.invoke("weather_report", {"city": "Lyon", "unit": "F"}, ToolContext())
    assert result.ok and result.content == "Lyon (backup): no forecast"


async def test_when_a_step_and_its_fallback_fail_the_final_error_message_is_given(registry: ToolRegistry) -> None:
    result = await registry.invoke("weather_report", {"city": "Atlantis"}, ToolContext())
    assert result.status is ToolStatus.ERROR
    assert "I could not get the weather for Atlantis." in result.content
    assert "Atlantis not found" in result.content and "backup geocoder has no entry" in result.content


async def test_arguments_are_checked_against_the_declared_parameters(registry: ToolRegistry) -> None:
    result = await registry.invoke("weather_report", {"city": "Paris", "unit": "K"}, ToolContext())
    assert result.status is ToolStatus.INVALID and "'K' is not one of ['C', 'F']" in result.content


def test_a_bad_definition_is_a_load_error_that_says_what_is_wrong() -> None:
    with pytest.raises(ToolLoadError, match="steps"):
        load_composites([{"name": "empty", "description": "nothing", "steps": []}], ToolRegistry())
    with pytest.raises(ToolLoadError, match="fallback"):
        load_composites([{"name": "x", "description": "d", "steps": [{"id": "a", "tool": "t", "fallback": {}}]}],
                        ToolRegistry())
