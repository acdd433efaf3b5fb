"""Telegram channels, through python-telegram-bot's ``Bot`` used as a plain sender.

This is the only module that imports ``telegram``. Every error the library raises is translated
here into :class:`~bot.errors.TransientError` (try later) or :class:`~bot.errors.PermanentError`
(never), with Telegram's own description as the reason. The bot token is never part of a message
this module writes: python-telegram-bot puts it in URLs and in its ``InvalidToken`` text, so
those are neither logged here nor chained into our errors.

A published post can be corrected and taken down (Bot API, core.telegram.org/bots/api,
"Updating messages"):

- **edit** in place: ``editMessageText`` for a text message, ``editMessageCaption`` for a photo
  (the caption is its text), with the parse mode, link preview and button of a send, since an
  edit that leaves ``reply_markup`` out removes the button. Which one was sent follows from the
  config and the post's image; a photo refused at send time went out as text, so when Telegram
  answers "there is no caption in the message to edit" (or "no text") the other method is used.
  Bots may edit their own channel posts at any age. "message is not modified" (the text is
  already what it shows) is refused as ``not modified`` with ``duplicate=True``, as X's
  duplicate content is: after an edit whose answer was lost, it proves the edit applied.
  "message to edit not found" is :class:`~bot.errors.PostGone`.
- **reply**: a new message with ``reply_parameters.message_id`` of the original; "message to be
  replied not found" is ``PostGone``.
- **delete**: ``deleteMessage``. "A message can only be deleted if it was sent less than 48
  hours ago" (deleteMessage). Telegram answers an older one with "message can't be deleted":
  the post stays up, the refusal is recorded with the post's age and the reason says so; only a
  person can remove it then, in the Telegram app. "message to delete not found" is ``PostGone``
  (for a takedown, the goal reached).

Defaults: corrections ``edit``, takedowns ``delete``.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import telegram
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    ReplyParameters,
)
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
from bot.errors import DeliveryError, PermanentError, PostGone, TransientError
from bot.model import Correction, Post, Published, Receipt, Takedown

log = logging.getLogger(__name__)

TOKEN_REFUSED = "Telegram refused the bot token (401 Unauthorized): check TELEGRAM_BOT_TOKEN"
#: deleteMessage: "A message can only be deleted if it was sent less than 48 hours ago."
DELETE_WINDOW = timedelta(hours=48)

T = TypeVar("T")

# Telegram's answers to an edit aimed at the wrong kind of message: the other method applies.
_NO_CAPTION = "there is no caption in the message to edit"
_NO_TEXT = "there is no text in the message to edit"

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

    can_edit = True
    can_reply = True
    can_delete = True
    default_corrections = Correction.EDIT
    default_takedowns = Takedown.DELETE

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
            message = await self._following_migration(lambda: self._send_once(post, notes))
        except DeliveryError:
            raise
        except TelegramError as exc:
            raise _translate(exc, "send") from exc
        return _receipt(message, notes)

    async def edit(self, published: Published, post: Post) -> Receipt:
        """``editMessageCaption`` when the post went out as a photo, else ``editMessageText``;
        the other one when Telegram says the message is of the other kind."""
        message_id = _message_id(published)
        notes: list[str] = []
        as_photo = bool(self.config.photo and post.image)
        try:
            result = await self._following_migration(
                lambda: self._edit_once(message_id, post, as_photo, notes)
            )
        except DeliveryError:
            raise
        except TelegramError as exc:
            raise _translate_revision(exc, "editMessage", published) from exc
        if isinstance(result, Message):
            edited = result.edit_date or datetime.now(UTC)
            return Receipt(str(message_id), _message_url(result), edited, tuple(notes))
        return Receipt(str(message_id), published.url, datetime.now(UTC), tuple(notes))

    async def reply(self, published: Published, post: Post) -> Receipt:
        """A text message answering the published one (``reply_parameters``)."""
        reply_to = ReplyParameters(message_id=_message_id(published))
        try:
            message = await self._following_migration(
                lambda: self._send_text(post, self._markup(post), reply_to)
            )
        except DeliveryError:
            raise
        except TelegramError as exc:
            raise _translate_revision(exc, "sendMessage (reply)", published) from exc
        return _receipt(message, [])

    async def delete(self, published: Published) -> None:
        message_id = _message_id(published)
        try:
            await self._following_migration(
                lambda: self._bot.delete_message(chat_id=self._chat, message_id=message_id)
            )
        except DeliveryError:
            raise
        except TelegramError as exc:
            raise _translate_revision(exc, "deleteMessage", published) from exc

    async def _edit_once(
        self, message_id: int, post: Post, as_photo: bool, notes: list[str]
    ) -> Message | bool:
        try:
            return await self._edit_as(message_id, post, caption=as_photo)
        except BadRequest as exc:
            if (_NO_CAPTION if as_photo else _NO_TEXT) not in _telegram_description(exc).lower():
                raise
        # Sent the other way: a refused photo went out as text; a photo sent before the
        # article lost its image still has a caption.
        notes.append(f"edited the {'text' if as_photo else 'caption'}: the post was sent as such")
        return await self._edit_as(message_id, post, caption=not as_photo)

    async def _edit_as(self, message_id: int, post: Post, *, caption: bool) -> Message | bool:
        # The markup goes again: an edit without reply_markup removes the button.
        if caption:
            return await self._bot.edit_message_caption(
                chat_id=self._chat,
                message_id=message_id,
                caption=post.text,
                parse_mode=ParseMode.HTML,
                reply_markup=self._markup(post),
            )
        return await self._bot.edit_message_text(
            text=post.text,
            chat_id=self._chat,
            message_id=message_id,
            parse_mode=ParseMode.HTML,
            link_preview_options=self._preview(post),
            reply_markup=self._markup(post),
        )

    async def _following_migration(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call`` (which reads ``self._chat``), once more in the new chat when Telegram says
        the chat became a supergroup."""
        try:
            return await call()
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
            return await call()
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
        return await self._send_text(post, markup)

    async def _send_text(
        self,
        post: Post,
        markup: InlineKeyboardMarkup | None,
        reply_to: ReplyParameters | None = None,
    ) -> Message:
        return await self._bot.send_message(
            chat_id=self._chat,
            message_thread_id=self.config.topic,
            text=post.text,
            parse_mode=ParseMode.HTML,
            link_preview_options=self._preview(post),
            disable_notification=self.config.silent,
            reply_markup=markup,
            reply_parameters=reply_to,
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


def _receipt(message: Message, notes: list[str]) -> Receipt:
    return Receipt(
        remote_id=str(message.message_id),
        url=_message_url(message),
        accepted_at=message.date,
        notes=tuple(notes),
    )


def _message_id(published: Published) -> int:
    if not published.remote_id.isdigit():
        raise PermanentError(
            f"the Telegram message id recorded for this post ({published.remote_id!r}) is not "
            "a number; the post cannot be found to change it"
        )
    return int(published.remote_id)


def _translate_revision(exc: TelegramError, doing: str, published: Published) -> DeliveryError:
    """An edit's, reply's or delete's refusal: the post is gone, unchanged, too old to delete,
    or not the bot's; anything else as for a send."""
    description = _telegram_description(exc)
    text = description.lower()
    which = f"Telegram message {published.remote_id}"
    said = f"(Telegram: {description})"
    if not isinstance(exc, BadRequest):
        return _translate(exc, doing)
    if "message is not modified" in text:
        # ``duplicate``: on a retry of an edit whose answer was lost, this proves it applied.
        return PermanentError(
            f"not modified: {which} already reads exactly this {said}", duplicate=True
        )
    if "not found" in text and ("message to" in text or "replied" in text):
        return PostGone(f"{which} is no longer in the chat (deleted?) {said}")
    if "message can't be deleted" in text:
        age = published.age(datetime.now(UTC))
        if age >= DELETE_WINDOW:
            return PermanentError(
                f"too old to delete: {which} was sent {age.total_seconds() / 3600:.0f} hours "
                f"ago, older than Telegram lets a bot delete ({DELETE_WINDOW.days * 24} hours); "
                f"it stays up until someone deletes it in Telegram {said}"
            )
        return PermanentError(
            f"Telegram refused to delete {which}: the bot may not delete it (it needs the "
            f"right to post and delete messages in the chat) {said}"
        )
    if "message can't be edited" in text:
        return PermanentError(
            f"Telegram refused to edit {which}: it is not a message the bot may edit {said}"
        )
    return _translate(exc, doing)


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
