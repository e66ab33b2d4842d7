"""The Slack adapter behaves like a native Slack bot, through slack-bolt and slack_sdk's real code
paths against a local fake of Slack (Web API, Socket Mode websocket, signed Events API deliveries)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx
import pytest

from adapters.base import AdapterContext
from adapters.registry import discover
from adapters.slack import SlackAdapter, SlackMode, create
from adapters.slack.inbound import ChannelMessages, Inbound, InboundPolicy, plain_text
from adapters.slack.mrkdwn import to_mrkdwn
from bot.bus.memory import MemoryBus
from bot.events import Button, ConversationRef, Event, EventKind, FileOut, Reply
from bot.server import HttpServer
from tests.fakes.slack import FakeSlack, PostedMessage, SlackDelivery, signature

SECRET = "test-signing-secret"


@dataclass
class Running:
    """One started adapter with its own bus; `events` collects what it published."""

    adapter: SlackAdapter
    bus: MemoryBus
    events: list[Event] = field(default_factory=list)
    pump: asyncio.Task[None] | None = None

    def on_event(self, respond: Callable[[Event], Reply | None] | None = None) -> None:
        async def handler(event: Event) -> None:
            self.events.append(event)
            reply = respond(event) if respond else None
            if reply is not None:
                await self.bus.send(reply)

        self.events.clear()
        self.bus.consume(handler)

    async def wait_events(self, count: int, within: float = 5.0) -> list[Event]:
        deadline = time.monotonic() + within
        while len(self.events) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} events, got {self.events!r}")
            await asyncio.sleep(0.02)
        return self.events


async def _start(env: dict[str, str], options: dict, server: HttpServer | None) -> Running:
    adapter = create(options, env)
    bus = MemoryBus()
    await bus.start()
    await adapter.start(AdapterContext(bus=bus, server=server, command_prefix="/sb"))
    running = Running(adapter, bus)
    running.pump = asyncio.create_task(adapter.deliver_forever(bus))
    return running


async def _close(running: Running) -> None:
    await running.adapter.stop()
    await running.bus.stop(drain_timeout=1)
    assert running.pump is not None
    running.pump.cancel()
    await asyncio.gather(running.pump, return_exceptions=True)


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeSlack]:
    slack = FakeSlack()
    await slack.start()
    yield slack
    await slack.stop()


@pytest.fixture(scope="module")
async def http(fake: FakeSlack) -> AsyncIterator[tuple[Running, SlackDelivery]]:
    """HTTP Events API mode on a real HttpServer, answering only mentions in channels (the default)."""
    server = HttpServer("127.0.0.1", 0)
    env = {"SLACK_BOT_TOKEN": fake.bot_token, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake.api_url}
    running = await _start(env, {"edit_interval": 1.0}, server)
    await server.start()
    await asyncio.wait_for(running.adapter.connected.wait(), 5)
    yield running, SlackDelivery(f"{server.url}/slack/events", SECRET)
    await _close(running)
    await server.stop()


@pytest.fixture(scope="module")
async def socket(fake: FakeSlack) -> AsyncIterator[Running]:
    """Socket Mode: the SDK follows apps.connections.open to the fake's websocket."""
    env = {"SLACK_BOT_TOKEN": fake.bot_token, "SLACK_APP_TOKEN": fake.app_token, "SLACK_API_URL": fake.api_url}
    running = await _start(env, {"ping_interval": 1.0}, None)
    await asyncio.wait_for(running.adapter.connected.wait(), 5)
    yield running
    await _close(running)


@pytest.fixture(autouse=True)
def _clean(fake: FakeSlack) -> None:
    fake.reset()


async def _wait_messages(fake: FakeSlack, predicate: Callable[[list[PostedMessage]], bool],
                         within: float = 8.0) -> list[PostedMessage]:
    deadline = time.monotonic() + within
    while not predicate(fake.messages):
        if time.monotonic() > deadline:
            raise AssertionError(f"the fake never got the expected messages; it has {fake.messages!r}")
        await asyncio.sleep(0.02)
    return fake.messages


