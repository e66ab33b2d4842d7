"""Real mail servers on loopback for the email adapter: SMTP (aiosmtpd) and IMAP (aioimaplib's server).

Both speak the real protocols over TCP on 127.0.0.1 with OS-assigned ports, so aiosmtplib's and
aioimaplib's real client code runs. They are pure Python and start in milliseconds, which is why
they are used instead of Debian's postfix/dovecot (see docs/adapters/email.md).

aioimaplib ships its IMAP test server for its own tests; `ImapServer` below tightens it where our
adapter's correctness depends on server behaviour: LOGIN checks the password, `SEARCH UNSEEN` and
`SEARCH HEADER` work, and new-mail pushes go to the newest session of a user (so reconnects keep receiving IDLE
notifications). Flags, IDLE, UID FETCH/STORE are the test server's own.

    smtp = await SmtpSink.start(username="bot@example.com", password="s3cret")
    smtp.defer_next(1)            # the next DATA is answered "451 try again later"
    imap = await ImapServer.start({"bot@example.com": "imap-secret"})
    uid = imap.deliver("bot@example.com", raw_bytes)
    imap.flags("bot@example.com", uid)   # ['\\Seen'] once the adapter accepted it
"""

from __future__ import annotations

import asyncio
import email
import os
import shutil
import socket
import ssl
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, ClassVar

from aioimaplib.imap_testing_server import CAPABILITIES, IDLE, ImapProtocol, Mail, ServerState
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

# -- SMTP -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class ReceivedMail:
    sender: str
    recipients: list[str]
    raw: bytes
    message: EmailMessage = field(repr=False)

    @property
    def text(self) -> str:
        body = self.message.get_body(preferencelist=("plain",))
        # Mail travels with CRLF line ends; compare text as a reader sees it.
        return body.get_content().replace("\r\n", "\n").rstrip("\n") if body is not None else ""

    @property
    def html(self) -> str:
        body = self.message.get_body(preferencelist=("html",))
        return body.get_content().replace("\r\n", "\n") if body is not None else ""


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self._sink._failures:
            self._sink.refused += 1
            return self._sink._failures.pop(0)
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self._sink.received.append(ReceivedMail(str(envelope.mail_from), list(envelope.rcpt_tos), raw, message))
        self._sink.arrived.set()
        return "250 2.0.0 OK queued"


