"""What a running node can see and do: `RunContext`, and the shared `Services` behind it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.events import Button, Event, Reply
from flows import templates

if TYPE_CHECKING:
    from bot.bus import Bus
    from bot.commands import CommandRegistry
    from bot.config import Config
    from bot.llm import LLM
    from bot.store import Store
    from bot.store.people import Person
    from flows.model import FlowSpec


@dataclass
class Services:
    """Long-lived parts a node may use. Optional ones are None until their feature is configured."""

    store: Store
    llm: LLM
    bus: Bus
    config: Config
    commands: CommandRegistry | None = None
    memory: Any = None  # bot.memory (per-person long-term memory)
    knowledge: Any = None  # bot.knowledge (collections, hybrid search)
    embedder: Any = None  # bot.embeddings.Embedder
    tools: Any = None  # bot.tools registry
    scheduler: Any = None
    audit: Any = None  # bot.admin.audit.AuditLog (who ran which admin command, with what outcome)
    limits: Any = None  # bot.admin.limits.RateLimits (messages per minute, model spend per day)
    # Read-only description of the loaded flows and commands, for help texts.
    catalog: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunContext:
    run_id: str
    flow: FlowSpec
    event: Event
    person: Person
    services: Services
    values: dict[str, Any] = field(default_factory=dict)  # node outputs by node id
    vars: dict[str, Any] = field(default_factory=dict)  # written by `set` nodes
    # The event that resumed a waiting run (the person's answer to an `ask`), if any.
    answer: Event | None = None
    started: float = field(default_factory=time.monotonic)
    replies_sent: int = 0
    # Which step is running and how many replies it has sent: reply ids are derived from them, so a
    # step re-run after a crash sends the same ids and adapters drop what already went out.
    step_seq: int = 0
    sends_in_step: int = 0

    # -- templates -------------------------------------------------------------------------

    def scope(self) -> dict[str, Any]:
        """Everything a template can read. Node outputs are top-level names: `{{ ask_llm.text }}`."""
        event = self.event
        scope: dict[str, Any] = dict(self.values)
        scope.update(
            event={
                "id": event.id,
                "kind": str(event.kind),
                "text": event.text,
                "channel": event.channel,
                "mentioned": event.mentioned,
                "sender": {"id": event.sender.id, "name": event.sender.name, "key": event.sender.key},
                "conversation": event.conversation.key,
                "command": (
                    {"name": event.command.name, "args": list(event.command.args), "text": event.command.text}
                    if event.command
                    else None
                ),
                "meta": event.meta,
            },
            person=self.person.as_template(),
            vars=self.vars,
            flow={"name": self.flow.name, "description": self.flow.description},
            run={"id": self.run_id},
            models={"default": self.services.llm.default_model, "configured": self.services.llm.configured()},
            bot={"name": self.services.config.bot.name, "prefix": self.services.config.bot.command_prefix},
            catalog=self._catalog_for_person(),
            now=datetime.now(UTC).isoformat(timespec="seconds"),
            human_input=(
                {"text": self.answer.text, "action": self.answer.meta.get("action", ""), "kind": str(self.answer.kind)}
                if self.answer
                else None
            ),
        )
        return scope

    def _catalog_for_person(self) -> dict[str, Any]:
        from bot.commands import role_allows
        from bot.store.people import Role

        catalog = self.services.catalog
        commands = [c for c in catalog.get("commands", []) if role_allows(self.person.role, Role(c["role"]))]
        return {**catalog, "commands": commands}

    def render(self, template: str) -> str:
        return templates.render(template, self.scope())

    def render_value(self, value: Any) -> Any:
        return templates.render_value(value, self.scope())

    def evaluate(self, expression: str) -> Any:
        return templates.evaluate(expression, self.scope())

    # -- replies ---------------------------------------------------------------------------

    async def send(
        self,
        text: str,
        *,
        buttons: tuple[Button, ...] = (),
        edit_of: str = "",
        partial: bool = False,
        reply_id: str | None = None,
        in_thread: bool = True,
        ephemeral: bool = False,
    ) -> Reply:
        """Send a reply into the conversation that started the run."""
        reply = Reply(
            conversation=self.event.conversation,
            text=text,
            in_reply_to=self.event.id,
            buttons=buttons,
            edit_of=edit_of,
            partial=partial,
            in_thread=in_thread,
            ephemeral=ephemeral,
            meta={"run_id": self.run_id, "flow": self.flow.name},
        )
        if reply_id:
            reply.id = reply_id
        elif self.run_id:
            reply.id = f"{self.run_id}.{self.step_seq}.{self.sends_in_step}"
            self.sends_in_step += 1
        await self.services.bus.send(reply)
        if not partial:
            self.replies_sent += 1
        return reply

    async def record_assistant_text(self, text: str) -> None:
        """Add what the bot said to the conversation history (when the flow records history)."""
        if self.flow.history.record and text:
            await self.services.store.history.add(
                self.event.conversation.key,
                "assistant",
                text,
                person_id=self.person.id,
                event_id=self.event.id,
                run_id=self.run_id,
            )