def _answer(text: str, **kw: object) -> Callable[[Event], Reply]:
    return lambda e: Reply(conversation=e.conversation, text=text, in_reply_to=e.id, **kw)  # type: ignore[arg-type]


# -- HTTP Events API --------------------------------------------------------------------------------


async def test_a_mention_is_answered_in_its_thread_in_slack_formatting(http, fake: FakeSlack) -> None:
    running, deliver = http
    running.on_event(_answer("**Done**: see [the docs](https://docs.example/a?b=1&c=2)"))
    mention = fake.message(f"<@{fake.bot_user_id}> what's **up** & why?", kind="app_mention")
    response = await deliver.event(fake.event_body(mention))
    assert response.status_code == 200
    (event,) = await running.wait_events(1)
    assert event.kind is EventKind.MESSAGE and event.mentioned
    assert event.text == "what's **up** & why?"
    assert event.sender.id == "U1" and event.sender.name == "Ada" and not event.sender.is_bot
    assert event.conversation == ConversationRef("slack", "C0GENERAL", fake.team_id, mention["ts"])
    assert event.id == f"slack:{fake.team_id}:C0GENERAL:{mention['ts']}"
    assert event.raw["event"]["text"] == mention["text"] and "token" not in event.raw  # no credentials
    (reply,) = await _wait_messages(fake, lambda m: len(m) == 1)
    assert reply.channel == "C0GENERAL" and reply.thread_ts == mention["ts"]
    assert reply.sections == ["*Done*: see <https://docs.example/a?b=1&amp;c=2|the docs>"]


async def test_a_mention_delivered_as_message_and_app_mention_runs_once(http, fake: FakeSlack) -> None:
    running, deliver = http
    running.on_event()
    ts = fake.next_ts()
    text = f"<@{fake.bot_user_id}> status?"
    await deliver.event(fake.event_body(fake.message(text, ts=ts)))
    await deliver.event(fake.event_body(fake.message(text, ts=ts, kind="app_mention")))
    await running.wait_events(1)
    await asyncio.sleep(0.2)
    assert len(running.events) == 1 and running.events[0].mentioned


async def test_channel_chatter_is_ignored_but_replies_in_the_bots_thread_are_not(http, fake: FakeSlack) -> None:
    running, deliver = http
    running.on_event(_answer("on it"))
    assert (await deliver.event(fake.event_body(fake.message("lunch anyone?")))).status_code == 200
    await asyncio.sleep(0.2)
    assert running.events == []
    root = fake.message(f"<@{fake.bot_user_id}> deploy please")
    await deliver.event(fake.event_body(root))
    await _wait_messages(fake, lambda m: len(m) == 1)
    follow_up = fake.message("and the worker too", thread_ts=root["ts"])
    await deliver.event(fake.event_body(follow_up))
    events = await running.wait_events(2)
    assert events[1].mentioned and events[1].conversation == events[0].conversation
    assert events[1].reply_to == root["ts"]
    replies = await _wait_messages(fake, lambda m: len(m) == 2)
    assert [m.thread_ts for m in replies] == [root["ts"], root["ts"]]


async def test_a_dm_is_answered_in_the_dm_without_a_thread(http, fake: FakeSlack) -> None:
    running, deliver = http
    running.on_event(_answer("hi Ada"))
    await deliver.event(fake.event_body(fake.message("hello", channel="D0ADA", channel_type="im")))
    (event,) = await running.wait_events(1)
    assert event.mentioned and event.conversation.thread == ""
    (reply,) = await _wait_messages(fake, lambda m: len(m) == 1)
    assert reply.channel == "D0ADA" and reply.thread_ts == "" and reply.sections == ["hi Ada"]


async def test_the_bots_own_and_other_bots_messages_are_ignored(http, fake: FakeSlack) -> None:
    running, deliver = http
    running.on_event()
    own = fake.message("I said this", channel="D0ADA", channel_type="im", user=fake.bot_user_id, bot_id=fake.bot_id)
    other = fake.message("beep", channel="D0ADA", channel_type="im", user="U0OTHERBOT", bot_id="B0OTHER")
    edit = fake.message("edited", channel="D0ADA", channel_type="im", subtype="message_changed")
    for event in (own, other, edit):
        assert (await deliver.event(fake.event_body(event))).status_code == 200
    await asyncio.sleep(0.2)
    assert running.events == []


