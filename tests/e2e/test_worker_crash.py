"""Scale-out end to end: a gateway and two workers as real OS processes on Redis and PostgreSQL.

A worker killed with SIGKILL in the middle of runs loses no run and runs none twice: its runs are
reclaimed by the other worker and continue at the node that was in flight, in order per conversation.
Every message also gets exactly one reply (reply ids are deterministic per run step, and the gateway
drops a message it has already shown). A gateway that goes away and comes back delivers the replies the
workers produced meanwhile. `SWITCHBOARD_E2E_KILL_TRIALS`
sets the number of kill trials (10 here; `bench/kill_trials.py` runs 100).
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import psycopg
import pytest

from tests.conftest import free_port
from tests.e2e.cluster import Cluster, ProcessRole, SlowApi, durable_flow
from tests.e2e.kill_trial import TrialResult, kill_trial, wait_until
from tests.fakes.telegram import FakeTelegram

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

TRIALS = int(os.environ.get("SWITCHBOARD_E2E_KILL_TRIALS", "10"))
TOKEN = "4242:e2e-not-a-real-token"


@pytest.fixture(scope="module")
def slow_api() -> Iterator[SlowApi]:
    api = SlowApi(delay=0.6).start()
    yield api
    api.stop()


@pytest.fixture(scope="module")
async def telegram() -> AsyncIterator[FakeTelegram]:
    fake = await FakeTelegram(TOKEN).start()
    yield fake
    await fake.stop()


@pytest.fixture(scope="module")
async def cluster(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory, slow_api: SlowApi,
    telegram: FakeTelegram,
) -> AsyncIterator[Cluster]:
    with Cluster(database_url, redis_url, tmp_path_factory.mktemp("cluster"), free_port(), durable_flow(slow_api.url),
                 extra_config="adapters: {telegram: {poll_timeout: 1}}\n",
                 env={"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": telegram.base_url}) as cluster:
        processes = [cluster.spawn(ProcessRole.GATEWAY), cluster.spawn(ProcessRole.WORKER),
                     cluster.spawn(ProcessRole.WORKER)]
        await asyncio.gather(*(cluster.wait_ready(p) for p in processes))
        yield cluster


@pytest.fixture(scope="module")
async def kill_results(cluster: Cluster, slow_api: SlowApi) -> list[TrialResult]:
    rng = random.Random(7)
    async with httpx.AsyncClient(base_url=cluster.base_url, timeout=120) as http:
        return [await kill_trial(cluster, slow_api, http, trial=trial, rng=rng) for trial in range(TRIALS)]


async def test_runs_of_a_killed_worker_resume_at_their_next_node_once_each_and_in_order(
    kill_results: list[TrialResult],
) -> None:
    assert [(r.trial, r.runs_wrong, r.reordered, r.repeated_steps) for r in kill_results
            if r.runs_wrong or r.reordered or r.repeated_steps] == []
    # The kills really landed in the middle of runs, and those runs continued rather than restarting.
    assert sum(r.in_flight_at_kill for r in kill_results) >= TRIALS
    assert sum(r.resumed for r in kill_results) == sum(r.in_flight_at_kill for r in kill_results)


async def test_every_message_gets_exactly_one_reply_while_workers_are_killed(
    kill_results: list[TrialResult],
) -> None:
    assert [(r.trial, r.lost, r.doubled) for r in kill_results if r.lost or r.doubled] == []


async def test_replies_made_while_the_gateway_is_down_are_delivered_when_it_returns(
    cluster: Cluster, slow_api: SlowApi, telegram: FakeTelegram, database_url: str
) -> None:
    chats = {chat_id: telegram.chat(chat_id) for chat_id in (701, 702, 703)}
    user = telegram.user(42, "Ada")
    texts = {chat_id: [f"gw{chat_id} m{i}" for i in range(2)] for chat_id in chats}
    for i in range(2):
        for chat_id, chat in chats.items():
            telegram.enqueue(telegram.message(chat, user, texts[chat_id][i]))
    mine = "e.payload->>'text' ~ '^gw70[1-3] m[0-9]$'"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        async def count(sql: str) -> int:
            row = await (await conn.execute(sql)).fetchone()
            return row[0] if row else 0

        accepted = f"SELECT count(*) FROM events e WHERE {mine}"
        succeeded = (f"SELECT count(*) FROM runs r JOIN events e ON e.id = r.event_id "
                     f"WHERE {mine} AND r.status = 'succeeded'")
        assert await poll(lambda: count(accepted), 6)  # the gateway published all six
        assert await wait_until(lambda: any(c.text.startswith("gw") for c in slow_api.in_flight()), 30)

        [gateway] = cluster.live(ProcessRole.GATEWAY)
        cluster.kill(gateway)  # with runs in flight and replies on their way
        sent_before = {m.text for m in telegram.sent}
        telegram.enqueue(telegram.message(telegram.chat(704), user, "gw704 m0"))  # arrives while no gateway runs
        texts[704] = ["gw704 m0"]
        # The workers finish all six runs with no gateway: their replies wait in Redis.
        assert await poll(lambda: count(succeeded), 6)
        assert {m.text for m in telegram.sent} == sent_before

    await cluster.start(ProcessRole.GATEWAY)
    expected = {f"done {t}" for ts in texts.values() for t in ts}
    assert await wait_until(lambda: expected <= {m.text for m in telegram.sent}, 60)
    await asyncio.sleep(3 * cluster.visibility_timeout)  # room for a late duplicate to show up
    sent = [m for m in telegram.sent if m.text in expected]
    assert Counter(m.text for m in sent) == Counter(expected)  # each exactly once
    for chat_id, chat_texts in texts.items():
        assert [m.text for m in sent if m.chat_id == chat_id] == [f"done {t}" for t in chat_texts]


async def poll(read: Callable[[], Awaitable[int]], want: int, timeout: float = 30) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    # Another process writes the rows: nothing here to wait on but the database itself.
    while (got := await read()) < want and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return got == want
