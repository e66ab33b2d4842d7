"""The `tool_calls` table: every call a run made, with arguments, result, error, status and time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from bot.tools.base import ToolResult, ToolStatus

MAX_STORED_RESULT = 20_000


@dataclass(slots=True)
class ToolCallRecord:
    run_id: str | None
    node_id: str
    call_id: str
    tool: str
    arguments: Any
    result: str
    error: str
    status: ToolStatus
    duration_ms: float
    created_at: datetime | None = None

    @classmethod
    def of(cls, result: ToolResult, *, run_id: str | None, node_id: str, call_id: str, tool: str,
           arguments: Any) -> ToolCallRecord:
        return cls(run_id or None, node_id, call_id, tool, arguments, result.content, result.error, result.status,
                   result.duration_ms)


class ToolCallLog:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def record(self, records: Sequence[ToolCallRecord]) -> None:
        """Write a batch of calls in one round trip (an agent step's parallel calls)."""
        if not records:
            return
        async with self._pool.connection() as conn, conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO tool_calls (run_id, node_id, call_id, tool, arguments, result, error, status, "
                "duration_ms) VALUES (%s, %s, %s, %s, %s, %s, NULLIF(%s, ''), %s, %s)",
                [(r.run_id, r.node_id, r.call_id, r.tool, Jsonb(r.arguments), r.result[:MAX_STORED_RESULT],
                  r.error, str(r.status), r.duration_ms) for r in records],
            )

    async def for_run(self, run_id: str) -> list[ToolCallRecord]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT run_id, node_id, call_id, tool, arguments, result, coalesce(error, ''), status, duration_ms, "
                "created_at FROM tool_calls WHERE run_id = %s ORDER BY id", (run_id,))
            return [ToolCallRecord(str(r[0]) if r[0] else None, r[1], r[2], r[3], r[4], r[5], r[6], ToolStatus(r[7]),
                                   r[8], r[9]) for r in await cur.fetchall()]

    async def stats(self) -> dict[str, int]:
        """Calls by status (for `/sb tools` and the benchmark)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT status, count(*) FROM tool_calls GROUP BY status")
            return {row[0]: int(row[1]) for row in await cur.fetchall()}