@pytest.mark.parametrize("forgery", ["wrong secret", "stale timestamp", "unsigned", "body altered"])
async def test_a_forged_or_stale_request_gets_401_and_nothing_runs(http, fake: FakeSlack, forgery: str) -> None:
    running, deliver = http
    running.on_event(_answer("should never be sent"))
    body = fake.event_body(fake.message("hi", channel="D0ADA", channel_type="im"))
    if forgery == "wrong secret":
        response = await deliver.event(body, secret="not-the-secret")
    elif forgery == "stale timestamp":
        response = await deliver.event(body, timestamp=int(time.time()) - 10 * 60)
    elif forgery == "unsigned":
        response = await deliver.event(body, sign=False)
    else:
        raw = json.dumps(body).encode()
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": ts,
                   "X-Slack-Signature": signature(SECRET, ts, raw)}
        response = await deliver.post(raw.replace(b'"hi"', b'"rm -rf"'), headers, sign=False)
    assert response.status_code == 401
    await asyncio.sleep(0.2)
    assert running.events == []
    assert fake.calls_to("chat.postMessage") == []


async def test_a_redelivered_event_runs_once(http, fake: FakeSlack) -> None:
    running, deliver = http
    running.on_event(_answer("once"))
    body = fake.event_body(fake.message(f"<@{fake.bot_user_id}> run the report"))
    first = await deliver.event(body)
    again = await deliver.event(body, retry_num=1)
    third = await deliver.event(body, retry_num=2)
    assert [r.status_code for r in (first, again, third)] == [200, 200, 200]
    await _wait_messages(fake, lambda m: len(m) == 1)
    await asyncio.sleep(0.3)
    assert len(running.events) == 1 and len(fake.messages) == 1


async def test_a_slash_command_is_acknowledged_at_once_and_the_work_runs_after(http, fake: FakeSlack) -> None:
    running, deliver = http
    release = asyncio.Event()

    async def slow_handler(event: Event) -> None:
        running.events.append(event)
        await release.wait()  # the flow takes its time: the ack must not wait for it
        await running.bus.send(Reply(conversation=event.conversation, text="deployed `api`"))

    running.events.clear()
    running.bus.consume(slow_handler)
    started = time.monotonic()
    try:
        response = await deliver.command(fake.slash_command("deploy api --fast"))
        acked_in = time.monotonic() - started
        (event,) = await running.wait_events(1)
        posted_before_the_work_finished = len(fake.calls_to("chat.postMessage"))
    finally:
        release.set()
    assert posted_before_the_work_finished == 0
    assert response.status_code == 200 and acked_in < 3
    assert response.json()["response_type"] == "in_channel"  # Slack echoes the command into the channel
    assert event.kind is EventKind.COMMAND and event.mentioned
    assert event.command is not None and (event.command.name, event.command.args) == ("deploy", ("api", "--fast"))
    assert event.sender.name == "ada"
    assert "token" not in event.raw
    (reply,) = await _wait_messages(fake, lambda m: len(m) == 1)
    assert reply.channel == "C0GENERAL" and reply.thread_ts == "" and reply.sections == ["deployed `api`"]


async def test_a_slash_command_in_a_room_the_bot_is_not_in_is_answered_through_response_url(
    http, fake: FakeSlack
) -> None:
    running, deliver = http
    fake.members = {"C0GENERAL"}
    running.on_event(_answer("**status**: all green"))
    response = await deliver.command(fake.slash_command("status", channel="C0ELSEWHERE"))
    assert response.status_code == 200
    for _ in range(250):
        if fake.responses:
            break
        await asyncio.sleep(0.02)
    assert [r["text"] for r in fake.responses] == ["*status*: all green"]
    assert fake.responses[0]["response_type"] == "in_channel" and fake.messages == []