class SmtpSink:
    """An SMTP server that requires AUTH (PLAIN/LOGIN, no TLS on loopback) and keeps what it gets."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self.received: list[ReceivedMail] = []
        self.arrived = asyncio.Event()
        self.refused = 0  # messages answered with an error instead of being queued
        self.auth_failures = 0
        self._failures: list[str] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    @classmethod
    async def start(
        cls, *, username: str, password: str, tls: ssl.SSLContext | None = None, implicit_tls: bool = False
    ) -> SmtpSink:
        """`tls` with `implicit_tls` serves SMTPS (TLS from the first byte); `tls` alone offers and
        requires STARTTLS."""
        sink = cls(username, password)
        loop = asyncio.get_running_loop()
        handler = _SinkHandler(sink)

        def new_session() -> SMTP:
            with warnings.catch_warnings():  # AUTH without TLS is deliberate: loopback only
                warnings.simplefilter("ignore", UserWarning)
                return SMTP(
                    handler,
                    hostname="mail.test",
                    auth_required=True,
                    auth_require_tls=False,
                    authenticator=sink._authenticate,
                    tls_context=None if implicit_tls else tls,
                    require_starttls=tls is not None and not implicit_tls,
                    loop=loop,
                )

        sink._server = await loop.create_server(new_session, "127.0.0.1", 0, ssl=tls if implicit_tls else None)
        sink.port = sink._server.sockets[0].getsockname()[1]
        return sink

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.username
            and data.password.decode() == self.password
        )
        if not ok:
            self.auth_failures += 1
        return AuthResult(success=ok, handled=False)

    def defer_next(self, count: int = 1) -> None:
        """Answer the next `count` messages with a temporary failure (451), as a throttling server does."""
        self._failures = ["451 4.7.1 Rate limited, try again later"] * count

    def reject_next(self) -> None:
        """Answer the next message with a permanent failure (550)."""
        self._failures = ["550 5.7.1 Message rejected by policy"]

    def clear(self) -> None:
        self.received.clear()
        self.arrived.clear()
        self._failures = []
        self.refused = 0

    async def wait_for(self, count: int, within: float = 10.0) -> list[ReceivedMail]:
        deadline = time.monotonic() + within
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} mail(s), the SMTP server got {len(self.received)}")
            await asyncio.sleep(0.02)
        return list(self.received)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


# -- IMAP -----------------------------------------------------------------------------------------


class _StrictImapProtocol(ImapProtocol):
    accounts: ClassVar[dict[str, str]] = {}

    def login(self, tag: str, *args: str) -> None:
        user = args[0].strip('"') if args else ""
        password = args[1] if len(args) > 1 else ""
        if password.startswith('"') and password.endswith('"'):
            password = password[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        if self.accounts.get(user) != password:
            self.send_tagged_line(tag, "NO [AUTHENTICATIONFAILED] Authentication failed.")
            return
        # New mail is announced to the newest session (the stock server keeps the first one forever).
        self.server_state.connections[user] = self
        super().login(tag, user)

    def search(self, tag: str, *args: str) -> None:
        criteria = [a for a in args if a != "uid"]
        by_uid = bool(args) and args[0] == "uid"
        messages = self.server_state.get_mailbox_messages(self.user_login, self.user_mailbox) or []
        if [c.upper() for c in criteria] == ["UNSEEN"]:
            matches = [m for m in messages if r"\Seen" not in m.flags]
        elif len(criteria) == 3 and criteria[0].upper() == "HEADER":  # substring match, as RFC 3501 says
            name, needle = criteria[1], criteria[2].strip('"').lower()
            matches = [m for m in messages if needle in str(m.email.get(name, "")).lower()]
        else:
            super().search(tag, *args)
            return
        found = [str(m.uid if by_uid else m.id) for m in matches]
        self.send_untagged_line("SEARCH " + " ".join(found) if found else "SEARCH")
        self.send_tagged_line(tag, "OK %sSEARCH completed" % ("UID " if by_uid else ""))


class ImapServer:
    """An IMAP server (IDLE by default) with accounts, mail delivery and flag inspection."""

    def __init__(self, accounts: dict[str, str], *, idle: bool) -> None:
        self.accounts = dict(accounts)
        self._state = ServerState()
        self._capabilities = CAPABILITIES if idle else CAPABILITIES.replace("IDLE ", "")
        self.sessions: list[ImapProtocol] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    @classmethod
    async def start(
        cls, accounts: dict[str, str], *, idle: bool = True, tls: ssl.SSLContext | None = None
    ) -> ImapServer:
        """`tls` serves IMAPS (TLS from the first byte)."""
        server = cls(accounts, idle=idle)
        loop = asyncio.get_running_loop()
        protocol_class = type("ImapSession", (_StrictImapProtocol,), {"accounts": server.accounts})

        def new_session() -> ImapProtocol:
            session = protocol_class(server._state, 0, server._capabilities, loop)
            server.sessions.append(session)
            return session

        server._server = await loop.create_server(new_session, "127.0.0.1", 0, ssl=tls)
        server.port = server._server.sockets[0].getsockname()[1]
        return server

    def deliver(self, user: str, raw: bytes, mailbox: str = "INBOX") -> int:
        """Drop a message into a user's mailbox, as an MTA would; returns its UID."""
        mail = Mail(email.message_from_bytes(raw))
        return self._state.imap_receive(user, mail, mailbox)

    def messages(self, user: str, mailbox: str = "INBOX") -> list[Mail]:
        return list(self._state.get_mailbox_messages(user, mailbox) or []) if user in self._state.mailboxes else []

    def flags(self, user: str, uid: int, mailbox: str = "INBOX") -> list[str]:
        for message in self.messages(user, mailbox):
            if message.uid == uid:
                return list(message.flags)
        raise KeyError(f"no message with UID {uid} in {user}'s {mailbox}")

    def live_session(self, user: str) -> ImapProtocol | None:
        session = self._state.connections.get(user)
        if session is None or session.transport is None or session.transport.is_closing():
            return None
        return session

    async def wait_idle(self, user: str, within: float = 10.0) -> None:
        """Wait until `user`'s newest session sits in IDLE: mail delivered now is pushed at once."""
        deadline = time.monotonic() + within
        while True:
            session = self.live_session(user)
            if session is not None and session.state == IDLE:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{user} never entered IDLE (state {getattr(session, 'state', None)})")
            await asyncio.sleep(0.01)

    def drop_connections(self) -> None:
        """Cut every session, as a server restart or a dead NAT mapping would."""
        for session in self.sessions:
            if session.transport is not None:
                session.transport.close()

    async def stop(self) -> None:
        self.drop_connections()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


