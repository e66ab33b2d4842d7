"""The tools every install has. `builtin_tools(settings)` builds the ones a config switches on."""

from __future__ import annotations

from bot.tools.base import Tool
from bot.tools.builtins.calculator import calculator
from bot.tools.builtins.clock import current_time
from bot.tools.builtins.http import http_request_tool
from bot.tools.builtins.knowledge import knowledge_search
from bot.tools.builtins.memory import recall, remember
from bot.tools.builtins.messaging import send_message
from bot.tools.builtins.schedule import schedule
from bot.tools.settings import ToolsSettings


def builtin_tools(settings: ToolsSettings) -> list[Tool]:
    available: dict[str, Tool] = {
        t.name: t for t in (current_time, calculator, knowledge_search, remember, recall, send_message, schedule,
                            http_request_tool(settings.http_request))
    }
    unknown = [name for name in settings.builtins if name not in available]
    if unknown:
        raise ValueError(f"unknown built-in tool(s) {', '.join(unknown)} (built-ins: {', '.join(sorted(available))})")
    chosen = [available[name] for name in settings.builtins]
    for item in chosen:
        item.source = "builtin"
    return chosen