async def test_buttons_are_block_kit_and_a_press_becomes_an_action_event(http, fake: FakeSlack) -> None:
    running, deliver = http
    long_value = "x" * 2500  # over Slack's 2,000-character limit for a button value
    buttons = (Button("Approve", "yes", "primary"), Button("Deny", "no", "danger"), Button("Later", long_value))
    running.on_event(lambda e: None if e.kind is EventKind.ACTION else
                     Reply(conversation=e.conversation, text="Deploy to *prod*?", buttons=buttons))
    root = fake.message(f"<@{fake.bot_user_id}> deploy")
    await deliver.event(fake.event_body(root))
    (message,) = await _wait_messages(fake, lambda m: len(m) == 1)
    assert [b["text"]["text"] for b in message.buttons] == ["Approve", "Deny", "Later"]
    assert [b.get("style") for b in message.buttons] == ["primary", "danger", None]
    assert all(len(b["value"]) <= 2000 for b in message.buttons)
    for index, expected in ((0, "yes"), (2, long_value)):
        response = await deliver.action(fake.block_action(message, button=index, user="U2"))
        assert response.status_code == 200
        events = await running.wait_events(2 if index == 0 else 3)
        action = events[-1]
        assert action.kind is EventKind.ACTION and action.meta["action"] == expected
        assert action.conversation == events[0].conversation  # the thread the question was asked in
        assert action.sender.id == "U2" and action.reply_to == message.ts


async def test_a_reaction_on_the_bots_reply_is_feedback_in_that_conversation(http, fake: FakeSlack) -> None:
    running, deliver = http
    running.on_event(lambda e: _answer("here you go")(e) if e.kind is EventKind.MESSAGE else None)
    root = fake.message(f"<@{fake.bot_user_id}> summarize")
    await deliver.event(fake.event_body(root))
    (reply,) = await _wait_messages(fake, lambda m: len(m) == 1)
    await deliver.event(fake.event_body(fake.reaction(reply.ts, reaction="thumbsdown")))
    events = await running.wait_events(2)
    assert events[1].kind is EventKind.REACTION and events[1].meta["reaction"] == "thumbsdown"
    assert events[1].conversation == events[0].conversation and events[1].reply_to == reply.ts
    # Reactions on other people's messages are not the bot's business in mentions mode.
    await deliver.event(fake.event_body(fake.reaction(root["ts"], item_user="U2")))
    await asyncio.sleep(0.2)
    assert len(running.events) == 2


async def test_shared_files_become_attachments_and_joins_become_join_events(http, fake: FakeSlack) -> None:
    running, deliver = http
    running.on_event()
    files = [{"id": "F1", "name": "report.pdf", "mimetype": "application/pdf", "size": 1234,
              "url_private": "https://files.slack.com/files-pri/T0FAKE-F1/report.pdf"}]
    shared = fake.message("see attached", channel="D0ADA", channel_type="im", subtype="file_share", files=files)
    await deliver.event(fake.event_body(shared))
    joined = {"type": "member_joined_channel", "user": "U2", "channel": "C0GENERAL", "channel_type": "C",
              "team": fake.team_id, "event_ts": f"{time.time():.6f}"}
    await deliver.event(fake.event_body(joined))
    events = await running.wait_events(2)
    message = next(e for e in events if e.kind is EventKind.MESSAGE)
    (attachment,) = message.attachments
    assert (attachment.name, attachment.content_type, attachment.size) == ("report.pdf", "application/pdf", 1234)
    assert attachment.url.endswith("/report.pdf")
    join = next(e for e in events if e.kind is EventKind.JOIN)
    assert join.sender.id == "U2" and join.conversation.room == "C0GENERAL"


async def test_a_rate_limited_reply_is_retried_after_retry_after_and_still_arrives(http, fake: FakeSlack) -> None:
    running, deliver = http
    running.on_event(_answer("worth the wait"))
    fake.rate_limit("chat.postMessage", retry_after=1)
    await deliver.event(fake.event_body(fake.message("hi", channel="D0ADA", channel_type="im")))
    (reply,) = await _wait_messages(fake, lambda m: len(m) == 1)
    assert reply.sections == ["worth the wait"]
    refused, accepted = fake.calls_to("chat.postMessage")
    assert refused.status == 429 and accepted.status == 200
    assert accepted.at - refused.at >= 1.0


