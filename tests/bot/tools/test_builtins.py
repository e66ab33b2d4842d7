"""The built-in tools: a calculator that cannot be abused, the clock, HTTP limited to allowed hosts,
messages to other conversations, and clear answers when memory or knowledge is not configured."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from bot.bus.memory import MemoryBus
from bot.store import Store
from bot.store.people import Person, Role
from bot.tools import ToolContext, ToolRegistry, ToolStatus
from bot.tools.builtins import builtin_tools
from bot.tools.builtins.calculator import evaluate
from bot.tools.builtins.http import host_allowed
from bot.tools.settings import SAFE_BUILTINS, ToolsSettings
from tests.conftest import free_port

ALL = [*SAFE_BUILTINS, "send_message", "http_request", "schedule"]


def registry_with(**http: object) -> ToolRegistry:
    reg = ToolRegistry()
    reg.add(*builtin_tools(ToolsSettings(builtins=ALL, http_request=http or {})))
    return reg


async def call(reg: ToolRegistry, name: str, ctx: ToolContext | None = None, **arguments: object):
    return await reg.invoke(name, arguments, ctx or ToolContext())


def test_the_default_set_is_the_safe_one() -> None:
    names = [t.name for t in builtin_tools(ToolsSettings())]
    assert names == ["current_time", "calculator", "knowledge_search", "remember", "recall"]
    with pytest.raises(ValueError, match="unknown built-in tool"):
        builtin_tools(ToolsSettings(builtins=["rm_rf"]))


@pytest.mark.parametrize(("expression", "value"), [
    ("2 + 3 * 4", 14), ("(17 * 23) / 4", 97.75), ("2 ^ 10", 1024), ("sqrt(16) + abs(-2)", 6), ("-pi < 0", None),
])
def test_the_calculator_does_arithmetic(expression: str, value: float | None) -> None:
    if value is None:
        with pytest.raises(Exception, match="unsupported"):
            evaluate(expression)
    else:
        assert evaluate(expression) == value


@pytest.mark.parametrize(("expression", "reason"), [
    ("__import__('os').system('id')", "unsupported"),
    ("(1).__class__", "unsupported"),
    ("open('/etc/passwd')", "unsupported"),
    ("9 ** 9 ** 9", "too large"),
    ("1 / 0", "division by zero"),
    ("2 +", "not an arithmetic expression"),
    ("1" * 600, "longer than"),
])
async def test_the_calculator_refuses_anything_but_arithmetic(expression: str, reason: str) -> None:
    result = await call(registry_with(), "calculator", expression=expression)
    assert result.status is ToolStatus.ERROR and reason in result.content


async def test_current_time_in_a_time_zone() -> None:
    reg = registry_with()
    paris = await call(reg, "current_time", timezone="Europe/Paris")
    assert paris.ok and '"timezone": "Europe/Paris"' in paris.content and ("+01:00" in paris.content
                                                                            or "+02:00" in paris.content)
    bad = await call(reg, "current_time", timezone="Mars/Olympus")
    assert bad.status is ToolStatus.ERROR and "unknown time zone" in bad.content


# ---------------------------------------------------------------- http_request against a local server

async def _echo(request: Request) -> Response:
    return JSONResponse({"method": request.method, "body": (await request.body()).decode()})


@pytest.fixture(scope="module")
async def api() -> AsyncIterator[str]:
    port = free_port()
    app = Starlette(routes=[
        Route("/echo", _echo, methods=["GET", "POST"]),
        Route("/big", lambda r: PlainTextResponse("y" * 100_000)),
        Route("/away", lambda r: RedirectResponse("http://example.invalid/steal")),
        Route("/hop", lambda r: RedirectResponse(f"http://127.0.0.1:{port}/echo")),
    ])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 -- uvicorn exposes only a flag
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    with contextlib.suppress(Exception):
        await task


def test_host_allow_list_matching() -> None:
    assert host_allowed("https://api.example.com/x", ["*.example.com"])
    assert not host_allowed("https://example.com.evil.net/", ["*.example.com"])
    assert not host_allowed("file:///etc/passwd", ["*"])
    assert host_allowed("http://127.0.0.1:8080/", ["127.0.0.1:8080"])


async def test_http_request_reaches_an_allowed_host_with_a_json_body(api: str) -> None:
    reg = registry_with(allow_hosts=["127.0.0.1"])
    result = await call(reg, "http_request", url=f"{api}/echo", method="POST", body={"q": 1})
    answer = json.loads(result.content)
    assert result.ok and answer["status"] == 200
    assert json.loads(answer["body"]) == {"method": "POST", "body": '{"q": 1}'}


async def test_http_request_refuses_hosts_off_the_list_including_after_a_redirect(api: str) -> None:
    reg = registry_with(allow_hosts=["127.0.0.1"])
    assert (await call(reg, "http_request", url="http://example.org/")).status is ToolStatus.ERROR
    redirected = await call(reg, "http_request", url=f"{api}/away")
    assert redirected.status is ToolStatus.ERROR and "example.invalid" in redirected.content
    hopped = json.loads((await call(reg, "http_request", url=f"{api}/hop")).content)
    assert json.loads(hopped["body"])["method"] == "GET"
    nothing_allowed = await call(registry_with(), "http_request", url=f"{api}/echo")
    assert "allow_hosts is empty" in nothing_allowed.content


async def test_http_request_caps_the_response_size(api: str) -> None:
    reg = registry_with(allow_hosts=["127.0.0.1"], max_bytes=1000)
    result = await call(reg, "http_request", url=f"{api}/big")
    assert result.ok and '"truncated_at_bytes": 1000' in result.content and "y" * 1001 not in result.content


# ---------------------------------------------------------------- services the tools use

async def test_send_message_posts_into_another_conversation_through_the_bus() -> None:
    bus = MemoryBus()
    ctx = ToolContext(services=SimpleNamespace(bus=bus), person=Person(1, "ad", Role.ADMIN), run_id="r1")
    result = await call(registry_with(), "send_message", ctx, channel="slack", room="C42", text="Deploy done")
    assert result.ok and result.content == "Sent to slack:C42"
    reply = await asyncio.wait_for(anext(bus.replies("slack")), 2)
    assert (reply.conversation.room, reply.text, reply.meta["run_id"]) == ("C42", "Deploy done", "r1")
    member = ToolContext(services=SimpleNamespace(bus=bus), person=Person(2, "mo", Role.MEMBER))
    assert (await call(registry_with(), "send_message", member, channel="slack", room="C42",
                       text="hi")).status is ToolStatus.REFUSED


async def test_memory_and_knowledge_tools_say_so_when_the_feature_is_not_configured() -> None:
    ctx = ToolContext(services=SimpleNamespace(memory=None, knowledge=None), person=Person(1, "a", Role.MEMBER))
    reg = registry_with()
    for name, arguments in (("remember", {"fact": "likes tea"}), ("recall", {"query": "tea"}),
                            ("knowledge_search", {"query": "vpn"})):
        result = await reg.invoke(name, arguments, ctx)
        assert result.status is ToolStatus.ERROR and "not configured" in result.content


# ---------------------------------------------------------------- with the real memory and knowledge services

async def test_remember_and_recall_use_the_persons_long_term_memory(store: Store) -> None:
    from bot.embeddings import offline_embedder
    from bot.events import Sender
    from bot.memory import MemoryService

    memory = MemoryService(store.pool, offline_embedder())
    ada = await store.people.resolve(Sender("slack", "U-ada-tools", "ada"))
    bob = await store.people.resolve(Sender("slack", "U-bob-tools", "bob"))
    reg = registry_with()
    as_ada = ToolContext(services=SimpleNamespace(memory=memory), person=ada, run_id="r-mem")
    kept = await reg.invoke("remember", {"fact": "Ada prefers answers in French"}, as_ada)
    assert kept.ok and kept.content == "Remembered: Ada prefers answers in French"
    found = await reg.invoke("recall", {"query": "which language does she prefer for answers"}, as_ada)
    assert found.ok and json.loads(found.content) == ["Ada prefers answers in French"]
    as_bob = ToolContext(services=SimpleNamespace(memory=memory), person=bob)
    assert (await reg.invoke("recall", {"query": "answers in French"}, as_bob)).content == \
        "Nothing remembered about that."


async def test_knowledge_search_returns_cited_passages(store: Store, tmp_path: Path) -> None:
    from bot.embeddings import offline_embedder
    from bot.knowledge import KnowledgeBase

    kb = KnowledgeBase(store.pool, offline_embedder())
    doc = tmp_path / "vpn.md"
    doc.write_text("# VPN\n\nTo connect to the VPN, open WireGuard and import the office profile.\n")
    await kb.ingest([str(doc)], collection="it-tools")
    ctx = ToolContext(services=SimpleNamespace(knowledge=kb))
    reg = registry_with()
    result = await reg.invoke("knowledge_search", {"query": "how do I connect to the VPN", "collection": "it-tools"},
                              ctx)
    (hit, *_) = json.loads(result.content)
    assert result.ok and hit["source"].endswith("vpn.md#0") and "WireGuard" in hit["text"]
    missing = await reg.invoke("knowledge_search", {"query": "vpn", "collection": "nope"}, ctx)
    assert missing.status is ToolStatus.ERROR and "no collection named 'nope'" in missing.content


async def test_schedule_adds_a_reminder_job_for_this_conversation(store: Store) -> None:
    from bot.events import ConversationRef, Event, EventKind, Sender
    from bot.scheduler.jobs import JobStore

    jobs = JobStore(store.pool)
    sender = Sender("slack", "U-sched", "sam")
    person = await store.people.resolve(sender)
    event = Event(id="slack:sched-1", kind=EventKind.MESSAGE, channel="slack",
                  conversation=ConversationRef("slack", "C-sched"), sender=sender, text="remind me")
    ctx = ToolContext(services=SimpleNamespace(scheduler=SimpleNamespace(jobs=jobs)), person=person, event=event)
    reg = ToolRegistry()
    reg.add(*builtin_tools(ToolsSettings(builtins=["schedule"])))
    result = await reg.invoke("schedule", {"text": "stand-up", "after": "10m"}, ctx)
    assert result.ok and "stand-up" in result.content
    (job,) = await jobs.list(person_id=person.id)
    assert job.text == "stand-up" and job.conversation.room == "C-sched"
    both = await reg.invoke("schedule", {"text": "x", "after": "1m", "every": "1d"}, ctx)
    assert both.status is ToolStatus.ERROR and "exactly one" in both.content
    off = await reg.invoke("schedule", {"text": "x", "after": "1m"}, ToolContext(services=SimpleNamespace()))
    assert "not configured" in off.content
