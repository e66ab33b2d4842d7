"""LangGraph echo: a 3-node StateGraph checkpointed in PostgreSQL after every node (AsyncPostgresSaver).

Runs inside bench/.peers/. Needs a PostgreSQL URL as the first argument (the machine's PostgreSQL 15
works: the checkpointer needs no extension). Conversations map to thread ids; `concurrency` graphs run
at once over a connection pool, as a server handling several conversations would. Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import TypedDict

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, StateGraph
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool


class State(TypedDict, total=False):
    text: str
    shaped: str
    reply: str


def prepare(state: State) -> State:
    return {"text": state["text"].strip()}


def shape(state: State) -> State:
    return {"shaped": f"echo: {state['text']}"}


def answer(state: State) -> State:
    return {"reply": state["shaped"]}


async def main(url: str, messages: int, concurrency: int, conversations: int) -> None:
    builder = StateGraph(State)
    builder.add_node("prepare", prepare)
    builder.add_node("shape", shape)
    builder.add_node("answer", answer)
    builder.add_edge(START, "prepare")
    builder.add_edge("prepare", "shape")
    builder.add_edge("shape", "answer")
    builder.add_edge("answer", END)
    kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    async with AsyncConnectionPool(url, max_size=concurrency, kwargs=kwargs, open=False) as pool:
        await pool.open()
        saver = AsyncPostgresSaver(pool)
        await saver.setup()
        graph = builder.compile(checkpointer=saver)
        run_id = f"{time.time_ns()}"

        async def run(count: int, tag: str) -> None:
            queue = iter(range(count))

            async def client() -> None:
                for i in queue:
                    thread = f"{run_id}-{tag}-{i % conversations}"
                    out = await graph.ainvoke({"text": f"m {i}"}, {"configurable": {"thread_id": thread}})
                    if out["reply"] != f"echo: m {i}":
                        raise SystemExit(f"langgraph answered {out!r}")

            await asyncio.gather(*(client() for _ in range(concurrency)))

        await run(200, "warm")
        cpu0, t0 = time.process_time(), time.perf_counter()
        await run(messages, "m")
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(json.dumps({"messages": messages, "seconds": seconds, "cpu": cpu,
                      "note": f"3-node graph, AsyncPostgresSaver after every node, {concurrency} at once"}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 2000, 16, 200))
