"""The Discord adapter, specified through discord.py's real code path against a local fake Discord.

One fake (REST + gateway websocket) and one connected adapter serve the module; each test drives
the fake from the platform side and checks what a person would see.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import itertools
import random
import time
from collections.abc import AsyncIterator, Callable

import discord
import pytest

from adapters.base import AdapterContext
from adapters.discord import DiscordAdapter, RespondTo, create
from adapters.discord.markdown import to_discord
from adapters.registry import ADAPTERS
from bot.app import App
from bot.bus.memory import MemoryBus
from bot.events import Button, ConversationRef, Event, EventKind, FileOut, Reply, ReplyKind
from tests.adapters.harness_discord import (
    CHANNEL,
    DM,
    GUILD,
    QUIET,
    THREAD,
    DiscordRig,
    default_guild,
    start_rig,
)
from tests.apps import make_config
from tests.fakes.discord import BOT_TOKEN, BOT_USER_ID, FakeDiscord, SentMessage, bot_role_id, user_payload
from tests.fakes.openai import FakeOpenAI, Text

MENTION = f"<@{BOT_USER_ID}>"
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_GUILD_MESSAGE_REACTIONS = 1 << 10
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(heartbeat_interval_ms=250) as fake:
        default_guild(fake)
        yield fake


@pytest.fixture(scope="module")
async def rig(fake: FakeDiscord) -> AsyncIterator[DiscordRig]:
    rig = await start_rig(fake, {"edit_interval": 1.0, "listen_channels": [int(CHANNEL)]})
    yield rig
    await rig.close()


class Inbox:
    """Collects the events the adapter publishes."""

    def __init__(self, rig: DiscordRig) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        rig.bus.consume(self._take)

    async def _take(self, event: Event) -> None:
        await self.queue.put(event)

    async def next(self, within: float = 5.0) -> Event:
        return await asyncio.wait_for(self.queue.get(), within)


@pytest.fixture
async def inbox(rig: DiscordRig) -> Inbox:
    rig.fake.reset()
    return Inbox(rig)


async def wait_for(predicate: Callable[[], object], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition never became true")
        await asyncio.sleep(0.02)


async def sent_where(fake: FakeDiscord, predicate: Callable[[SentMessage], bool], within: float = 10.0) -> SentMessage:
    try:
        await wait_for(lambda: any(predicate(m) for m in fake.sent), within)
    except AssertionError:
        raise AssertionError(f"no such message; the fake got {fake.sent!r}") from None
    return next(m for m in fake.sent if predicate(m))


# -- connecting ------------------------------------------------------------------------------------


async def test_the_bot_logs_in_and_follows_the_gateway_url_the_api_names(rig: DiscordRig) -> None:
    fake = rig.fake
    identify = fake.identifies[-1]
    assert identify["token"] == BOT_TOKEN
    for intent in (INTENT_GUILD_MESSAGES, INTENT_DIRECT_MESSAGES, INTENT_GUILD_MESSAGE_REACTIONS):
        assert identify["intents"] & intent
    assert identify["intents"] & INTENT_MESSAGE_CONTENT, "the message content intent is asked for"
    assert rig.adapter.client is not None and rig.adapter.client.user is not None
    assert rig.adapter.client.user.id == int(BOT_USER_ID)
    assert "as @switchboard" in rig.adapter.describe()
    # discord.py's gateway address came from the fake API's GET /gateway/bot answer.
    assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == fake.gateway_url


async def test_the_slash_command_is_registered_in_the_configured_guild(rig: DiscordRig) -> None:
    await wait_for(lambda: rig.fake.command_syncs)
    sync = rig.fake.command_syncs[0]
    assert sync["guild_id"] == GUILD
    (command,) = sync["commands"]
    assert command["name"] == "sb"
    assert [o["name"] for o in command["options"]] == ["text"]


async def test_heartbeats_keep_flowing_while_the_bot_works(rig: DiscordRig, inbox: Inbox) -> None:
    before = rig.fake.heartbeats
    for n in range(5):
        await rig.fake.dispatch("MESSAGE_CREATE", rig.fake.message(CHANNEL, rig.user("ann"), f"busy {n}"))
        await inbox.next()
    await wait_for(lambda: rig.fake.heartbeats >= before + 3, within=5)
    assert rig.adapter.client is not None and rig.adapter.client.latency < 1.0


# -- inbound ---------------------------------------------------------------------------------------


async def test_a_mention_becomes_an_event_and_the_answer_replies_to_it(rig: DiscordRig, inbox: Inbox) -> None:
    ann = rig.user("ann")
    payload = rig.fake.message(QUIET, ann, f"{MENTION} deploy **now**", mentions=[rig.fake.bot])
    await rig.fake.dispatch("MESSAGE_CREATE", payload)
    event = await inbox.next()
    assert event.id == f"discord:{payload['id']}"
    assert event.kind is EventKind.MESSAGE
    assert event.text == "deploy **now**"
    assert event.mentioned
    assert (event.conversation.space, event.conversation.room, event.conversation.thread) == (GUILD, QUIET, "")
    assert (event.sender.id, event.sender.name, event.sender.is_bot) == (ann["id"], "Ann", False)
    assert event.raw["content"] == f"{MENTION} deploy **now**"

    await wait_for(lambda: rig.fake.typing == [QUIET])  # "switchboard is typing…" while the flow runs

    await rig.bus.send(Reply(conversation=event.conversation, text="Deployed __prod__.", in_reply_to=event.id))
    sent = await sent_where(rig.fake, lambda m: "Deployed" in m.content)
    assert sent.channel_id == QUIET
    assert sent.content == "Deployed **prod**."
    assert sent.message_reference is not None and str(sent.message_reference["message_id"]) == payload["id"]


async def test_mentioning_the_bots_role_counts_as_mentioning_the_bot(rig: DiscordRig, inbox: Inbox) -> None:
    role = bot_role_id(GUILD)
    payload = rig.fake.message(QUIET, rig.user("ann"), f"<@&{role}> what's up", mention_roles=[role])
    await rig.fake.dispatch("MESSAGE_CREATE", payload)
    event = await inbox.next()
    assert event.mentioned and event.text == "what's up"


async def test_chatter_in_a_channel_the_bot_only_watches_for_mentions_is_not_taken(
    rig: DiscordRig, inbox: Inbox
) -> None:
    ann = rig.user("ann")
    await rig.fake.dispatch("MESSAGE_CREATE", rig.fake.message(QUIET, ann, "just chatting"))
    await rig.fake.dispatch("MESSAGE_CREATE", rig.fake.message(QUIET, ann, "/sb status"))
    event = await inbox.next()
    assert event.kind is EventKind.COMMAND and event.command is not None and event.command.name == "status"
    assert not event.mentioned
    assert rig.fake.typing == []  # only a message addressed to the bot gets "typing…"


async def test_a_reply_to_the_bot_counts_as_addressing_it(rig: DiscordRig, inbox: Inbox) -> None:
    first = rig.fake.message(QUIET, rig.user("ann"), f"{MENTION} hi", mentions=[rig.fake.bot])
    await rig.fake.dispatch("MESSAGE_CREATE", first)
    event = await inbox.next()
    await rig.bus.send(Reply(conversation=event.conversation, text="hello!", in_reply_to=event.id))
    bots_message = await sent_where(rig.fake, lambda m: m.content == "hello!")
    follow_up = rig.fake.message(QUIET, rig.user("ann"), "and another thing", reference=bots_message)
    await rig.fake.dispatch("MESSAGE_CREATE", follow_up)
    event = await inbox.next()
    assert event.text == "and another thing" and event.mentioned
    assert event.reply_to == bots_message.id


async def test_a_direct_message_is_always_for_the_bot_and_is_answered_in_the_dm(rig: DiscordRig, inbox: Inbox) -> None:
    await rig.fake.dispatch("MESSAGE_CREATE", rig.fake.message(DM, rig.user("bob"), "psst"))
    event = await inbox.next()
    assert event.mentioned and event.text == "psst"
    assert (event.conversation.space, event.conversation.room) == ("@me", DM)
    await rig.bus.send(Reply(conversation=event.conversation, text="hi bob", in_reply_to=event.id))
    sent = await sent_where(rig.fake, lambda m: m.content == "hi bob")
    assert sent.channel_id == DM
    assert sent.message_reference is None  # quoting in a one-to-one chat is noise


async def test_a_thread_is_its_own_conversation_and_answers_stay_in_it(rig: DiscordRig, inbox: Inbox) -> None:
    payload = rig.fake.message(THREAD, rig.user("ann"), f"{MENTION} in the thread", mentions=[rig.fake.bot])
    await rig.fake.dispatch("MESSAGE_CREATE", payload)
    event = await inbox.next()
    assert (event.conversation.room, event.conversation.thread) == (CHANNEL, THREAD)
    await rig.bus.send(Reply(conversation=event.conversation, text="threaded", in_reply_to=event.id))
    await rig.bus.send(Reply(conversation=event.conversation, text="broadcast", in_reply_to=event.id, in_thread=False))
    assert (await sent_where(rig.fake, lambda m: m.content == "threaded")).channel_id == THREAD
    broadcast = await sent_where(rig.fake, lambda m: m.content == "broadcast")
    assert broadcast.channel_id == CHANNEL
    assert broadcast.message_reference is None  # the answered message is in the thread, not here


async def test_the_bots_own_messages_and_other_bots_are_ignored(rig: DiscordRig, inbox: Inbox) -> None:
    other_bot = user_payload("1400000000000000001", "otherbot", bot=True)
    await rig.fake.dispatch("MESSAGE_CREATE", rig.fake.message(CHANNEL, rig.fake.bot, "my own echo"))
    await rig.fake.dispatch("MESSAGE_CREATE", rig.fake.message(CHANNEL, other_bot, "beep"))
    await rig.fake.dispatch("MESSAGE_CREATE", rig.fake.message(CHANNEL, rig.user("ann"), "a person"))
    event = await inbox.next()
    assert event.text == "a person"


async def test_attachments_are_listed_on_the_event(rig: DiscordRig, inbox: Inbox) -> None:
    attachment = {
        "id": "1500000000000000001",
        "filename": "report.pdf",
        "size": 1234,
        "url": "https://cdn.example/report.pdf",
        "proxy_url": "https://media.example/report.pdf",
        "content_type": "application/pdf",
    }
    await rig.fake.dispatch(
        "MESSAGE_CREATE", rig.fake.message(CHANNEL, rig.user("ann"), "see attached", attachments=[attachment])
    )
    event = await inbox.next()
    (got,) = event.attachments
    assert (got.name, got.content_type, got.url, got.size) == (
        "report.pdf",
        "application/pdf",
        "https://cdn.example/report.pdf",
        1234,
    )


async def test_a_reaction_becomes_a_reaction_event(rig: DiscordRig, inbox: Inbox) -> None:
    await rig.fake.dispatch(
        "MESSAGE_REACTION_ADD", rig.fake.reaction("1600000000000000001", CHANNEL, rig.user("ann"), "👍")
    )
    event = await inbox.next()
    assert event.kind is EventKind.REACTION
    assert event.meta["reaction"] == "👍"
    assert event.reply_to == "1600000000000000001"
    assert event.mentioned  # a reaction to the bot's own message is feedback for it
    assert event.sender.id == rig.user("ann")["id"]


async def test_a_new_member_becomes_a_join_event_in_the_welcome_channel(rig: DiscordRig, inbox: Inbox) -> None:
    newcomer = rig.user("newcomer")
    await rig.fake.dispatch("GUILD_MEMBER_ADD", rig.fake.member_join(GUILD, newcomer))
    event = await inbox.next()
    assert event.kind is EventKind.JOIN
    assert event.sender.id == newcomer["id"]
    assert (event.conversation.space, event.conversation.room) == (GUILD, CHANNEL)  # the guild's system channel


# -- slash commands and buttons --------------------------------------------------------------------


async def test_a_slash_command_is_acknowledged_at_once_and_answered_in_place(rig: DiscordRig, inbox: Inbox) -> None:
    payload = rig.fake.slash_command(CHANNEL, rig.user("ann"), "remind me in 2h")
    await rig.fake.dispatch("INTERACTION_CREATE", payload)
    event = await inbox.next()
    (ack,) = rig.fake.interaction_callbacks
    assert ack["type"] == 5, "deferred with a visible 'thinking…' state"
    assert event.kind is EventKind.COMMAND
    assert event.command is not None
    assert (event.command.name, event.command.args) == ("remind", ("me", "in", "2h"))
    assert event.id == f"discord:interaction:{payload['id']}"

    await rig.bus.send(Reply(conversation=event.conversation, text="I will remind you.", in_reply_to=event.id))
    await rig.bus.send(Reply(conversation=event.conversation, text="(and a second note)", in_reply_to=event.id))
    original = await sent_where(rig.fake, lambda m: m.content == "I will remind you.")
    assert original.via == "interaction"
    followup = await sent_where(rig.fake, lambda m: m.content == "(and a second note)")
    assert followup.via == "followup"


async def test_a_slash_command_answer_can_stream_into_the_original_response(rig: DiscordRig, inbox: Inbox) -> None:
    await rig.fake.dispatch("INTERACTION_CREATE", rig.fake.slash_command(CHANNEL, rig.user("ann"), "summarize"))
    event = await inbox.next()
    first = Reply(conversation=event.conversation, text="Summary:", partial=True, in_reply_to=event.id)
    await rig.bus.send(first)
    await rig.bus.send(Reply(conversation=event.conversation, text="Summary: all good.", edit_of=first.id))
    await rig.bus.send(Reply.turn_end(event))
    original = await sent_where(rig.fake, lambda m: m.content == "Summary: all good.")
    assert original.via == "interaction" and original.edits >= 1
    await asyncio.sleep(0.1)
    assert rig.fake.deleted == [], "an answered slash command keeps its answer"


async def test_a_slash_command_the_flow_never_answers_does_not_spin_forever(rig: DiscordRig, inbox: Inbox) -> None:
    await rig.fake.dispatch("INTERACTION_CREATE", rig.fake.slash_command(CHANNEL, rig.user("ann"), "noop"))
    event = await inbox.next()
    await rig.bus.send(Reply.turn_end(event))
    await wait_for(lambda: "@original" in rig.fake.deleted)


async def test_buttons_render_natively_and_a_click_becomes_an_action(rig: DiscordRig, inbox: Inbox) -> None:
    await rig.fake.dispatch("MESSAGE_CREATE", rig.fake.message(CHANNEL, rig.user("ann"), "deploy?"))
    event = await inbox.next()
    long_value = "approve:" + "x" * 150  # longer than a custom_id may be
    buttons = (Button("Approve", long_value, "primary"), Button("Deny", "no", "danger"))
    await rig.bus.send(Reply(conversation=event.conversation, text="Deploy to prod?", buttons=buttons))
    message = await sent_where(rig.fake, lambda m: m.content == "Deploy to prod?")
    assert message.button_labels == ["Approve", "Deny"]
    styles = [c["style"] for row in message.components for c in row["components"]]
    assert styles == [discord.ButtonStyle.primary.value, discord.ButtonStyle.danger.value]
    assert all(len(cid) <= 100 for cid in message.custom_ids)

    for custom_id, value in zip(message.custom_ids, (long_value, "no"), strict=True):
        await rig.fake.dispatch("INTERACTION_CREATE", rig.fake.button_click(message, rig.user("bob"), custom_id))
        action = await inbox.next()
        assert action.kind is EventKind.ACTION
        assert action.meta["action"] == value
        assert action.reply_to == message.id
        assert action.sender.id == rig.user("bob")["id"]
        assert action.conversation.room == CHANNEL
    assert [c["type"] for c in rig.fake.interaction_callbacks] == [6, 6], "each click acknowledged at once"


async def test_more_buttons_than_discord_allows_degrade_to_a_numbered_list(rig: DiscordRig, inbox: Inbox) -> None:
    await rig.fake.dispatch("MESSAGE_CREATE", rig.fake.message(CHANNEL, rig.user("ann"), "pick"))
    event = await inbox.next()
    buttons = tuple(Button(f"Option {i}", str(i)) for i in range(1, 31))
    await rig.bus.send(Reply(conversation=event.conversation, text="Choose one", buttons=buttons))
    message = await sent_where(rig.fake, lambda m: m.content.startswith("Choose one"))
    assert not message.components
    assert "30. Option 30" in message.content


# -- outbound --------------------------------------------------------------------------------------


async def test_files_are_uploaded_as_attachments(rig: DiscordRig, inbox: Inbox) -> None:
    await rig.fake.dispatch("MESSAGE_CREATE", rig.fake.message(CHANNEL, rig.user("ann"), "export"))
    event = await inbox.next()
    csv = FileOut("export.csv", "text/csv", data_b64=base64.b64encode(b"a,b\n1,2\n").decode())
    link = FileOut("dashboard", url="https://example.com/d/1")
    await rig.bus.send(Reply(conversation=event.conversation, text="Here it is", files=(csv, link)))
    message = await sent_where(rig.fake, lambda m: m.content.startswith("Here it is"))
    assert message.attachments == [{"name": "export.csv", "size": 8}]
    assert "[dashboard](https://example.com/d/1)" in message.content


async def test_streaming_edits_one_message_about_once_a_second_and_always_shows_the_end(
    rig: DiscordRig, inbox: Inbox
) -> None:
    await rig.fake.dispatch("MESSAGE_CREATE", rig.fake.message(CHANNEL, rig.user("ann"), "tell me a story"))
    event = await inbox.next()
    first = Reply(conversation=event.conversation, text="Once", partial=True, in_reply_to=event.id)
    await rig.bus.send(first)
    words = "Once upon a time there was a bot that never flooded its channel".split()
    for n in range(2, len(words) + 1):
        text = " ".join(words[:n])
        await rig.bus.send(Reply(conversation=event.conversation, text=text, partial=True, edit_of=first.id))
        await asyncio.sleep(0.12)
    final_text = " ".join(words) + "."
    await rig.bus.send(Reply(conversation=event.conversation, text=final_text, edit_of=first.id))
    await wait_for(lambda: any(m.content == final_text for m in rig.fake.sent))
    assert len(rig.fake.sent) == 1
    patches = [r.at for r in rig.fake.requests if r.method == "PATCH"]
    assert 1 <= len(patches) <= 4, f"{len(words) - 1} updates in ~1.4 s became {len(patches)} edits"
    gaps = [b - a for a, b in itertools.pairwise(patches)]
    assert all(gap >= 0.8 for gap in gaps[:-1]), gaps  # only the final edit may come sooner


async def test_a_streamed_answer_gets_its_buttons_when_it_is_complete(rig: DiscordRig, inbox: Inbox) -> None:
    await rig.fake.dispatch("MESSAGE_CREATE", rig.fake.message(CHANNEL, rig.user("ann"), "plan it"))
    event = await inbox.next()
    first = Reply(conversation=event.conversation, text="Plan: ...", partial=True)
    await rig.bus.send(first)
    done = Reply(
        conversation=event.conversation,
        text="Plan: ship it.",
        edit_of=first.id,
        buttons=(Button("Go", "go", "primary"), Button("Wait", "wait")),
    )
    await rig.bus.send(done)
    message = await sent_where(rig.fake, lambda m: m.content == "Plan: ship it.")
    await wait_for(lambda: message.button_labels == ["Go", "Wait"])
    assert len(rig.fake.sent) == 1


async def test_a_rate_limited_final_edit_is_waited_out_and_shown(rig: DiscordRig, inbox: Inbox) -> None:
    await rig.fake.dispatch("MESSAGE_CREATE", rig.fake.message(CHANNEL, rig.user("ann"), "go"))
    event = await inbox.next()
    first = Reply(conversation=event.conversation, text="thinking", partial=True)
    await rig.bus.send(first)
    await sent_where(rig.fake, lambda m: m.content == "thinking")
    rig.fake.fail_next("PATCH", f"/channels/{CHANNEL}/messages/", status=429, retry_after=0.4)
    started = time.monotonic()
    await rig.bus.send(Reply(conversation=event.conversation, text="the answer", edit_of=first.id))
    await sent_where(rig.fake, lambda m: m.content == "the answer")
    assert time.monotonic() - started >= 0.35
    assert len(rig.fake.sent) == 1


async def test_an_edit_of_a_message_no_longer_remembered_is_sent_anew(rig: DiscordRig, inbox: Inbox) -> None:
    await rig.fake.dispatch("MESSAGE_CREATE", rig.fake.message(CHANNEL, rig.user("ann"), "after a restart"))
    event = await inbox.next()
    await rig.bus.send(Reply(conversation=event.conversation, text="the final text", edit_of="unknown-reply-id"))
    assert (await sent_where(rig.fake, lambda m: m.content == "the final text")).edits == 0


async def test_a_stream_that_outgrows_one_message_continues_in_the_next(rig: DiscordRig, inbox: Inbox) -> None:
    await rig.fake.dispatch("MESSAGE_CREATE", rig.fake.message(CHANNEL, rig.user("ann"), "long one"))
    event = await inbox.next()
    first = Reply(conversation=event.conversation, text="start", partial=True)
    await rig.bus.send(first)
    final_text = "\n\n".join(f"paragraph {i} " + "lorem " * 80 for i in range(8))
    await rig.bus.send(Reply(conversation=event.conversation, text=final_text, edit_of=first.id))
    await wait_for(lambda: sum(len(m.content) for m in rig.fake.sent) >= len(final_text) * 0.95)
    assert len(rig.fake.sent) >= 2
    assert all(len(m.content) <= 2000 for m in rig.fake.sent)
    assert " ".join(m.content for m in rig.fake.sent).split() == final_text.split()


async def test_a_429_without_a_via_header_is_still_waited_out_and_delivered(rig: DiscordRig, inbox: Inbox) -> None:
    # discord.py treats such a 429 (a proxy's, or Cloudflare's) as fatal; the adapter retries it.
    await rig.fake.dispatch("MESSAGE_CREATE", rig.fake.message(CHANNEL, rig.user("ann"), "hello"))
    event = await inbox.next()
    rig.fake.fail_next("POST", f"/channels/{CHANNEL}/messages", status=429, retry_after=0.5, via=False)
    started = time.monotonic()
    await rig.bus.send(Reply(conversation=event.conversation, text="after the wait"))
    await sent_where(rig.fake, lambda m: m.content == "after the wait")
    assert time.monotonic() - started >= 0.45
    assert [m.content for m in rig.fake.sent].count("after the wait") == 1


async def test_a_send_retried_after_a_lost_answer_is_posted_once(rig: DiscordRig, inbox: Inbox) -> None:
    await rig.fake.dispatch("MESSAGE_CREATE", rig.fake.message(CHANNEL, rig.user("ann"), "hello"))
    event = await inbox.next()
    rig.fake.fail_next("POST", f"/channels/{CHANNEL}/messages", status=502, after_commit=True)
    await rig.bus.send(Reply(conversation=event.conversation, text="exactly once"))
    await wait_for(lambda: len([r for r in rig.fake.requests if r.method == "POST"]) >= 2)
    await asyncio.sleep(0.1)
    assert [m.content for m in rig.fake.sent].count("exactly once") == 1


async def test_model_output_cannot_ping_everyone(rig: DiscordRig, inbox: Inbox) -> None:
    await rig.fake.dispatch("MESSAGE_CREATE", rig.fake.message(CHANNEL, rig.user("ann"), "hello"))
    event = await inbox.next()
    await rig.bus.send(Reply(conversation=event.conversation, text="@everyone look"))
    await sent_where(rig.fake, lambda m: m.content == "@everyone look")
    (post,) = [r for r in rig.fake.requests if r.method == "POST"]
    assert post.body["allowed_mentions"]["parse"] == ["users"]


async def test_turn_end_replies_are_not_rendered(rig: DiscordRig, inbox: Inbox) -> None:
    await rig.fake.dispatch("MESSAGE_CREATE", rig.fake.message(CHANNEL, rig.user("ann"), "hello"))
    event = await inbox.next()
    assert await rig.adapter.send(Reply(conversation=event.conversation, kind=ReplyKind.TURN_END)) == ""
    assert rig.fake.sent == []


# -- resilience ------------------------------------------------------------------------------------


async def test_after_a_dropped_gateway_the_bot_resumes_and_a_replayed_message_runs_once(
    rig: DiscordRig, inbox: Inbox
) -> None:
    payload = rig.fake.message(CHANNEL, rig.user("ann"), "before the drop")
    await rig.fake.dispatch("MESSAGE_CREATE", payload)
    assert (await inbox.next()).text == "before the drop"
    resumes = len(rig.fake.resumes)
    await rig.fake.drop_connections(4000)
    await wait_for(lambda: len(rig.fake.resumes) > resumes and rig.fake.sessions, within=15)
    await rig.fake.dispatch("MESSAGE_CREATE", payload)  # Discord replays what we may have missed
    await rig.fake.dispatch("MESSAGE_CREATE", rig.fake.message(CHANNEL, rig.user("ann"), "after the drop"))
    assert (await inbox.next()).text == "after the drop"
    assert inbox.queue.empty()


async def test_health_reports_the_live_gateway(rig: DiscordRig) -> None:
    health = await rig.adapter.health()
    assert health["ok"] and health["bot"] == "switchboard"


class JitteryBus(MemoryBus):
    """A bus whose publish takes a random while, like one that writes a journal or talks to Redis."""

    async def publish(self, event: Event) -> bool:
        await asyncio.sleep(random.uniform(0, 0.01))
        return await super().publish(event)


async def test_a_conversations_messages_reach_the_bus_in_the_order_they_were_sent() -> None:
    async with FakeDiscord() as fake:
        default_guild(fake)
        rig = await start_rig(fake, {"listen_channels": [int(CHANNEL)], "sync_commands": False}, bus=JitteryBus())
        try:
            got: list[str] = []
            rig.bus.consume(lambda event: _append(got, event.text))
            for n in range(30):
                await fake.dispatch("MESSAGE_CREATE", fake.message(CHANNEL, rig.user("ann"), f"step {n}"))
            await wait_for(lambda: len(got) == 30)
            assert got == [f"step {n}" for n in range(30)]
        finally:
            await rig.close()


async def _append(items: list[str], item: str) -> None:
    items.append(item)


async def test_a_refused_token_stops_the_adapter_with_the_reason() -> None:
    async with FakeDiscord() as fake:
        adapter = create({}, {"DISCORD_BOT_TOKEN": "not.the.token", "DISCORD_API_URL": fake.api_url})
        await adapter.start(AdapterContext(bus=MemoryBus()))
        try:
            await wait_for(lambda: adapter.failure)
            assert "DISCORD_BOT_TOKEN was refused" in adapter.failure
            assert not fake.identifies
            assert (await adapter.health())["ok"] is False
        finally:
            await adapter.stop()


async def test_a_missing_privileged_intent_is_reported_with_the_fix() -> None:
    async with FakeDiscord() as fake:
        default_guild(fake)
        fake.close_code_on_identify = 4014
        adapter = create({"sync_commands": False}, {"DISCORD_BOT_TOKEN": BOT_TOKEN, "DISCORD_API_URL": fake.api_url})
        await adapter.start(AdapterContext(bus=MemoryBus()))
        try:
            await wait_for(lambda: adapter.failure)
            assert "MESSAGE CONTENT INTENT" in adapter.failure
        finally:
            await adapter.stop()


async def test_stopping_puts_discord_pys_process_wide_endpoints_back() -> None:
    before = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    async with FakeDiscord() as fake:
        default_guild(fake)
        rig = await start_rig(fake, {"sync_commands": False})
        assert discord.http.Route.BASE == fake.api_url
        assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == fake.gateway_url
        await rig.close()
        await rig.adapter.stop()  # twice is safe
    assert (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == before


async def test_a_payload_discord_py_cannot_parse_does_not_take_the_bot_offline(rig: DiscordRig, inbox: Inbox) -> None:
    broken = rig.fake.slash_command(CHANNEL, rig.user("ann"), "x")
    del broken["attachment_size_limit"]
    identifies = len(rig.fake.identifies)
    await rig.fake.dispatch("INTERACTION_CREATE", broken)
    await wait_for(lambda: len(rig.fake.identifies) > identifies, within=15)
    await asyncio.wait_for(rig.adapter.connected.wait(), 15)
    await rig.fake.dispatch("MESSAGE_CREATE", rig.fake.message(CHANNEL, rig.user("ann"), "still here?"))
    assert (await inbox.next()).text == "still here?"


# -- configuration ---------------------------------------------------------------------------------


def test_the_registry_builds_this_adapter_from_the_token_alone() -> None:
    (entry,) = [e for e in ADAPTERS if e.name == "discord"]
    assert entry.switches == (("DISCORD_BOT_TOKEN",),)
    adapter = importlib.import_module(entry.module).create({}, {"DISCORD_BOT_TOKEN": BOT_TOKEN})
    assert isinstance(adapter, DiscordAdapter)
    assert adapter.options.respond_to is RespondTo.MENTIONS
    assert adapter.options.api_url == ""


@pytest.mark.parametrize(
    ("options", "env", "message"),
    [
        ({}, {}, "set DISCORD_BOT_TOKEN"),
        ({}, {"DISCORD_BOT_TOKEN": f"Bot {BOT_TOKEN}"}, "without the 'Bot ' prefix"),
        ({"token": "x"}, {"DISCORD_BOT_TOKEN": BOT_TOKEN}, "belongs in the DISCORD_BOT_TOKEN environment"),
        ({"respond_to": "everything"}, {"DISCORD_BOT_TOKEN": BOT_TOKEN}, "respond_to must be one of"),
        ({"guilds": ["my-server"]}, {"DISCORD_BOT_TOKEN": BOT_TOKEN}, "'my-server' is not a Discord id"),
        ({"colour": "blue"}, {"DISCORD_BOT_TOKEN": BOT_TOKEN}, "unknown option(s) adapters.discord.colour"),
        ({"edit_interval": 0}, {"DISCORD_BOT_TOKEN": BOT_TOKEN}, "edit_interval must be"),
        ({}, {"DISCORD_BOT_TOKEN": BOT_TOKEN, "DISCORD_API_URL": "localhost:9000"}, "must start with http"),
        ({"slash_command": "Switch Board"}, {"DISCORD_BOT_TOKEN": BOT_TOKEN}, "not a valid Discord command name"),
    ],
)
def test_misconfiguration_is_refused_with_the_fix(options: dict, env: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        create(options, env)


def test_the_api_url_gets_discords_version_and_guilds_come_from_the_environment() -> None:
    adapter = create(
        {},
        {
            "DISCORD_BOT_TOKEN": BOT_TOKEN,
            "DISCORD_API_URL": "http://127.0.0.1:9000/api/",
            "DISCORD_GUILDS": f"{GUILD}, 42",
        },
    )
    assert adapter.options.api_url == "http://127.0.0.1:9000/api/v10"
    assert adapter.options.guilds == (int(GUILD), 42)
    assert create({"api_url": "https://proxy.example/api/v9"}, {"DISCORD_BOT_TOKEN": BOT_TOKEN}).options.api_url == (
        "https://proxy.example/api/v9"
    )


def test_describe_says_how_the_bot_is_connected() -> None:
    adapter = create({"guilds": [1, 2], "message_content": False}, {"DISCORD_BOT_TOKEN": BOT_TOKEN})
    assert adapter.describe() == "gateway; /sb in guilds 1, 2; mentions and DMs only"


async def test_a_reply_for_an_adapter_that_gave_up_fails_with_the_reason() -> None:
    adapter = create({}, {"DISCORD_BOT_TOKEN": BOT_TOKEN})
    adapter.failure = "DISCORD_BOT_TOKEN was refused"
    with pytest.raises(RuntimeError, match="refused"):
        await adapter.send(Reply(conversation=ConversationRef("discord", room=CHANNEL), text="hi"))


# -- markdown ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "discord_text"),
    [
        ("__bold__ and **bold**", "**bold** and **bold**"),
        ("snake_case_name and a__b__c", "snake_case_name and a__b__c"),
        ("#### Deep heading", "**Deep heading**"),
        ("## Kept heading", "## Kept heading"),
        ("see ![chart](https://x.example/c.png)", "see [chart](https://x.example/c.png)"),
        ("one<br>two", "one\ntwo"),
        ("`__not bold__` but __bold__", "`__not bold__` but **bold**"),
        ("```\n__inside a fence__\n```", "```\n__inside a fence__\n```"),
        ("| a | b |\n|---|---|\n| 1 | 2 |\nafter", "```\n| a | b |\n|---|---|\n| 1 | 2 |\n```\nafter"),
    ],
)
def test_markdown_is_rendered_in_discords_dialect(markdown: str, discord_text: str) -> None:
    assert to_discord(markdown) == discord_text


# -- end to end: the whole app behind Discord ----------------------------------------------------------


@pytest.fixture(scope="module")
async def app_on_discord(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[App, FakeDiscord, FakeOpenAI]]:
    """`switchboard run`'s App, switched onto Discord by the environment alone."""
    importlib.import_module("litellm")  # ~5 s the first time: paid here, not inside the first answer
    async with FakeDiscord() as fake, FakeOpenAI() as llm:
        default_guild(fake)
        config = make_config(database_url, tmp_path_factory.mktemp("data"), llm_base_url=llm.base_url)
        with pytest.MonkeyPatch.context() as env:
            env.setenv("DISCORD_BOT_TOKEN", BOT_TOKEN)
            env.setenv("DISCORD_API_URL", fake.api_url)
            env.setenv("DISCORD_GUILDS", GUILD)
            application = App(config)
            await application.start()
            try:
                yield application, fake, llm
            finally:
                await application.stop()


