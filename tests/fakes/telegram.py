"""A local fake of the Telegram Bot API, for driving python-telegram-bot's real HTTP code path.

Reached through `TELEGRAM_BASE_URL` (PTB then calls `<base>/bot<token>/<method>` with form-encoded
or multipart parameters). It keeps the rules that bite real bots:

* `getUpdates` long-polls: it waits up to `timeout` seconds for an update, forgets every update below
  `offset`, honours `allowed_updates`, and answers 409 while a webhook is set;
* HTML parse mode is parsed strictly (only Telegram's tags, balanced, `code`/`pre` holding no other
  tags, no nested blockquotes, every `<`, `>` and `&` escaped) and a message whose *visible* text is
  over 4096 UTF-16 code units is refused, exactly as the platform does;
* flood control answers 429 with `parameters.retry_after`; `message is not modified` on a no-op edit;
* a wrong token in the URL gets 401.

Tests build inbound updates with the `message`/`callback`/`reaction` helpers and deliver them by
`enqueue` (polling) or `post_webhook` (webhook, with or without the right secret header).
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web

MAX_TEXT = 4096
SEND_METHODS = frozenset({"sendMessage", "editMessageText", "sendDocument", "sendPhoto"})
_ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "span",
                 "tg-spoiler", "blockquote", "tg-emoji"}
_HTML_TOKEN = re.compile(
    r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s+[^<>]*)?)>"  # a tag
    r"|&(#[0-9]+|#x[0-9A-Fa-f]+|lt|gt|amp|quot);"  # an entity Telegram knows
    r"|[<>&]"  # anything else unescaped: an error
)
_MENTION = re.compile(r"(?<![\w@])@[A-Za-z0-9_]{3,32}")
_COMMAND = re.compile(r"^/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]+)?")


class EntityError(ValueError):
    """What Telegram reports as "can't parse entities"."""


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def parse_html(source: str) -> str:
    """Validate Telegram HTML the strict way; return the visible text."""
    out: list[str] = []
    stack: list[str] = []
    pos = 0
    for match in _HTML_TOKEN.finditer(source):
        out.append(source[pos:match.start()])
        pos = match.end()
        closing, tag, _attrs, entity = match.group(1), match.group(2), match.group(3), match.group(4)
        if tag is None and entity is None:
            raise EntityError(f"unescaped {match.group(0)!r} at byte offset {match.start()}")
        if entity is not None:
            out.append(html.unescape(match.group(0)))
            continue
        tag = tag.lower()
        if tag not in _ALLOWED_TAGS:
            raise EntityError(f"Unsupported start tag \"{tag}\" at byte offset {match.start()}")
        if closing:
            if not stack or stack[-1] != tag:
                expected = stack[-1] if stack else ""
                raise EntityError(f"Unmatched end tag at byte offset {match.start()}, expected \"</{expected}>\"")
            stack.pop()
            continue
        if stack and stack[-1] in ("code", "pre") and not (stack[-1] == "pre" and tag == "code"):
            raise EntityError(f"can't nest <{tag}> in <{stack[-1]}>")
        if tag == "blockquote" and "blockquote" in stack:
            raise EntityError("blockquote entities can't be nested")
        if tag == "a" and "a" in stack:
            raise EntityError("links can't be nested")
        stack.append(tag)
    out.append(source[pos:])
    if stack:
        raise EntityError(f"Can't find end tag corresponding to start tag \"{stack[-1]}\"")
    return "".join(out)


def _entities(text: str) -> list[dict[str, Any]]:
    """Mention and bot_command entities, as Telegram computes them (offsets in UTF-16 units)."""
    found = []
    command = _COMMAND.match(text)
    if command:
        found.append({"type": "bot_command", "offset": 0, "length": utf16_len(command.group(0))})
    for match in _MENTION.finditer(text):
        found.append({"type": "mention", "offset": utf16_len(text[:match.start()]),
                      "length": utf16_len(match.group(0))})
    return found


@dataclass(slots=True)
class SentMessage:
    """A message the bot sent, in its current state (edits applied)."""

    chat_id: int
    message_id: int
    text: str  # visible text
    source: str  # as sent (HTML when parse_mode is HTML)
    parse_mode: str = ""
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (label, callback_data)
    thread_id: int | None = None
    reply_to: int | None = None
    edits: int = 0
    kind: str = "text"  # text | document | photo
    file_name: str = ""
    file_size: int = 0


@dataclass(slots=True)
class ApiCall:
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


class FakeTelegram:
    def __init__(self, token: str, *, bot_username: str = "switchboard_bot", port: int = 0) -> None:
        self.token = token
        self.port = port
        self.bot_id = int(token.split(":", 1)[0])
        self.bot_username = bot_username
        self.calls: list[ApiCall] = []
        self.sent: list[SentMessage] = []
        self.answered: list[dict[str, Any]] = []
        self.commands: list[dict[str, Any]] = []
        self.webhook: dict[str, Any] | None = None
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._arrived = asyncio.Event()
        self._faults: deque[tuple[frozenset[str], int, dict[str, Any]]] = deque()
        self._allowed_updates: list[str] | None = None
        self._runner: web.AppRunner | None = None
        self._closing = False
        self.base_url = ""

    # -- server ------------------------------------------------------------------------------------

    async def start(self) -> FakeTelegram:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        self._closing = True
        self._arrived.set()  # release parked long polls so shutdown does not wait out their timeout
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def reset(self) -> None:
        self.calls.clear()
        self.sent.clear()
        self.answered.clear()
        self._faults.clear()

    # -- fault injection ---------------------------------------------------------------------------

    def rate_limit_next(self, retry_after: int, methods: frozenset[str] = SEND_METHODS) -> None:
        """The next call to one of `methods` gets Telegram's flood-control answer."""
        body = {"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after {retry_after}",
                "parameters": {"retry_after": retry_after}}
        self._faults.append((methods, 429, body))

    def reject_entities_next(self) -> None:
        """The next formatted send is refused as unparsable, as Telegram sometimes does."""
        body = {"ok": False, "error_code": 400,
                "description": "Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 0"}
        self._faults.append((frozenset({"sendMessage:HTML", "editMessageText:HTML"}), 400, body))

    def migrate_next(self, new_chat_id: int) -> None:
        """The next send answers that the group was upgraded to a supergroup with a new id."""
        body = {"ok": False, "error_code": 400,
                "description": "Bad Request: group chat was upgraded to a supergroup chat",
                "parameters": {"migrate_to_chat_id": new_chat_id}}
        self._faults.append((frozenset({"sendMessage"}), 400, body))

    # -- inbound updates ---------------------------------------------------------------------------

    @staticmethod
    def user(user_id: int, first_name: str = "Ada", username: str = "", is_bot: bool = False) -> dict[str, Any]:
        user: dict[str, Any] = {"id": user_id, "is_bot": is_bot, "first_name": first_name}
        if username:
            user["username"] = username
        return user

    @staticmethod
    def chat(chat_id: int, title: str = "", *, forum: bool = False) -> dict[str, Any]:
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": "Ada"}
        return {"id": chat_id, "type": "supergroup", "title": title or "Team", "is_forum": forum}

    def next_message_id(self, chat_id: int) -> int:
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def message(self, chat: dict[str, Any], user: dict[str, Any], text: str = "", *, message_id: int | None = None,
                reply_to: dict[str, Any] | None = None, thread_id: int | None = None,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """An update carrying a message, with the entities Telegram would compute."""
        message: dict[str, Any] = {
            "message_id": message_id if message_id is not None else self.next_message_id(chat["id"]),
            "date": int(time.time()), "chat": chat, "from": user,
        }
        if text:
            message["text"] = text
            if entities := _entities(text):
                message["entities"] = entities
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        message.update(extra or {})
        return {"update_id": next(self._update_ids), "message": message}

    def bot_message(self, chat: dict[str, Any], message_id: int, text: str = "earlier answer") -> dict[str, Any]:
        """A message as if the bot had sent it (what a person replies to)."""
        return {"message_id": message_id, "date": int(time.time()), "chat": chat, "text": text,
                "from": self.user(self.bot_id, "Switchboard", self.bot_username, is_bot=True)}

    def callback(self, sent: SentMessage, user: dict[str, Any], data: str) -> dict[str, Any]:
        """A press on one of the bot's inline keyboard buttons."""
        chat = self.chat(sent.chat_id)
        return {"update_id": next(self._update_ids), "callback_query": {
            "id": f"cq{next(self._update_ids)}", "from": user, "chat_instance": "ci1", "data": data,
            "message": {**self.bot_message(chat, sent.message_id, sent.text)},
        }}

    def reaction(self, chat: dict[str, Any], user: dict[str, Any], message_id: int, emoji: str) -> dict[str, Any]:
        return {"update_id": next(self._update_ids), "message_reaction": {
            "chat": chat, "message_id": message_id, "user": user, "date": int(time.time()),
            "old_reaction": [], "new_reaction": [{"type": "emoji", "emoji": emoji}],
        }}

    def enqueue(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for the next getUpdates (polling)."""
        self._updates.append(update)
        self._arrived.set()
        return update

    async def post_webhook(self, update: dict[str, Any], *, secret: str | None) -> httpx.Response:
        """Deliver an update to the registered webhook the way Telegram does (secret in a header)."""
        assert self.webhook is not None, "no webhook registered"
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
        async with httpx.AsyncClient() as client:
            return await client.post(self.webhook["url"], json=update, headers=headers, timeout=10)

    # -- API ---------------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _fail(401, "Unauthorized")
        method = request.match_info["method"]
        params = await _params(request)
        self.calls.append(ApiCall(method, params))
        fault = self._fault_for(method, params)
        if fault is not None:
            return web.json_response(fault[1], status=fault[0])
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return _fail(404, "Not Found")
        try:
            return web.json_response({"ok": True, "result": await handler(params)})
        except _ApiError as exc:
            return _fail(exc.code, exc.description)

    def _fault_for(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        keys = {method, f"{method}:{params.get('parse_mode', '')}"}
        for i, (methods, status, body) in enumerate(self._faults):
            if methods & keys:
                del self._faults[i]
                return status, body
        return None

    async def _api_getMe(self, _: dict[str, Any]) -> dict[str, Any]:
        return {**self.user(self.bot_id, "Switchboard", self.bot_username, is_bot=True),
                "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}

    async def _api_getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise _ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                 "use deleteWebhook to delete the webhook first")
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        timeout = float(params.get("timeout") or 0)
        if "allowed_updates" in params:
            self._allowed_updates = json.loads(params["allowed_updates"]) or None
        if offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        deadline = time.monotonic() + timeout
        while True:
            ready = [u for u in self._updates if self._wanted(u)][:limit]
            left = deadline - time.monotonic()
            if ready or left <= 0 or self._closing:
                return ready
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return []

    def _wanted(self, update: dict[str, Any]) -> bool:
        allowed = self._allowed_updates or ["message", "callback_query"]  # Telegram's default omits reactions
        return any(kind in update for kind in allowed)

    async def _api_setWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = {"url": params["url"], "secret_token": params.get("secret_token"),
                        "allowed_updates": json.loads(params.get("allowed_updates") or "null")}
        if params.get("drop_pending_updates") in ("true", "True"):
            self._updates.clear()
        return True

    async def _api_deleteWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = None
        if params.get("drop_pending_updates") in ("true", "True"):
            self._updates.clear()
        return True

    async def _api_setMyCommands(self, params: dict[str, Any]) -> bool:
        self.commands = json.loads(params["commands"])
        return True

    async def _api_answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        self.answered.append(params)
        return True

    async def _api_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = _chat_id(params)
        text, visible = _text(params)
        buttons = _buttons(params)
        reply = json.loads(params["reply_parameters"])["message_id"] if params.get("reply_parameters") else None
        thread = int(params["message_thread_id"]) if params.get("message_thread_id") else None
        sent = SentMessage(chat_id, self.next_message_id(chat_id), visible, text, params.get("parse_mode", ""),
                           buttons, thread, reply)
        self.sent.append(sent)
        return self._as_message(sent)

    async def _api_editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = _chat_id(params)
        message_id = int(params.get("message_id") or 0)
        found = next((m for m in self.sent if m.chat_id == chat_id and m.message_id == message_id), None)
        if found is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        text, visible = _text(params)
        buttons = _buttons(params)
        if text == found.source and buttons == found.buttons:
            raise _ApiError(400, "Bad Request: message is not modified: specified new message content and reply "
                                 "markup are exactly the same as a current content and reply markup of the message")
        found.source, found.text, found.buttons = text, visible, buttons
        found.parse_mode = params.get("parse_mode", "")
        found.edits += 1
        return self._as_message(found)

    async def _api_sendDocument(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._file_message(params, "document")

    async def _api_sendPhoto(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._file_message(params, "photo")

    def _file_message(self, params: dict[str, Any], kind: str) -> dict[str, Any]:
        chat_id = _chat_id(params)
        upload = params.get(kind)
        if upload is None:
            raise _ApiError(400, f"Bad Request: there is no {kind} in the request")
        name, size = (upload[0], len(upload[1])) if isinstance(upload, tuple) else (str(upload), 0)
        sent = SentMessage(chat_id, self.next_message_id(chat_id), params.get("caption", ""), "", kind=kind,
                           file_name=name, file_size=size)
        self.sent.append(sent)
        return self._as_message(sent)

    def _as_message(self, sent: SentMessage) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": sent.message_id, "date": int(time.time()), "chat": self.chat(sent.chat_id),
            "from": self.user(self.bot_id, "Switchboard", self.bot_username, is_bot=True),
        }
        if sent.kind == "text":
            message["text"] = sent.text
        else:
            message["document"] = {"file_id": f"f{sent.message_id}", "file_unique_id": f"u{sent.message_id}",
                                   "file_name": sent.file_name}
        if sent.buttons:
            message["reply_markup"] = {"inline_keyboard": [[{"text": t, "callback_data": d}] for t, d in sent.buttons]}
        return message


class _ApiError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def _fail(code: int, description: str) -> web.Response:
    return web.json_response({"ok": False, "error_code": code, "description": description}, status=code)


async def _params(request: web.Request) -> dict[str, Any]:
    """Form-encoded or multipart parameters; uploaded files become (filename, bytes)."""
    if request.content_type == "application/json":
        return dict(await request.json())
    form = await request.post()
    params: dict[str, Any] = {}
    for key, value in form.items():
        if isinstance(value, web.FileField):
            params[key] = (value.filename, value.file.read())
        else:
            params[key] = value
    return params


def _chat_id(params: dict[str, Any]) -> int:
    raw = str(params.get("chat_id") or "")
    if not re.fullmatch(r"-?\d+", raw):
        raise _ApiError(400, "Bad Request: chat not found")
    return int(raw)


def _text(params: dict[str, Any]) -> tuple[str, str]:
    text = str(params.get("text") or "")
    if not text.strip():
        raise _ApiError(400, "Bad Request: message text is empty")
    visible = text
    if params.get("parse_mode") == "HTML":
        try:
            visible = parse_html(text)
        except EntityError as exc:
            raise _ApiError(400, f"Bad Request: can't parse entities: {exc}") from None
    elif params.get("parse_mode"):
        raise _ApiError(400, f"Bad Request: unsupported parse_mode {params['parse_mode']!r} in this fake")
    if utf16_len(visible) > MAX_TEXT:
        raise _ApiError(400, "Bad Request: message is too long")
    return text, visible


def _buttons(params: dict[str, Any]) -> list[tuple[str, str]]:
    if not params.get("reply_markup"):
        return []
    markup = json.loads(params["reply_markup"])
    buttons = [(b["text"], b.get("callback_data", "")) for row in markup.get("inline_keyboard", []) for b in row]
    for _, data in buttons:
        if not 1 <= len(data.encode()) <= 64:
            raise _ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
    return buttons
