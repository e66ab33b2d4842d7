"""Watch one IMAP mailbox: hand every unseen message to a callback, then mark it \\Seen.

The order matters for durability: a message is flagged only after the callback says it was
accepted (published to the bus), so a crash in between leaves it unseen and it is read again at the
next start, where the bus's dedupe on Event.id makes it run once. New mail is awaited with IDLE
(RFC 2177) where the server has it and by polling otherwise; the connection is re-made with
exponential backoff and jitter.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import ssl
from collections.abc import Awaitable, Callable
from enum import StrEnum

import aioimaplib

from adapters.email.settings import EmailSettings

log = logging.getLogger("switchboard.adapters.email")

# Called with (uid, raw message bytes); returns True when the message may be marked seen.
MailHandler = Callable[[str, bytes], Awaitable[bool]]

_BACKOFF_START = 1.0
_BACKOFF_MAX = 60.0
_COMMAND_TIMEOUT = 60.0  # a FETCH of a large mail over a slow link takes a while


class WatchMode(StrEnum):
    CONNECTING = "connecting"
    IDLE = "idle"
    POLLING = "polling"
    STOPPED = "stopped"


class ImapRefused(RuntimeError):
    """The server answered NO/BAD to something we cannot do without (login, select)."""


class MailboxWatcher:
    def __init__(self, settings: EmailSettings, handler: MailHandler) -> None:
        self._settings = settings
        self._handler = handler
        self.mode = WatchMode.STOPPED
        self.connected = asyncio.Event()  # set while a selected session is live (tests and status)
        self._client: aioimaplib.IMAP4 | None = None
        self._lost = False

    async def run(self) -> None:
        """Watch until cancelled; never raises for a network or server problem."""
        delay = _BACKOFF_START
        while True:
            self.mode = WatchMode.CONNECTING
            try:
                await self._session()
            except asyncio.CancelledError:
                await self._logout()
                self.mode = WatchMode.STOPPED
                raise
            except ImapRefused as exc:
                log.error("IMAP server refused the mailbox session", extra={"error": str(exc), "server": self._server})
                delay = _BACKOFF_MAX
            except (TimeoutError, OSError, aioimaplib.AioImapException, ConnectionError) as exc:
                if self.mode is not WatchMode.CONNECTING:
                    delay = _BACKOFF_START  # the last session got going: start the backoff afresh
                log.warning(
                    "IMAP connection lost; reconnecting",
                    extra={"error": f"{type(exc).__name__}: {exc}", "server": self._server, "retry_in": delay},
                )
            finally:
                self.connected.clear()
                await self._logout()
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, _BACKOFF_MAX)

    @property
    def _server(self) -> str:
        return self._settings.imap.redacted()

    async def _session(self) -> None:
        client = await self._connect()
        self._client = client
        self.connected.set()
        use_idle = client.has_capability("IDLE")
        self.mode = WatchMode.IDLE if use_idle else WatchMode.POLLING
        log.info("watching mailbox", extra={"server": self._server, "mode": str(self.mode)})
        while True:
            await self._drain(client)
            if use_idle:
                await self._idle(client)
            else:
                await asyncio.sleep(self._settings.poll_interval)
            if self._lost:
                raise ConnectionError("IMAP connection closed by the server")

    async def _connect(self) -> aioimaplib.IMAP4:
        self._lost = False
        # Learn about a dropped connection at once, even in the middle of IDLE.
        return await open_session(self._settings, on_lost=self._on_connection_lost)

    def _on_connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        client = self._client
        if client is not None:
            client.protocol.idle_queue.put_nowait(aioimaplib.STOP_WAIT_SERVER_PUSH)

    async def _drain(self, client: aioimaplib.IMAP4) -> None:
        """Hand every unseen message to the handler, oldest first, flagging each once accepted.

        Searches again until nothing new turns up, so mail that arrived while we were busy is not
        left waiting for the next IDLE refresh.
        """
        tried: set[str] = set()
        while True:
            response = await _bounded(client.uid_search("UNSEEN", charset=None))
            if response.result != "OK":
                raise ImapRefused(f"search refused: {_text(response)}")
            fresh = [uid for uid in _search_uids(response.lines) if uid not in tried]
            if not fresh:
                return
            for uid in fresh:
                tried.add(uid)
                await self._take(client, uid)

    async def _take(self, client: aioimaplib.IMAP4, uid: str) -> None:
        fetched = await _bounded(client.uid("fetch", uid, "(BODY.PEEK[])"))
        raw = _literal(fetched.lines)
        if fetched.result != "OK" or raw is None:
            log.warning("could not fetch a message; it stays unseen", extra={"uid": uid, "result": fetched.result})
            return
        if not await self._handler(uid, raw):
            return  # not accepted (bus unavailable): leave it unseen for the next pass
        stored = await _bounded(client.uid("store", uid, "+FLAGS", r"(\Seen)"))
        if stored.result != "OK":
            log.warning("could not mark a message seen; it may be read again (and deduped)", extra={"uid": uid})

    async def _idle(self, client: aioimaplib.IMAP4) -> None:
        """Wait in IDLE until the server reports new mail or the refresh interval passes."""
        refresh = self._settings.idle_refresh
        idle = await client.idle_start(timeout=refresh)
        try:
            while not self._lost:
                push = await client.wait_server_push(timeout=refresh + 30)
                if push == aioimaplib.STOP_WAIT_SERVER_PUSH:
                    break
                if any(isinstance(line, bytes | bytearray) and line.endswith(b"EXISTS") for line in push):
                    break
        finally:
            if not self._lost and client.has_pending_idle():
                client.idle_done()
                await asyncio.wait_for(idle, timeout=10)

    async def _logout(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await close_session(client, polite=not self._lost)


async def open_session(
    settings: EmailSettings, *, on_lost: Callable[[Exception | None], None] | None = None
) -> aioimaplib.IMAP4:
    """Connect, log in and select the watched folder; the connection is closed on any failure."""
    imap = settings.imap
    if settings.imap_tls:
        context = ssl.create_default_context(cafile=settings.ca_file or None)
        client: aioimaplib.IMAP4 = aioimaplib.IMAP4_SSL(host=imap.host, port=imap.port, ssl_context=context)
    else:
        client = aioimaplib.IMAP4(host=imap.host, port=imap.port)
    if on_lost is not None:
        client.protocol.conn_lost_cb = on_lost
    try:
        await client.wait_hello_from_server()
        response = await client.login(imap.username, imap.password)
        if response.result != "OK":
            raise ImapRefused(f"login as {imap.username} refused: {_text(response)}")
        response = await client.select(_mailbox_arg(settings.mailbox))
        if response.result != "OK":
            raise ImapRefused(f"select {settings.mailbox} refused: {_text(response)}")
    except BaseException:
        await close_session(client, polite=False)
        raise
    return client


async def close_session(client: aioimaplib.IMAP4, *, polite: bool) -> None:
    """LOGOUT when the link is healthy, then close the socket whatever happened."""
    try:
        if polite:
            await asyncio.wait_for(client.logout(), timeout=2)
    except (TimeoutError, OSError, aioimaplib.AioImapException, ConnectionError):
        pass
    finally:
        transport = client.protocol.transport
        if transport is not None:
            transport.close()


async def find_messages(settings: EmailSettings, message_id: str) -> list[bytes]:
    """Messages of the watched folder whose Message-ID header contains `message_id` (IMAP HEADER
    search is a substring match: the caller checks for the exact id). A short session of its own,
    so the watcher's IDLE is not disturbed."""
    client = await open_session(settings)
    try:
        response = await _bounded(
            client.uid_search("HEADER", "Message-ID", aioimaplib.quoted(message_id), charset=None)
        )
        found = []
        for uid in _search_uids(response.lines)[-5:] if response.result == "OK" else []:
            fetched = await _bounded(client.uid("fetch", uid, "(BODY.PEEK[])"))
            raw = _literal(fetched.lines)
            if raw is not None:
                found.append(raw)
        return found
    finally:
        await close_session(client, polite=True)


