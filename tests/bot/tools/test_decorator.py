"""`@tool`: the schema the model sees comes from type hints and the docstring; arguments are
validated before the function runs; sync and async functions both work."""

from __future__ import annotations

import threading
from typing import Annotated, Literal

import pytest
from pydantic import Field

from bot.store.people import Role
from bot.tools import Tool, ToolContext, tool


@tool
def schedule_meeting(title: str, minutes: int = 30, attendees: list[str] | None = None,
                     room: Literal["small", "large"] = "small") -> str:
    """Book a meeting room.

    Longer explanation that the model does not need.

    Args:
        title: what the meeting is about.
        minutes: how long, in minutes.
        attendees: e-mail addresses
            of the people to invite.
    """
    return f"{title}:{minutes}:{room}:{attendees or []}"


async def test_the_schema_comes_from_type_hints_and_the_docstring() -> None:
    assert isinstance(schedule_meeting, Tool)
    schema = schedule_meeting.openai_schema()["function"]
    assert schema["name"] == "schedule_meeting"
    assert schema["description"] == "Book a meeting room.\n\nLonger explanation that the model does not need."
    params = schema["parameters"]
    assert params["required"] == ["title"] and params["additionalProperties"] is False
    assert params["properties"]["title"] == {"type": "string", "description": "what the meeting is about."}
    assert params["properties"]["minutes"]["type"] == "integer" and params["properties"]["minutes"]["default"] == 30
    assert params["properties"]["attendees"]["description"] == "e-mail addresses of the people to invite."
    assert params["properties"]["room"]["enum"] == ["small", "large"]


async def test_arguments_are_validated_and_coerced_before_the_call() -> None:
    assert schedule_meeting.validate is not None
    assert schedule_meeting.validate({"title": "x", "minutes": "45"})["minutes"] == 45
    with pytest.raises(ValueError, match="missing required argument 'title'"):
        schedule_meeting.validate({})
    with pytest.raises(ValueError, match="unknown argument 'colour'"):
        schedule_meeting.validate({"title": "x", "colour": "red"})
    with pytest.raises(ValueError, match="room"):
        schedule_meeting.validate({"title": "x", "room": "huge"})


async def test_sync_functions_run_in_a_worker_thread_and_async_ones_on_the_loop() -> None:
    threads: list[str] = []

    @tool
    def where_sync() -> str:
        """Where am I."""
        threads.append(threading.current_thread().name)
        return "sync"

    @tool
    async def where_async() -> str:
        """Where am I."""
        threads.append(threading.current_thread().name)
        return "async"

    assert await where_sync.call({}, ToolContext()) == "sync"
    assert await where_async.call({}, ToolContext()) == "async"
    assert threads[0] != threading.main_thread().name and threads[1] == threading.main_thread().name


async def test_a_tool_context_parameter_is_injected_and_hidden_from_the_model() -> None:
    @tool(role="admin", approval=True, timeout=3, name="who")
    async def whoami(ctx: ToolContext, shout: Annotated[bool, Field(description="upper case")] = False) -> str:
        """Say who is calling."""
        return ("RUN " if shout else "run ") + ctx.run_id

    assert "ctx" not in whoami.parameters["properties"]
    assert whoami.parameters["properties"]["shout"]["description"] == "upper case"
    assert (whoami.name, whoami.role, whoami.approval, whoami.timeout) == ("who", Role.ADMIN, True, 3)
    assert await whoami.call({"shout": True}, ToolContext(run_id="r1")) == "RUN r1"


def test_functions_that_cannot_be_described_are_refused() -> None:
    with pytest.raises(TypeError, match=r"\*args"):
        @tool
        def anything(*args: int) -> int:
            return 0

    with pytest.raises(ValueError, match="tool name"):
        tool(name="has spaces")(lambda: None)
