"""`/sb remind` and `/sb schedule` from chat, fired by the real scheduler into the real App."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from bot.app import App
from bot.events import ConversationRef, Sender
from bot.scheduler.jobs import JobStatus
from bot.store.people import Role
from tests.apps import make_config
from tests.bot.admin.chat import ChatTester

PING_FLOW = """
name: ping
description: Answers ping.
triggers:
  - command: ping
nodes:
  - id: say
    kind: reply
    text: "pong for {{ person.name }} ({{ event.kind }})"
"""


@pytest.fixture(scope="module")
async def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[App]:
    flows = tmp_path_factory.mktemp("flows")
    (flows / "ping.yaml").write_text(PING_FLOW)
    config = make_config(database_url, tmp_path_factory.mktemp("data"), flow_dirs=[flows], flows={"default": "ping"},
                         scheduler={"leader_retry": 0.2, "resync": 1, "min_interval": 1})
    application = App(config, with_server=False, adapters=[ChatTester("web")])
    await application.start()
    assert application.store is not None and application.services is not None
    adam = await application.store.people.resolve(Sender("web", "adam", "adam"))
    await application.store.people.set_role(adam.id, Role.ADMIN)
    assert await application.services.scheduler.wait_leading(10)
    yield application
    await application.stop()


def chat(app: App) -> ChatTester:
    adapter = app.live_adapters[0]
    assert isinstance(adapter, ChatTester)
    return adapter


async def say(app: App, user: str, text: str) -> str:
    return "\n".join(await chat(app).say(user, text))


def job_id_of(answer: str) -> str:
    return answer.split("`")[1]


async def scheduled_answers(app: App, job_id: str, count: int, within: float = 8) -> list[str]:
    """Replies of the flow runs a job started (their events are `schedule:<job>:<time>`)."""
    async def enough() -> list[str]:
        while True:
            found = [t for key, texts in chat(app).answers.items() if key.startswith(f"schedule:{job_id}:")
                     for t in texts]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)
    return await asyncio.wait_for(enough(), within)


async def test_a_reminder_arrives_in_the_conversation_it_was_asked_in(app: App) -> None:
    assert app.services is not None
    tester = chat(app)
    before = len(tester.proactive)
    answer = await say(app, "mia", "/sb remind me in 1s to stretch")
    assert answer.startswith("OK, I'll remind you at ") and answer.endswith(f": stretch (job `{job_id_of(answer)}`)")
    (reminder,) = (await tester.wait_proactive(before + 1))[before:]
    assert reminder.conversation == ConversationRef("web", "dm-mia") and reminder.text == "⏰ Reminder for mia: stretch"
    job = await app.services.scheduler.jobs.get(job_id_of(answer))
    assert job is not None and job.status is JobStatus.DONE and job.run_count == 1
    assert await say(app, "mia", "/sb schedule list") == "You have no scheduled jobs."


@pytest.mark.parametrize(("text", "expected"), [
    ("/sb remind me soon", "I could not read that. Usage: `/sb remind me in <2h|30m|1d> to <what>"),
    ("/sb remind me in 2x to eat", "unknown time unit 'x' in '2x'"),
    ("/sb remind me at 2001-01-01T09:00 to vote", "is in the past; pick a time in the future."),
    ("/sb remind me at tomorrow to vote", "cannot read 'tomorrow' as a time"),
    ('/sb schedule "0 9 * *" ping', "invalid cron expression '0 9 * *'"),
    ('/sb schedule "0 9 * * 1-5" nosuchflow', "There is no enabled flow named 'nosuchflow' (flows: ping)."),
    ("/sb schedule pause", "Usage: `/sb schedule pause <job id>`"),
    ("/sb schedule remove zzz", "No job `zzz` of yours."),
])
async def test_bad_schedules_get_a_clear_answer_and_create_nothing(app: App, text: str, expected: str) -> None:
    assert app.services is not None
    before = len(await app.services.scheduler.jobs.list(include_finished=True))
    assert expected in await say(app, "mia", text)
    assert len(await app.services.scheduler.jobs.list(include_finished=True)) == before


@pytest.mark.slow
async def test_a_flow_scheduled_from_chat_runs_and_replies_proactively(app: App) -> None:
    answer = await say(app, "mia", "/sb schedule every 1s ping")
    assert answer.startswith("Scheduled: `") and "run flow ping — every 1s, next " in answer
    assert answer.endswith("in web:dm-mia")
    job_id = job_id_of(answer)
    assert (await scheduled_answers(app, job_id, 2))[:2] == ["pong for mia (schedule)"] * 2
    assert (await say(app, "mia", f"/sb schedule pause {job_id}")).startswith(f"Paused: `{job_id}`")
    await asyncio.sleep(0.3)  # a firing already under way may still reply
    paused_count = len(await scheduled_answers(app, job_id, 0))
    await asyncio.sleep(1.5)
    assert len(await scheduled_answers(app, job_id, 0)) == paused_count
    assert (await say(app, "mia", f"/sb schedule resume {job_id}")).startswith(f"Resumed: `{job_id}`")
    await scheduled_answers(app, job_id, paused_count + 1)
    assert await say(app, "mia", f"/sb schedule remove {job_id}") == f"Removed `{job_id}` (run flow ping)."


async def test_members_manage_their_own_jobs_and_admins_everyone_s(app: App) -> None:
    answer = await say(app, "mia", '/sb schedule "0 9 * * 1-5" ping')
    job_id = job_id_of(answer)
    listed = await say(app, "mia", "/sb schedule list")
    assert f'`{job_id}` run flow ping — cron "0 9 * * 1-5", next ' in listed
    next_run = datetime.strptime(listed.split("next ")[1][:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert next_run.weekday() < 5 and (next_run.hour, next_run.minute) == (9, 0)
    assert await say(app, "carl", "/sb schedule list") == "You have no scheduled jobs."
    assert await say(app, "carl", f"/sb schedule pause {job_id}") == (
        f"No job `{job_id}` of yours. `/sb schedule list` shows your jobs.")
    assert job_id in await say(app, "adam", "/sb schedule list")
    assert (await say(app, "adam", f"/sb schedule pause {job_id}")).startswith(f"Paused: `{job_id}`")
    assert await say(app, "adam", f"/sb schedule remove {job_id}") == f"Removed `{job_id}` (run flow ping)."
    assert app.services is not None
    removal, pause = await app.services.audit.recent(2)  # admins acting on others' jobs are audited
    assert (removal.actor, removal.command) == ("web:adam", "schedule")
    assert removal.outcome.startswith(f"ok: remove job {job_id} of person #") and "pause" in pause.outcome


async def test_members_may_not_schedule_too_often_or_too_much_but_admins_may(app: App) -> None:
    assert app.services is not None
    scheduler = app.services.scheduler
    relaxed = scheduler.settings
    scheduler.settings = relaxed.model_copy(update={"min_interval": 3600, "max_jobs_per_person": 1})
    try:
        assert await say(app, "mia", "/sb remind me every 30m to blink") == (
            "That is too often: the shortest repeat is every 1h.")
        assert await say(app, "mia", '/sb schedule "*/5 * * * *" ping') == (
            "That is too often: the shortest repeat is every 1h.")
        first = job_id_of(await say(app, "mia", "/sb remind me in 2h to call home"))
        assert (await say(app, "mia", "/sb remind me in 3h to call again")).startswith(
            "You already have 1 scheduled jobs; remove one first")
        admin_job = job_id_of(await say(app, "adam", "/sb remind me every 30m to check the queue"))
        for job_id, user in ((first, "mia"), (admin_job, "adam")):
            await say(app, user, f"/sb schedule remove {job_id}")
    finally:
        scheduler.settings = relaxed


async def test_a_reminder_s_text_never_reaches_the_logs(app: App, caplog: pytest.LogCaptureFixture) -> None:
    tester = chat(app)
    before = len(tester.proactive)
    with caplog.at_level(logging.DEBUG):
        await say(app, "mia", "/sb remind me in 1s to renew my passport 4711")
        await tester.wait_proactive(before + 1)
    assert any("scheduled job fired" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if "4711" in r.getMessage() or "4711" in str(r.__dict__)]
