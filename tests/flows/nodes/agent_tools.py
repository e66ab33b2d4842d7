"""Tools the agent tests load through `tools.modules`, the way a team's own package would."""

from __future__ import annotations

import asyncio

from bot.tools import ToolContext, tool

DELETED: list[str] = []


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
async def explode(reason: str) -> str:
    """Always raises."""
    raise RuntimeError(reason)


@tool(timeout=0.3)
async def hang() -> str:
    """Never finishes in time."""
    await asyncio.sleep(30)
    return "too late"


@tool
def garbage() -> object:
    """Returns something that is not text or JSON."""
    return object()


@tool(approval=True)
async def delete_everything(ctx: ToolContext, target: str) -> str:
    """Deletes the target (needs a person's approval).

    Args:
        target: what to delete.
    """
    DELETED.append(target)
    return f"deleted {target} for {ctx.person.display_name if ctx.person else 'nobody'}"


@tool(role="admin")
def shutdown() -> str:
    """Admins only."""
    return "shut down"
