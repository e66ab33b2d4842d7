"""Talking to a real App in node tests: a console user who can type and press buttons."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from adapters.console import ConsoleAdapter
from bot.app import App
from bot.events import Event, EventKind, Reply, Sender
from bot.store.runs import RunRecord, RunStatus
from tests.apps import NullOutput, make_config


class ChatUser(ConsoleAdapter):
    """The console adapter, plus button presses (ACTION events) whose turn end can be awaited."""

    async def say_as(self, user: str, text: str) -> str:
        """Someone else writes in this user's conversation (a shared room)."""
        assert self._context is not None
        event = Event(id=f"console:{uuid.uuid4().hex}", kind=EventKind.MESSAGE, channel="console",
                      conversation=self.conversation, sender=Sender("console", user, user), text=text,
                      mentioned=True)
        self._turn_done[event.id] = asyncio.Event()
        await self._context.bus.publish(event)
        return event.id

    async def press(self, value: str, label: str = "") -> str:
        assert self._context is not None
        event = Event(id=f"console:action:{uuid.uuid4().hex}", kind=EventKind.ACTION, channel="console",
                      conversation=self.conversation, sender=Sender("console", self.user, self.user), text=label,
                      mentioned=True, meta={"action": value})
        self._turn_done[event.id] = asyncio.Event()
        await self._context.bus.publish(event)
        return event.id


def user_of(app: App) -> ChatUser:
    adapter = app.live_adapters[0]
    assert isinstance(adapter, ChatUser)
    return adapter


async def say(app: App, text: str) -> list[Reply]:
    user = user_of(app)
    before = len(user.replies)
    assert await user.wait_turn(await user.say(text), 30), f"no answer to {text!r}"
    return user.replies[before:]


async def press(app: App, value: str) -> list[Reply]:
    user = user_of(app)
    before = len(user.replies)
    assert await user.wait_turn(await user.press(value), 30), f"no answer to pressing {value!r}"
    return user.replies[before:]


async def latest_run(app: App) -> RunRecord:
    assert app.store is not None
    run = await app.store.runs.get((await app.store.runs.recent(1))[0].id, with_steps=True)
    assert run is not None
    return run


async def run_settles(app: App, run_id: str, *, seconds: float = 15) -> RunRecord:
    """Wait until a run leaves WAITING/RUNNING (a timer resumed it)."""
    assert app.store is not None
    for _ in range(int(seconds * 20)):
        run = await app.store.runs.get(run_id, with_steps=True)
        if run is not None and run.status not in (RunStatus.WAITING, RunStatus.RUNNING):
            return run
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish within {seconds} s")


def build_app(database_url: str, data_dir: Path, llm_base_url: str, flow_dir: Path, *, user: str = "ada",
              default_flow: str, tools: dict[str, Any] | None = None) -> App:
    config = make_config(database_url, data_dir, llm_base_url=llm_base_url, flow_dirs=[flow_dir],
                         flows={"default": default_flow}, llm={"timeout": 10, "max_retries": 0},
                         tools=tools or {})
    return App(config, with_server=False, adapters=[ChatUser(user=user, out=NullOutput(), stream=False)])
