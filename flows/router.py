"""Which flow handles an event: the trigger rules.

Order of precedence: a flow the event names explicitly (`meta.flow`, e.g. the OpenAI-compatible
API's `model`), then command triggers, regex triggers, keyword triggers, mention/channel-only
triggers, and finally the default flow. Within one kind, higher `priority` wins, then load order.
"""

from __future__ import annotations

import re
from enum import IntEnum

from bot.events import Event, EventKind
from flows.engine import CompiledFlow
from flows.model import Trigger
from flows.registry import FlowRegistry


class Match(IntEnum):
    """How specific a trigger match is; higher beats lower."""

    DEFAULT = 0
    FILTER = 1  # mention-only / channel-only triggers
    KEYWORD = 2
    REGEX = 3
    COMMAND = 4


_DEFAULT_KINDS = {EventKind.MESSAGE.value, EventKind.COMMAND.value}


def trigger_match(trigger: Trigger, event: Event) -> Match | None:
    kinds = set(trigger.kinds) if trigger.kinds else _DEFAULT_KINDS
    if str(event.kind) not in kinds:
        return None
    if trigger.channels and event.channel not in trigger.channels:
        return None
    if trigger.mention and not event.mentioned:
        return None
    best = Match.FILTER if (trigger.mention or trigger.channels or trigger.kinds) else Match.DEFAULT
    if trigger.command is not None:
        if event.command is None or event.command.name != trigger.command.lower():
            return None
        best = Match.COMMAND
    text = event.text or ""
    if trigger.regex is not None:
        if event.command is not None or not _regex(trigger.regex).search(text):
            return None
        best = max(best, Match.REGEX)
    if trigger.keywords:
        if event.command is not None or not _keywords(tuple(trigger.keywords)).search(text):
            return None
        best = max(best, Match.KEYWORD)
    if trigger.default and best == Match.DEFAULT and event.command is not None:
        return None  # the default flow is for chat, not for unknown commands
    return best


_regex_cache: dict[str, re.Pattern[str]] = {}
_kw_cache: dict[tuple[str, ...], re.Pattern[str]] = {}


def _regex(source: str) -> re.Pattern[str]:
    pattern = _regex_cache.get(source)
    if pattern is None:
        pattern = _regex_cache[source] = re.compile(source, re.IGNORECASE)
    return pattern


def _keywords(words: tuple[str, ...]) -> re.Pattern[str]:
    pattern = _kw_cache.get(words)
    if pattern is None:
        alternatives = "|".join(re.escape(w.strip()) for w in sorted(words, key=len, reverse=True) if w.strip())
        pattern = _kw_cache[words] = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
    return pattern


class Router:
    def __init__(self, registry: FlowRegistry, default_flow: str) -> None:
        self.registry = registry
        self.default_flow = default_flow

    def pick(self, event: Event) -> CompiledFlow | None:
        forced = event.meta.get("flow")
        if isinstance(forced, str) and forced:
            return self.registry.get(forced)
        best: tuple[Match, int, int] | None = None
        chosen: CompiledFlow | None = None
        for order, flow in enumerate(self.registry.active()):
            for trigger in flow.spec.triggers:
                match = trigger_match(trigger, event)
                if match is None:
                    continue
                rank = (match, trigger.priority, -order)
                if best is None or rank > best:
                    best, chosen = rank, flow
        if chosen is not None and best is not None and best[0] > Match.DEFAULT:
            return chosen
        if event.command is None and event.kind in (EventKind.MESSAGE,):
            fallback = self.registry.get(self.default_flow)
            if fallback is not None:
                return fallback
        return chosen
