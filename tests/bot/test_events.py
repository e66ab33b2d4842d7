"""Events and replies survive a trip through a bus as plain dicts."""

from __future__ import annotations

from bot.events import Attachment, Button, Command, ConversationRef, Event, EventKind, Reply, ReplyKind, Sender


def test_an_event_round_trips() -> None:
    event = Event(
        id="slack:E1",
        kind=EventKind.COMMAND,
        channel="slack",
        conversation=ConversationRef("slack", "C1", "T1", "171.2"),
        sender=Sender("slack", "U1", "Ada"),
        text="/sb help",
        attachments=(Attachment("a.png", "image/png", "https://x", 3),),
        command=Command("help", ("x",), "x"),
        mentioned=True,
        meta={"k": 1},
        raw={"type": "message"},
    )
    again = Event.from_dict(event.to_dict())
    assert again == event
    assert again.conversation.key == "slack:T1:C1:171.2"


def test_a_reply_round_trips_and_turn_end_points_at_its_event() -> None:
    ref = ConversationRef("web", "c")
    reply = Reply(conversation=ref, text="hi", buttons=(Button("OK", "ok", "primary"),), edit_of="x", partial=True)
    assert Reply.from_dict(reply.to_dict()) == reply
    event = Event(id="web:1", kind=EventKind.MESSAGE, channel="web", conversation=ref, sender=Sender("web", "u"))
    end = Reply.turn_end(event, run_id="r")
    assert end.kind is ReplyKind.TURN_END and end.in_reply_to == "web:1" and end.meta == {"run_id": "r"}


def test_a_raw_payload_that_is_not_json_is_dropped_when_serialised() -> None:
    event = Event(
        id="x:1",
        kind=EventKind.MESSAGE,
        channel="x",
        conversation=ConversationRef("x", "r"),
        sender=Sender("x", "u"),
        raw=object(),
    )
    assert event.to_dict()["raw"] is None