# -- Dovecot (optional) -----------------------------------------------------------------------------


DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None)


class DovecotServer:
    """Debian's dovecot-imapd with a private config on a loopback port, for a check against a real
    IMAP server. Needs the `dovecot-imapd` package and root (it drops to the `dovecot` user); tests
    using it skip when either is missing. Mail is delivered by writing into the Maildir, as an LDA does.
    """

    def __init__(self, root: Path, user: str, password: str) -> None:
        self.root = root
        self.user = user
        self.password = password
        self.port = 0
        self._process: asyncio.subprocess.Process | None = None
        self._serial = 0

    @classmethod
    async def start(cls, *, user: str, password: str) -> DovecotServer:
        assert DOVECOT, "dovecot is not installed"
        server = cls(_private_root(), user, password)
        server._write_config()
        root = server.root
        server._process = await asyncio.create_subprocess_exec(
            DOVECOT, "-F", "-c", str(root / "dovecot.conf"),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while True:
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.close()
                return server
            except OSError:
                if time.monotonic() > deadline or server._process.returncode is not None:
                    log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
                    raise RuntimeError(f"dovecot did not start: {log[-2000:]}") from None
                await asyncio.sleep(0.05)

    def _write_config(self) -> None:
        root = self.root
        for sub in ("run", "state", "mail", "home"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "users").write_text(f"{self.user}:{{PLAIN}}{self.password}::::::\n")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        (root / "dovecot.conf").write_text(_DOVECOT_CONF.format(root=root, port=self.port))
        for owned in (root / "mail", root / "home"):
            shutil.chown(owned, "dovecot", "dovecot")

    @property
    def maildir(self) -> Path:
        return self.root / "mail" / self.user

    def deliver(self, raw: bytes) -> str:
        """Write a message into the Maildir's new/ folder; returns its Maildir base name."""
        for folder in (self.maildir, self.maildir / "tmp", self.maildir / "new", self.maildir / "cur"):
            if not folder.exists():
                folder.mkdir()
                shutil.chown(folder, "dovecot", "dovecot")
        self._serial += 1
        name = f"{time.time_ns()}.M{self._serial}P{os.getpid()}.switchboard-test"
        temporary = self.maildir / "tmp" / name
        temporary.write_bytes(raw)
        shutil.chown(temporary, "dovecot", "dovecot")
        temporary.rename(self.maildir / "new" / name)
        return name

    def flags(self, name: str) -> str:
        """Maildir flags of a delivered message ("S" once \\Seen); "" while unseen or still in new/."""
        for path in (self.maildir / "cur").glob(f"{name}*"):
            return path.name.partition(":2,")[2]
        return ""

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            await self._process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _private_root() -> Path:
    # Its own folder under /tmp: pytest's tmp_path is private to root, and dovecot drops privileges.
    root = Path(tempfile.mkdtemp(prefix="switchboard-dovecot-"))
    root.chmod(0o755)
    return root


_DOVECOT_CONF = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""
