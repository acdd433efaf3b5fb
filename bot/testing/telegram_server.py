"""A local Telegram Bot API server that answers, and fails, the way the real one does.

``FakeTelegram`` serves ``/bot<token>/<method>`` on 127.0.0.1 for ``getMe``, ``sendMessage``,
``sendPhoto`` (with ``reply_parameters`` / ``reply_to_message_id``), ``editMessageText``,
``editMessageCaption`` and ``deleteMessage``. It checks what Telegram checks (token, chat, HTML
markup with TDLib's own rules and error texts, lengths after parsing, kicked bots, migrated
chats; for an edit: the message exists, is the bot's, has a text or a caption, really changes;
for a delete: the message exists and is less than 48 hours old), records every accepted message,
edit, delete and attempt, and plays scripted faults (flood control, 5xx, dropped connections,
slow answers, chat migration, a refused photo) so the client's error handling can be tested
through real HTTP::

    async with FakeTelegram(token="123456:TEST-token-not-real") as tg:
        channel = TelegramChannel.from_config(config_with(api_url=tg.url))
        ...
        assert tg.messages[0].plain == "..."

What a test counts, all plain attributes read from the test's own process (the fake runs in it,
in its event loop or in a thread): ``tg.messages`` (every message sent, replies included, as
first sent), ``tg.replies`` (those that reply to another), ``tg.edits`` (every edit applied:
chat, message id, new text, time), ``tg.deletions`` (every delete applied) and
``tg.current(chat, message_id)`` (the message as readers see it now, ``None`` once deleted).
``tg.age(hours=49)`` moves messages back in time for the 48-hour rule of ``deleteMessage``.

``with FakeTelegram(...)`` serves from a thread instead, for tests that block (a subprocess).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any, Literal

from aiohttp import web
from aiohttp.web_request import FileField

from bot.testing.server import LOOPBACK, LocalServer, Served
from bot.testing.telegram_html import Entity, HtmlParseError, clean_text, parse_html

SEND_METHODS = frozenset({"sendmessage", "sendphoto"})
EDIT_METHODS = frozenset({"editmessagetext", "editmessagecaption"})
# The methods that change a chat: scripted faults apply to these, never to getMe.
WRITE_METHODS = SEND_METHODS | EDIT_METHODS | {"deletemessage"}
MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024
# "A message can only be deleted if it was sent less than 48 hours ago" (core.telegram.org/bots
# /api#deletemessage).
DELETE_WINDOW = 48 * 3600.0
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
DEFAULT_TOKEN = "123456:TEST-token-not-real"
DEFAULT_CHATS: Mapping[str, int] = {"@newsvision": -1001234567890}

FaultKind = Literal[
    "retry_after", "server_error", "drop", "slow", "migrate", "photo_refused", "echo_path"
]


@dataclass(frozen=True, slots=True)
class Fault:
    """One scripted failure, for :meth:`FakeTelegram.fail_next`."""

    kind: FaultKind
    seconds: float = 0.0
    status: int = 502
    new_chat_id: int | None = None

    @classmethod
    def retry_after(cls, seconds: int) -> Fault:
        """429 ``Too Many Requests: retry after N`` with ``parameters.retry_after``."""
        return cls("retry_after", seconds=seconds)

    @classmethod
    def server_error(cls, status: int = 502) -> Fault:
        """A 5xx answer, as when Telegram's front end has trouble."""
        return cls("server_error", status=status)

    @classmethod
    def drop(cls) -> Fault:
        """The connection closes without any answer."""
        return cls("drop")

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """The answer comes after ``seconds``; the message is still accepted, as Telegram does
        when a client gives up waiting."""
        return cls("slow", seconds=seconds)

    @classmethod
    def migrate(cls, new_chat_id: int) -> Fault:
        """The chat becomes a supergroup with ``new_chat_id``; sends to the old id fail with 400
        and ``parameters.migrate_to_chat_id`` from now on."""
        return cls("migrate", new_chat_id=new_chat_id)

    @classmethod
    def echo_path(cls) -> Fault:
        """400 whose description quotes the request path, token and all, as a self-hosted
        Bot API server or a proxy in front of it does for a request it cannot route."""
        return cls("echo_path")

    @classmethod
    def photo_refused(cls) -> Fault:
        """``sendPhoto`` fails: Telegram could not use the photo URL."""
        return cls("photo_refused")

    def applies_to(self, method: str) -> bool:
        if self.kind == "photo_refused":
            return method == "sendphoto"
        if self.kind == "migrate":
            return method in SEND_METHODS
        return method in WRITE_METHODS


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A message the fake accepted. ``text`` / ``caption`` are exactly what was sent; ``plain``
    is what a reader sees (markup parsed, entities decoded, cleaned as the Bot API cleans)."""

    chat_id: int
    message_id: int
    method: str
    text: str | None
    caption: str | None
    plain: str
    parse_mode: str | None
    entities: tuple[Entity, ...]
    photo: str | None
    reply_markup: dict[str, Any] | None
    disable_notification: bool
    link_preview_options: dict[str, Any] | None
    received_at: float
    message_thread_id: int | None = None
    reply_to_message_id: int | None = None


@dataclass(frozen=True, slots=True)
class EditRecord:
    """An edit the fake applied: ``text`` is exactly what was sent (the new text or caption),
    ``plain`` what readers see from then on."""

    chat_id: int
    message_id: int
    method: str  # "editMessageText" or "editMessageCaption"
    text: str
    plain: str
    at: float


@dataclass(frozen=True, slots=True)
class DeleteRecord:
    """A message the fake deleted."""

    chat_id: int
    message_id: int
    at: float


@dataclass(slots=True)
class _Live:
    """A message as it stands now: its current version, when it was sent (moved back by
    :meth:`FakeTelegram.age`), whether it is gone, and whether the bot wrote it."""

    current: SentMessage
    date: float
    deleted: bool = False
    foreign: bool = False
    edit_date: float | None = None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One request as the fake saw it, accepted or refused."""

    at: float
    method: str
    chat: str | None
    status: int
    description: str | None = None
    fault: FaultKind | None = None