async def test_long_replies_split_into_3000_character_blocks_and_several_messages(http, fake: FakeSlack) -> None:
    running, deliver = http
    text = "\n\n".join(f"Paragraph {i}: " + "lorem ipsum dolor " * 40 for i in range(40))  # ~29,000 chars
    running.on_event(_answer(text))
    await deliver.event(fake.event_body(fake.message("essay", channel="D0ADA", channel_type="im")))
    messages = await _wait_messages(fake, lambda m: sum(len(s) for x in m for s in x.sections) >= len(text) * 0.95)
    assert len(messages) == 3
    assert all(len(s) <= 3000 for m in messages for s in m.sections)
    assert all(len(m.text) <= running.adapter.max_message_chars for m in messages)
    assert " ".join(s for m in messages for s in m.sections).split() == text.split()


async def test_streaming_edits_one_message_at_most_once_a_second_and_renders_the_final(http, fake: FakeSlack) -> None:
    running, _ = http
    conversation = ConversationRef("slack", "D0ADA", fake.team_id, "")
    first = Reply(conversation=conversation, text="Thinking", partial=True)
    await running.adapter.send(first)
    for i in range(1, 16):  # tokens arriving every 0.1 s for 1.5 s
        await running.adapter.send(Reply(conversation=conversation, text="Thinking" + " more" * i,
                                         edit_of=first.id, partial=True))
        await asyncio.sleep(0.1)
    final = "Thinking" + " more" * 16 + ". **Done.**"
    await running.adapter.send(Reply(conversation=conversation, text=final, edit_of=first.id))
    assert len(fake.calls_to("chat.postMessage")) == 1
    (message,) = fake.messages
    assert message.sections == [to_mrkdwn(final)]
    updates = [c.at for c in fake.calls_to("chat.update")]
    assert 1 <= len(updates) <= 4  # not 16
    # Intermediate edits are spaced by the edit interval; only the final one may follow at once.
    assert all(b - a >= 0.9 for a, b in itertools.pairwise(updates[:-1]))
    await asyncio.sleep(1.2)  # a late flush must not overwrite the final text
    assert fake.messages[0].sections == [to_mrkdwn(final)]


async def test_a_stream_that_outgrows_one_message_continues_in_the_next(http, fake: FakeSlack) -> None:
    running, _ = http
    conversation = ConversationRef("slack", "C0GENERAL", fake.team_id, fake.next_ts())
    first = Reply(conversation=conversation, text="", partial=True)
    await running.adapter.send(first)
    assert fake.messages[0].text == "…"  # a placeholder to edit
    long_text = "\n\n".join("chunk " * 400 for _ in range(6))  # ~14,000 characters: two messages
    await running.adapter.send(Reply(conversation=conversation, text=long_text, edit_of=first.id))
    assert len(fake.messages) == 2 and all(m.thread_ts == conversation.thread for m in fake.messages)
    assert " ".join(s for m in fake.messages for s in m.sections).split() == long_text.split()


async def test_a_reply_with_a_broken_file_is_refused_before_anything_is_posted(http, fake: FakeSlack) -> None:
    running, _ = http
    reply = Reply(conversation=ConversationRef("slack", "D0ADA", fake.team_id), text="see file",
                  files=(FileOut("x.bin", data_b64="not base64!"),))
    with pytest.raises(ValueError, match="not valid base64"):
        await running.adapter.send(reply)
    assert fake.calls_to("chat.postMessage") == []


async def test_an_ephemeral_reply_is_shown_only_to_the_person_who_asked(http, fake: FakeSlack) -> None:
    running, deliver = http
    running.on_event(_answer("your token is hidden", ephemeral=True))
    await deliver.event(fake.event_body(fake.message(f"<@{fake.bot_user_id}> my secrets", user="U2")))
    (message,) = await _wait_messages(fake, lambda m: len(m) == 1)
    assert message.ephemeral_user == "U2" and fake.calls_to("chat.postMessage") == []


