"""The ask node: a flow asks the person (a choice or free text), waits, and continues with the answer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.app import App
from bot.store.runs import RunStatus
from tests.fakes.openai import FakeOpenAI
from tests.flows.nodes.chat import build_app, latest_run, press, run_settles, say, user_of

RELEASE = """
name: release
description: Asks where and what to release.
triggers:
  - default: true
nodes:
  - id: where
    kind: ask
    question: "Where should I deploy, {{ person.name }}?"
    choices: [staging, production]
  - id: title
    kind: ask
    question: What should the release be called?
  - id: done
    kind: reply
    text: "Deploying {{ title.answer }} to {{ where.answer }}."
"""

QUICK = """
name: quick
description: A yes/no question that gives up.
triggers:
  - command: quick
nodes:
  - id: confirm
    kind: ask
    question: Proceed?
    choices:
      - {label: "Yes", value: "y"}
      - {label: "No", value: "n"}
    answer_timeout: 1
    timeout_next: gave_up
  - id: went
    kind: reply
    text: "You chose {{ confirm.label }} ({{ confirm.answer }})."
    next: end
  - id: gave_up
    kind: reply
    text: "No answer, so I cancelled."
"""


@pytest.fixture(scope="module")
async def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[App]:
    flows = tmp_path_factory.mktemp("flows")
    (flows / "release.yaml").write_text(RELEASE)
    (flows / "quick.yaml").write_text(QUICK)
    async with FakeOpenAI() as fake:
        application = build_app(database_url, tmp_path_factory.mktemp("data"), fake.base_url, flows,
                                default_flow="release", tools={"approvals": {"sweep_interval": 0.1}})
        await application.start()
        yield application
        await application.stop()


async def test_a_choice_is_asked_with_buttons_and_a_press_continues_the_flow(app: App) -> None:
    (question,) = await say(app, "release please")
    assert question.text == "Where should I deploy, ada?"
    assert [(b.label, b.value) for b in question.buttons] == [("staging", "staging"), ("production", "production")]
    assert (await latest_run(app)).status is RunStatus.WAITING
    (follow_up,) = await press(app, "production")
    assert follow_up.text == "What should the release be called?" and not follow_up.buttons
    (done,) = await say(app, "Aurora")
    assert done.text == "Deploying Aurora to production."
    run = await latest_run(app)
    assert run.status is RunStatus.SUCCEEDED
    assert [s.node_id for s in run.step_records] == ["where", "where", "title", "title", "done"]


@pytest.mark.parametrize(("typed", "meant"), [("1", "staging"), ("Production", "production"), ("2.", "production")])
async def test_without_buttons_the_number_or_the_label_can_be_typed(app: App, typed: str, meant: str) -> None:
    await say(app, "release")
    await say(app, typed)
    (done,) = await say(app, "Borealis")
    assert done.text == f"Deploying Borealis to {meant}."


async def test_an_answer_that_matches_no_choice_asks_again(app: App) -> None:
    await say(app, "release")
    (again,) = await say(app, "the moon")
    assert again.text.startswith("Please pick one of the options.") and len(again.buttons) == 2
    assert (await latest_run(app)).status is RunStatus.WAITING
    (next_question,) = await say(app, "staging")
    assert next_question.text == "What should the release be called?"
    await say(app, "Cirrus")


async def test_a_labelled_choice_gives_its_value_and_label(app: App) -> None:
    (question,) = await say(app, "/sb quick")
    assert question.text == "Proceed?" and [b.value for b in question.buttons] == ["y", "n"]
    (answer,) = await press(app, "y")
    assert answer.text == "You chose Yes (y)."


async def test_an_unanswered_question_times_out_to_its_timeout_branch(app: App) -> None:
    await say(app, "/sb quick")
    run = await latest_run(app)
    user = user_of(app)
    before = len(user.replies)
    finished = await run_settles(app, run.id, seconds=10)
    assert finished.status is RunStatus.SUCCEEDED
    assert [s.node_id for s in finished.step_records][-1] == "gave_up"
    assert finished.step_records[-2].outputs["timed_out"] is True
    assert [r.text for r in user.replies[before:]] == ["No answer, so I cancelled."]
