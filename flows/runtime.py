"""The worker side of the bus: one event in, the right flow (or command) run, replies out.

For each event: resolve the person behind the sender; drop it if they are blocked; if a run was
already started for this event (a redelivery after a crash), resume it from its last step instead
of starting over; if a run in this conversation waits for the person's answer, resume that; a
registered command runs its handler; anything else goes to the flow the router picks. Every turn
ends with a TURN_END reply so request/response channels know the answer is complete.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from bot.commands import CommandContext, CommandRegistry, role_allows
from bot.events import Event, EventKind, Reply
from bot.store.people import Person, Role
from bot.store.runs import RunRecord, RunStatus, Triage
from flows.context import RunContext, Services
from flows.engine import CompiledFlow, Engine, RunOutcome
from flows.registry import FlowRegistry
from flows.router import Router

log = logging.getLogger("switchboard.runtime")

APOLOGY = "Sorry, something went wrong while handling that ({reason}). Please try again in a moment."


class FlowRuntime:
    def __init__(self, services: Services, registry: FlowRegistry, commands: CommandRegistry) -> None:
        self.services = services
        self.registry = registry
        self.commands = commands
        config = services.config
        self.router = Router(registry, config.flows.default)
        self.engine = Engine(default_max_steps=config.flows.max_steps, default_max_seconds=config.flows.max_seconds)
        self.owners = set(config.bot.owners)
        self.runs_in_flight = 0
        self.refresh_catalog()

    def refresh_catalog(self) -> None:
        """What help texts list: the active flows and every command (filtered by role at use)."""
        self.services.catalog.clear()
        self.services.catalog.update(
            flows=[
                {"name": f.spec.name, "description": f.spec.description, "example": f.spec.example}
                for f in self.registry.active()
            ],
            commands=[
                {"name": c.name, "usage": c.usage, "summary": c.summary, "role": str(c.min_role)}
                for c in self.commands.visible_to(Role.OWNER)
            ],
        )

    def is_owner(self, event: Event) -> bool:
        return event.sender.key in self.owners or event.channel == "console"

    async def handle(self, event: Event) -> None:
        """The bus handler. Raises only for infrastructure failures (the bus then retries)."""
        t0 = time.perf_counter()
        store = self.services.store
        owner = self.is_owner(event)
        # One round trip: who sent it, whether this event already started a run (a redelivery),
        # and whether a run in this conversation waits for the person's answer.
        triage = await store.runs.triage(
            event_id=event.id,
            conversation=event.conversation.key,
            channel=event.sender.channel,
            user_id=event.sender.id,
            check_waiting=event.kind in (EventKind.MESSAGE, EventKind.ACTION),
        )
        if triage.person is None or (owner and triage.person[2] != Role.OWNER):
            person = await store.people.resolve(event.sender, owner=owner)
        else:
            person = Person(triage.person[0], triage.person[1], Role(triage.person[2]))
        try:
            outcome = await self._dispatch(event, person, triage)
        except BaseException as exc:
            # Cancelled (shutdown, a lost partition lease) or failed: no TURN_END, because the bus
            # hands the event out again and that delivery will end the turn.
            log.info("event not finished", extra={"event_id": event.id, "reason": type(exc).__name__})
            raise
        await self.services.bus.send(
            Reply.turn_end(
                event, run_id=outcome.run_id if outcome else "", status=str(outcome.status) if outcome else ""
            )
        )
        log.info(
            "event handled",
            extra={
                "event_id": event.id,
                "channel": event.channel,
                "kind": str(event.kind),
                "person": person.id,
                "run_id": outcome.run_id if outcome else None,
                "status": str(outcome.status) if outcome else None,
                "ms": round((time.perf_counter() - t0) * 1000, 2),
            },
        )

    async def _dispatch(self, event: Event, person: Person, triage: Triage) -> RunOutcome | None:
        """Run what the event asks for; the run's outcome, or None when no flow ran."""
        if person.role is Role.BLOCKED:
            log.info("ignored event from a blocked person", extra={"event_id": event.id, "person": person.id})
            return None
        if self.services.limits is not None and (refusal := await self.services.limits.check(event, person)):
            await self._say(event, refusal)
            return None
        if triage.previous is not None:
            return await self._redelivered(event, person, triage.previous)
        if triage.waiting is not None:
            return await self._resume(triage.waiting, event, person, answer=event)
        if event.kind is EventKind.COMMAND and event.command and self.commands.get(event.command.name):
            await self._run_command(event, person)
            return None
        flow = self.router.pick(event)
        if flow is None:
            await self._no_flow(event)
            return None
        return await self.run_flow(flow, event, person)

    async def run_flow(self, flow: CompiledFlow, event: Event, person: Person) -> RunOutcome:
        if flow.spec.history.record and event.text and event.kind in (EventKind.MESSAGE, EventKind.COMMAND):
            await self.services.store.history.add(
                event.conversation.key, "user", event.text, person_id=person.id, event_id=event.id
            )
        ctx = RunContext(run_id="", flow=flow.spec, event=event, person=person, services=self.services)
        self.runs_in_flight += 1
        try:
            outcome = await self.engine.start(flow, ctx)
        finally:
            self.runs_in_flight -= 1
        await self._after(outcome, ctx)
        return outcome

    async def _resume(self, run: RunRecord, event: Event, person: Person, *, answer: Event | None) -> RunOutcome:
        flow = self.registry.get(run.flow)
        if flow is None:
            await self.services.store.runs.finish(
                run.id, RunStatus.CANCELLED, error=f"flow {run.flow!r} is no longer loaded"
            )
            return RunOutcome(run.id, RunStatus.CANCELLED, {}, f"flow {run.flow!r} is no longer loaded")
        origin = event
        if answer is not None and run.event_id and run.event_id != event.id:
            origin = await self._original_event(run) or event
        ctx = RunContext(
            run_id=run.id, flow=flow.spec, event=origin, person=person, services=self.services, answer=answer
        )
        self.runs_in_flight += 1
        try:
            outcome = await self.engine.resume(
                flow,
                ctx,
                next_node=run.next_node or flow.first,
                state=run.state,
                run_event_id=run.event_id,
                conversation=run.conversation,
            )
        finally:
            self.runs_in_flight -= 1
        await self._after(outcome, ctx)
        return outcome

    async def _redelivered(self, event: Event, person: Person, run: RunRecord) -> RunOutcome | None:
        if run.status in (RunStatus.RUNNING, RunStatus.INTERRUPTED) and run.next_node:
            log.info("resuming an interrupted run", extra={"run_id": run.id, "node": run.next_node})
            return await self._resume(run, event, person, answer=None)
        log.info(
            "dropped a redelivered event whose run already ended",
            extra={"event_id": event.id, "run_id": run.id, "status": str(run.status)},
        )
        return RunOutcome(run.id, run.status, run.state.get("values", {}))

    async def _original_event(self, run: RunRecord) -> Event | None:
        async with self.services.store.pool.connection() as conn:
            row = await (await conn.execute("SELECT payload FROM events WHERE id = %s", (run.event_id,))).fetchone()
        return Event.from_dict(row[0]) if row else None

    async def _after(self, outcome: RunOutcome, ctx: RunContext) -> None:
        if outcome.status is not RunStatus.FAILED:
            return
        await ctx.send(self.apology(outcome))

    def apology(self, outcome: RunOutcome) -> str:
        from bot.llm import LLMError, ModelNotConfigured

        cause = outcome.cause
        if isinstance(cause, ModelNotConfigured):
            return str(cause)
        if isinstance(cause, LLMError):
            reason = "the language model did not answer"
        elif "limit" in outcome.error:
            reason = outcome.error
        else:
            reason = f"step {outcome.failed_node!r} failed"
        return APOLOGY.format(reason=reason)

    async def _run_command(self, event: Event, person: Person) -> None:
        assert event.command is not None
        spec = self.commands.get(event.command.name)
        assert spec is not None
        prefix = self.services.config.bot.command_prefix
        if not role_allows(person.role, spec.min_role):
            await self._say(event, f"`{prefix} {spec.name}` needs the {spec.min_role} role; you are {person.role}.")
            await self._audit(event, person, spec.name, "refused")
            return

        async def reply(text: str) -> None:
            await self._say(event, text)

        ctx = CommandContext(
            event=event,
            person=person,
            args=event.command.args,
            text=event.command.text,
            reply=reply,
            services={"runtime": self, "services": self.services},
        )
        try:
            answer = await spec.handler(ctx)
        except Exception as exc:
            log.exception("command failed", extra={"command": spec.name, "event_id": event.id})
            await self._say(event, f"`{prefix} {spec.name}` failed: {type(exc).__name__}: {exc}")
            await self._audit(event, person, spec.name, f"error: {exc}")
            return
        if answer:
            await self._say(event, answer)
        if spec.min_role is not Role.MEMBER:
            await self._audit(event, person, spec.name, "ok")

    async def _audit(self, event: Event, person: Person, command: str, outcome: str) -> None:
        auditor: Any = getattr(self.services, "audit", None)
        if auditor is not None:
            await auditor.record(event, person, command, outcome)

    async def _no_flow(self, event: Event) -> None:
        prefix = self.services.config.bot.command_prefix
        if event.command is not None:
            await self._say(event, f"Unknown command `{event.command.name}`. Try `{prefix} help`.")
        elif event.kind in (EventKind.MESSAGE,):
            await self._say(event, f"No flow handles this message. Try `{prefix} help`.")

    async def _say(self, event: Event, text: str) -> None:
        await self.services.bus.send(Reply(conversation=event.conversation, text=text, in_reply_to=event.id))