async def test_files_in_a_reply_are_uploaded_into_the_thread(http, fake: FakeSlack) -> None:
    running, deliver = http
    data = b"name,count\nada,3\n"
    files = (FileOut("report.csv", "text/csv", data_b64=base64.b64encode(data).decode()),
             FileOut("dashboard", url="https://grafana.example/d/1"))
    running.on_event(_answer("Here is the report", files=files))
    root = fake.message(f"<@{fake.bot_user_id}> report")
    await deliver.event(fake.event_body(root))
    (message,) = await _wait_messages(fake, lambda m: len(m) == 1)
    assert message.sections == ["Here is the report\n<https://grafana.example/d/1|dashboard>"]
    for _ in range(250):
        if any(u["shared"] for u in fake.uploads.values()):
            break
        await asyncio.sleep(0.02)
    (upload,) = fake.uploads.values()
    assert upload["content"] == data and upload["filename"] == "report.csv"
    assert upload["shared"] == {"channel": "C0GENERAL", "thread_ts": root["ts"], "title": "report.csv"}


async def test_an_oversized_body_is_refused_before_it_is_read(http, fake: FakeSlack) -> None:
    _, deliver = http
    response = await deliver.post(b"x" * (2 * 1024 * 1024), {"Content-Type": "application/json"})
    assert response.status_code == 413


async def test_slacks_url_verification_challenge_is_answered(http, fake: FakeSlack) -> None:
    _, deliver = http
    response = await deliver.event({"token": "legacy", "challenge": "3eZbrw1aB", "type": "url_verification"})
    assert response.status_code == 200 and response.json() == {"challenge": "3eZbrw1aB"}


async def test_an_event_the_bus_cannot_take_fails_so_slack_delivers_it_again(fake: FakeSlack) -> None:
    server = HttpServer("127.0.0.1", 0)
    env = {"SLACK_BOT_TOKEN": fake.bot_token, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake.api_url}
    running = await _start(env, {}, server)
    await server.start()
    try:
        running.on_event()
        deliver = SlackDelivery(f"{server.url}/slack/events", SECRET)
        body = fake.event_body(fake.message("keep me", channel="D0ADA", channel_type="im"))
        await running.bus.stop(drain_timeout=0)  # e.g. the process is shutting down
        assert (await deliver.event(body)).status_code == 500
        await running.bus.start()
        assert (await deliver.event(body, retry_num=1)).status_code == 200
        (event,) = await running.wait_events(1)
        assert event.text == "keep me"
        health = (await _get_json(f"{server.url}/healthz"))["checks"]["slack"]
        assert health["ok"] is True and health["mode"] == "http"
    finally:
        await _close(running)
        await server.stop()


async def test_a_refused_bot_token_is_reported_once_not_retried_forever(fake: FakeSlack) -> None:
    env = {"SLACK_BOT_TOKEN": "xoxb-revoked", "SLACK_APP_TOKEN": fake.app_token, "SLACK_API_URL": fake.api_url}
    running = await _start(env, {}, None)
    try:
        for _ in range(250):
            if running.adapter.failure:
                break
            await asyncio.sleep(0.02)
        assert running.adapter.failure == "invalid_auth"
        assert (await running.adapter.health())["ok"] is False
        await asyncio.sleep(0.3)
        assert len(fake.calls_to("auth.test")) == 1 and fake.calls_to("apps.connections.open") == []
    finally:
        await _close(running)


async def _get_json(url: str) -> dict:
    async with httpx.AsyncClient() as client:
        return (await client.get(url)).json()


# -- Socket Mode ------------------------------------------------------------------------------------


async def test_socket_mode_acknowledges_an_envelope_and_answers_in_the_thread(socket: Running, fake: FakeSlack) -> None:
    socket.on_event(_answer("socket says hi"))
    mention = fake.message(f"<@{fake.bot_user_id}> ping", kind="app_mention")
    ack = await fake.push(fake.event_body(mention))
    assert "envelope_id" in ack
    (event,) = await socket.wait_events(1)
    assert event.mentioned and event.text == "ping"
    (reply,) = await _wait_messages(fake, lambda m: len(m) == 1)
    assert reply.thread_ts == mention["ts"] and reply.sections == ["socket says hi"]


