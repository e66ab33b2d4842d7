"""The store applies its migrations once and reports them."""

from __future__ import annotations

from bot.events import ConversationRef, Event, EventKind, Sender
from bot.store import Store


async def test_migrations_are_applied_and_reported(store: Store) -> None:
    states = await store.migration_status()
    assert states, "at least the spine migration ships"
    assert all(s.applied_at and s.checksum_ok for s in states)
    assert await store.migrate() == []  # a second start applies nothing


async def test_the_journal_drops_an_event_it_has_seen(store: Store) -> None:
    event = Event(
        id="test:dup-1",
        kind=EventKind.MESSAGE,
        channel="test",
        conversation=ConversationRef("test", "room"),
        sender=Sender("test", "u1"),
        text="hi",
    )
    assert await store.journal.record(event) is True
    assert await store.journal.record(event) is False
    assert [e.id for e in await store.journal.pending()] == ["test:dup-1"]
    await store.journal.complete(event.id)
    assert await store.journal.pending() == []