async def _bounded(command: Awaitable[aioimaplib.Response]) -> aioimaplib.Response:
    """Every command gets a deadline: aioimaplib leaves some (UID STORE) waiting forever on a dead link."""
    return await asyncio.wait_for(command, _COMMAND_TIMEOUT)


def _mailbox_arg(name: str) -> str:
    if re.search(r'[\s"(){%*\\]', name):
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return name


def _search_uids(lines: list[bytes]) -> list[str]:
    """UIDs from a SEARCH response; aioimaplib strips the leading "SEARCH" of the untagged line."""
    for line in lines[:-1]:  # the last line is the tagged completion text
        if isinstance(line, bytes | bytearray):
            words = bytes(line).split()
            if words and words[0].upper() == b"SEARCH":
                words = words[1:]
            if all(w.isdigit() for w in words):
                return [w.decode() for w in words]
    return []


def _literal(lines: list[bytes]) -> bytes | None:
    """The message bytes of a single-message FETCH (aioimaplib hands literals over as bytearray)."""
    for line in lines:
        if isinstance(line, bytearray):
            return bytes(line)
    return None


def _text(response: aioimaplib.Response) -> str:
    last = response.lines[-1] if response.lines else b""
    return bytes(last).decode("utf-8", errors="replace")[:200]
