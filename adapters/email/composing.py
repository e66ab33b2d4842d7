"""Compose an outbound reply: threading headers, loop-safe markers, text + HTML bodies, files.

The plain part is the markdown itself (readable as is); the HTML part is rendered from it with raw
HTML disabled, so model output can never inject markup into a person's mail client.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid

from markdown_it import MarkdownIt

from bot.events import FileOut

_RE_PREFIX = re.compile(r"^\s*((re|aw|sv|antw|fwd?|wg|tr)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
_HTML_FRAME = (
    '<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
    '<body style="font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; font-size: 14px;">'
    "{body}</body></html>"
)


def reply_subject(subject: str) -> str:
    """"Re: " once, however many Re:/AW:/Fwd: the thread has collected."""
    base = " ".join(_RE_PREFIX.sub("", subject).split())
    return f"Re: {base}" if base else "Re:"


def markdown_to_html(text: str) -> str:
    return _HTML_FRAME.format(body=_MARKDOWN.render(text))


@dataclass(frozen=True, slots=True)
class Threading:
    """Where a reply sits: the parent it answers and the ancestry chain to repeat."""

    in_reply_to: str = ""
    references: tuple[str, ...] = ()


def compose(
    *,
    sender: str,
    sender_name: str,
    to: str,
    subject: str,
    text: str,
    threading: Threading,
    files: tuple[FileOut, ...] = (),
) -> EmailMessage:
    """A complete message ready for SMTP; its Message-ID is the platform id of what we sent."""
    msg = EmailMessage()
    msg["From"] = formataddr((sender_name, sender)) if sender_name else sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    if threading.in_reply_to:
        msg["In-Reply-To"] = f"<{threading.in_reply_to}>"
    refs = list(threading.references)
    if threading.in_reply_to and threading.in_reply_to not in refs:
        refs.append(threading.in_reply_to)
    if refs:
        # Keep the root and the most recent ancestors: long threads must not grow headers unbounded.
        trimmed = refs if len(refs) <= 20 else [refs[0], *refs[-19:]]
        msg["References"] = " ".join(f"<{r}>" for r in trimmed)
    # RFC 3834: mark ours as automatic so other responders (vacation replies) stay quiet.
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"  # the Exchange/Outlook equivalent
    msg.set_content(text)
    msg.add_alternative(markdown_to_html(text), subtype="html")
    for file in files:
        _attach(msg, file)
    return msg


def _attach(msg: EmailMessage, file: FileOut) -> None:
    if not file.data_b64:
        return  # link-only files are listed in the text by the adapter
    maintype, _, subtype = (file.content_type or "application/octet-stream").partition("/")
    msg.add_attachment(
        base64.b64decode(file.data_b64), maintype=maintype, subtype=subtype or "octet-stream", filename=file.name
    )
