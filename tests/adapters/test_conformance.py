"""Every channel adapter behaves the same where it matters to a person.

Parametrized over every `harness_<name>.py` in this folder (see `conformance.py`).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bot.events import Button, Event, EventKind, Reply
from tests.adapters.conformance import PlatformHarness

HARNESSES = sorted(p.stem.removeprefix("harness_") for p in Path(__file__).parent.glob("harness_*.py"))


@pytest.fixture(params=HARNESSES)
def started_harness(request: pytest.FixtureRequest) -> PlatformHarness:
    # Sync on purpose: an async fixture's setup cannot start another async fixture
    # (`getfixturevalue` would need the loop that is already running it).
    return request.getfixturevalue(f"{request.param}_harness")


@pytest.fixture
async def harness(started_harness: PlatformHarness) -> PlatformHarness:
    await started_harness.reset()
    return started_harness


async def _events(h: PlatformHarness, count: int, timeout: float = 10.0) -> list[Event]:
    got: list[Event] = []
    done = asyncio.Event()

    async def handler(event: Event) -> None:
        got.append(event)
        if len(got) >= count:
            done.set()

    h.bus.consume(handler)
    await asyncio.wait_for(done.wait(), timeout)
    return got


async def _wait_sent(h: PlatformHarness, predicate, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sent = await h.sent()
        if predicate(sent):
            return sent
        await asyncio.sleep(0.05)
    raise AssertionError(f"the fake never received what was expected; it got {await h.sent()!r}")


async def test_an_inbound_message_becomes_a_normalized_event(harness: PlatformHarness) -> None:
    waiter = asyncio.create_task(_events(harness, 1))
    await harness.deliver_message("hello there", message_id=f"norm-{time.time_ns()}")
    (event,) = await waiter
    assert event.kind is EventKind.MESSAGE
    assert event.channel == harness.name
    assert event.conversation.channel == harness.name
    assert event.id.startswith(f"{harness.name}:")
    assert "hello there" in event.text
    assert event.sender.id and not event.sender.is_bot


async def test_a_prefixed_message_becomes_a_command(harness: PlatformHarness) -> None:
    waiter = asyncio.create_task(_events(harness, 1))
    await harness.deliver_message("/sb help me", message_id=f"cmd-{time.time_ns()}")
    (event,) = await waiter
    assert event.kind is EventKind.COMMAND
    assert event.command is not None and event.command.name == "help"
    assert event.command.args == ("me",)


async def test_a_platform_redelivery_runs_once(harness: PlatformHarness) -> None:
    got: list[Event] = []

    async def handler(event: Event) -> None:
        got.append(event)

    harness.bus.consume(handler)
    message_id = f"dup-{time.time_ns()}"
    await harness.deliver_message("only once", message_id=message_id)
    await harness.deliver_message("only once", message_id=message_id)
    await asyncio.sleep(1.0)
    assert len([e for e in got if "only once" in e.text]) == 1


async def _reply_to_next_message(harness: PlatformHarness, reply_for) -> None:  # type: ignore[no-untyped-def]
    async def handler(event: Event) -> None:
        await harness.bus.send(reply_for(event))

    harness.bus.consume(handler)
    await harness.deliver_message("please answer", message_id=f"ask-{time.time_ns()}")


async def test_long_replies_are_split_at_the_platform_limit(harness: PlatformHarness) -> None:
    paragraph = "word " * 60
    text = "\n\n".join(f"{i}: {paragraph}" for i in range(1, 3 * harness.max_chars // len(paragraph) + 2))
    await _reply_to_next_message(harness, lambda e: Reply(conversation=e.conversation, text=text))
    sent = await _wait_sent(harness, lambda s: sum(len(m.text) for m in s) >= len(text) * 0.9)
    assert len(sent) >= 3
    assert all(len(m.text) <= harness.max_chars for m in sent)
    joined = " ".join(m.text for m in sent)
    assert joined.split() == text.split()


async def test_buttons_render_natively_or_degrade_to_a_numbered_list(harness: PlatformHarness) -> None:
    buttons = (Button("Approve", "yes", "primary"), Button("Deny", "no", "danger"))
    await _reply_to_next_message(
        harness, lambda e: Reply(conversation=e.conversation, text="Deploy to prod?", buttons=buttons)
    )
    (message,) = await _wait_sent(harness, lambda s: len(s) >= 1)
    assert "Deploy to prod?" in message.text
    if harness.supports_buttons:
        assert message.buttons == ["Approve", "Deny"]
    else:
        assert "1. Approve" in message.text and "2. Deny" in message.text


async def test_a_rate_limited_send_is_retried_after_the_advertised_delay(harness: PlatformHarness) -> None:
    harness.rate_limit_next_send(retry_after=1.0)
    started = time.monotonic()
    await _reply_to_next_message(harness, lambda e: Reply(conversation=e.conversation, text="worth the wait"))
    sent = await _wait_sent(harness, lambda s: any("worth the wait" in m.text for m in s))
    assert time.monotonic() - started >= 0.9
    assert [m.text for m in sent].count("worth the wait") == 1


async def test_a_reply_sent_again_by_a_resumed_step_is_shown_once(harness: PlatformHarness) -> None:
    """A worker that crashed after sending but before recording its step re-sends the same reply id."""

    async def handler(event: Event) -> None:
        reply = Reply(conversation=event.conversation, text="exactly once", id=f"{event.id}.run.1.0")
        await harness.bus.send(reply)
        await harness.bus.send(Reply(conversation=event.conversation, text="exactly once", id=reply.id))
        await harness.bus.send(Reply(conversation=event.conversation, text="and then this"))

    harness.bus.consume(handler)
    await harness.deliver_message("resume me", message_id=f"resume-{time.time_ns()}")
    sent = await _wait_sent(harness, lambda s: any("and then this" in m.text for m in s))
    assert [m.text for m in sent].count("exactly once") == 1
