"""Rate limits: messages per minute and model spend per day, per person and per channel.

Limits: each person 3 messages a minute and $0.50 of model spend a day; the "team" channel 2
messages a minute in all. Owners are exempt.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from bot.admin.limits import LimitSettings
from bot.app import App
from bot.events import Event, EventKind, Sender
from tests.apps import make_config
from tests.bot.admin.chat import ChatTester

ECHO_FLOW = """
name: echo
triggers:
  - default: true
nodes:
  - id: say
    kind: reply
    text: "echo: {{ event.text }}"
"""

LIMITS = {"person": {"messages_per_minute": 3, "spend_per_day": 0.5},
          "channels": {"team": {"messages_per_minute": 2}}}


@pytest.fixture(scope="module")
async def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[App]:
    flows = tmp_path_factory.mktemp("flows")
    (flows / "echo.yaml").write_text(ECHO_FLOW)
    config = make_config(database_url, tmp_path_factory.mktemp("data"), flow_dirs=[flows], flows={"default": "echo"},
                         bot={"owners": ["web:olive"]}, limits=LIMITS)
    application = App(config, with_server=False, adapters=[ChatTester("web"), ChatTester("team")])
    await application.start()
    yield application
    await application.stop()


@pytest.fixture(autouse=True)
async def same_minute() -> None:
    """Counts use fixed one-minute windows: start each test early enough in a minute to finish in it."""
    second = datetime.now(UTC).second
    if second > 50:
        await asyncio.sleep(61 - second)


def chat(app: App, channel: str = "web") -> ChatTester:
    return next(a for a in app.live_adapters if isinstance(a, ChatTester) and a.name == channel)


async def say(app: App, user: str, text: str, channel: str = "web") -> str:
    return "\n".join(await chat(app, channel).say(user, text))


async def test_a_person_over_the_message_limit_is_told_when_to_come_back(app: App) -> None:
    assert app.store is not None
    for n in range(3):
        assert await say(app, "pia", f"message {n}") == f"echo: message {n}"
    runs_before = len(await app.store.runs.recent(100))
    refusal = await say(app, "pia", "one too many")
    assert re.fullmatch(r"You're sending messages faster than I take them \(limit: 3 a minute\)\. "
                        r"Try again in \d+ s\.", refusal)
    assert len(await app.store.runs.recent(100)) == runs_before  # nothing ran
    assert "faster than I take them" in await say(app, "pia", "/sb help")  # commands count too
    assert await say(app, "quinn", "hello") == "echo: hello"  # others are not affected


async def test_owners_are_exempt(app: App) -> None:
    for n in range(5):
        assert await say(app, "olive", f"owner {n}") == f"echo: owner {n}"


async def test_a_busy_channel_is_limited_as_a_whole(app: App) -> None:
    assert await say(app, "rae", "one", "team") == "echo: one"
    assert await say(app, "sam", "two", "team") == "echo: two"
    refusal = await say(app, "tom", "three", "team")
    assert refusal.startswith("This bot is busy on team (limit: 2 messages a minute for the channel). Try again in ")
    assert await say(app, "tom", "elsewhere", "web") == "echo: elsewhere"


async def test_a_person_over_the_daily_model_budget_is_told_when_it_resets(app: App) -> None:
    assert app.store is not None
    uma = await app.store.people.resolve(Sender("web", "uma", "uma"))
    run_id = await app.store.runs.create(flow="echo", event_id=None, conversation="web::dm-uma:", person_id=uma.id,
                                         next_node="say", state={})
    async with app.store.pool.connection() as conn:
        await conn.execute("UPDATE runs SET cost = 0.61, status = 'succeeded' WHERE id = %s", (run_id,))
    refusal = await say(app, "uma", "expensive question")
    assert re.fullmatch(r"You've used today's model budget \(\$0\.61 of \$0\.50\)\. "
                        r"It resets at midnight UTC, in \d+h \d\dm\.", refusal)


async def test_scheduled_runs_are_not_counted_against_the_person(app: App) -> None:
    for n in range(3):
        await say(app, "vic", f"m{n}")
    assert "faster than I take them" in await say(app, "vic", "again")
    tester = chat(app)
    event = Event(id="schedule:test-vic:1", kind=EventKind.SCHEDULE, channel="web",
                  conversation=tester.conversation("vic"), sender=Sender("web", "vic", "vic"), text="timer",
                  meta={"flow": "echo"})
    assert app.bus is not None
    await app.bus.publish(event)
    for _ in range(100):
        if tester.answers.get(event.id):
            break
        await asyncio.sleep(0.05)
    assert tester.answers[event.id] == ["echo: timer"]


def test_a_bad_limits_section_names_the_key() -> None:
    with pytest.raises(ValueError, match=r"invalid limits config: limits\.person\.messages_per_minute: "):
        LimitSettings.from_config({"person": {"messages_per_minute": 0}})
    with pytest.raises(ValueError, match=r"limits\.channels\.slack\.per_hour: Extra inputs"):
        LimitSettings.from_config({"channels": {"slack": {"per_hour": 5}}})
