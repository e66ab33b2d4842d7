"""Today's per-model usage counters behind `/sb status`."""

from __future__ import annotations

from datetime import date

from bot.llm.accounting import UsageCounter


def test_counters_add_up_per_model_and_start_again_at_midnight_utc() -> None:
    today = [date(2026, 11, 24)]
    counter = UsageCounter(today=lambda: today[0])

    counter.record("openai/gpt-4o-mini", ok=True, attempts=1, tokens_in=10, tokens_out=5, cost=0.002)
    counter.record("openai/gpt-4o-mini", ok=True, attempts=2, tokens_in=4, tokens_out=1, cost=0.001)
    counter.record("ollama/llama3", ok=False, attempts=3)

    assert counter.snapshot() == {
        "ollama/llama3": {"calls": 0, "failures": 1, "attempts": 3, "tokens_in": 0, "tokens_out": 0, "cost": 0.0},
        "openai/gpt-4o-mini": {
            "calls": 2,
            "failures": 0,
            "attempts": 3,
            "tokens_in": 14,
            "tokens_out": 6,
            "cost": 0.003,
        },
    }
    today[0] = date(2026, 11, 25)
    assert counter.snapshot() == {}
