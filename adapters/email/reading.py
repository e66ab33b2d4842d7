"""Read one inbound mail: who sent it, which thread it belongs to, what it says, whether to answer.

Everything here is pure (bytes in, `InboundMail` out), so the threading and loop-prevention rules
are tested without a server.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from adapters.email.plaintext import html_to_text, strip_quoted

_MSGID = re.compile(r"<([^<>\s]+)>")
# Local parts that belong to robots: answering them starts mail loops or bounces into the void.
_ROBOT_LOCAL_PARTS = {
    "mailer-daemon", "postmaster", "no-reply", "noreply", "no_reply", "do-not-reply",
    "donotreply", "do_not_reply", "bounce", "bounces",
}  # fmt: skip
_BULK_PRECEDENCE = {"bulk", "list", "junk", "auto_reply"}


@dataclass(frozen=True, slots=True)
class InboundAttachment:
    name: str
    content_type: str
    data: bytes = field(repr=False)
    section: str  # MIME part number ("2", "1.2"), for referencing the part in the mailbox


@dataclass(frozen=True, slots=True)
class InboundMail:
    message_id: str  # without angle brackets
    thread_root: str  # stable id of the thread's first message
    in_reply_to: str
    references: tuple[str, ...]
    sender: str  # From address, lower-case
    sender_name: str
    reply_address: str  # where answers go: Reply-To, else From
    to: tuple[str, ...]
    subject: str
    text: str  # what the person wrote, quotes and signature removed
    full_text: str  # the whole readable body
    attachments: tuple[InboundAttachment, ...]
    date: float | None
    automated: str  # why this looks machine-sent ("" for a person)


def parse_mail(raw: bytes) -> InboundMail:
    """Parse RFC 5322 bytes; never raises for malformed headers (the stdlib policy records defects)."""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    message_id = first_msgid(_header(msg, "Message-ID")) or synthetic_id(raw)
    references = tuple(_MSGID.findall(_header(msg, "References")))
    in_reply_to = first_msgid(_header(msg, "In-Reply-To"))
    sender_name, sender = _first_address(msg, "From")
    _, reply_to = _first_address(msg, "Reply-To")
    full_text = _body_text(msg)
    date: float | None
    try:
        date = parsedate_to_datetime(_header(msg, "Date")).timestamp() if msg.get("Date") else None
    except (TypeError, ValueError, IndexError):
        date = None
    return InboundMail(
        message_id=message_id,
        thread_root=thread_root(message_id, in_reply_to, references),
        in_reply_to=in_reply_to,
        references=references,
        sender=sender,
        sender_name=sender_name,
        reply_address=reply_to or sender,
        to=tuple(a.lower() for _, a in getaddresses([_header(msg, "To"), _header(msg, "Cc")]) if a),
        subject=_header(msg, "Subject").strip(),
        text=strip_quoted(full_text),
        full_text=full_text,
        attachments=tuple(_attachments(msg)),
        date=date,
        automated=automated_reason(msg, sender),
    )


def thread_root(message_id: str, in_reply_to: str, references: tuple[str, ...]) -> str:
    """The thread's first message: References lists ancestors oldest first (RFC 5322 3.6.4), and
    clients that trim it keep the first entry; In-Reply-To alone is the parent of a two-mail thread."""
    if references:
        return references[0]
    return in_reply_to or message_id


def first_msgid(value: str) -> str:
    found = _MSGID.search(value)
    if found:
        return found.group(1)
    return value.strip().strip("<>").split()[0] if value.strip() else ""


def synthetic_id(raw: bytes) -> str:
    """A stable stand-in for a mail without Message-ID: the same bytes give the same id."""
    return f"sha256-{hashlib.sha256(raw).hexdigest()[:32]}@switchboard.invalid"


def automated_reason(msg: Message, sender: str) -> str:
    """Why a mail must not be answered (auto-replies, lists, bounces), or "" when a person wrote it.

    RFC 3834 asks responders to skip Auto-Submitted mail other than "no"; Precedence and List-Id
    mark bulk and list traffic; robot senders bounce or ignore whatever we send.
    """
    auto = _header(msg, "Auto-Submitted").strip().lower()
    if auto and auto.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {auto}"
    precedence = _header(msg, "Precedence").strip().lower()
    if precedence in _BULK_PRECEDENCE:
        return f"Precedence: {precedence}"
    if msg.get("List-Id"):
        return "List-Id present (mailing list)"
    if msg.get("X-Autoreply") or msg.get("X-Autorespond"):
        return "X-Autoreply present"
    if _header(msg, "Return-Path").strip() == "<>":
        return "null Return-Path (a bounce)"
    local = sender.partition("@")[0]
    if not sender:
        return "no From address"
    if local in _ROBOT_LOCAL_PARTS:
        return f"robot sender {local}@"
    return ""


def attachment_data_url(attachment: InboundAttachment) -> str:
    return f"data:{attachment.content_type};base64,{base64.b64encode(attachment.data).decode('ascii')}"


def _header(msg: Message, name: str) -> str:
    value = msg.get(name)
    if value is None:
        return ""
    try:
        return str(value)
    except Exception:  # a header the policy could not decode: keep its raw form
        return str(msg.get_all(name, [""])[0])


def _first_address(msg: Message, name: str) -> tuple[str, str]:
    pairs = [(n, a) for n, a in getaddresses([_header(msg, name)]) if a and "@" in a]
    if not pairs:
        return "", ""
    display, address = pairs[0]
    return display.strip(), address.strip().lower()


def _body_text(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, AssertionError):  # unknown charset or broken encoding
        payload = part.get_payload(decode=True) or b""
        content = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else str(payload)
    if not isinstance(content, str):
        return ""
    if part.get_content_subtype() == "html":
        return html_to_text(content)
    return content.replace("\r\n", "\n").strip()


def _attachments(msg: EmailMessage) -> list[InboundAttachment]:
    found: list[InboundAttachment] = []
    body = msg.get_body(preferencelist=("plain", "html"))
    for section, part in _walk_with_sections(msg):
        if part.is_multipart() or part is body:
            continue
        disposition = part.get_content_disposition()
        filename = part.get_filename()
        if disposition != "attachment" and not filename:
            continue  # an alternative body or an inline part without a name
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            continue
        name = filename or f"attachment-{section}"
        found.append(InboundAttachment(name, part.get_content_type(), data, section))
    return found


def _walk_with_sections(msg: Message, prefix: str = "") -> list[tuple[str, Message]]:
    """Every part with its IMAP section number (RFC 3501 6.4.5)."""
    if not msg.is_multipart():
        return [(prefix or "1", msg)]
    out: list[tuple[str, Message]] = []
    for index, part in enumerate(msg.get_payload(), start=1):  # type: ignore[union-attr]
        section = f"{prefix}.{index}" if prefix else str(index)
        out.append((section, part))
        if part.is_multipart():
            out.extend(_walk_with_sections(part, section))
    return out
