"""The Telegram adapter, through python-telegram-bot's real HTTP code path, against a fake Bot API.

One polling adapter and one webhook adapter serve the whole module; every test reads like a thing a
person on Telegram would notice.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from telegram import Bot, Update

from adapters.base import AdapterContext
from adapters.registry import discover
from adapters.telegram import TelegramAdapter, create
from adapters.telegram.inbound import BotIdentity, Normalizer
from adapters.telegram.markup import to_html, visible_text
from adapters.telegram.settings import settings_from
from bot.bus.memory import MemoryBus
from bot.events import Button, ConversationRef, Event, EventKind, FileOut, Reply
from bot.logging import JsonFormatter, SecretRedactor
from bot.server import HttpServer
from tests.conftest import free_port
from tests.fakes.telegram import FakeTelegram, SentMessage, parse_html, utf16_len

TOKEN = "7000002:AAH-another-fake-token-for-tests"
WEBHOOK_TOKEN = "7000003:AAH-webhook-fake-token-for-tests"
SECRET = "s3cret_webhook-token"
ADA = 501
GROUP = -100777


@dataclass
class Live:
    """A started adapter, its fake platform, and the events it published."""

    fake: FakeTelegram
    adapter: TelegramAdapter
    bus: MemoryBus
    events: asyncio.Queue[Event]
    delivery: asyncio.Task[None] | None = None

    async def next_event(self, within: float = 5.0) -> Event:
        return await asyncio.wait_for(self.events.get(), within)

    def drain(self) -> None:
        while not self.events.empty():
            self.events.get_nowait()

    async def wait_sent(self, count: int, within: float = 10.0) -> list[SentMessage]:
        deadline = time.monotonic() + within
        while len(self.fake.sent) < count:
            assert time.monotonic() < deadline, f"expected {count} sent messages, got {self.fake.sent!r}"
            await asyncio.sleep(0.02)
        return self.fake.sent


async def _shut(live: Live) -> None:
    if live.delivery is not None:
        live.delivery.cancel()
        await asyncio.gather(live.delivery, return_exceptions=True)
    await live.adapter.stop()


async def _live(fake: FakeTelegram, token: str, options: dict[str, Any], env: dict[str, str],
                server: HttpServer | None = None) -> Live:
    bus = MemoryBus()
    await bus.start()
    events: asyncio.Queue[Event] = asyncio.Queue()

    async def collect(event: Event) -> None:
        events.put_nowait(event)

    bus.consume(collect)
    adapter = create(options, {"TELEGRAM_BOT_TOKEN": token, "TELEGRAM_BASE_URL": fake.base_url, **env})
    await adapter.start(AdapterContext(bus=bus, server=server, command_prefix="/sb"))
    if server is not None:
        await server.start()
    await adapter.wait_ready(10)
    live = Live(fake, adapter, bus, events)
    live.delivery = asyncio.create_task(adapter.deliver_forever(bus))
    return live


@pytest.fixture(scope="module")
async def polling() -> AsyncIterator[Live]:
    fake = await FakeTelegram(TOKEN).start()
    live = await _live(fake, TOKEN, {"poll_timeout": 5, "edit_interval": 1.0, "group_edit_interval": 1.5}, {})
    yield live
    await _shut(live)
    await live.bus.stop(drain_timeout=1)
    await fake.stop()


@pytest.fixture(scope="module")
async def webhook() -> AsyncIterator[Live]:
    fake = await FakeTelegram(WEBHOOK_TOKEN).start()
    port = free_port()
    server = HttpServer("127.0.0.1", port)
    env = {"TELEGRAM_WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram/webhook", "TELEGRAM_WEBHOOK_SECRET": SECRET}
    live = await _live(fake, WEBHOOK_TOKEN, {}, env, server)
    yield live
    await _shut(live)
    await server.stop()
    await live.bus.stop(drain_timeout=1)
    await fake.stop()


@pytest.fixture
def tg(polling: Live) -> Live:
    polling.fake.reset()
    polling.drain()
    return polling


def _dm(fake: FakeTelegram, text: str, **kwargs: Any) -> dict[str, Any]:
    return fake.message(fake.chat(ADA), fake.user(ADA, "Ada", "ada"), text, **kwargs)


def _group(fake: FakeTelegram, text: str, **kwargs: Any) -> dict[str, Any]:
    return fake.message(fake.chat(GROUP, "Ops"), fake.user(ADA, "Ada", "ada"), text, **kwargs)


# -- inbound ----------------------------------------------------------------------------------------


async def test_a_private_message_becomes_an_event_with_a_stable_id(tg: Live) -> None:
    update = tg.fake.enqueue(_dm(tg.fake, "hello bot"))
    event = await tg.next_event()
    message_id = update["message"]["message_id"]
    assert event.id == f"telegram:{ADA}:{message_id}"
    assert event.kind is EventKind.MESSAGE and event.text == "hello bot"
    assert event.conversation.room == str(ADA) and event.conversation.channel == "telegram"
    assert event.sender.id == str(ADA) and event.sender.name == "Ada" and not event.sender.is_bot
    assert event.mentioned  # a private chat always addresses the bot
    assert event.raw["update_id"] == update["update_id"]


async def test_a_re_sent_update_runs_once(tg: Live) -> None:
    first = tg.fake.enqueue(_dm(tg.fake, "once"))
    again = _dm(tg.fake, "once", message_id=first["message"]["message_id"])
    tg.fake.enqueue(again)
    tg.fake.enqueue(_dm(tg.fake, "after"))
    assert (await tg.next_event()).text == "once"
    assert (await tg.next_event()).text == "after"


async def test_in_groups_only_mentions_replies_and_commands_reach_the_bot(tg: Live) -> None:
    chat = tg.fake.chat(GROUP, "Ops")
    ignored = [
        _group(tg.fake, "just chatting among people"),
        _group(tg.fake, "/sb@other_bot status"),  # a command for another bot
        _group(tg.fake, "@someone_else look at this"),
    ]
    addressed = [
        _group(tg.fake, "@switchboard_bot what is the status?"),
        _group(tg.fake, "and now?", reply_to=tg.fake.bot_message(chat, 1)),
        _group(tg.fake, "/sb@switchboard_bot deploy api"),
        _group(tg.fake, "/help@switchboard_bot"),
    ]
    for update in [*ignored, *addressed]:
        tg.fake.enqueue(update)
    got = [await tg.next_event() for _ in addressed]
    assert [e.id.rsplit(":", 1)[1] for e in got] == [str(u["message"]["message_id"]) for u in addressed]
    assert all(e.mentioned for e in got)
    assert got[0].text == "what is the status?"  # the mention addressed us; it is not the question
    assert got[1].reply_to == "1"
    assert got[2].kind is EventKind.COMMAND and got[2].command is not None
    assert (got[2].command.name, got[2].command.args) == ("deploy", ("api",))
    assert got[3].command is not None and got[3].command.name == "help"
    assert tg.events.empty()


async def test_start_and_other_shortcuts_become_commands(tg: Live) -> None:
    tg.fake.enqueue(_dm(tg.fake, "/start"))
    event = await tg.next_event()
    assert event.kind is EventKind.COMMAND and event.command is not None and event.command.name == "help"
    published = [c["command"] for c in tg.fake.commands]
    assert published == ["start", "help", "status", "remind", "memory"]  # the command menu


async def test_photos_and_documents_become_attachments_without_leaking_the_token(tg: Live) -> None:
    photo = [{"file_id": "small", "file_unique_id": "us", "width": 90, "height": 90, "file_size": 900},
             {"file_id": "big", "file_unique_id": "ub", "width": 1280, "height": 960, "file_size": 90_000}]
    tg.fake.enqueue(_dm(tg.fake, "", extra={"photo": photo, "caption": "the outage graph"}))
    document = {"file_id": "doc1", "file_unique_id": "ud", "file_name": "report.pdf",
                "mime_type": "application/pdf", "file_size": 1234}
    tg.fake.enqueue(_dm(tg.fake, "", extra={"document": document}))
    pic, doc = await tg.next_event(), await tg.next_event()
    assert pic.text == "the outage graph"
    (attachment,) = pic.attachments
    assert (attachment.content_type, attachment.url, attachment.size) == ("image/jpeg", "tg-file:big", 90_000)
    (attachment,) = doc.attachments
    assert (attachment.name, attachment.content_type, attachment.size) == ("report.pdf", "application/pdf", 1234)
    assert TOKEN not in repr(pic.to_dict()) + repr(doc.to_dict())


async def test_a_reaction_becomes_a_reaction_event(tg: Live) -> None:
    tg.fake.enqueue(tg.fake.reaction(tg.fake.chat(ADA), tg.fake.user(ADA), 3, "👍"))
    event = await tg.next_event()
    assert event.kind is EventKind.REACTION and event.meta["reaction"] == "👍" and event.reply_to == "3"


async def test_new_group_members_become_join_events(tg: Live) -> None:
    newcomer = tg.fake.user(777, "Grace", "grace")
    tg.fake.enqueue(_group(tg.fake, "", extra={"new_chat_members": [newcomer]}))
    event = await tg.next_event()
    assert event.kind is EventKind.JOIN and event.sender.id == "777" and event.conversation.room == str(GROUP)


async def test_the_token_never_reaches_a_formatted_log_line(tg: Live, caplog: pytest.LogCaptureFixture) -> None:
    formatter = JsonFormatter(SecretRedactor({"TELEGRAM_BOT_TOKEN": TOKEN}))
    # Other libraries (and our own log setup) may have quietened httpx; this test needs its URL lines.
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="httpx"):
        tg.fake.rate_limit_next(1)
        tg.fake.reject_entities_next()
        await tg.adapter.send(Reply(conversation=_conv(ADA), text="**logged** path"))
        tg.fake.enqueue(_dm(tg.fake, "hello"))
        await tg.next_event()
    assert caplog.records
    assert any(TOKEN in r.getMessage() for r in caplog.records)  # httpx logs API URLs at DEBUG/INFO
    assert not [line for r in caplog.records if TOKEN in (line := formatter.format(r))]


# -- outbound ---------------------------------------------------------------------------------------


async def test_a_reply_lands_in_the_chat_as_html_with_everything_escaped(tg: Live) -> None:
    tg.fake.enqueue(_dm(tg.fake, "format please"))
    event = await tg.next_event()
    text = "**Done** for <team> & co: `x<1` and [docs](https://example.com/?a=1&b=2)"
    await tg.bus.send(Reply(conversation=event.conversation, text=text, in_reply_to=event.id))
    (sent,) = await tg.wait_sent(1)
    assert sent.chat_id == ADA and sent.parse_mode == "HTML"
    assert sent.text == "Done for <team> & co: x<1 and docs"
    assert "<b>Done</b>" in sent.source and "<code>x&lt;1</code>" in sent.source
    assert '<a href="https://example.com/?a=1&amp;b=2">docs</a>' in sent.source
    assert sent.reply_to is None  # private chats are not cluttered with quotes


async def test_in_a_forum_topic_the_answer_stays_in_the_topic_and_quotes_the_question(tg: Live) -> None:
    tg.fake.enqueue(_group(tg.fake, "@switchboard_bot hi", thread_id=7))
    event = await tg.next_event()
    assert event.conversation.thread == "7"
    await tg.bus.send(Reply(conversation=event.conversation, text="hello topic", in_reply_to=event.id))
    (sent,) = await tg.wait_sent(1)
    assert (sent.chat_id, sent.thread_id) == (GROUP, 7)
    assert sent.reply_to == int(event.id.rsplit(":", 1)[1])


async def test_long_replies_are_split_at_4096_visible_characters_with_valid_html(tg: Live) -> None:
    paragraph = "Tom & Jerry <script>alert(1)</script> **bold** `a<b` " * 6
    code = "```python\n" + "\n".join(f"if x < {i} and y > {i}: pass  # & more" for i in range(120)) + "\n```"
    text = "\n\n".join([paragraph] * 25 + [code] + [paragraph] * 10)
    await tg.adapter.send(Reply(conversation=_conv(ADA), text=text))
    sent = tg.fake.sent  # every chunk passed the fake's strict HTML parser, or the send would have failed
    assert len(sent) >= 3
    assert all(m.parse_mode == "HTML" and utf16_len(m.text) <= 4096 for m in sent)
    joined = " ".join(m.text for m in sent).split()
    assert joined.count("<script>alert(1)</script>") == 35 * 6 and joined.count("a<b") == 35 * 6
    assert joined.count("&") == 35 * 6 + 120


async def test_emoji_count_double_towards_the_limit_and_still_fit(tg: Live) -> None:
    text = " ".join(["🚀launch"] * 1200)  # 7 Python chars but 8 UTF-16 units per word
    await tg.adapter.send(Reply(conversation=_conv(ADA), text=text))
    assert len(tg.fake.sent) >= 3
    assert all(utf16_len(m.text) <= 4096 for m in tg.fake.sent)
    assert " ".join(m.text for m in tg.fake.sent).split() == text.split()


async def test_formatting_telegram_rejects_is_resent_as_plain_text(tg: Live) -> None:
    tg.fake.reject_entities_next()
    await tg.adapter.send(Reply(conversation=_conv(ADA), text="**ship it** now"))
    (sent,) = tg.fake.sent
    assert sent.parse_mode == "" and sent.text == "ship it now"


async def test_flood_control_is_waited_out_and_the_reply_arrives_once(tg: Live) -> None:
    tg.fake.rate_limit_next(1)
    started = time.monotonic()
    await tg.adapter.send(Reply(conversation=_conv(ADA), text="after the flood"))
    assert time.monotonic() - started >= 1.0
    assert [m.text for m in tg.fake.sent] == ["after the flood"]
    assert [c.method for c in tg.fake.calls].count("sendMessage") == 2


async def test_a_reply_to_a_group_that_became_a_supergroup_follows_it_to_its_new_id(tg: Live) -> None:
    tg.fake.migrate_next(-1009999)
    await tg.adapter.send(Reply(conversation=ConversationRef(channel="telegram", room="-4242"), text="still here"))
    assert [(m.chat_id, m.text) for m in tg.fake.sent] == [(-1009999, "still here")]


async def test_a_restarted_adapter_does_not_see_updates_it_already_took() -> None:
    fake = await FakeTelegram(TOKEN).start()
    try:
        first = await _live(fake, TOKEN, {"poll_timeout": 5}, {})
        fake.enqueue(_dm(fake, "before the restart"))
        assert (await first.next_event()).text == "before the restart"
        await _shut(first)
        await first.bus.stop(drain_timeout=0)
        second = await _live(fake, TOKEN, {"poll_timeout": 5}, {})
        fake.enqueue(_dm(fake, "after the restart"))
        assert (await second.next_event()).text == "after the restart"  # not the confirmed one again
        await _shut(second)
        await second.bus.stop(drain_timeout=0)
    finally:
        await fake.stop()


async def test_buttons_become_an_inline_keyboard_and_a_press_becomes_an_answered_action(tg: Live) -> None:
    long_value = "approve:" + "x" * 100  # over Telegram's 64-byte callback_data limit
    buttons = (Button("Approve", long_value, "primary"), Button("Deny", "deny"))
    await tg.adapter.send(Reply(conversation=_conv(ADA), text="Deploy to prod?", buttons=buttons))
    (sent,) = tg.fake.sent
    assert [label for label, _ in sent.buttons] == ["Approve", "Deny"]
    (approve_data, _), (deny_data, _) = [(d, label) for label, d in sent.buttons]
    assert deny_data == "deny" and len(approve_data.encode()) <= 64
    press = tg.fake.enqueue(tg.fake.callback(sent, tg.fake.user(ADA), approve_data))
    event = await tg.next_event()
    assert event.kind is EventKind.ACTION and event.meta["action"] == long_value
    assert event.id == f"telegram:cb:{press['callback_query']['id']}"
    assert event.reply_to == str(sent.message_id)
    await _until(lambda: tg.fake.answered)
    assert tg.fake.answered[0]["callback_query_id"] == press["callback_query"]["id"]


async def test_a_press_on_a_forgotten_button_is_answered_as_expired(tg: Live) -> None:
    sent = SentMessage(ADA, 99, "old question", "")
    tg.fake.enqueue(tg.fake.callback(sent, tg.fake.user(ADA), "sb~" + "0" * 32))
    tg.fake.enqueue(_dm(tg.fake, "marker"))
    assert (await tg.next_event()).text == "marker"  # no action event came first
    await _until(lambda: tg.fake.answered)
    assert "expired" in tg.fake.answered[0]["text"]


async def test_streaming_edits_one_message_at_most_once_a_second_and_the_final_text_lands(tg: Live) -> None:
    first = Reply(conversation=_conv(ADA), text="Thinking", partial=True)
    started = time.monotonic()
    await tg.adapter.send(first)
    for i in range(1, 15):
        await tg.adapter.send(Reply(conversation=_conv(ADA), text="Thinking" + " more" * i, edit_of=first.id,
                                    partial=True))
    final = "Thinking" + " more" * 15 + " — **done**"
    await tg.adapter.send(Reply(conversation=_conv(ADA), text=final, edit_of=first.id))
    (message,) = tg.fake.sent
    assert message.text.endswith("— done") and message.edits == 1  # intermediate edits were skipped
    edits = [c.at for c in tg.fake.calls if c.method == "editMessageText"]
    assert edits[0] - started >= 0.95


async def test_a_stream_forgotten_by_a_restart_still_delivers_its_final_text(tg: Live) -> None:
    await tg.adapter.send(Reply(conversation=_conv(ADA), text="half", edit_of="unknown", partial=True))
    assert tg.fake.sent == []  # an intermediate edit of a stream we never saw is skipped
    await tg.adapter.send(Reply(conversation=_conv(ADA), text="whole answer", edit_of="unknown"))
    assert [m.text for m in tg.fake.sent] == ["whole answer"]


async def test_a_stream_that_outgrows_one_message_continues_in_a_second(tg: Live) -> None:
    first = Reply(conversation=_conv(ADA), text="Report:", partial=True)
    await tg.adapter.send(first)
    final = "Report:\n\n" + "\n\n".join(f"line {i} " + "detail " * 20 for i in range(60))
    await tg.adapter.send(Reply(conversation=_conv(ADA), text=final, edit_of=first.id))
    head, *rest = tg.fake.sent
    assert head.edits == 1 and rest and all(m.edits == 0 for m in rest)
    assert " ".join(m.text for m in tg.fake.sent).split() == final.split()


async def test_a_throttled_edit_in_one_chat_does_not_hold_up_another_chat(tg: Live) -> None:
    group = ConversationRef(channel="telegram", room=str(GROUP))
    first = Reply(conversation=group, text="Working on it", partial=True)
    await tg.bus.send(first)
    await tg.bus.send(Reply(conversation=group, text="Working on it: done", edit_of=first.id))  # waits 1.5 s
    await tg.bus.send(Reply(conversation=_conv(ADA), text="meanwhile, in private"))
    await tg.wait_sent(2)
    assert [m.text for m in tg.fake.sent] == ["Working on it", "meanwhile, in private"]
    assert tg.fake.sent[0].edits == 0  # the group's final edit is still waiting for its turn
    await _until(lambda: tg.fake.sent[0].edits == 1)
    assert tg.fake.sent[0].text == "Working on it: done"


async def test_reply_files_are_uploaded(tg: Live) -> None:
    data = base64.b64encode(b"%PDF-1.4 tiny").decode()
    await tg.adapter.send(Reply(conversation=_conv(ADA), text="the report",
                                files=(FileOut("report.pdf", "application/pdf", data_b64=data),)))
    text, document = tg.fake.sent
    assert text.text == "the report"
    assert (document.kind, document.file_name, document.file_size) == ("document", "report.pdf", 13)


@pytest.mark.parametrize(
    ("markdown", "html"),
    [
        ("# Status `ok`", "<b>Status </b><code>ok</code>"),
        ("- one\n- two", "• one\n• two"),
        ("```sql\nselect 1 < 2\n```", '<pre><code class="language-sql">select 1 &lt; 2</code></pre>'),
        ("<b>raw html</b> stays text", "&lt;b&gt;raw html&lt;/b&gt; stays text"),
        ("[click](javascript:alert(1))", "[click](javascript:alert(1))"),
        ("**bold `code` bold**", "<b>bold </b><code>code</code><b> bold</b>"),
        ("> quoted\n> > twice", "<blockquote>quoted\n\ntwice</blockquote>"),
        ("|a|b|\n|-|-|\n|1|22|", "<pre>a | b\n--+---\n1 | 22</pre>"),
    ],
)
def test_markdown_renders_to_the_html_telegram_accepts(markdown: str, html: str) -> None:
    assert to_html(markdown) == html
    parse_html(html)


def test_no_markdown_whatsoever_produces_html_telegram_would_refuse() -> None:
    """Fuzz: random soup of markdown markers, HTML, entities and emoji always renders to valid HTML."""
    atoms = ["**", "*", "_", "__", "~~", "`", "```", "```py\n", "\n", "\n\n", "> ", "- ", "1. ", "# ", "[", "](",
             ")", "https://x.io/?b=1&c=2", "<b>", "</i>", "&", "&amp;", "<", ">", '"', "word", " ", "|", "|-|",
             "![", "\\", "😀", "    ", "---", "javascript:x"]
    rng = random.Random(7)
    for _ in range(1000):
        source = "".join(rng.choice(atoms) for _ in range(rng.randint(1, 40)))
        rendered = to_html(source)
        assert parse_html(rendered) == visible_text(rendered), source


# -- webhook ----------------------------------------------------------------------------------------


async def test_webhook_mode_registers_the_url_with_the_secret_and_never_polls(webhook: Live) -> None:
    assert webhook.fake.webhook is not None
    assert webhook.fake.webhook["url"].endswith("/telegram/webhook")
    assert webhook.fake.webhook["secret_token"] == SECRET
    assert "message_reaction" in webhook.fake.webhook["allowed_updates"]
    assert "getUpdates" not in [c.method for c in webhook.fake.calls]


async def test_a_webhook_update_with_the_right_secret_runs_once_even_when_re_sent(webhook: Live) -> None:
    webhook.drain()
    update = _dm(webhook.fake, "via webhook")
    first = await webhook.fake.post_webhook(update, secret=SECRET)
    again = await webhook.fake.post_webhook(update, secret=SECRET)  # Telegram retries on timeouts
    assert (first.status_code, again.status_code) == (200, 200)
    event = await webhook.next_event()
    assert event.text == "via webhook" and event.id == f"telegram:{ADA}:{update['message']['message_id']}"
    await webhook.fake.post_webhook(_dm(webhook.fake, "marker"), secret=SECRET)
    assert (await webhook.next_event()).text == "marker"


@pytest.mark.parametrize("secret", ["wrong-secret", "", None])
async def test_a_webhook_call_without_the_right_secret_is_refused_and_nothing_runs(
    webhook: Live, secret: str | None
) -> None:
    webhook.drain()
    response = await webhook.fake.post_webhook(_dm(webhook.fake, "forged"), secret=secret)
    assert response.status_code == 403
    await webhook.fake.post_webhook(_dm(webhook.fake, "genuine"), secret=SECRET)
    assert (await webhook.next_event()).text == "genuine"


async def test_a_malformed_webhook_body_gets_a_clear_400(webhook: Live) -> None:
    assert webhook.fake.webhook is not None
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    async with httpx.AsyncClient() as client:
        not_json = await client.post(webhook.fake.webhook["url"], content=b"{oops", headers=headers)
        no_id = await client.post(webhook.fake.webhook["url"], json={"message": {}}, headers=headers)
    assert (not_json.status_code, no_id.status_code) == (400, 400)
    assert "update_id" in no_id.json()["error"]["message"]


async def test_webhook_replies_go_out_through_the_bot_api(webhook: Live) -> None:
    webhook.fake.reset()
    await webhook.adapter.send(Reply(conversation=_conv(ADA), text="pong"))
    assert [m.text for m in webhook.fake.sent] == ["pong"]


async def test_an_update_the_bus_cannot_accept_gets_500_so_telegram_sends_it_again() -> None:
    fake = await FakeTelegram(WEBHOOK_TOKEN).start()
    port = free_port()
    server = HttpServer("127.0.0.1", port)
    env = {"TELEGRAM_WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram/webhook", "TELEGRAM_WEBHOOK_SECRET": SECRET}
    live = await _live(fake, WEBHOOK_TOKEN, {}, env, server)
    try:
        await live.bus.stop(drain_timeout=0)  # a process shutting down refuses new events
        response = await fake.post_webhook(_dm(fake, "not lost"), secret=SECRET)
        assert response.status_code == 500
        assert "send it again" in response.json()["error"]["message"]
    finally:
        await _shut(live)
        await server.stop()
        await fake.stop()


class _FlakyBus(MemoryBus):
    """A real MemoryBus that refuses the first `failures` publishes, like a Redis bus during a blip."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def publish(self, event: Event) -> bool:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("bus unavailable (injected)")
        return await super().publish(event)


