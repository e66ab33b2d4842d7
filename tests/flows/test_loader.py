"""`switchboard flows check` reports every problem in a flow with its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.loader import FlowErrors, load_flow_text
from flows.registry import compile_flow, load_flows


def problems(text: str) -> list[str]:
    try:
        compile_flow(load_flow_text(text, "f.yaml"))
    except FlowErrors as exc:
        return [str(p) for p in exc.problems]
    return []


def test_the_default_flows_are_valid() -> None:
    report = load_flows([Path(__file__).resolve().parents[2] / "config" / "flows"])
    assert report.problems == [] and {"assistant", "help"} <= set(report.flows)


def test_invalid_yaml_points_at_the_line() -> None:
    (problem,) = problems("name: x\nnodes:\n  - id: a\n    kind: [reply\n")
    assert problem.startswith("f.yaml:") and "invalid YAML" in problem


def test_an_unknown_node_kind_is_reported_with_its_line_and_the_known_kinds() -> None:
    text = "name: x\nnodes:\n  - id: a\n    kind: telepathy\n"
    (problem,) = problems(text)
    assert problem.startswith("f.yaml:3:") and "unknown node kind 'telepathy'" in problem and "llm" in problem


def test_a_dangling_next_is_reported() -> None:
    text = "name: x\nnodes:\n  - id: a\n    kind: reply\n    text: hi\n    next: nowhere\n"
    (problem,) = problems(text)
    assert "f.yaml:" in problem and "'nowhere'" in problem and "not a node of this flow" in problem


def test_an_unreachable_node_is_reported() -> None:
    text = (
        "name: x\nnodes:\n"
        "  - id: a\n    kind: reply\n    text: hi\n    next: end\n"
        "  - id: orphan\n    kind: reply\n    text: never\n"
    )
    (problem,) = problems(text)
    assert problem.startswith("f.yaml:7:") and "unreachable" in problem


def test_a_cycle_without_a_loop_node_is_reported() -> None:
    text = (
        "name: x\nnodes:\n"
        "  - id: a\n    kind: template\n    template: x\n"
        "  - id: b\n    kind: template\n    template: y\n    next: a\n"
    )
    (problem,) = problems(text)
    assert "cycle without a loop node: a -> b -> a" in problem


def test_bad_templates_and_unknown_names_are_reported_at_the_option_line() -> None:
    text = (
        "name: x\nnodes:\n"
        '  - id: a\n    kind: reply\n    text: "{{ event.text"\n'
        '  - id: b\n    kind: reply\n    text: "{{ typo_node.text }}"\n'
    )
    found = problems(text)
    assert any(p.startswith("f.yaml:5:") and "template error" in p for p in found)
    assert any(p.startswith("f.yaml:8:") and "unknown name(s) typo_node" in p for p in found)


def test_unknown_options_and_missing_required_options_are_reported() -> None:
    text = "name: x\nnodes:\n  - id: a\n    kind: reply\n    txt: hi\n"
    found = problems(text)
    assert any("unknown option 'txt' for a reply node" in p for p in found)
    assert any("a reply node needs `text`" in p for p in found)


def test_several_problems_are_reported_at_once() -> None:
    text = (
        "name: x\nsurprise: 1\ntriggers:\n  - regex: '(unclosed'\n"
        "nodes:\n  - id: event\n    kind: reply\n    text: hi\n  - id: b\n    kind: reply\n    text: hi\n"
        "    timeout: -1\n"
    )
    found = problems(text)
    assert len(found) >= 4
    assert any("unknown key 'surprise'" in p for p in found)
    assert any("invalid regular expression" in p for p in found)
    assert any("reserved name" in p for p in found)
    assert any("positive number of seconds" in p for p in found)


def test_on_error_takes_exactly_one_policy() -> None:
    text = "name: x\nnodes:\n  - id: a\n    kind: reply\n    text: hi\n    on_error: {next: a, default: {}}\n"
    (problem,) = problems(text)
    assert "exactly one of" in problem


@pytest.mark.parametrize("name", ["has space", "x/y"])
def test_flow_names_are_identifiers(name: str) -> None:
    (problem,) = problems(f"name: '{name}'\nnodes:\n  - id: a\n    kind: reply\n    text: hi\n")
    assert "may only use letters" in problem
