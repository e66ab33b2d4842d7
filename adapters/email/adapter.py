"""The email channel: IMAP in (IDLE or polling), SMTP out, one conversation per mail thread.

A conversation is `ConversationRef(channel="email", space=<our address>, room=<the person's reply
address>, thread=<thread root Message-ID>)`: the room says where answers go and the thread keeps
one email thread's turns together, so a reply can be addressed and threaded from the ref alone.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import ssl
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

import aioimaplib
import aiosmtplib

from adapters.base import Adapter, AdapterContext, Capability, buttons_as_text, split_text
from adapters.email.composing import Threading, compose, reply_subject
from adapters.email.mailbox import ImapRefused, MailboxWatcher, WatchMode, find_messages
from adapters.email.reading import InboundAttachment, InboundMail, attachment_data_url, parse_mail
from adapters.email.settings import EmailSettings, SmtpSecurity, load_settings
from bot.commands import parse_command
from bot.events import Attachment, Button, Command, ConversationRef, Event, EventKind, Reply, ReplyKind, Sender

log = logging.getLogger("switchboard.adapters.email")

_MAX_THREADS = 10_000  # thread states kept for addressing replies (oldest forgotten first)
_MAX_SENT = 10_000
_SEND_BACKOFF_START = 1.0
_SEND_BACKOFF_MAX = 60.0
_CHOICE = re.compile(r"^\s*#?(\d{1,2})[.)]?\s*$")


@dataclass(slots=True)
class _Thread:
    """What a reply needs to thread under the latest inbound mail of a conversation."""

    subject: str
    last_message_id: str
    references: tuple[str, ...]


class EmailAdapter(Adapter):
    name = "email"
    capabilities = frozenset({Capability.THREADS, Capability.FILES, Capability.MARKDOWN})
    # Mail has no hard limit; past this a reply is sent as numbered parts rather than one huge mail.
    max_message_chars = 50_000

    def __init__(self, settings: EmailSettings) -> None:
        self.settings = settings
        self._context: AdapterContext | None = None
        self.watcher = MailboxWatcher(settings, self._on_mail)
        self._task: asyncio.Task[None] | None = None
        self._threads: OrderedDict[str, _Thread] = OrderedDict()
        self._choices: OrderedDict[str, tuple[Button, ...]] = OrderedDict()
        self._sent: OrderedDict[str, str] = OrderedDict()  # Reply.id -> Message-ID of its first mail
        self._tls = ssl.create_default_context(cafile=settings.ca_file or None)

    def describe(self) -> str:
        who = f"{len(self.settings.allow)} allowed sender(s)" if self.settings.allow else "any sender"
        return (
            f"{self.settings.address} via {self.settings.imap.redacted()} (mailbox {self.settings.mailbox}) "
            f"and {self.settings.smtp.redacted()}, answering {who}"
        )

    @property
    def mode(self) -> WatchMode:
        return self.watcher.mode

    async def start(self, context: AdapterContext) -> None:
        self._context = context
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.watcher.run(), name="email:imap")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # -- inbound -------------------------------------------------------------------------------

    async def _on_mail(self, uid: str, raw: bytes) -> bool:
        """Publish one mail; True when it may be marked seen (accepted, a duplicate, or ignored)."""
        assert self._context is not None
        try:
            mail = parse_mail(raw)
        except Exception:  # the parser is lenient; this is a bug-class failure, keep the mail for a person
            log.exception("unreadable mail left in the mailbox and marked seen", extra={"uid": uid})
            return True
        reason = self._ignore_reason(mail)
        if reason:
            log.info("mail not answered", extra={"uid": uid, "message_id": mail.message_id, "reason": reason})
            return True
        event = self._to_event(mail, uid)
        self._remember_thread(event.conversation, mail)
        try:
            accepted = await self._context.bus.publish(event)
        except Exception as exc:  # the bus is stopping or unreachable: leave the mail unseen
            log.warning("mail not accepted by the bus; it stays unseen", extra={"uid": uid, "error": str(exc)})
            return False
        if not accepted:
            log.info("redelivered mail dropped as a duplicate", extra={"event_id": event.id})
        return True

    def _ignore_reason(self, mail: InboundMail) -> str:
        if mail.sender == self.settings.address:
            return "our own message"
        if mail.automated:
            return mail.automated
        if not self.settings.allows(mail.sender):
            return "sender not on the allow list"
        return ""

    def _to_event(self, mail: InboundMail, uid: str) -> Event:
        assert self._context is not None
        prefix = self._context.command_prefix
        conversation = ConversationRef(
            channel=self.name, space=self.settings.address, room=mail.reply_address, thread=mail.thread_root
        )
        text = mail.text or mail.full_text
        kind = EventKind.MESSAGE
        meta: dict[str, Any] = {"subject": mail.subject, "message_id": mail.message_id}
        command = _subject_command(mail, prefix)
        if command is not None:
            meta["body"] = text
            text = f"{prefix} {command.name} {command.text}".strip()
        else:
            first_line = text.strip().split("\n", 1)[0]
            command = parse_command(first_line, prefix)
        if command is not None:
            kind = EventKind.COMMAND
        else:
            value = self._choice(conversation, text)
            if value is not None:
                kind = EventKind.ACTION
                meta["action"] = value
        event = Event(
            id=f"{self.name}:{mail.message_id}",
            kind=kind,
            channel=self.name,
            conversation=conversation,
            sender=Sender(self.name, mail.sender, mail.sender_name or mail.sender),
            text=text,
            attachments=tuple(self._attachment(a, uid) for a in mail.attachments),
            command=command,
            reply_to=mail.in_reply_to,
            mentioned=True,  # a mail to the bot's address is addressed to the bot
            meta=meta,
            raw={
                "uid": uid,
                "message_id": mail.message_id,
                "from": mail.sender,
                "to": list(mail.to),
                "subject": mail.subject,
                "in_reply_to": mail.in_reply_to,
                "references": list(mail.references),
            },
        )
        if mail.date:
            event.ts = mail.date
        return event

    def _attachment(self, attachment: InboundAttachment, uid: str) -> Attachment:
        size = len(attachment.data)
        if size <= self.settings.max_inline_attachment_bytes:
            url = attachment_data_url(attachment)
        else:  # RFC 5092 IMAP URL: the part stays in the mailbox, fetchable on demand
            imap = self.settings.imap
            server = f"{quote(imap.username, safe='')}@{imap.host}:{imap.port}"
            url = f"imap://{server}/{quote(self.settings.mailbox)}/;UID={uid}/;SECTION={attachment.section}"
        return Attachment(name=attachment.name, content_type=attachment.content_type, url=url, size=size)

    def _choice(self, conversation: ConversationRef, text: str) -> str | None:
        """Map "2" (or a label) to the value of a button offered earlier in this thread."""
        buttons = self._choices.get(conversation.key)
        if not buttons:
            return None
        answer = text.strip().split("\n", 1)[0].strip()
        match = _CHOICE.match(answer)
        chosen: Button | None = None
        if match and 1 <= int(match.group(1)) <= len(buttons):
            chosen = buttons[int(match.group(1)) - 1]
        else:
            chosen = next((b for b in buttons if b.label.casefold() == answer.casefold()), None)
        if chosen is None:
            return None
        self._choices.pop(conversation.key, None)
        return chosen.value

    def _remember_thread(self, conversation: ConversationRef, mail: InboundMail) -> None:
        chain = [*mail.references]
        if mail.in_reply_to and mail.in_reply_to not in chain:
            chain.append(mail.in_reply_to)
        _put(
            self._threads,
            conversation.key,
            _Thread(subject=mail.subject, last_message_id=mail.message_id, references=tuple(chain)),
            _MAX_THREADS,
        )

    # -- outbound ------------------------------------------------------------------------------

    async def send(self, reply: Reply) -> str:
        if reply.kind is ReplyKind.TURN_END:
            return ""
        if reply.partial:
            # Mail cannot be edited: a streamed answer is sent once, when its final text arrives.
            return ""
        conversation = reply.conversation
        if not conversation.room or "@" not in conversation.room:
            raise ValueError(f"email reply needs a mail address as conversation.room, got {conversation.room!r}")
        text = buttons_as_text(reply)
        if reply.buttons:
            _put(self._choices, conversation.key, reply.buttons, _MAX_THREADS)
        links = [f"- {f.name}: {f.url}" for f in reply.files if f.url and not f.data_b64]
        if links:
            text = text.rstrip() + "\n\n" + "\n".join(links)
        thread = self._threads.get(conversation.key) or await self._recall(reply)
        threading = self._threading(reply, thread)
        subject = reply_subject(thread.subject) if thread and thread.subject else self.settings.default_subject
        chunks = split_text(text, self.max_message_chars)
        first_id = ""
        for index, chunk in enumerate(chunks, start=1):
            part_subject = subject if len(chunks) == 1 else f"{subject} ({index}/{len(chunks)})"
            message = compose(
                sender=self.settings.address,
                sender_name=self.settings.from_name,
                to=conversation.room,
                subject=part_subject,
                text=chunk,
                threading=threading,
                files=reply.files if index == len(chunks) else (),
            )
            await self._deliver(message, conversation.room)
            first_id = first_id or str(message["Message-ID"]).strip("<>")
        _put(self._sent, reply.id, first_id, _MAX_SENT)
        return first_id

    def _parent(self, reply: Reply) -> str:
        """The Message-ID a reply answers, from `Reply.in_reply_to` (an `email:<Message-ID>` event id)."""
        prefix = f"{self.name}:"
        return reply.in_reply_to.removeprefix(prefix) if reply.in_reply_to.startswith(prefix) else ""

    async def _recall(self, reply: Reply) -> _Thread | None:
        """Rebuild a forgotten thread (after a restart) from the mailbox, which still holds the mail
        being answered or the thread's first mail; without it the reply still threads by id."""
        wanted = [i for i in dict.fromkeys((self._parent(reply), reply.conversation.thread)) if i]
        for message_id in wanted:
            try:
                candidates = await asyncio.wait_for(find_messages(self.settings, message_id), 20)
            except (OSError, TimeoutError, aioimaplib.AioImapException, ImapRefused) as exc:
                error = f"{type(exc).__name__}: {exc}"
                log.warning("could not look up the thread in the mailbox", extra={"error": error})
                return None
            for raw in candidates:
                mail = parse_mail(raw)
                if mail.message_id == message_id:
                    self._remember_thread(reply.conversation, mail)
                    return self._threads[reply.conversation.key]
        return None

    def _threading(self, reply: Reply, thread: _Thread | None) -> Threading:
        parent = self._parent(reply)
        if thread is not None:
            return Threading(in_reply_to=parent or thread.last_message_id, references=thread.references)
        # Thread state forgotten (restart): the ref still names the root, which keeps clients threading.
        root = reply.conversation.thread
        refs = (root,) if root and root != parent else ()
        return Threading(in_reply_to=parent or root, references=refs)

    async def _deliver(self, message: EmailMessage, recipient: str) -> None:
        """Send over SMTP; temporary failures (4xx, dropped connections) are retried with backoff."""
        smtp = self.settings.smtp
        delay = _SEND_BACKOFF_START
        attempts = self.settings.send_attempts
        for attempt in range(1, attempts + 1):
            try:
                await aiosmtplib.send(
                    message,
                    sender=self.settings.address,
                    recipients=[recipient],
                    hostname=smtp.host,
                    port=smtp.port,
                    username=smtp.username or None,
                    password=smtp.password or None,
                    use_tls=smtp.scheme == SmtpSecurity.TLS,
                    start_tls=smtp.scheme == SmtpSecurity.STARTTLS,
                    tls_context=self._tls if smtp.scheme != SmtpSecurity.PLAIN else None,
                    timeout=30,
                )
                return
            except aiosmtplib.SMTPException as exc:
                code = _temporary_code(exc)
                if code is None or attempt == attempts:
                    raise
                log.warning(
                    "SMTP send deferred; retrying",
                    extra={"code": code, "attempt": attempt, "retry_in": round(delay, 1), "server": smtp.redacted()},
                )
            await asyncio.sleep(delay * random.uniform(1.0, 1.2))
            delay = min(delay * 2, _SEND_BACKOFF_MAX)