async def test_a_polled_update_waits_out_a_bus_outage_instead_of_being_lost() -> None:
    fake = await FakeTelegram(TOKEN).start()
    bus = _FlakyBus(failures=2)
    await bus.start()
    events: asyncio.Queue[Event] = asyncio.Queue()
    bus.consume(lambda e: _put(events, e))
    adapter = create({"poll_timeout": 5}, {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": fake.base_url})
    await adapter.start(AdapterContext(bus=bus, command_prefix="/sb"))
    try:
        await adapter.wait_ready(10)
        fake.enqueue(_dm(fake, "survives the blip"))
        fake.enqueue(_dm(fake, "and keeps its place"))
        got = [await asyncio.wait_for(events.get(), 10) for _ in range(2)]
        assert [e.text for e in got] == ["survives the blip", "and keeps its place"]
        assert bus.failures == 0
    finally:
        await adapter.stop()
        await bus.stop(drain_timeout=0)
        await fake.stop()


async def _put(queue: asyncio.Queue[Event], event: Event) -> None:
    queue.put_nowait(event)


# -- connecting -------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_reply_waits_while_telegram_is_unreachable_and_goes_out_once_it_is_back() -> None:
    port = free_port()
    bus = MemoryBus()
    await bus.start()
    adapter = create({"poll_timeout": 5}, {"TELEGRAM_BOT_TOKEN": TOKEN,
                                           "TELEGRAM_BASE_URL": f"http://127.0.0.1:{port}"})
    await adapter.start(AdapterContext(bus=bus, command_prefix="/sb"))
    sending = asyncio.create_task(adapter.send(Reply(conversation=_conv(ADA), text="patience")))
    await asyncio.sleep(0.5)
    assert not sending.done()
    fake = await FakeTelegram(TOKEN, port=port).start()
    try:
        await asyncio.wait_for(sending, 15)
        assert [m.text for m in fake.sent] == ["patience"]
    finally:
        await adapter.stop()
        await bus.stop(drain_timeout=0)
        await fake.stop()


async def test_a_refused_token_fails_replies_loudly_instead_of_queueing_forever() -> None:
    fake = await FakeTelegram("7000009:AAH-the-token-telegram-knows-about").start()
    bus = MemoryBus()
    await bus.start()
    adapter = create({}, {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": fake.base_url})
    await adapter.start(AdapterContext(bus=bus, command_prefix="/sb"))
    try:
        with pytest.raises(RuntimeError, match="not connected"):
            await adapter.wait_ready(5)
        with pytest.raises(RuntimeError):
            await adapter.send(Reply(conversation=_conv(ADA), text="nobody will see this"))
    finally:
        await adapter.stop()
        await bus.stop(drain_timeout=0)
        await fake.stop()


# -- configuration ----------------------------------------------------------------------------------


def test_group_messages_all_lets_unaddressed_group_messages_through_unmentioned() -> None:
    fake = FakeTelegram(TOKEN)
    settings = settings_from({"group_messages": "all"}, {"TELEGRAM_BOT_TOKEN": TOKEN})
    normalizer = Normalizer(settings, BotIdentity(fake.bot_id, fake.bot_username), "/sb")
    update = Update.de_json(_group(fake, "people talking"), Bot(TOKEN))
    (event,) = normalizer.message(update)
    assert not event.mentioned and event.kind is EventKind.MESSAGE


def test_allowed_chats_keeps_other_chats_out() -> None:
    fake = FakeTelegram(TOKEN)
    settings = settings_from({"allowed_chats": [GROUP]}, {"TELEGRAM_BOT_TOKEN": TOKEN})
    normalizer = Normalizer(settings, BotIdentity(fake.bot_id, fake.bot_username), "/sb")
    assert normalizer.message(Update.de_json(_dm(fake, "hi"), Bot(TOKEN))) == []
    assert normalizer.message(Update.de_json(_group(fake, "@switchboard_bot hi"), Bot(TOKEN)))


@pytest.mark.parametrize(
    ("options", "env", "complaint"),
    [
        ({}, {}, "set TELEGRAM_BOT_TOKEN"),
        ({}, {"TELEGRAM_BOT_TOKEN": "not-a-token"}, "does not look like a BotFather token"),
        ({}, {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_URL": "https://bot.example/telegram/webhook"},
         "needs TELEGRAM_WEBHOOK_SECRET"),
        ({"mode": "webhook"}, {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_SECRET": "has spaces"},
         "A-Z a-z 0-9"),
        ({"group_messages": "some"}, {"TELEGRAM_BOT_TOKEN": TOKEN}, "mentions, all"),
        ({"edit_interval": 0}, {"TELEGRAM_BOT_TOKEN": TOKEN}, "positive number"),
        ({"shortcut": {}}, {"TELEGRAM_BOT_TOKEN": TOKEN}, "unknown adapters.telegram option(s): shortcut"),
        ({}, {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": "ftp://x"}, "http(s) URL"),
    ],
)
def test_misconfiguration_is_refused_with_the_fix(options: dict[str, Any], env: dict[str, str],
                                                    complaint: str) -> None:
    with pytest.raises(ValueError, match=None) as error:
        create(options, env)
    assert complaint in str(error.value)
    assert TOKEN not in str(error.value)


def test_the_token_in_the_environment_switches_the_adapter_on() -> None:
    found = {status.name: (adapter, status) for adapter, status in discover({}, {"TELEGRAM_BOT_TOKEN": TOKEN})}
    adapter, status = found["telegram"]
    assert status.live and isinstance(adapter, TelegramAdapter)
    assert status.detail.startswith("long polling via api.telegram.org")
    assert TOKEN not in repr(adapter.settings)
    _, off = {s.name: (a, s) for a, s in discover({}, {})}["telegram"]
    assert not off.live and "TELEGRAM_BOT_TOKEN" in off.detail


def test_the_fake_refuses_what_telegram_refuses() -> None:
    """The fake is only worth trusting if it is as strict as the platform."""
    assert parse_html("<b>a &amp; <i>b</i></b>") == "a & b"
    for bad in ("a < b", "a & b", "<b>x", "<x>y</x>", "<code><b>x</b></code>", "<blockquote><blockquote>"):
        with pytest.raises(ValueError):
            parse_html(bad)


# -- helpers ----------------------------------------------------------------------------------------


def _conv(chat_id: int) -> ConversationRef:
    return ConversationRef(channel="telegram", room=str(chat_id))


async def _until(predicate: Callable[[], object], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.02)
