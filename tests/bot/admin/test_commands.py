"""Admin commands from chat: who may run what, what they do, and the audit log behind them.

A real App (embedded PostgreSQL, memory bus, runtime) with a test chat adapter on channel "web":
olive is an owner by config, adam an admin, mia a member, bob blocked.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest

from bot.app import App
from bot.events import ConversationRef, Event, EventKind, Sender
from bot.store.people import Role
from bot.store.runs import RunStatus
from tests.apps import make_config
from tests.bot.admin.chat import ChatTester

ECHO_FLOW = """
name: echo
description: Repeats what you say.
triggers:
  - default: true
nodes:
  - id: say
    kind: reply
    text: "echo: {{ event.text }}"
"""

ADMIN_COMMANDS = ["status", "flows", "runs", "users", "audit", "broadcast optins hello"]
MEMBER_COMMANDS = ["help", "optin off", "schedule list", "remind me in 1h to stretch"]
REFUSED = "needs the admin role; you are member"


@pytest.fixture(scope="module")
async def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[App]:
    flows = tmp_path_factory.mktemp("flows")
    (flows / "echo.yaml").write_text(ECHO_FLOW)
    config = make_config(database_url, tmp_path_factory.mktemp("data"), flow_dirs=[flows],
                         bot={"owners": ["web:olive"]}, flows={"default": "echo"})
    application = App(config, with_server=False, adapters=[ChatTester("web")])
    await application.start()
    assert application.store is not None
    for user, role in (("adam", Role.ADMIN), ("mia", Role.MEMBER), ("bob", Role.BLOCKED)):
        person = await application.store.people.resolve(Sender("web", user, user))
        await application.store.people.set_role(person.id, role)
    yield application
    await application.stop()


def chat(app: App) -> ChatTester:
    adapter = app.live_adapters[0]
    assert isinstance(adapter, ChatTester)
    return adapter


async def say(app: App, user: str, text: str) -> str:
    return "\n".join(await chat(app).say(user, text))


async def person_id(app: App, user: str) -> int:
    assert app.store is not None
    return (await app.store.people.resolve(Sender("web", user, user))).id


# -- roles ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ADMIN_COMMANDS)
@pytest.mark.parametrize("user", ["olive", "adam"])
async def test_owners_and_admins_may_run_every_admin_command(app: App, user: str, text: str) -> None:
    answer = await say(app, user, f"/sb {text}")
    assert answer and "needs the" not in answer and "` failed:" not in answer


@pytest.mark.parametrize("text", ADMIN_COMMANDS)
async def test_a_member_is_refused_every_admin_command_and_the_attempt_is_audited(app: App, text: str) -> None:
    assert app.services is not None
    answer = await say(app, "mia", f"/sb {text}")
    name = text.split()[0]
    assert answer == f"`/sb {name}` {REFUSED}."
    (latest,) = await app.services.audit.recent(1)
    assert (latest.actor, latest.role, latest.channel, latest.command, latest.outcome) == (
        "web:mia", "member", "web", name, "refused")


@pytest.mark.parametrize("text", ADMIN_COMMANDS + MEMBER_COMMANDS + ["hello there"])
async def test_a_blocked_person_gets_nothing_run(app: App, text: str) -> None:
    assert app.store is not None
    before = len(await app.store.runs.recent(100))
    assert await say(app, "bob", f"/sb {text}" if text != "hello there" else text) == ""
    assert len(await app.store.runs.recent(100)) == before


@pytest.mark.parametrize("text", MEMBER_COMMANDS)
async def test_a_member_may_run_the_member_commands(app: App, text: str) -> None:
    answer = await say(app, "mia", f"/sb {text}")
    assert answer and "needs the" not in answer and "` failed:" not in answer


async def test_help_shows_only_what_the_caller_may_run(app: App) -> None:
    member_help = await say(app, "mia", "/sb help")
    admin_help = await say(app, "adam", "/sb help")
    for name in ("status", "flows", "runs", "users", "audit", "broadcast"):
        assert f"/sb {name}" not in member_help
        assert f"/sb {name}" in admin_help
    for name in ("help", "optin", "remind", "schedule"):
        assert f"/sb {name}" in member_help


# -- audit ------------------------------------------------------------------------------------


async def test_admin_actions_are_audited_with_who_what_where_and_outcome(app: App) -> None:
    assert app.services is not None
    await say(app, "adam", "/sb flows list")
    (row,) = await app.services.audit.recent(1)
    assert (row.actor, row.actor_name, row.role, row.channel, row.command, row.args, row.outcome) == (
        "web:adam", "adam", "admin", "web", "flows", "list", "ok")
    assert row.conversation == ConversationRef("web", "dm-adam").key and row.person_id == await person_id(app, "adam")


async def test_audit_shows_recent_rows_and_filters_by_person(app: App) -> None:
    await say(app, "mia", "/sb users block bob")
    shown = await say(app, "olive", "/sb audit 5")
    assert shown.startswith("Audit log") and "mia (member, web): users block bob → refused" in shown
    only_adam = await say(app, "olive", "/sb audit web:adam")
    assert "adam (admin, web)" in only_adam and "mia (member" not in only_adam
    assert await say(app, "olive", "/sb audit web:nobody") == "I know nobody as 'web:nobody'."


# -- users ------------------------------------------------------------------------------------


async def test_an_admin_blocks_and_unblocks_a_member(app: App) -> None:
    carl = await person_id(app, "carl")
    assert await say(app, "carl", "hi") == "echo: hi"
    assert await say(app, "adam", "/sb users block web:carl") == f"#{carl} carl is now blocked (was member)."
    assert await say(app, "carl", "hi again") == ""
    assert await say(app, "adam", f"/sb users unblock {carl}") == f"#{carl} carl is now member (was blocked)."
    assert await say(app, "carl", "back") == "echo: back"


async def test_only_owners_grant_admin_and_nobody_changes_their_own_role(app: App) -> None:
    dana = await person_id(app, "dana")
    assert "Only an owner" in await say(app, "adam", "/sb users role web:dana admin")
    assert "Only an owner" in await say(app, "adam", "/sb users block web:olive")
    assert await say(app, "olive", f"/sb users role #{dana} admin") == f"#{dana} dana is now admin (was member)."
    assert "uptime" in await say(app, "dana", "/sb status")
    assert "own role" in await say(app, "olive", "/sb users role web:olive member")
    await say(app, "olive", "/sb users role web:dana member")
    assert REFUSED in await say(app, "dana", "/sb status")


async def test_users_show_and_clear_errors(app: App) -> None:
    shown = await say(app, "adam", "/sb users show web:mia")
    assert shown == f"#{await person_id(app, 'mia')} mia — member (web:mia)"
    assert "I know nobody as 'slack:U999'" in await say(app, "adam", "/sb users show slack:U999")
    assert "'wizard' is not a role" in await say(app, "olive", "/sb users role web:mia wizard")
    assert "Usage" in await say(app, "adam", "/sb users role web:mia")
    assert "People (newest first)" in await say(app, "adam", "/sb users")


# -- status -----------------------------------------------------------------------------------


async def test_status_reports_uptime_adapters_queue_runs_errors_and_model_use(app: App) -> None:
    status = await say(app, "adam", "/sb status")
    assert "uptime:" in status and "adapters: web (live)" in status
    assert re.search(r"queue: \d+ waiting, \d+ being handled \(bus memory://\)", status)
    assert "runs in flight: 0" in status
    assert "today (UTC):" in status and "failed" in status and "dead letters" in status
    assert "models today (this process): no calls" in status
    assert "scheduler: fires jobs here" in status


# -- flows ------------------------------------------------------------------------------------


async def test_flows_are_listed_disabled_and_enabled(app: App) -> None:
    assert "• echo [on] — Repeats what you say." in await say(app, "adam", "/sb flows")
    assert "disabled" in await say(app, "adam", "/sb flows disable echo")
    assert "• echo [off]" in await say(app, "adam", "/sb flows list")
    assert "No flow handles this message" in await say(app, "mia", "anyone there?")
    assert "enabled" in await say(app, "adam", "/sb flows enable echo")
    assert await say(app, "mia", "anyone there?") == "echo: anyone there?"
    assert "No flow named 'nope'" in await say(app, "adam", "/sb flows enable nope")


async def test_a_broken_flow_file_is_reported_on_reload_and_the_others_stay(app: App) -> None:
    folder = app.config.flow_dirs()[0]
    (folder / "broken.yaml").write_text("name: broken\ntriggers: [{regex: '('}]\nnodes: [{id: a, kind: reply}]\n")
    try:
        answer = await say(app, "adam", "/sb flows reload")
        assert answer.startswith("Reloaded 1 flows from 2 files.")
        assert "Not loaded because of problems" in answer and "broken.yaml" in answer
        assert await say(app, "mia", "still here?") == "echo: still here?"
    finally:
        (folder / "broken.yaml").unlink()
        await say(app, "adam", "/sb flows reload")


# -- runs -------------------------------------------------------------------------------------


async def test_a_run_is_shown_with_its_steps(app: App) -> None:
    assert app.store is not None
    await say(app, "mia", "show me")
    run = (await app.store.runs.recent(1))[0]
    listing = await say(app, "adam", "/sb runs")
    assert f"`{run.id[:8]}` echo — succeeded, 1 steps" in listing
    shown = await say(app, "adam", f"/sb runs {run.id[:8]}")
    assert shown.startswith(f"Run `{run.id}` — flow echo, succeeded")
    assert "1. say (reply) succeeded" in shown
    assert "not a run id" in await say(app, "adam", "/sb runs show zzz")
    assert "No run `abcdef12`" in await say(app, "adam", "/sb runs abcdef12")


async def test_a_waiting_run_is_cancelled_and_a_finished_one_is_not(app: App) -> None:
    assert app.store is not None
    mia = await person_id(app, "mia")
    run_id = await app.store.runs.create(flow="echo", event_id=None, conversation="web::dm-mia:", person_id=mia,
                                         next_node="say", state={})
    await app.store.runs.finish(run_id, RunStatus.WAITING)
    assert await say(app, "adam", f"/sb runs cancel {run_id}") == f"Cancelled run `{run_id[:8]}` (echo, was waiting)."
    cancelled = await app.store.runs.get(run_id)
    assert cancelled is not None and cancelled.status is RunStatus.CANCELLED
    assert "already ended (cancelled)" in await say(app, "adam", f"/sb runs cancel {run_id[:8]}")


async def test_dead_letters_are_listed_and_replayed(app: App) -> None:
    assert app.store is not None
    event = Event(id="web:dead-1", kind=EventKind.MESSAGE, channel="web", conversation=ConversationRef("web", "dm-mia"),
                  sender=Sender("web", "mia", "mia"), text="lost message")
    assert await app.store.journal.record(event)
    await app.store.journal.complete(event.id, failed=True, error="worker crashed three times")
    listing = await say(app, "adam", "/sb runs dead")
    assert "`web:dead-1` web lost message — worker crashed three times" in listing
    answer = await say(app, "adam", "/sb runs replay web:dead-1")
    assert answer.startswith("Replayed `web:dead-1` as `web:dead-1~replay-")
    copy_id = answer.split("as `")[1].rstrip("`.")
    for _ in range(100):
        if chat(app).answers.get(copy_id):
            break
        await asyncio.sleep(0.05)
    assert chat(app).answers[copy_id] == ["echo: lost message"]
    assert await say(app, "adam", "/sb runs dead") == "No dead letters."
    assert "No dead letter" in await say(app, "adam", "/sb runs replay web:dead-1")


# -- broadcast --------------------------------------------------------------------------------


async def test_broadcast_reaches_everyone_who_opted_in_and_one_conversation(app: App) -> None:
    tester = chat(app)
    assert "receive broadcasts here" in await say(app, "mia", "/sb optin")
    assert "receive broadcasts here" in await say(app, "carl", "/sb optin on")
    assert "won't receive" in await say(app, "carl", "/sb optin off")
    before = len(tester.proactive)
    assert await say(app, "olive", "/sb broadcast optins Maintenance at 5 pm") == "Broadcast sent to 1 conversation."
    assert await say(app, "adam", "/sb broadcast web:team-room Deploy done") == "Broadcast sent to 1 conversation."
    arrived = (await tester.wait_proactive(before + 2))[before:]
    assert {(r.conversation, r.text) for r in arrived} == {
        (ConversationRef("web", "dm-mia"), "Maintenance at 5 pm"), (ConversationRef("web", "team-room"), "Deploy done")}
    assert "is not a conversation" in await say(app, "adam", "/sb broadcast nowhere hello")
    assert await say(app, "adam", "/sb broadcast slack:C1 hello") == "No live adapter named 'slack' (live: web)."
    assert "Usage" in await say(app, "adam", "/sb broadcast optins")
