"""A local Telegram Bot API server that answers, and fails, the way the real one does.

``FakeTelegram`` serves ``/bot<token>/<method>`` on 127.0.0.1 for ``getMe``, ``sendMessage`` and
``sendPhoto``. It checks what Telegram checks (token, chat, HTML markup with TDLib's own rules and
error texts, lengths after parsing, kicked bots, migrated chats), records every accepted message
and every attempt, and plays scripted faults (flood control, 5xx, dropped connections, slow
answers, chat migration, a refused photo) so the client's error handling can be tested through
real HTTP::

    async with FakeTelegram(token="123456:TEST-token-not-real") as tg:
        channel = TelegramChannel.from_config(config_with(api_url=tg.url))
        ...
        assert tg.messages[0].plain == "..."

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
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal

from aiohttp import web
from aiohttp.web_request import FileField

from bot.testing.server import LOOPBACK, LocalServer, Served
from bot.testing.telegram_html import Entity, HtmlParseError, clean_text, parse_html

SEND_METHODS = frozenset({"sendmessage", "sendphoto"})
MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024
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
        return True


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
        self.attempts: list[AttemptRecord] = []
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
            if method not in {"getme", *SEND_METHODS}:
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
        if method not in SEND_METHODS:
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
        chat_ref = _as_text(params.get("chat_id"))
        if not chat_ref:
            raise _Refusal(400, "Bad Request: chat_id is empty")
        is_photo = method == "sendphoto"
        raw = _as_text(params.get("caption" if is_photo else "text"))
        photo = _photo_ref(params.get("photo")) if is_photo else None
        if is_photo and not photo:
            raise _Refusal(400, "Bad Request: there is no photo in the request")
        parse_mode = _as_text(params.get("parse_mode")) or None
        reply_markup = _json_object(params.get("reply_markup"), "reply keyboard markup")
        preview = _json_object(params.get("link_preview_options"), "link preview options")
        silent = _as_bool(params.get("disable_notification"))
        thread_ref = _as_text(params.get("message_thread_id"))
        thread: int | None = None
        if thread_ref:
            if not thread_ref.lstrip("-").isdigit():
                raise _Refusal(400, "Bad Request: invalid message thread identifier specified")
            thread = int(thread_ref)

        with self._lock:
            chat = self._resolve(chat_ref)
            if chat.kicked:
                raise _Refusal(403, "Forbidden: bot was kicked from the channel chat")
            if fault is not None and fault.kind == "migrate" and fault.new_chat_id is not None:
                chat.migrated_to = fault.new_chat_id
                if fault.new_chat_id not in self._chats:
                    self._chats[fault.new_chat_id] = _Chat(
                        fault.new_chat_id, chat.username, chat.title
                    )
                chat.username = None
            if chat.migrated_to is not None:
                raise _Refusal(
                    400,
                    "Bad Request: group chat was upgraded to a supergroup chat",
                    {"migrate_to_chat_id": chat.migrated_to},
                )
            if thread is not None and (chat.topics is None or thread not in chat.topics):
                raise _Refusal(400, "Bad Request: message thread not found")

        plain, entities = _parse(raw or "", parse_mode)
        if not is_photo and not plain:
            raise _Refusal(400, "Bad Request: message text is empty")
        if is_photo and len(plain) > CAPTION_LIMIT:
            raise _Refusal(400, "Bad Request: message caption is too long")
        if not is_photo and len(plain) > MESSAGE_LIMIT:
            raise _Refusal(400, "Bad Request: message is too long")
        if fault is not None and fault.kind == "photo_refused":
            raise _Refusal(400, "Bad Request: wrong type of the web page content")

        now = time.time()
        with self._lock:
            chat.last_message_id += 1
            sent = SentMessage(
                chat_id=chat.id,
                message_id=chat.last_message_id,
                method="sendPhoto" if is_photo else "sendMessage",
                text=None if is_photo else raw,
                caption=raw if is_photo else None,
                plain=plain,
                parse_mode=parse_mode,
                entities=entities,
                photo=photo,
                reply_markup=reply_markup,
                disable_notification=silent,
                link_preview_options=preview,
                received_at=now,
                message_thread_id=thread,
            )
            self.messages.append(sent)
            chat_json = chat.to_json()
        return _message_json(sent, chat_json)

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


def _message_json(sent: SentMessage, chat: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "message_id": sent.message_id,
        "sender_chat": chat,
        "chat": chat,
        "date": int(sent.received_at),
    }
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
