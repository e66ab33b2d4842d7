"""`schedule:` triggers in flow files: checked at load with file and line, and never claim chat."""

from __future__ import annotations

import pytest

from bot.events import ConversationRef, Event, EventKind, Sender
from flows.loader import FlowErrors, load_flow_text
from flows.router import trigger_match

FLOW = """name: standup
triggers:
  - schedule:
      {timer}
      channel: slack
      room: C123
nodes:
  - id: say
    kind: reply
    text: standup time
"""


def test_a_flow_with_a_cron_schedule_loads() -> None:
    spec = load_flow_text(FLOW.format(timer='cron: "0 9 * * 1-5"'))
    schedule = spec.triggers[0].schedule
    assert schedule is not None and (schedule.cron, schedule.channel, schedule.room) == ("0 9 * * 1-5", "slack", "C123")


@pytest.mark.parametrize(("timer", "message"), [
    ('cron: "0 9 * *"', "invalid cron expression '0 9 * *'"),
    ('every: "soon"', "cannot read 'soon' as a duration"),
    ('cron: "0 9 * * *"\n      every: 1h', "exactly one of `cron`, `every` or `at`"),
    ('cron: "0 9 * * *"\n      timezone: Mars/Base', "unknown time zone 'Mars/Base'"),
])
def test_a_bad_schedule_is_reported_with_file_and_line(timer: str, message: str) -> None:
    with pytest.raises(FlowErrors) as caught:
        load_flow_text(FLOW.format(timer=timer), file="standup.yaml")
    (problem,) = caught.value.problems
    assert message in str(problem) and "standup.yaml" in str(problem) and problem.line is not None


def test_a_schedule_needs_a_conversation_to_reply_into() -> None:
    with pytest.raises(FlowErrors, match="room"):
        load_flow_text("name: x\ntriggers: [{schedule: {every: 1h, channel: slack}}]\n"
                       "nodes: [{id: a, kind: reply, text: hi}]\n")


def test_a_schedule_trigger_claims_schedule_events_only() -> None:
    trigger = load_flow_text(FLOW.format(timer="every: 1h")).triggers[0]
    ref = ConversationRef("slack", "C123")
    chat = Event(id="slack:1", kind=EventKind.MESSAGE, channel="slack", conversation=ref,
                 sender=Sender("slack", "U1"), text="anything")
    timer = Event(id="schedule:x:1", kind=EventKind.SCHEDULE, channel="slack", conversation=ref,
                  sender=Sender("slack", "U1"), meta={"flow": "standup"})
    assert trigger_match(trigger, chat) is None
    assert trigger_match(trigger, timer) is not None