def create(options: dict[str, Any], env: Mapping[str, str]) -> EmailAdapter:
    """Registry entry point: EMAIL_IMAP_URL + EMAIL_SMTP_URL + EMAIL_ADDRESS switch the adapter on."""
    return EmailAdapter(load_settings(options, env))


def _subject_command(mail: InboundMail, prefix: str) -> Command | None:
    """`[sb] status` in the subject of a new mail is the command `status` (the body is its context)."""
    if mail.in_reply_to or mail.references:
        return None  # in a reply the subject is the thread's, not a new instruction
    tag = f"[{prefix.lstrip('/').strip()}]"
    subject = mail.subject.strip()
    if not subject.lower().startswith(tag.lower()):
        return None
    return parse_command(f"{prefix} {subject[len(tag):].strip()}".strip(), prefix)


def _temporary_code(exc: aiosmtplib.SMTPException) -> int | None:
    """The 4xx code (or 0 for a dropped connection) when a send is worth retrying, else None."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        return codes[0] if codes and all(400 <= c < 500 for c in codes) else None
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code if 400 <= exc.code < 500 else None
    if isinstance(exc.__cause__, ssl.SSLError):
        return None  # an untrusted certificate or a TLS mismatch does not heal by waiting
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPTimeoutError):
        return 0
    return None


def _put(store: OrderedDict[str, Any], key: str, value: Any, limit: int) -> None:
    store[key] = value
    store.move_to_end(key)
    while len(store) > limit:
        store.popitem(last=False)