async def test_socket_mode_redelivery_runs_once(socket: Running, fake: FakeSlack) -> None:
    socket.on_event()
    body = fake.event_body(fake.message("once please", channel="D0ADA", channel_type="im"))
    await fake.push(body)
    await fake.push(body, retry_attempt=1)
    await socket.wait_events(1)
    await asyncio.sleep(0.3)
    assert len(socket.events) == 1


async def test_socket_mode_slash_command_and_button_press(socket: Running, fake: FakeSlack) -> None:
    socket.on_event(lambda e: Reply(conversation=e.conversation, text="Sure?", buttons=(Button("Yes", "y"),))
                    if e.kind is EventKind.COMMAND else None)
    ack = await fake.push(fake.slash_command("restart db"), kind="slash_commands")
    assert ack["payload"]["response_type"] == "in_channel"
    (message,) = await _wait_messages(fake, lambda m: len(m) == 1)
    await fake.push(fake.block_action(message), kind="interactive")
    events = await socket.wait_events(2)
    assert events[0].command is not None and events[0].command.name == "restart"
    assert events[1].kind is EventKind.ACTION and events[1].meta["action"] == "y"


async def test_socket_mode_reconnects_when_slack_drops_the_connection(socket: Running, fake: FakeSlack) -> None:
    before = fake.socket_connects
    await fake.drop_socket()
    await asyncio.wait_for(fake.socket_connected.wait(), 10)
    assert fake.socket_connects == before + 1
    socket.on_event()
    await fake.push(fake.event_body(fake.message("still there?", channel="D0ADA", channel_type="im")))
    await socket.wait_events(1)


async def test_socket_mode_follows_slacks_refresh_notice_to_a_new_connection(socket: Running, fake: FakeSlack) -> None:
    before = fake.socket_connects
    await fake.request_refresh()
    await asyncio.wait_for(fake.socket_connected.wait(), 10)
    assert fake.socket_connects == before + 1 and len(fake.calls_to("apps.connections.open")) == 1
    socket.on_event()
    await fake.push(fake.event_body(fake.message("after refresh", channel="D0ADA", channel_type="im")))
    (event,) = await socket.wait_events(1)
    assert event.text == "after refresh"


# -- configuration and pure rules -------------------------------------------------------------------


def test_credentials_in_the_environment_switch_the_adapter_on_in_the_right_mode() -> None:
    socket_env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}
    http_env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}
    assert create({}, socket_env).settings.mode is SlackMode.SOCKET
    assert create({}, http_env).settings.mode is SlackMode.HTTP
    statuses = {s.name: (a, s) for a, s in discover({}, http_env)}
    adapter, status = statuses["slack"]
    assert isinstance(adapter, SlackAdapter) and status.live
    assert "events API at /slack/events" in status.detail
    assert "xoxb-1" not in repr(adapter.settings) and "'s'" not in repr(adapter.settings)


