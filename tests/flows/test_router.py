"""Which flow answers: an explicit flow, then command, regex, keyword, filter triggers, then the default."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.commands import parse_command
from bot.events import ConversationRef, Event, EventKind, Sender
from flows.registry import FlowRegistry
from flows.router import Router

FLOWS = {
    "a_default.yaml": "name: chat\ntriggers: [{default: true}]\nnodes: [{id: r, kind: reply, text: chat}]\n",
    "b_deploy.yaml": "name: deploy\ntriggers: [{command: deploy}]\nnodes: [{id: r, kind: reply, text: d}]\n",
    "c_regex.yaml": "name: ticket\ntriggers: [{regex: 'PROJ-\\d+'}]\nnodes: [{id: r, kind: reply, text: t}]\n",
    "d_kw.yaml": "name: weather\ntriggers: [{keywords: [weather, forecast]}]\nnodes: [{id: r, kind: reply, text: w}]\n",
    "e_slack.yaml": (
        "name: slack_only\ntriggers: [{channels: [slack], mention: true}]\nnodes: [{id: r, kind: reply, text: s}]\n"
    ),
    "f_prio.yaml": (
        "name: urgent_weather\ntriggers: [{keywords: [weather], regex: 'urgent', priority: 5}]\n"
        "nodes: [{id: r, kind: reply, text: u}]\n"
    ),
}


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Router:
    folder: Path = tmp_path_factory.mktemp("flows")
    for name, text in FLOWS.items():
        (folder / name).write_text(text)
    registry = FlowRegistry([folder])
    report = registry.load()
    assert not report.problems, report.problems
    return Router(registry, default_flow="chat")


def event(text: str, *, channel: str = "web", mentioned: bool = False, **meta: object) -> Event:
    command = parse_command(text)
    return Event(
        id=f"{channel}:1",
        kind=EventKind.COMMAND if command else EventKind.MESSAGE,
        channel=channel,
        conversation=ConversationRef(channel, "r"),
        sender=Sender(channel, "u"),
        text=text,
        command=command,
        mentioned=mentioned,
        meta=dict(meta),
    )


@pytest.mark.parametrize(
    ("text", "flow"),
    [
        ("/sb deploy api --prod", "deploy"),
        ("please look at PROJ-123 today", "ticket"),
        ("what's the Weather like?", "weather"),
        ("urgent: weather alert", "urgent_weather"),
        ("weatherman", "chat"),  # keywords match whole words only
        ("just chatting", "chat"),
    ],
)
def test_the_most_specific_trigger_wins(router: Router, text: str, flow: str) -> None:
    picked = router.pick(event(text))
    assert picked is not None and picked.spec.name == flow


def test_channel_and_mention_filters(router: Router) -> None:
    assert router.pick(event("hello", channel="slack", mentioned=True)).spec.name == "slack_only"  # type: ignore[union-attr]
    assert router.pick(event("hello", channel="slack")).spec.name == "chat"  # type: ignore[union-attr]


def test_an_explicit_flow_beats_every_trigger(router: Router) -> None:
    assert router.pick(event("/sb deploy x", flow="weather")).spec.name == "weather"  # type: ignore[union-attr]
    assert router.pick(event("hi", flow="no_such_flow")) is None


def test_an_unknown_command_does_not_fall_to_the_default_flow(router: Router) -> None:
    assert router.pick(event("/sb frobnicate")) is None


def test_a_disabled_flow_is_skipped(router: Router) -> None:
    router.registry.set_enabled("ticket", False)
    try:
        assert router.pick(event("PROJ-1")).spec.name == "chat"  # type: ignore[union-attr]
    finally:
        router.registry.set_enabled("ticket", True)
