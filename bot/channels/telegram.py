"""Telegram channels, through python-telegram-bot's ``Bot`` used as a plain sender.

This is the only module that imports ``telegram``. Every error the library raises is translated
here into :class:`~bot.errors.TransientError` (try later) or :class:`~bot.errors.PermanentError`
(never), with Telegram's own description as the reason. The bot token is never part of a message
this module writes: python-telegram-bot puts it in URLs and in its ``InvalidToken`` text, so
those are neither logged here nor chained into our errors.
"""

from __future__ import annotations

import json
import logging
import warnings
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

import httpx
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Message
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from bot.channels.base import Channel
from bot.compose.length import TELEGRAM_CAPTION, TELEGRAM_MESSAGE, LengthRule
from bot.config import TelegramChannelConfig
from bot.errors import DeliveryError, PermanentError, TransientError
from bot.model import Post, Receipt

log = logging.getLogger(__name__)

TOKEN_REFUSED = "Telegram refused the bot token (401 Unauthorized): check TELEGRAM_BOT_TOKEN"

# BadRequest texts that mean Telegram could not use the photo itself; the post can still go out
# as a text message (its link preview then shows the article's image).
_PHOTO_PROBLEMS = (
    "wrong type of the web page content",
    "failed to get http url content",
    "wrong file identifier",
    "wrong remote file identifier",
    "photo",
    "image_process_failed",
    "webpage_media_empty",
)


# The description of the last refused request in this task, exactly as Telegram wrote it.
_last_refusal: ContextVar[str | None] = ContextVar("telegram_last_refusal", default=None)


class _DescriptionKeepingRequest(HTTPXRequest):
    """python-telegram-bot rewrites Telegram's error texts ("Bad Request: chat not found" becomes
    "Chat not found", and the rest is lowercased); operators search for Telegram's own words, so
    this keeps them. A context variable is per task, so concurrent channels do not mix them."""

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        _last_refusal.set(None)
        code, payload = await super().do_request(*args, **kwargs)
        if code >= 400:
            _last_refusal.set(_description(payload))
        return code, payload


def _description(payload: bytes) -> str | None:
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    description = data.get("description") if isinstance(data, dict) else None
    return description if isinstance(description, str) else None


class TelegramChannel(Channel):
    """Posts to one Telegram chat (``@channel`` or a numeric id) with ``parse_mode=HTML``."""

    def __init__(self, config: TelegramChannelConfig, bot: telegram.Bot) -> None:
        super().__init__(config.name or "telegram")
        self.config = config
        self._bot = bot
        chat = config.chat
        self._chat: str | int = chat if chat.startswith("@") else int(chat)

    @classmethod
    def from_config(cls, config: TelegramChannelConfig) -> TelegramChannel:
        """Builds the ``Bot`` for this channel; the only place newsbot constructs one."""
        seconds = config.timeout.total_seconds()
        request = _DescriptionKeepingRequest(
            connection_pool_size=8,
            connect_timeout=seconds,
            read_timeout=seconds,
            write_timeout=seconds,
            pool_timeout=seconds,
            media_write_timeout=seconds,
        )
        # newsbot never polls for updates, so that request object stays small.
        updates_request = HTTPXRequest(connection_pool_size=1)
        bot = telegram.Bot(
            config.token.get_secret_value(),
            base_url=f"{config.api_url.rstrip('/')}/bot",
            request=request,
            get_updates_request=updates_request,
        )
        return cls(config, bot)

    @property
    def chat(self) -> str | int:
        """The chat posts go to; a numeric id after Telegram reported a migration."""
        return self._chat

    def rule(self, *, has_image: bool) -> LengthRule:
        return TELEGRAM_CAPTION if self.config.photo and has_image else TELEGRAM_MESSAGE

    async def start(self) -> None:
        """Opens the connection pool and checks the token with ``getMe``."""
        try:
            await self._bot.initialize()
        except InvalidToken as exc:
            # PTB's own InvalidToken text quotes the token; chain the server's answer instead.
            raise PermanentError(TOKEN_REFUSED) from exc.__cause__
        except TelegramError as exc:
            raise _translate(exc, "getMe") from exc

    async def close(self) -> None:
        await self._bot.shutdown()

    async def verify(self) -> str:
        """``getMe``: the bot's username when Telegram accepts the token (``check --online``)."""
        try:
            me = await self._bot.get_me()
        except InvalidToken as exc:
            raise PermanentError(TOKEN_REFUSED) from exc.__cause__
        except TelegramError as exc:
            error = _translate(exc, "getMe")
            raise PermanentError(error.reason) from exc
        return me.username or str(me.id)

    async def send(self, post: Post) -> Receipt:
        notes: list[str] = []
        try:
            message = await self._send_following_migration(post, notes)
        except DeliveryError:
            raise
        except TelegramError as exc:
            raise _translate(exc, "send") from exc
        return Receipt(
            remote_id=str(message.message_id),
            url=_message_url(message),
            accepted_at=message.date,
            notes=tuple(notes),
        )

    async def _send_following_migration(self, post: Post, notes: list[str]) -> Message:
        try:
            return await self._send_once(post, notes)
        except ChatMigrated as exc:
            old = self._chat
            self._chat = exc.new_chat_id
            log.warning(
                "Telegram channel %r: chat %s was upgraded to a supergroup with id %s; "
                "posting there from now on. Update `chat` for this channel in the config to %s.",
                self.name,
                old,
                exc.new_chat_id,
                exc.new_chat_id,
            )
        try:
            return await self._send_once(post, notes)
        except ChatMigrated as exc:
            # Followed once already: a second move means something is wrong with the chat.
            raise PermanentError(
                f"Telegram reported the chat migrated again (to {exc.new_chat_id}) "
                f"right after moving to {self._chat}; update `chat` in the config"
            ) from exc

    async def _send_once(self, post: Post, notes: list[str]) -> Message:
        markup = self._markup(post)
        if self.config.photo and post.image:
            try:
                return await self._bot.send_photo(
                    chat_id=self._chat,
                    message_thread_id=self.config.topic,
                    photo=post.image,
                    caption=post.text,
                    parse_mode=ParseMode.HTML,
                    disable_notification=self.config.silent,
                    reply_markup=markup,
                )
            except BadRequest as exc:
                if not _is_photo_problem(exc):
                    raise
                why = _telegram_description(exc).removeprefix("Bad Request: ")
                notes.append(f"photo refused: {why}, sent as text")
                log.info(
                    "Telegram channel %r: the photo was refused (%s); sending the post as text",
                    self.name,
                    why,
                )
        return await self._bot.send_message(
            chat_id=self._chat,
            message_thread_id=self.config.topic,
            text=post.text,
            parse_mode=ParseMode.HTML,
            link_preview_options=self._preview(post),
            disable_notification=self.config.silent,
            reply_markup=markup,
        )

    def _preview(self, post: Post) -> LinkPreviewOptions:
        mode = self.config.link_preview
        if mode == "off":
            return LinkPreviewOptions(is_disabled=True)
        return LinkPreviewOptions(
            url=post.link,
            prefer_large_media=True if mode in ("large", "large_above") else None,
            show_above_text=True if mode in ("above", "large_above") else None,
        )

    def _markup(self, post: Post) -> InlineKeyboardMarkup | None:
        if self.config.button is None:
            return None
        return InlineKeyboardMarkup(
            [[InlineKeyboardButton(self.config.button.label, url=post.link)]]
        )