@pytest.mark.parametrize(("options", "env", "message"), [
    ({}, {"SLACK_APP_TOKEN": "xapp-1"}, "SLACK_BOT_TOKEN is not set"),
    ({}, {"SLACK_BOT_TOKEN": "xoxp-user", "SLACK_APP_TOKEN": "xapp-1"}, "starting with xoxb-"),
    ({}, {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xoxb-wrong"}, "starting with xapp-"),
    ({"mode": "http"}, {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}, "SLACK_SIGNING_SECRET"),
    ({"channel_messages": "some"}, {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}, "'mentions' or 'all'"),
    ({"answer": "all"}, {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}, "unknown option"),
    ({"slash_command": "sb"}, {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}, "look like /name"),
])
def test_misconfiguration_is_a_clear_error(options: dict, env: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create(options, env)


def test_the_web_api_base_url_keeps_its_api_path() -> None:
    env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1", "SLACK_API_URL": "http://127.0.0.1:9/api"}
    assert create({}, env).settings.api_url == "http://127.0.0.1:9/api/"


@pytest.mark.parametrize(("markdown", "mrkdwn"), [
    ("**bold** and *italic* and ~~gone~~", "*bold* and _italic_ and ~gone~"),
    ("# Heading **x**", "*Heading x*"),
    ("- one\n* two", "• one\n• two"),
    ("[site](https://a.example/?q=1&r=2)", "<https://a.example/?q=1&amp;r=2|site>"),
    ("a < b & c > d, ping <@U123>", "a &lt; b &amp; c &gt; d, ping <@U123>"),
    ("`**not bold**` stays", "`**not bold**` stays"),
    ("```python\nx = a<b\n```", "```\nx = a&lt;b\n```"),
    ("```\nunterminated", "```\nunterminated\n```"),
    ("| a | b |\n|---|---|\n| 1 | 2 |", "```\n| a | b |\n|---|---|\n| 1 | 2 |\n```"),
    ("> quoted **bit**", "> quoted *bit*"),
    ("snake_case_name and 2 * 3 * 4", "snake_case_name and 2 * 3 * 4"),
])
def test_markdown_becomes_slack_mrkdwn(markdown: str, mrkdwn: str) -> None:
    assert to_mrkdwn(markdown) == mrkdwn


def test_inbound_slack_text_is_made_readable() -> None:
    wire = "<@U0BOT> see <https://x.example|the doc> in <#C1|ops> &amp; tell <!here> and <@U2>"
    assert plain_text(wire, "U0BOT") == "see the doc (https://x.example) in #ops & tell @here and <@U2>"
    assert plain_text("<https://x.example>", "U0BOT") == "https://x.example"


def _inbound(**policy: object) -> Inbound:
    return Inbound(InboundPolicy(**policy))  # type: ignore[arg-type]


def test_channel_chatter_is_published_when_configured_to_answer_everything() -> None:
    fake = FakeSlack()
    chatter = fake.message("lunch anyone?")
    assert _inbound().message(fake.event_body(chatter), chatter, "U0BOT") is None
    event = _inbound(channel_messages=ChannelMessages.ALL).message(fake.event_body(chatter), chatter, "U0BOT")
    assert event is not None and not event.mentioned and event.conversation.thread == chatter["ts"]
    flat = _inbound(channel_messages=ChannelMessages.ALL, reply_in_thread=False)
    assert flat.message(fake.event_body(chatter), chatter, "U0BOT").conversation.thread == ""  # type: ignore[union-attr]


def test_allow_lists_keep_the_bot_to_its_channels_and_people() -> None:
    fake = FakeSlack()
    inbound = _inbound(allowed_channels=frozenset({"C0OPS"}), allowed_users=frozenset({"U1"}))
    ok = fake.message("<@U0BOT> hi", channel="C0OPS", user="U1")
    wrong_room = fake.message("<@U0BOT> hi", channel="C0GENERAL", user="U1")
    wrong_person = fake.message("<@U0BOT> hi", channel="C0OPS", user="U2")
    assert inbound.message(fake.event_body(ok), ok, "U0BOT") is not None
    assert inbound.message(fake.event_body(wrong_room), wrong_room, "U0BOT") is None
    assert inbound.message(fake.event_body(wrong_person), wrong_person, "U0BOT") is None
    assert inbound.slash_command(fake.slash_command("help", channel="C0GENERAL")) is None


def test_a_prefixed_message_is_a_command_even_after_a_mention() -> None:
    fake = FakeSlack()
    message = fake.message("<@U0BOT> /sb remind me in 2h")
    event = _inbound().message(fake.event_body(message), message, "U0BOT")
    assert event is not None and event.kind is EventKind.COMMAND
    assert event.command is not None and event.command.args == ("me", "in", "2h")


def test_other_bots_are_heard_only_when_configured() -> None:
    fake = FakeSlack()
    alert = fake.message("disk full on db-1", channel="C0ALERTS", user="", subtype="bot_message", bot_id="B0GRAFANA")
    alert.pop("user")
    assert _inbound(channel_messages=ChannelMessages.ALL).message(fake.event_body(alert), alert, "U0BOT") is None
    event = _inbound(channel_messages=ChannelMessages.ALL, ignore_bots=False).message(
        fake.event_body(alert), alert, "U0BOT"
    )
    assert event is not None and event.sender.is_bot and event.sender.id == "B0GRAFANA"
