"""Email adapter settings: server URLs from the environment, behaviour from `adapters.email` in config.

Credentials live only in the URLs (`imaps://user:pass@host:993/INBOX`), percent-decoded here once;
`repr` of these objects never shows a password, so a settings object can be logged safely.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import quote, unquote, urlsplit


class ImapSecurity(StrEnum):
    TLS = "imaps"  # implicit TLS, port 993
    PLAIN = "imap"  # no TLS: loopback or a trusted network only


class SmtpSecurity(StrEnum):
    TLS = "smtps"  # implicit TLS, port 465
    STARTTLS = "smtp+starttls"  # upgrade a plain connection, port 587
    PLAIN = "smtp"  # no TLS: loopback or a trusted network only


_IMAP_PORTS = {ImapSecurity.TLS: 993, ImapSecurity.PLAIN: 143}
_SMTP_PORTS = {SmtpSecurity.TLS: 465, SmtpSecurity.STARTTLS: 587, SmtpSecurity.PLAIN: 25}


@dataclass(frozen=True, slots=True)
class ServerUrl:
    """One parsed server URL. The password is excluded from `repr`."""

    scheme: str
    host: str
    port: int
    username: str = ""
    password: str = field(default="", repr=False)
    path: str = ""

    def redacted(self) -> str:
        user = f"{quote(self.username, safe='')}@" if self.username else ""
        return f"{self.scheme}://{user}{self.host}:{self.port}{('/' + self.path) if self.path else ''}"


def parse_server_url(url: str, *, variable: str, schemes: Mapping[str, int]) -> ServerUrl:
    """Parse `scheme://user:pass@host:port/path`; raise ValueError naming the variable, never the secret."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:  # a bad port, a stray bracket
        raise ValueError(f"{variable} is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes)
        raise ValueError(f"{variable} must start with one of {allowed}; found {scheme or 'no scheme'!r}")
    if not parts.hostname:
        raise ValueError(f"{variable} has no host (expected {scheme}://user:password@host:port)")
    return ServerUrl(
        scheme=scheme,
        host=parts.hostname,
        port=port or schemes[scheme],
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        path=unquote(parts.path.lstrip("/")),
    )


@dataclass(frozen=True, slots=True)
class EmailSettings:
    imap: ServerUrl
    smtp: ServerUrl
    address: str  # the bot's own mailbox, lower-case
    mailbox: str = "INBOX"
    from_name: str = ""
    # Exact addresses (`ops@example.com`) and whole domains (`@example.com`); empty answers anyone.
    allow: tuple[str, ...] = ()
    # Seconds between checks when the server has no IDLE.
    poll_interval: float = 30.0
    # IDLE is re-issued this often (RFC 2177 asks for < 29 min; NATs often drop quiet links sooner).
    idle_refresh: float = 300.0
    # Subject for a reply whose thread the adapter no longer remembers (after a restart).
    default_subject: str = "Message from Switchboard"
    # Attachments up to this size travel inside the event as data: URLs; larger ones are referenced.
    max_inline_attachment_bytes: int = 10 * 1024 * 1024
    # SMTP 4xx (temporary) failures are retried this many times with exponential backoff from 1 s.
    send_attempts: int = 6
    # CA bundle for servers with a private certificate authority (TLS is always verified).
    ca_file: str = ""

    @property
    def imap_tls(self) -> bool:
        return self.imap.scheme == ImapSecurity.TLS

    def allows(self, address: str) -> bool:
        if not self.allow:
            return True
        address = address.lower()
        domain = "@" + address.rpartition("@")[2]
        return address in self.allow or domain in self.allow


_OPTION_NAMES = {
    "allow", "from_name", "poll_interval", "idle_refresh", "default_subject",
    "max_inline_attachment_bytes", "send_attempts", "ca_file", "mailbox",
}  # fmt: skip


def load_settings(options: Mapping[str, Any], env: Mapping[str, str]) -> EmailSettings:
    """Read `EMAIL_IMAP_URL`, `EMAIL_SMTP_URL`, `EMAIL_ADDRESS` (options `imap_url`, `smtp_url` and
    `address` may stand in) plus the behaviour options; every problem is one clear ValueError."""
    opts = dict(options)
    imap_url = str(opts.pop("imap_url", "") or env.get("EMAIL_IMAP_URL", ""))
    smtp_url = str(opts.pop("smtp_url", "") or env.get("EMAIL_SMTP_URL", ""))
    address = str(opts.pop("address", "") or env.get("EMAIL_ADDRESS", "")).strip().lower()
    unknown = sorted(set(opts) - _OPTION_NAMES)
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(_OPTION_NAMES))})")
    required = (("EMAIL_IMAP_URL", imap_url), ("EMAIL_SMTP_URL", smtp_url), ("EMAIL_ADDRESS", address))
    missing = [name for name, value in required if not value]
    if missing:
        raise ValueError(f"set {', '.join(missing)}")
    if "@" not in address or address.startswith("@") or address.endswith("@"):
        raise ValueError(f"EMAIL_ADDRESS must be a mail address like bot@example.com, found {address!r}")
    imap = parse_server_url(imap_url, variable="EMAIL_IMAP_URL", schemes=_IMAP_PORTS)
    smtp = parse_server_url(smtp_url, variable="EMAIL_SMTP_URL", schemes=_SMTP_PORTS)
    if not imap.username:
        raise ValueError("EMAIL_IMAP_URL needs a user and password (imaps://user:password@host/INBOX)")
    allow = opts.get("allow") or ()
    if isinstance(allow, str):
        allow = [allow]
    cleaned = tuple(str(a).strip().lower() for a in allow)
    bad = [a for a in cleaned if "@" not in a]
    if bad:
        raise ValueError(f"allow entries are addresses or @domain, found {', '.join(bad)}")
    settings = EmailSettings(
        imap=imap,
        smtp=smtp,
        address=address,
        mailbox=str(opts.get("mailbox") or imap.path or "INBOX"),
        from_name=str(opts.get("from_name", "")),
        allow=cleaned,
        poll_interval=_positive(opts, "poll_interval", 30.0),
        idle_refresh=_positive(opts, "idle_refresh", 300.0),
        default_subject=str(opts.get("default_subject") or "Message from Switchboard"),
        max_inline_attachment_bytes=int(_positive(opts, "max_inline_attachment_bytes", 10 * 1024 * 1024)),
        send_attempts=int(_positive(opts, "send_attempts", 6)),
        ca_file=str(opts.get("ca_file", "")),
    )
    return settings


def _positive(opts: Mapping[str, Any], name: str, default: float) -> float:
    value = opts.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, found {value!r}") from None
    if number <= 0:
        raise ValueError(f"{name} must be a positive number, found {value!r}")
    return number
