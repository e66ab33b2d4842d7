"""Conformance harness for the email adapter: real SMTP and IMAP servers on loopback.

The adapter is switched on exactly as in production, from EMAIL_* variables (with percent-encoded
credentials), and reads mail over IMAP IDLE; what it sends is read back from the SMTP server.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import quote

import pytest

from adapters.base import AdapterContext
from adapters.email import EmailAdapter, create
from bot.bus.memory import MemoryBus
from tests.adapters.conformance import PlatformHarness, SentMessage
from tests.fakes.mail import DovecotServer, ImapServer, ReceivedMail, SmtpSink

BOT = "bot@example.com"
IMAP_PASSWORD = "imap-secret"
SMTP_PASSWORD = "s3cr@t/ü 1"  # needs percent-encoding in the URL


def mail_env(
    imap: ImapServer | DovecotServer,
    smtp: SmtpSink,
    *,
    address: str = BOT,
    imap_scheme: str = "imap",
    smtp_scheme: str = "smtp",
) -> dict[str, str]:
    """The EMAIL_* variables an operator would set, credentials percent-encoded."""
    user = quote(BOT, safe="")
    return {
        "EMAIL_IMAP_URL": f"{imap_scheme}://{user}:{quote(IMAP_PASSWORD, safe='')}@127.0.0.1:{imap.port}/INBOX",
        "EMAIL_SMTP_URL": f"{smtp_scheme}://{user}:{quote(SMTP_PASSWORD, safe='')}@127.0.0.1:{smtp.port}",
        "EMAIL_ADDRESS": address,
    }


def inbound(
    text: str,
    *,
    message_id: str,
    sender: str = "ann@example.com",
    subject: str = "Hello",
    in_reply_to: str = "",
    references: tuple[str, ...] = (),
    headers: dict[str, str] | None = None,
) -> bytes:
    """A mail as a person's client would send it to the bot."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = BOT
    msg["Subject"] = subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        msg["References"] = " ".join(f"<{r}>" for r in references)
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(text)
    return msg.as_bytes()


_PART = re.compile(r" \((\d+)/(\d+)\)$")


def _series(mail: ReceivedMail) -> tuple[str, str]:
    return str(mail.message.get("In-Reply-To", "")), _PART.sub("", str(mail.message["Subject"]))


class EmailHarness(PlatformHarness):
    name = "email"
    supports_buttons = False
    room = "ann@example.com"

    def __init__(self, adapter: EmailAdapter, bus: MemoryBus, imap: ImapServer, smtp: SmtpSink) -> None:
        self.adapter = adapter
        self.bus = bus
        self.imap = imap
        self.smtp = smtp
        self.max_chars = adapter.max_message_chars

    async def deliver_message(self, text: str, *, message_id: str, user: str = "U1") -> None:
        await self.imap.wait_idle(BOT)
        raw = inbound(text, message_id=f"{message_id}@example.com", sender=f"{user.lower()}@example.com")
        self.imap.deliver(BOT, raw)

    async def sent(self) -> list[SentMessage]:
        """What arrived at the SMTP server. A reply split into "(i/n)" parts is one logical reply that
        SMTP delivers part by part, so a series is reported once all of its parts are there."""
        out = []
        received = list(self.smtp.received)
        for mail in received:
            part = _PART.search(str(mail.message["Subject"]))
            if part and sum(1 for m in received if _series(m) == _series(mail)) < int(part.group(2)):
                continue
            refs = str(mail.message.get("References", "")).split()
            thread = (refs[0] if refs else str(mail.message.get("In-Reply-To", ""))).strip("<>")
            out.append(SentMessage(room=str(mail.message["To"]), text=mail.text, thread=thread))
        return out

    async def reset(self) -> None:
        self.smtp.clear()

    def rate_limit_next_send(self, retry_after: float) -> None:
        # SMTP has no Retry-After: a 451 is retried with backoff starting at one second.
        self.smtp.defer_next(1)


@pytest.fixture(scope="module")
async def email_harness() -> AsyncIterator[EmailHarness]:
    imap = await ImapServer.start({BOT: IMAP_PASSWORD})
    smtp = await SmtpSink.start(username=BOT, password=SMTP_PASSWORD)
    adapter = create({}, mail_env(imap, smtp))
    bus = MemoryBus()
    await bus.start()
    await adapter.start(AdapterContext(bus=bus, command_prefix="/sb"))
    delivering = asyncio.create_task(adapter.deliver_forever(bus))
    await asyncio.wait_for(adapter.watcher.connected.wait(), 10)
    yield EmailHarness(adapter, bus, imap, smtp)
    await adapter.stop()
    await bus.stop(drain_timeout=1)
    delivering.cancel()
    await asyncio.gather(delivering, return_exceptions=True)
    await imap.stop()
    await smtp.stop()