@dataclass(slots=True)
class _Chat:
    id: int
    username: str | None
    title: str
    kicked: bool = False
    migrated_to: int | None = None
    last_message_id: int = 0
    # A supergroup with forum topics ("is_forum"): a send names its topic by message_thread_id.
    topics: dict[int, str] | None = None

    def to_json(self) -> dict[str, Any]:
        kind = "supergroup" if self.topics is not None else "channel"
        data: dict[str, Any] = {"id": self.id, "title": self.title, "type": kind}
        if self.topics is not None:
            data["is_forum"] = True
        if self.username:
            data["username"] = self.username
        return data


class _Refusal(Exception):
    def __init__(
        self, status: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


def _generated_id(username: str) -> int:
    # Stable across runs so a test or a demo can predict the id of "@name".
    return -1000000000000 - zlib.crc32(username.lower().encode()) % 9_000_000_000


class FakeTelegram(Served):
    """A Telegram Bot API on 127.0.0.1. ``chats`` maps ``@username`` (public channel) or a
    numeric id (private channel) to the chat id; ``tg.url`` is the ``api_url`` to configure."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        chats: Mapping[str, int] | Iterable[str] = DEFAULT_CHATS,
        bot_username: str = "newsvision_test_bot",
        host: str = LOOPBACK,
        port: int = 0,
    ) -> None:
        self.token = token
        self.bot_username = bot_username
        self.messages: list[SentMessage] = []
        self.edits: list[EditRecord] = []
        self.deletions: list[DeleteRecord] = []
        self.attempts: list[AttemptRecord] = []
        self._live: dict[tuple[int, int], _Live] = {}
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._chats: dict[int, _Chat] = {}
        pairs = chats.items() if isinstance(chats, Mapping) else ((c, None) for c in chats)
        for name, chat_id in pairs:
            self.add_chat(name, chat_id)
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._server = LocalServer(app, host=host, port=port)

    # -- set-up and scripting ----------------------------------------------------------------

    def add_chat(self, name: str | int, chat_id: int | None = None) -> int:
        """Adds a channel the bot may post to; returns its id."""
        text = str(name)
        username = text[1:] if text.startswith("@") else None
        if chat_id is None:
            chat_id = int(text) if username is None else _generated_id(username)
        title = f"新聞視界 {username}" if username else f"新聞視界 {chat_id}"
        with self._lock:
            self._chats[chat_id] = _Chat(chat_id, username, title)
        return chat_id

    def add_topic(self, chat: str | int, name: str) -> int:
        """Makes ``chat`` a group with forum topics and opens the topic ``name``; returns its
        ``message_thread_id``."""
        with self._lock:
            found = self._resolve(str(chat))
            if found.topics is None:
                found.topics = {}
            found.last_message_id += 1  # a topic's id is the id of the service message opening it
            found.topics[found.last_message_id] = name
            return found.last_message_id

    def messages_in_topic(self, chat: str | int, topic: int) -> list[SentMessage]:
        return [m for m in self.messages_in(chat) if m.message_thread_id == topic]

    def fail_next(self, n: int, fault: Fault) -> None:
        """The next ``n`` requests the fault applies to fail with it, in the order scripted."""
        with self._lock:
            self._faults.extend([fault] * n)

    def kick(self, chat: str | int) -> None:
        """From now on the bot is no longer a member: sends get 403."""
        with self._lock:
            self._resolve(str(chat)).kicked = True

    def messages_in(self, chat: str | int) -> list[SentMessage]:
        with self._lock:
            chat_id = self._resolve(str(chat)).id
            return [m for m in self.messages if m.chat_id == chat_id]

    @property
    def replies(self) -> list[SentMessage]:
        """The messages sent as a reply to another (``reply_to_message_id`` set)."""
        with self._lock:
            return [m for m in self.messages if m.reply_to_message_id is not None]

    def current(self, chat: str | int, message_id: int) -> SentMessage | None:
        """The message as readers see it now: its last edit applied; ``None`` once deleted
        (or never sent)."""
        with self._lock:
            live = self._live.get((self._resolve(str(chat)).id, message_id))
            return None if live is None or live.deleted else live.current

    def edits_of(self, chat: str | int, message_id: int) -> list[EditRecord]:
        with self._lock:
            chat_id = self._resolve(str(chat)).id
            return [e for e in self.edits if (e.chat_id, e.message_id) == (chat_id, message_id)]

    def age(
        self,
        *,
        hours: float,
        chat: str | int | None = None,
        message_id: int | None = None,
    ) -> None:
        """Moves messages ``hours`` back in time, as if sent that much earlier: every message,
        those of ``chat``, or one. For the 48-hour rule of ``deleteMessage``."""
        with self._lock:
            chat_id = None if chat is None else self._resolve(str(chat)).id
            for (in_chat, mid), live in self._live.items():
                if chat_id is not None and in_chat != chat_id:
                    continue
                if message_id is not None and mid != message_id:
                    continue
                live.date -= hours * 3600

    def add_foreign_message(self, chat: str | int, text: str) -> int:
        """A message an administrator of the channel posted by hand, not the bot: the bot can
        neither edit nor delete it. Returns its id."""
        with self._lock:
            found = self._resolve(str(chat))
            found.last_message_id += 1
            now = time.time()
            message = SentMessage(
                chat_id=found.id,
                message_id=found.last_message_id,
                method="sendMessage",
                text=text,
                caption=None,
                plain=text,
                parse_mode=None,
                entities=(),
                photo=None,
                reply_markup=None,
                disable_notification=False,
                link_preview_options=None,
                received_at=now,
            )
            self._live[(found.id, message.message_id)] = _Live(message, now, foreign=True)
            return message.message_id

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:43121``: the channel's ``api_url``."""
        return self._server.url

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> str:
        return await self._server.start()

    async def stop(self) -> None:
        await self._server.stop()

    # -- HTTP --------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        method_name = ""
        chat: str | None = None
        fault: Fault | None = None
        try:
            token, method_name = self._route(path)
            if token != self.token:
                raise _Refusal(401, "Unauthorized")
            method = method_name.lower()
            if method not in {"getme", *WRITE_METHODS}:
                raise _Refusal(404, "Not Found")
            params = await _read_params(request)
            chat = _as_text(params.get("chat_id")) or None
            fault = self._take_fault(method)
            if fault is not None and fault.kind == "drop":
                self._record(method_name, chat, 0, "connection dropped", fault.kind)
                return await _drop(request)
            if fault is not None and fault.kind == "slow":
                await asyncio.sleep(fault.seconds)
            elif fault is not None and fault.kind == "retry_after":
                seconds = int(fault.seconds)
                raise _Refusal(
                    429,
                    f"Too Many Requests: retry after {seconds}",
                    {"retry_after": seconds},
                )
            elif fault is not None and fault.kind == "server_error":
                raise _Refusal(fault.status, HTTPStatus(fault.status).phrase)
            elif fault is not None and fault.kind == "echo_path":
                raise _Refusal(400, f"Bad Request: no route for POST {path}")
            result = self._answer(method, params, fault)
        except _Refusal as refusal:
            kind = fault.kind if fault is not None else None
            self._record(method_name, chat, refusal.status, refusal.description, kind)
            body: dict[str, Any] = {
                "ok": False,
                "error_code": refusal.status,
                "description": refusal.description,
            }
            if refusal.parameters:
                body["parameters"] = refusal.parameters
            return web.json_response(body, status=refusal.status)
        self._record(method_name, chat, 200, None, fault.kind if fault else None)
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    def _route(path: str) -> tuple[str, str]:
        parts = path.strip("/").split("/")
        if len(parts) != 2 or not parts[0].startswith("bot") or not parts[1]:
            raise _Refusal(404, "Not Found")
        return parts[0][len("bot") :], parts[1]

    def _take_fault(self, method: str) -> Fault | None:
        if method not in WRITE_METHODS:
            return None
        with self._lock:
            if self._faults and self._faults[0].applies_to(method):
                return self._faults.popleft()
        return None

    def _record(
        self,
        method: str,
        chat: str | None,
        status: int,
        description: str | None,
        fault: FaultKind | None,
    ) -> None:
        with self._lock:
            self.attempts.append(
                AttemptRecord(time.time(), method, chat, status, description, fault)
            )

    def _resolve(self, chat: str) -> _Chat:
        """The chat ``@username`` (any case) or numeric id names; the caller holds the lock."""
        if chat.startswith("@"):
            wanted = chat[1:].lower()
            for candidate in self._chats.values():
                if candidate.username and candidate.username.lower() == wanted:
                    return candidate
        else:
            with contextlib.suppress(ValueError):
                found = self._chats.get(int(chat))
                if found is not None:
                    return found
        raise _Refusal(400, "Bad Request: chat not found")

    def _answer(self, method: str, params: Mapping[str, Any], fault: Fault | None) -> Any:
        if method == "getme":
            return self._me()
        if method in EDIT_METHODS:
            return self._edit(method, params)
        if method == "deletemessage":
            return self._delete(params)
        is_photo = method == "sendphoto"
        raw = _as_text(params.get("caption" if is_photo else "text"))
        photo = _photo_ref(params.get("photo")) if is_photo else None
        if is_photo and not photo:
            raise _Refusal(400, "Bad Request: there is no photo in the request")
        parse_mode = _as_text(params.get("parse_mode")) or None
        reply_markup = _json_object(params.get("reply_markup"), "reply keyboard markup")
        preview = _json_object(params.get("link_preview_options"), "link preview options")
        silent = _as_bool(params.get("disable_notification"))
        reply_to, reply_anyway = _reply_target(params)
        thread_ref = _as_text(params.get("message_thread_id"))
        thread: int | None = None
        if thread_ref:
            if not thread_ref.lstrip("-").isdigit():
                raise _Refusal(400, "Bad Request: invalid message thread identifier specified")
            thread = int(thread_ref)

        with self._lock:
            chat = self._writable_chat(params, fault)
            if thread is not None and (chat.topics is None or thread not in chat.topics):
                raise _Refusal(400, "Bad Request: message thread not found")
            target = self._live.get((chat.id, reply_to)) if reply_to is not None else None
            if reply_to is not None and (target is None or target.deleted):
                if not reply_anyway:
                    raise _Refusal(400, "Bad Request: message to be replied not found")
                reply_to, target = None, None

        plain, entities = _parse(raw or "", parse_mode)
        if not is_photo and not plain:
            raise _Refusal(400, "Bad Request: message text is empty")
        _check_length(plain, caption=is_photo)
        if fault is not None and fault.kind == "photo_refused":
            raise _Refusal(400, "Bad Request: wrong type of the web page content")

        now = time.time()
        with self._lock:
            chat.last_message_id += 1
            sent = SentMessage(
                chat_id=chat.id,
                message_id=chat.last_message_id,
                method="sendPhoto" if is_photo else "sendMessage",
                photo=photo,
                disable_notification=silent,
                received_at=now,
                message_thread_id=thread,
                reply_to_message_id=reply_to,
                **_content(raw, plain, entities, parse_mode, reply_markup, preview, is_photo),
            )
            self.messages.append(sent)
            self._live[(chat.id, sent.message_id)] = _Live(sent, now)
            chat_json = chat.to_json()
            replied = None
            if target is not None:
                replied = _message_json(target.current, chat_json, date=target.date)
        return _message_json(sent, chat_json, date=now, reply_to=replied)

    def _writable_chat(self, params: Mapping[str, Any], fault: Fault | None) -> _Chat:
        """The chat a send, edit or delete acts on, refused as Telegram refuses it when the bot
        was kicked or the chat moved; the caller holds the lock."""
        chat_ref = _as_text(params.get("chat_id"))
        if not chat_ref:
            raise _Refusal(400, "Bad Request: chat_id is empty")
        chat = self._resolve(chat_ref)
        if chat.kicked:
            raise _Refusal(403, "Forbidden: bot was kicked from the channel chat")
        if fault is not None and fault.kind == "migrate" and fault.new_chat_id is not None:
            chat.migrated_to = fault.new_chat_id
            if fault.new_chat_id not in self._chats:
                self._chats[fault.new_chat_id] = _Chat(fault.new_chat_id, chat.username, chat.title)
            chat.username = None
        if chat.migrated_to is not None:
            raise _Refusal(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": chat.migrated_to},
            )
        return chat

    def _edit(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """editMessageText / editMessageCaption, with the Bot API's refusals: a message that is
        gone or not the bot's, the wrong method for its kind, an edit that changes nothing."""
        is_caption = method == "editmessagecaption"
        message_id = _message_id(params)
        raw = _as_text(params.get("caption" if is_caption else "text"))
        parse_mode = _as_text(params.get("parse_mode")) or None
        reply_markup = _json_object(params.get("reply_markup"), "reply keyboard markup")
        preview = None
        if not is_caption:
            preview = _json_object(params.get("link_preview_options"), "link preview options")
        with self._lock:
            chat = self._writable_chat(params, None)
            live = self._live.get((chat.id, message_id))
            if live is None or live.deleted:
                raise _Refusal(400, "Bad Request: message to edit not found")
            if live.foreign:
                raise _Refusal(400, "Bad Request: message can't be edited")
            has_caption = live.current.method == "sendPhoto"
            if is_caption and not has_caption:
                raise _Refusal(400, "Bad Request: there is no caption in the message to edit")
            if not is_caption and has_caption:
                raise _Refusal(400, "Bad Request: there is no text in the message to edit")
        plain, entities = _parse(raw, parse_mode)
        if not is_caption and not plain:
            raise _Refusal(400, "Bad Request: message text is empty")
        _check_length(plain, caption=is_caption)
        now = time.time()
        with self._lock:
            before = live.current
            if (before.plain, before.entities, before.reply_markup) == (
                plain,
                entities,
                reply_markup,
            ) and (is_caption or before.link_preview_options == preview):
                raise _Refusal(400, NOT_MODIFIED)
            live.current = replace(
                before,
                **_content(raw, plain, entities, parse_mode, reply_markup, preview, is_caption),
            )
            live.edit_date = now
            name = "editMessageCaption" if is_caption else "editMessageText"
            self.edits.append(EditRecord(chat.id, message_id, name, raw, plain, now))
            return _message_json(live.current, chat.to_json(), date=live.date, edit_date=now)

    def _delete(self, params: Mapping[str, Any]) -> bool:
        message_id = _message_id(params)
        now = time.time()
        with self._lock:
            chat = self._writable_chat(params, None)
            live = self._live.get((chat.id, message_id))
            if live is None or live.deleted:
                raise _Refusal(400, "Bad Request: message to delete not found")
            if live.foreign or now - live.date >= DELETE_WINDOW:
                raise _Refusal(400, "Bad Request: message can't be deleted")
            live.deleted = True
            self.deletions.append(DeleteRecord(chat.id, message_id, now))
        return True

    def _me(self) -> dict[str, Any]:
        prefix = self.token.split(":", 1)[0]
        return {
            "id": int(prefix) if prefix.isdigit() else 123456,
            "is_bot": True,
            "first_name": "新聞視界測試機器人",
            "username": self.bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }


# ------------------------------------------------------------------------------- request helpers


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Query string plus body, whichever encoding the client chose (all the Bot API accepts)."""
    params: dict[str, Any] = dict(request.query)
    if request.method != "POST" or not request.can_read_body:
        return params
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except json.JSONDecodeError:
            raise _Refusal(400, "Bad Request: can't parse JSON encoded request") from None
        if isinstance(body, dict):
            params.update(body)
        return params
    form = await request.post()
    for key, value in form.items():
        if isinstance(value, FileField):
            params[key] = f"upload:{value.filename}"
        elif isinstance(value, bytes | bytearray):
            params[key] = value.decode("utf-8", errors="replace")
        else:
            params[key] = value
    return params


async def _drop(request: web.Request) -> web.StreamResponse:
    transport = request.transport
    if transport is not None:
        transport.abort()
    # Nothing reaches the client; the response object only satisfies aiohttp.
    return web.Response(status=204)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return _as_text(value).strip().lower() in ("true", "1")


def _json_object(value: Any, what: str) -> dict[str, Any] | None:
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(str(value))
    except json.JSONDecodeError:
        raise _Refusal(400, f"Bad Request: can't parse {what} JSON object") from None
    if not isinstance(parsed, dict):
        raise _Refusal(400, f"Bad Request: can't parse {what} JSON object")
    return parsed


def _message_id(params: Mapping[str, Any]) -> int:
    text = _as_text(params.get("message_id")).strip()
    if not text:
        raise _Refusal(400, "Bad Request: message identifier is not specified")
    if not text.isdigit():
        raise _Refusal(400, "Bad Request: invalid message identifier specified")
    return int(text)


def _reply_target(params: Mapping[str, Any]) -> tuple[int | None, bool]:
    """The message a send replies to, from ``reply_parameters`` (Bot API 7.0) or the older
    ``reply_to_message_id``, and whether to send anyway when it is gone."""
    parameters = _json_object(params.get("reply_parameters"), "reply parameters")
    if parameters is not None:
        target = _as_text(parameters.get("message_id")).strip()
        if not target.isdigit():
            raise _Refusal(400, "Bad Request: invalid reply parameters specified")
        return int(target), _as_bool(parameters.get("allow_sending_without_reply"))
    legacy = _as_text(params.get("reply_to_message_id")).strip()
    if not legacy:
        return None, False
    if not legacy.isdigit():
        raise _Refusal(400, "Bad Request: invalid reply message identifier specified")
    return int(legacy), _as_bool(params.get("allow_sending_without_reply"))


def _content(  # noqa: PLR0917 -- one message's fields, in SentMessage's order
    raw: str,
    plain: str,
    entities: tuple[Entity, ...],
    parse_mode: str | None,
    reply_markup: dict[str, Any] | None,
    preview: dict[str, Any] | None,
    caption: bool,
) -> dict[str, Any]:
    """What a send sets and an edit replaces: the text (or the caption: a photo has no link
    preview), as sent and as read, and the markup."""
    return {
        "text": None if caption else raw,
        "caption": raw if caption else None,
        "plain": plain,
        "parse_mode": parse_mode,
        "entities": entities,
        "reply_markup": reply_markup,
        "link_preview_options": None if caption else preview,
    }


def _check_length(plain: str, *, caption: bool) -> None:
    """The limits after entities are parsed, the same for an edit as for a send."""
    if caption and len(plain) > CAPTION_LIMIT:
        raise _Refusal(400, "Bad Request: message caption is too long")
    if not caption and len(plain) > MESSAGE_LIMIT:
        raise _Refusal(400, "Bad Request: message is too long")


def _photo_ref(value: Any) -> str | None:
    text = _as_text(value).strip()
    return text or None


def _parse(raw: str, parse_mode: str | None) -> tuple[str, tuple[Entity, ...]]:
    mode = (parse_mode or "").lower()
    if mode == "html":
        try:
            parsed = parse_html(raw)
        except HtmlParseError as exc:
            raise _Refusal(400, exc.description) from None
        return clean_text(parsed.text), parsed.entities
    if mode in ("", "markdown", "markdownv2"):
        # Markdown is not modelled: newsbot sends HTML only, so its text is kept as written.
        return clean_text(raw), ()
    raise _Refusal(400, "Bad Request: unsupported parse_mode")


def _message_json(
    sent: SentMessage,
    chat: dict[str, Any],
    *,
    date: float,
    edit_date: float | None = None,
    reply_to: dict[str, Any] | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "message_id": sent.message_id,
        "sender_chat": chat,
        "chat": chat,
        "date": int(date),
    }
    if edit_date is not None:
        message["edit_date"] = int(edit_date)
    if reply_to is not None:
        message["reply_to_message"] = reply_to
    if sent.message_thread_id is not None:
        message["message_thread_id"] = sent.message_thread_id
        message["is_topic_message"] = True
    entities = [e.to_json() for e in sent.entities]
    if sent.method == "sendPhoto":
        file_id = f"AgACAgUAAx0Fake{sent.chat_id}x{sent.message_id}"
        message["photo"] = [
            {
                "file_id": f"{file_id}s",
                "file_unique_id": f"AQADs{sent.message_id}",
                "width": 320,
                "height": 180,
                "file_size": 9_876,
            },
            {
                "file_id": f"{file_id}m",
                "file_unique_id": f"AQADm{sent.message_id}",
                "width": 1280,
                "height": 720,
                "file_size": 87_654,
            },
        ]
        if sent.plain:
            message["caption"] = sent.plain
            if entities:
                message["caption_entities"] = entities
    else:
        message["text"] = sent.plain
        if entities:
            message["entities"] = entities
        if sent.link_preview_options:
            message["link_preview_options"] = sent.link_preview_options
    if sent.reply_markup:
        message["reply_markup"] = sent.reply_markup
    return message


# ---------------------------------------------------------------------------------- command line


def _chat_arg(value: str) -> tuple[str, int | None]:
    name, sep, chat_id = value.partition("=")
    if not (name.startswith("@") or name.lstrip("-").isdigit()):
        raise argparse.ArgumentTypeError(f"expected @channel or @channel=-100…, got {value!r}")
    try:
        return name, int(chat_id) if sep else None
    except ValueError:
        raise argparse.ArgumentTypeError(f"the chat id in {value!r} is not a number") from None


def serve(argv: list[str]) -> int:
    """``python -m bot.testing telegram --port N --token T --chat @name``: serve until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m bot.testing telegram",
        description="A local fake of the Telegram Bot API on 127.0.0.1, for trying newsbot.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the bot token it accepts")
    parser.add_argument(
        "--chat",
        action="append",
        type=_chat_arg,
        default=[],
        metavar="@NAME[=ID]",
        help="a channel the bot may post to (repeatable; default @newsvision)",
    )
    args = parser.parse_args(argv)
    chats: dict[str, int] = {}
    fake = FakeTelegram(token=args.token, chats={}, port=args.port)
    for name, chat_id in args.chat or [("@newsvision", DEFAULT_CHATS["@newsvision"])]:
        chats[name] = fake.add_chat(name, chat_id)

    async def run() -> None:
        async with fake:
            listed = ", ".join(f"{name} ({chat_id})" for name, chat_id in chats.items())
            print(f"fake Telegram Bot API at {fake.url} for {listed}", flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0
