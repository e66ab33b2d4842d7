"""The scheduler across restarts and processes: jobs live in PostgreSQL, one process fires each.

Every test gets a fresh database, so jobs from one scenario never fire into another.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.events import ConversationRef, Sender
from bot.scheduler.jobs import JobKind, JobStatus
from bot.scheduler.timing import Timing
from tests.apps import REPO, make_config
from tests.bot.admin.chat import ChatTester
from tests.conftest import new_database

TICK_FLOW = """
name: tick
description: Says tick on a timer.
triggers:
  - schedule: {{every: "{every}", channel: web, room: team}}
nodes:
  - id: say
    kind: reply
    text: "tick ({{{{ event.kind }}}})"
"""

QUIET_FLOW = """
name: quiet
triggers:
  - command: quiet
nodes:
  - id: say
    kind: reply
    text: "..."
"""


def build(url: str, data: Path, flows: Path, **scheduler: Any) -> App:
    config = make_config(url, data, flow_dirs=[flows], flows={"default": "quiet"}, bot={"owners": ["web:olive"]},
                         scheduler={"leader_retry": 0.2, "resync": 1, **scheduler})
    return App(config, with_server=False, adapters=[ChatTester("web")])


def chat(app: App) -> ChatTester:
    adapter = app.live_adapters[0]
    assert isinstance(adapter, ChatTester)
    return adapter


def scheduler(app: App) -> Any:
    assert app.services is not None and app.services.scheduler is not None
    return app.services.scheduler


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "quiet.yaml").write_text(QUIET_FLOW)
    return folder


async def settle(app: App, job_id: str) -> None:
    """Pause a job and let a firing under way finish, so counts can be compared."""
    await scheduler(app).jobs.set_status(job_id, JobStatus.PAUSED)
    await asyncio.sleep(0.3)


async def remind(app: App, text: str, seconds: int, *, every: bool = False) -> str:
    assert app.store is not None
    person = await app.store.people.resolve(Sender("web", "mia", "mia"))
    if every:
        timing = Timing.from_schedule(cron=None, every=f"{seconds}s", at=None)
    else:
        timing = Timing.from_schedule(cron=None, every=None, at=datetime.now(UTC) + timedelta(seconds=seconds))
    sender = Sender("web", "mia", "mia")
    job = await scheduler(app).jobs.add(kind=JobKind.REMINDER, timing=timing, person_id=person.id, text=text,
                                        conversation=ConversationRef("web", "dm-mia"), sender=sender)
    return job.id


async def test_a_flow_schedule_trigger_runs_the_flow_into_its_conversation_and_follows_reloads(
    pg_admin_url: str, tmp_path: Path, flows: Path
) -> None:
    (flows / "tick.yaml").write_text(TICK_FLOW.format(every="1s"))
    app = build(new_database(pg_admin_url), tmp_path / "data", flows)
    await app.start()
    try:
        (job,) = await scheduler(app).jobs.list()
        assert (job.id, job.flow, job.conversation, job.timing.describe()) == (
            "flow:tick:0", "tick", ConversationRef("web", "team"), "every 1s")
        for _ in range(100):
            if any(key.startswith("schedule:flow:tick:0:") for key in chat(app).answers):
                break
            await asyncio.sleep(0.05)
        texts = [t for key, ts in chat(app).answers.items() if key.startswith("schedule:flow:tick:0:") for t in ts]
        assert texts and texts[0] == "tick (schedule)"
        # A changed trigger reschedules the job; a removed one drops it.
        (flows / "tick.yaml").write_text(TICK_FLOW.format(every="1h"))
        assert (await chat(app).say("olive", "/sb flows reload"))[0].startswith("Reloaded 2 flows")
        (job,) = await scheduler(app).jobs.list()
        assert job.timing.describe() == "every 1h"
        await chat(app).say("olive", "/sb flows disable tick")
        assert await scheduler(app).jobs.list() == []
        await chat(app).say("olive", "/sb flows enable tick")
        assert len(await scheduler(app).jobs.list()) == 1
        (flows / "tick.yaml").unlink()
        await chat(app).say("olive", "/sb flows reload")
        assert await scheduler(app).jobs.list() == []
    finally:
        await app.stop()


@pytest.mark.slow
async def test_a_job_due_while_no_process_ran_fires_after_the_restart(
    pg_admin_url: str, tmp_path: Path, flows: Path
) -> None:
    url = new_database(pg_admin_url)
    first = build(url, tmp_path / "data", flows)
    await first.start()
    job_id = await remind(first, "water the plants", 1)
    await first.stop()
    await asyncio.sleep(1.5)  # the reminder falls due while nothing runs
    second = build(url, tmp_path / "data", flows)
    await second.start()
    try:
        (reminder,) = await chat(second).wait_proactive(1)
        assert reminder.text == "⏰ Reminder for mia: water the plants"
        assert reminder.conversation == ConversationRef("web", "dm-mia")
        job = await scheduler(second).jobs.get(job_id)
        assert job is not None and job.status is JobStatus.DONE and job.run_count == 1
        assert chat(first).proactive == []
    finally:
        await second.stop()


@pytest.mark.slow
async def test_a_job_missed_by_more_than_the_misfire_grace_is_skipped_and_marked(
    pg_admin_url: str, tmp_path: Path, flows: Path
) -> None:
    url = new_database(pg_admin_url)
    first = build(url, tmp_path / "data", flows, misfire_grace=1)
    await first.start()
    job_id = await remind(first, "too late", 1)
    await first.stop()
    await asyncio.sleep(3)
    second = build(url, tmp_path / "data", flows, misfire_grace=1)
    await second.start()
    try:
        assert await scheduler(second).wait_leading(5)
        for _ in range(60):
            job = await scheduler(second).jobs.get(job_id)
            if job is not None and job.status is JobStatus.MISSED:
                break
            await asyncio.sleep(0.05)
        assert job is not None and job.status is JobStatus.MISSED and job.run_count == 0
        assert chat(second).proactive == []
    finally:
        await second.stop()


@pytest.mark.slow
async def test_of_two_processes_exactly_one_fires_each_occurrence_and_the_other_takes_over(
    pg_admin_url: str, tmp_path: Path, flows: Path
) -> None:
    url = new_database(pg_admin_url)
    a, b = build(url, tmp_path / "a", flows), build(url, tmp_path / "b", flows)
    await a.start()
    await b.start()
    stopped: list[App] = []
    try:
        assert await scheduler(a).wait_leading(5)
        await asyncio.sleep(0.5)  # b has tried the lock at least twice by now
        assert not scheduler(b).is_leader
        job_id = await remind(b, "stand up", 1, every=True)  # added by the follower, fired by the leader
        await asyncio.sleep(3.3)
        await settle(a, job_id)
        fired_a, fired_b = scheduler(a).fired, scheduler(b).fired
        job = await scheduler(a).jobs.get(job_id)
        assert job is not None and fired_a >= 2 and fired_b == 0 and job.run_count == fired_a
        assert len(chat(a).proactive) == fired_a and chat(b).proactive == []
        await scheduler(a).jobs.set_status(job_id, JobStatus.ACTIVE)

        await a.stop()  # the leader goes away: its lock connection closes
        stopped.append(a)
        assert await scheduler(b).wait_leading(5)
        await chat(b).wait_proactive(1, within=5)
        await settle(b, job_id)
        job = await scheduler(b).jobs.get(job_id)
        assert job is not None and scheduler(b).fired >= 1
        assert job.run_count == fired_a + scheduler(b).fired
    finally:
        for app in (a, b):
            if app not in stopped:
                await app.stop()


@pytest.mark.slow
async def test_a_crashed_leader_process_is_replaced_and_no_occurrence_fires_twice(
    pg_admin_url: str, tmp_path: Path, flows: Path
) -> None:
    """Two OS processes on one database: the other process leads and fires; SIGKILL it; this one takes over."""
    url = new_database(pg_admin_url)
    leader = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.bot.scheduler.leader_process", url, str(tmp_path / "p"), str(flows),
        cwd=str(REPO), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    assert leader.stdout is not None
    here = build(url, tmp_path / "here", flows)
    try:
        assert await asyncio.wait_for(leader.stdout.readline(), 60) == b"leading\n"
        await here.start()
        await asyncio.sleep(0.5)
        assert not scheduler(here).is_leader
        job_id = await remind(here, "stretch", 1, every=True)
        replies = []
        while len(replies) < 2:
            line = await asyncio.wait_for(leader.stdout.readline(), 10)
            replies.append(line.decode().strip())
        assert replies == ["reply ⏰ Reminder for mia: stretch"] * 2
        assert scheduler(here).fired == 0 and chat(here).proactive == []
        leader.kill()  # a crash: no clean shutdown, the lock goes with the connection
        await leader.wait()
        replies += [line.decode().strip() for line in (await leader.stdout.read()).splitlines()]
        fired_by_leader = len(replies)

        assert await scheduler(here).wait_leading(10)
        await chat(here).wait_proactive(2, within=10)
        await settle(here, job_id)
        job = await scheduler(here).jobs.get(job_id)
        assert job is not None and job.run_count == fired_by_leader + scheduler(here).fired
        assert len(chat(here).proactive) == scheduler(here).fired
    finally:
        if leader.returncode is None:
            leader.kill()
            await leader.wait()
        await here.stop()
