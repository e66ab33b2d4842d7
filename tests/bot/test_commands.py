"""Commands parse the same way on every channel."""

from __future__ import annotations

import pytest

from bot.commands import Command, CommandRegistry, command, parse_command
from bot.store.people import Role


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/sb help", Command("help", (), "")),
        ("  /sb   Remind me in 2h  ", Command("remind", ("me", "in", "2h"), "me in 2h")),
        (
            '/sb schedule "0 9 * * 1-5" standup',
            Command("schedule", ("0 9 * * 1-5", "standup"), '"0 9 * * 1-5" standup'),
        ),
        ("/sb", Command("help")),
        ("/sb@SwitchboardBot status", Command("status", (), "")),
        ('/sb say "unbalanced', Command("say", ('"unbalanced',), '"unbalanced')),
    ],
)
def test_prefixed_text_is_a_command(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize("text", ["hello", "/sbx help", "please /sb help", ""])
def test_other_text_is_not_a_command(text: str) -> None:
    assert parse_command(text) is None


def test_the_prefix_is_configurable() -> None:
    assert parse_command("!bot ping", "!bot") == Command("ping")


def test_help_lists_only_what_the_role_may_run() -> None:
    @command("status", summary="s", min_role=Role.ADMIN)
    async def status(ctx):  # type: ignore[no-untyped-def]
        return None

    @command("ping", summary="p")
    async def ping(ctx):  # type: ignore[no-untyped-def]
        return None

    registry = CommandRegistry()
    registry.add_handlers(status, ping)
    assert [c.name for c in registry.visible_to(Role.MEMBER)] == ["ping"]
    assert [c.name for c in registry.visible_to(Role.OWNER)] == ["ping", "status"]
    with pytest.raises(ValueError, match="registered twice"):
        registry.add_handlers(ping)
