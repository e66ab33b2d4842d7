"""Tools the model can call: `@tool` Python functions, built-ins, MCP servers and composite tools.

    from bot.tools import tool, ToolContext

    @tool(approval=True)
    async def restart_service(ctx: ToolContext, name: str) -> str:
        \"\"\"Restart a service by name.\"\"\"

See docs/tools.md.
"""

from __future__ import annotations

from bot.tools.base import Tool, ToolContext, ToolError, ToolResult, ToolStatus
from bot.tools.decorator import function_tool, tool
from bot.tools.registry import ToolLoadError, ToolRegistry

__all__ = ["Tool", "ToolContext", "ToolError", "ToolLoadError", "ToolRegistry", "ToolResult", "ToolStatus",
           "function_tool", "tool"]
