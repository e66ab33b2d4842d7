"""One SIGKILL trial against a running cluster, and what it proves.

A trial sends `per_conversation` messages into each of `conversations` web conversations through the
gateway's HTTP API (a conversation's messages 30 ms apart, so they are published in order), waits until
runs are in flight on the slow API, SIGKILLs the worker with the most runs in flight (at a random point
of the wait), starts a replacement, and once every request has answered, checks from three sides:

* the person: every HTTP request answered `succeeded` with exactly one reply, the right one;
* the database: every event has exactly one run, succeeded; every node ran (was recorded) once per run;
  the killed runs did not start over (`prepare` recorded once) but re-ran only the node in flight;
* order: per conversation, the slow API saw the messages in publish order and the runs did not overlap.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg

from tests.e2e.cluster import Cluster, ProcessRole, SlowApi


@dataclass(slots=True)
class TrialResult:
    trial: int
    messages: int
    in_flight_at_kill: int  # the victim's runs waiting on the slow API when it was killed
    resumed: int  # of those, runs that continued at their next node (prepare not re-run)
    lost: list[str] = field(default_factory=list)  # the person got no final reply
    doubled: list[str] = field(default_factory=list)  # the person got the reply more than once
    runs_wrong: list[str] = field(default_factory=list)  # an event without exactly one succeeded run
    reordered: list[str] = field(default_factory=list)
    repeated_steps: list[str] = field(default_factory=list)
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.doubled or self.reordered or self.runs_wrong)


@dataclass(slots=True)
class Answer:
    """What the person saw for one message: the final status and the replies, from the SSE stream."""

    status: str = ""
    replies: list[str] = field(default_factory=list)
    error: str = ""


async def _stream(http: httpx.AsyncClient, conversation: str, text: str,
                  accepted: asyncio.Future[None]) -> tuple[Answer, float]:
    answer = Answer()
    t0 = time.monotonic()
    try:
        async with http.stream("POST", "/api/v1/messages", headers={"Accept": "text/event-stream"},
                               json={"user": conversation, "conversation": conversation, "text": text}) as response:
            if response.status_code != 200:
                answer.status, answer.error = f"HTTP {response.status_code}", (await response.aread()).decode()[:300]
                return answer, time.monotonic() - t0
            kind = ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    kind = line.removeprefix("event:").strip()
                elif line.startswith("data:"):
                    data = json.loads(line.removeprefix("data:"))
                    if kind == "accepted" and not accepted.done():
                        accepted.set_result(None)
                    elif kind == "reply":
                        answer.replies.append(data.get("text", ""))
                    elif kind == "done":
                        answer.status = data.get("status", "")
    except httpx.HTTPError as exc:
        answer.status, answer.error = "error", repr(exc)
    finally:
        if not accepted.done():
            accepted.set_result(None)
    return answer, time.monotonic() - t0


async def wait_until(predicate: Any, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
    return True


async def kill_trial(
    cluster: Cluster,
    slow: SlowApi,
    http: httpx.AsyncClient,
    *,
    trial: int,
    conversations: int = 4,
    per_conversation: int = 3,
    rng: random.Random | None = None,
) -> TrialResult:
    rng = rng or random.Random()
    tag = f"t{trial}x{uuid.uuid4().hex[:6]}"
    started = time.monotonic()

    async def converse(conversation: str) -> list[tuple[str, Answer, float]]:
        # Each message is sent once the previous one was published (SSE "accepted"), so publish order
        # is the send order, without waiting for the replies.
        pending = []
        for seq in range(per_conversation):
            text = f"{conversation} m{seq}"
            accepted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            pending.append((text, asyncio.create_task(_stream(http, conversation, text, accepted))))
            await accepted
        return [(text, *(await task)) for text, task in pending]

    tasks = [asyncio.create_task(converse(f"{tag}-c{c}")) for c in range(conversations)]

    mine = lambda calls: [c for c in calls if c.text.startswith(tag)]  # noqa: E731
    if not await wait_until(lambda: mine(slow.in_flight()), 60):
        raise RuntimeError(f"trial {trial}: no run reached the slow API within 60 s")
    await asyncio.sleep(rng.uniform(0, slow.delay))  # land anywhere in the wait (and sometimes after it)
    workers = cluster.live(ProcessRole.WORKER)
    ports = {w.name: w.client_ports() for w in workers}
    in_flight = mine(slow.in_flight())
    per_worker = Counter(w.name for c in in_flight for w in workers if c.port in ports[w.name])
    victim = max(workers, key=lambda w: (per_worker[w.name], rng.random()))
    killed_at = time.monotonic()
    cluster.kill(victim)
    # In flight at the kill: answered after the signal (the answer met a dead process) or not at all.
    victim_events = {c.event_id for c in mine(slow.calls) if c.port in ports[victim.name]
                     and c.started < killed_at and (not c.finished or c.finished >= killed_at)}
    replacement = cluster.spawn(ProcessRole.WORKER)

    answers = [a for conversation in await asyncio.gather(*tasks) for a in conversation]
    await cluster.wait_ready(replacement)
    result = TrialResult(trial, len(answers), len(victim_events), 0, seconds=time.monotonic() - started,
                         latencies=[a[2] for a in answers])
    for text, answer, _ in answers:
        if answer.status != "succeeded" or not answer.replies:
            result.lost.append(f"{text}: {answer.status} {answer.error}")
        elif answer.replies != [f"done {text}"]:
            result.doubled.append(f"{text}: replies {answer.replies}")
    await _check_database(cluster, slow, tag, victim_events, result)
    return result


async def _check_database(cluster: Cluster, slow: SlowApi, tag: str, victim_events: set[str],
                          result: TrialResult) -> None:
    async with await psycopg.AsyncConnection.connect(cluster.database_url, autocommit=True) as conn:
        events = await (await conn.execute(
            "SELECT id, payload->>'text', received_at FROM events WHERE payload->>'text' LIKE %s "
            "ORDER BY received_at, id", (f"{tag}-%",))).fetchall()
        ids = [e[0] for e in events]
        runs = await (await conn.execute(
            "SELECT event_id, status, started_at, finished_at FROM runs WHERE event_id = ANY(%s)", (ids,))).fetchall()
        steps = await (await conn.execute(
            "SELECT r.event_id, s.node_id, count(*) FROM run_steps s JOIN runs r ON r.id = s.run_id "
            "WHERE r.event_id = ANY(%s) GROUP BY 1, 2", (ids,))).fetchall()
    if len(events) != result.messages:
        result.runs_wrong.append(f"{result.messages} messages sent, {len(events)} events accepted")
    runs_of: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for run in runs:
        runs_of[run[0]].append(run)
    step_count = {(s[0], s[1]): s[2] for s in steps}
    text_of = {e[0]: e[1] for e in events}
    for event_id, text in text_of.items():
        mine = runs_of[event_id]
        if [r[1] for r in mine] != ["succeeded"]:
            result.runs_wrong.append(f"{text}: runs {[r[1] for r in mine]}")
        for node in ("prepare", "wait", "answer"):
            if step_count.get((event_id, node), 0) != 1:
                result.repeated_steps.append(f"{text}: {node} recorded {step_count.get((event_id, node), 0)}×")
    for event_id in victim_events:
        if step_count.get((event_id, "prepare")) == 1 and len(slow.calls_for(event_id)) == 2:
            result.resumed += 1
    # Order: per conversation, send order (= publish order) = the order the slow API first saw them = run order.
    by_conversation: dict[str, list[str]] = defaultdict(list)
    for event_id, text, _ in sorted(events, key=lambda e: int(e[1].rsplit(" m", 1)[1])):
        by_conversation[text.split(" ")[0]].append(event_id)
    for conversation, published in by_conversation.items():
        first_call = {e: min((c.started for c in slow.calls_for(e)), default=float("inf")) for e in published}
        handled = sorted(published, key=lambda e: first_call[e])
        if handled != published:
            result.reordered.append(f"{conversation}: sent {[text_of[e] for e in published]}, "
                                    f"handled {[text_of[e] for e in handled]}")
        spans = [(text_of[e], runs_of[e][0][2], runs_of[e][0][3]) for e in published if len(runs_of[e]) == 1]
        for (before, _, end), (after, start, _) in itertools.pairwise(spans):
            if end is None or start < end:
                result.reordered.append(f"{after!r} started at {start:%H:%M:%S.%f} before {before!r} finished "
                                        f"at {end}")