def _telegram_description(exc: TelegramError) -> str:
    """Telegram's own words for this error when it answered, else the library's."""
    return _last_refusal.get() or exc.message


def _is_photo_problem(exc: BadRequest) -> bool:
    text = _telegram_description(exc).lower()
    if "parse entities" in text or "too long" in text:
        return False
    return any(problem in text for problem in _PHOTO_PROBLEMS)


def _retry_after_seconds(exc: RetryAfter) -> float:
    # PTB 22 warns on reading ``retry_after`` until it becomes a timedelta; accept both forms.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _translate(exc: TelegramError, doing: str) -> DeliveryError:
    """One library error → Transient or Permanent, with Telegram's description as the reason."""
    reason = f"Telegram: {_telegram_description(exc)}"
    if isinstance(exc, RetryAfter):
        seconds = _retry_after_seconds(exc)
        return TransientError(
            f"Telegram flood control: retry after {seconds:g} s", retry_after=seconds
        )
    if isinstance(exc, InvalidToken):
        return PermanentError(TOKEN_REFUSED)
    if isinstance(exc, Forbidden | BadRequest):
        return PermanentError(reason)
    if isinstance(exc, ChatMigrated):
        return PermanentError(f"Telegram: the chat moved to {exc.new_chat_id}; update `chat`")
    if isinstance(exc, TimedOut):
        return TransientError(
            f"Telegram did not answer {doing} in time ({exc.message})",
            maybe_sent=_maybe_sent(exc),
        )
    if isinstance(exc, NetworkError):
        return TransientError(reason, maybe_sent=_maybe_sent(exc))
    # Conflict, EndPointNotFound, PassportDecryptionError…: not expected from a plain sender.
    return TransientError(reason)


def _maybe_sent(exc: TelegramError) -> bool:
    """Did the request reach Telegram before it failed? Telegram keeps no idempotency key, so
    a message whose request left us with no answer back may have been posted."""
    # An HTTP answer (even a 5xx) means Telegram replied; only a transport failure after the
    # request was written leaves its fate unknown.
    return isinstance(
        exc.__cause__, httpx.ReadTimeout | httpx.RemoteProtocolError | httpx.ReadError
    )


def _message_url(message: Message) -> str | None:
    """The public link: t.me/<name>/<id>, or t.me/c/<id>/<id> for a private channel; a message
    in a forum topic has the topic's id before its own."""
    chat = message.chat
    topic = f"{message.message_thread_id}/" if message.is_topic_message else ""
    if chat.username:
        return f"https://t.me/{chat.username}/{topic}{message.message_id}"
    chat_id = str(chat.id)
    if chat_id.startswith("-100"):
        return f"https://t.me/c/{chat_id[4:]}/{topic}{message.message_id}"
    return None
