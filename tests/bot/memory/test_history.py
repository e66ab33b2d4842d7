"""History within a token budget: recent turns verbatim, older ones folded into a stored summary."""

from __future__ import annotations

import pytest

from bot.memory.history import ConversationHistory, estimate_tokens
from bot.store import Store
from tests.fakes.openai import FakeOpenAI, Text


class RecordingSummarizer:
    """A summarize(text) that records what it was asked and answers a fixed, recognisable summary."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    async def __call__(self, text: str) -> str:
        self.prompts.append(text)
        return f"summary #{len(self.prompts)}"


async def fill(store: Store, conversation: str, count: int, size: int = 200, start: int = 0) -> None:
    for i in range(start, start + count):
        role = "user" if i % 2 == 0 else "assistant"
        await store.history.add(conversation, role, f"turn {i}: " + "x" * size)


async def test_turns_that_fit_the_budget_come_back_verbatim(store: Store) -> None:
    await fill(store, "c:short", 4, size=20)
    window = await ConversationHistory(store.pool).window("c:short", budget=1000, summarize=RecordingSummarizer())
    assert [t.content[:6] for t in window.turns] == ["turn 0", "turn 1", "turn 2", "turn 3"]
    assert window.summary == "" and window.dropped == 0


async def test_older_turns_are_summarised_once_and_the_summary_is_kept(store: Store) -> None:
    await fill(store, "c:long", 20)
    history = ConversationHistory(store.pool)
    summarize = RecordingSummarizer()
    budget = 6 * (estimate_tokens("turn 10: " + "x" * 200) + 4)
    window = await history.window("c:long", budget=budget, summarize=summarize)
    assert [t.content.split(":")[0] for t in window.turns] == [f"turn {i}" for i in range(14, 20)]
    assert window.summary == "summary #1"
    assert "turn 0:" in summarize.prompts[0] and "turn 13:" in summarize.prompts[0]
    assert "turn 14:" not in summarize.prompts[0]
    assert window.messages()[0] == {"role": "system", "content": "Summary of the earlier conversation:\nsummary #1"}

    # Nothing new overflowed: the stored summary is reused without another model call.
    again = await history.window("c:long", budget=budget + estimate_tokens("summary #1"), summarize=summarize)
    assert again.summary == "summary #1" and len(summarize.prompts) == 1

    # More turns: only the new overflow is folded in, on top of the previous summary.
    await fill(store, "c:long", 4, start=20)
    latest = await history.window("c:long", budget=budget, summarize=summarize)
    assert len(summarize.prompts) == 2
    second = summarize.prompts[1]
    assert "Summary so far:\nsummary #1" in second
    assert "turn 14:" in second and "turn 18:" in second and "turn 13:" not in second
    # The summary now takes its share of the budget.
    assert [t.content.split(":")[0] for t in latest.turns] == [f"turn {i}" for i in range(19, 24)]
    assert await history.summary("c:long") == "summary #2"


async def test_without_a_model_old_turns_are_dropped_and_counted(store: Store) -> None:
    await fill(store, "c:nomodel", 10)
    window = await ConversationHistory(store.pool).window("c:nomodel", budget=200, summarize=None)
    assert window.summary == "" and window.dropped == 10 - len(window.turns) and window.dropped > 0


async def test_a_failing_summariser_loses_no_turns(store: Store) -> None:
    await fill(store, "c:broken", 10)

    async def broken(text: str) -> str:
        raise TimeoutError("model down")

    history = ConversationHistory(store.pool)
    window = await history.window("c:broken", budget=200, summarize=broken)
    assert window.turns and window.dropped > 0
    # Next time, with a working model, the overflow is still there to be summarised.
    summarize = RecordingSummarizer()
    await history.window("c:broken", budget=200, summarize=summarize)
    assert "turn 0:" in summarize.prompts[0]


@pytest.mark.slow
async def test_the_configured_model_writes_the_summary(store: Store) -> None:
    """Through the real LLM layer (litellm) to the local fake OpenAI server."""
    from bot.config import LLMSection
    from bot.llm import LLM
    from bot.memory import llm_summarizer

    async with FakeOpenAI() as fake:
        fake.script(Text("Ada asked about invoices; we agreed to resend March."))
        section = LLMSection.model_validate({"default": "fake", "models": {"fake": {
            "model": "openai/gpt-4o-mini", "api_base": fake.base_url, "api_key": "test"}}})
        summarize = llm_summarizer(LLM(section))
        await fill(store, "c:llm", 10)
        window = await ConversationHistory(store.pool).window("c:llm", budget=200, summarize=summarize)
        assert window.summary == "Ada asked about invoices; we agreed to resend March."
        assert "turn 0:" in fake.requests[-1]["messages"][0]["content"]