@pytest.mark.slow
async def test_the_app_answers_a_mention_through_its_default_flow(
    app_on_discord: tuple[App, FakeDiscord, FakeOpenAI],
) -> None:
    application, fake, llm = app_on_discord
    (status,) = [s for s in application.statuses if s.name == "discord"]
    assert status.live, status.detail
    await fake.wait_connected()
    llm.script(Text("Four, says the **model**."))
    question = fake.message(QUIET, user_payload("1700000000000000001", "ann"), f"{MENTION} what is 2+2?")
    question["mentions"] = [fake.bot]
    await fake.dispatch("MESSAGE_CREATE", question)
    answer = await sent_where(fake, lambda m: m.content == "Four, says the **model**.", within=30)
    assert answer.channel_id == QUIET
    assert answer.message_reference is not None and str(answer.message_reference["message_id"]) == question["id"]
    assert llm.requests[-1]["messages"][-1]["content"] == "what is 2+2?"


@pytest.mark.slow
async def test_the_app_answers_the_slash_command_in_place(app_on_discord: tuple[App, FakeDiscord, FakeOpenAI]) -> None:
    _application, fake, _llm = app_on_discord
    await fake.wait_connected()
    await fake.dispatch(
        "INTERACTION_CREATE", fake.slash_command(CHANNEL, user_payload("1700000000000000001", "ann"), "help")
    )
    answer = await sent_where(fake, lambda m: m.via == "interaction", within=30)
    assert answer.content and answer.content != "…"
