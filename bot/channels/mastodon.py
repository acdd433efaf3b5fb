"""Mastodon, through Mastodon.py: the only module that imports ``mastodon``.

What Mastodon documents, and how this channel follows it:

- The character limit is the instance's own: ``configuration.statuses.max_characters`` of
  ``GET /api/v2/instance`` (500 on a stock server), and every URL counts as
  ``characters_reserved_per_url`` (23) whatever its length
  (https://docs.joinmastodon.org/entities/Instance/#statuses). Both are read at start; the
  length rule (:data:`~bot.compose.length.MASTODON_DEFAULT` until then) follows the instance.
  Characters are grapheme clusters and ``@user@domain`` counts as ``@user``, as the server's
  ``StatusLengthValidator`` counts them.
- ``POST /api/v1/statuses`` takes ``visibility`` (public, unlisted, private, direct) and
  ``language`` (``zh-TW``), and an ``Idempotency-Key`` header: the server remembers the key for
  an hour and answers a second request with the same key with the status the first one created
  (https://docs.joinmastodon.org/methods/statuses/#create). The key here is derived from the
  channel and the article, so every attempt of one delivery carries the same key and a resend
  after an unanswered attempt cannot post twice: :attr:`resend_is_safe`.
- Images go up first through ``POST /api/v2/media`` with the title as the description (alt
  text), then their id is attached to the status.
- Limits: 300 API calls per 5 minutes per account, 30 media uploads per 30 minutes
  (https://docs.joinmastodon.org/api/rate-limits/). Each answer carries ``X-RateLimit-Reset``;
  a 429 waits until then (:class:`TransientError` ``retry_after``).

A post's life after it is published (https://docs.joinmastodon.org/methods/statuses/):

- **Edit** (Mastodon 3.5+): ``PUT /api/v1/statuses/:id`` (Mastodon.py ``status_update``) with
  the new text; the status keeps its id, shows "edited" and followers' servers get the update.
  An edit replaces the attachments with the ``media_ids`` it carries (none: none), so the
  status is read first (``GET /api/v1/statuses/:id``) and its attachments sent again; the
  language stays. Validation is a new status's (``422``, the same character limit).
  Corrections default to ``edit``.
- **Delete**: ``DELETE /api/v1/statuses/:id`` (``status_delete``); Mastodon limits deletions to
  30 per 30 minutes per account (https://docs.joinmastodon.org/api/rate-limits/), a 429 that
  waits like any other. Takedowns default to ``delete``.
- **Reply**: ``POST /api/v1/statuses`` with ``in_reply_to_id`` and its own ``Idempotency-Key``
  (derived from the article and the reply's text, never the post's own key, which the instance
  would answer with the original status).
- ``404`` on any of them (the status was deleted, or is not this account's): :class:`PostGone`.

Mastodon.py is synchronous, so each call runs in a worker thread. Its version check is switched
off (``version_check_mode="none"``) and its idea of the server's version set to 4.0.0, the API
this channel uses: it never asks the instance for its version behind our back, and never falls
back to the pre-3.1.4 media endpoint when it has not asked (its default with checks off).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from mastodon import (
    Mastodon,
    MastodonAPIError,
    MastodonError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonServerError,
    MastodonUnauthorizedError,
)

from bot.channels.base import Channel
from bot.compose.length import MASTODON_DEFAULT, MASTODON_URL_WEIGHT, LengthRule
from bot.config import MastodonChannelConfig
from bot.errors import DeliveryError, PermanentError, PostGone, TransientError
from bot.images import NoImage, download
from bot.model import Correction, Post, Published, Receipt, Takedown
from bot.sources.fetch import Fetcher
from bot.sources.policy import STRICT, FetchPolicy

log = logging.getLogger(__name__)

API_VERSION = "4.0.0"
MAX_IMAGE_BYTES = 16 * 1024 * 1024  # Mastodon's default image size limit
IMAGE_TIMEOUT = 10.0
DEFAULT_RETRY_AFTER = 60.0
_MAX_DETAIL = 300

T = TypeVar("T")


class MastodonChannel(Channel):
    """Posts statuses to one Mastodon account."""

    # Every attempt of one delivery sends the same Idempotency-Key, so the instance answers a
    # resend with the status the unanswered attempt created instead of posting again.
    resend_is_safe = True
    can_edit = True
    can_reply = True
    can_delete = True
    default_corrections = Correction.EDIT
    default_takedowns = Takedown.DELETE

    def __init__(
        self, config: MastodonChannelConfig, api: Mastodon, *, image_policy: FetchPolicy = STRICT
    ) -> None:
        super().__init__(config.name or "mastodon")
        self.config = config
        self.api = api
        self._rule = MASTODON_DEFAULT
        self._fetcher: Fetcher | None = None
        # Channels have no allowlist of their own: an image is fetched under the strict policy.
        self._image_policy = image_policy
        self._secret = config.access_token.get_secret_value()

    @classmethod
    def from_config(
        cls, config: MastodonChannelConfig, *, image_policy: FetchPolicy = STRICT
    ) -> MastodonChannel:
        api = Mastodon(
            access_token=config.access_token.get_secret_value(),
            api_base_url=config.instance_url,
            request_timeout=config.timeout.total_seconds(),
            ratelimit_method="throw",
            version_check_mode="none",
            mastodon_version=API_VERSION,
            user_agent="newsbot",
        )
        # With version checks off, Mastodon.py ignores ``mastodon_version`` and assumes 1.0.0,
        # which sends media to the old /api/v1/media; the API this channel speaks is 4.0's.
        api.mastodon_major, api.mastodon_minor, api.mastodon_patch = 4, 0, 0
        return cls(config, api, image_policy=image_policy)

    def rule(self, *, has_image: bool) -> LengthRule:
        return self._rule

    async def start(self) -> None:
        """Reads the instance's character limit and URL weight (``GET /api/v2/instance``)."""
        self._rule = await asyncio.to_thread(self._read_limits)
        if self.config.media:
            self._fetcher = Fetcher(
                max_bytes=MAX_IMAGE_BYTES, timeout=IMAGE_TIMEOUT, policy=self._image_policy
            )
            await self._fetcher.__aenter__()

    async def close(self) -> None:
        if self._fetcher is not None:
            await self._fetcher.aclose()
            self._fetcher = None
        await asyncio.to_thread(self.api.session.close)

    async def verify(self) -> str:
        """``GET /api/v1/accounts/verify_credentials``: the account the token belongs to."""
        try:
            account = await asyncio.to_thread(self._call, self.api.account_verify_credentials)
        except TransientError as exc:
            raise PermanentError(exc.reason) from exc
        host = urlsplit(self.config.instance_url).netloc
        return f"@{account['acct']}@{host}"

    async def send(self, post: Post) -> Receipt:
        notes: list[str] = []
        media_ids: list[Any] | None = None
        if self.config.media and post.image:
            try:
                media_ids = [await self._attach(post)]
            except NoImage as exc:
                notes.append(f"posted without the image: {self._scrub(str(exc))}")
                log.warning("%s: %s", self.name, notes[-1])
        status = await asyncio.to_thread(
            self._call,
            self.api.status_post,
            post.text,
            media_ids=media_ids,
            visibility=self.config.visibility,
            language=self.config.language,
            idempotency_key=self.idempotency_key(post),
        )
        return self._receipt(status, notes)

    def idempotency_key(self, post: Post, *, reply_to: str | None = None) -> str:
        """The same for every attempt of one delivery: this channel, the source, the article;
        for a reply, also the status replied to and the reply's text."""
        what = post.article_key or post.text
        seed = f"newsbot\x1f{self.name}\x1f{post.source}\x1f{what}"
        if reply_to is not None:
            seed += f"\x1freply\x1f{reply_to}\x1f{post.text}"
        return hashlib.sha256(seed.encode("utf-8")).hexdigest()

    # -- after publication ---------------------------------------------------------------------

    async def edit(self, published: Published, post: Post) -> Receipt:
        """The status reads ``post.text``, its attachments kept."""
        status_id = published.remote_id
        current = await asyncio.to_thread(self._call, self.api.status, status_id, gone=status_id)
        media = [m["id"] for m in current.get("media_attachments") or ()]
        status = await asyncio.to_thread(
            self._call,
            self.api.status_update,
            status_id,
            post.text,
            media_ids=media or None,
            gone=status_id,
        )
        return self._receipt(status, [])

    async def reply(self, published: Published, post: Post) -> Receipt:
        status = await asyncio.to_thread(
            self._call,
            self.api.status_post,
            post.text,
            in_reply_to_id=published.remote_id,
            visibility=self.config.visibility,
            language=self.config.language,
            idempotency_key=self.idempotency_key(post, reply_to=published.remote_id),
            gone=published.remote_id,
        )
        return self._receipt(status, [])

    async def delete(self, published: Published) -> None:
        await asyncio.to_thread(
            self._call, self.api.status_delete, published.remote_id, gone=published.remote_id
        )

    def _receipt(self, status: Any, notes: list[str]) -> Receipt:
        return Receipt(
            remote_id=str(status["id"]),
            url=status.get("url") or status.get("uri"),
            accepted_at=datetime.now(UTC),
            notes=tuple(notes),
        )

    # -- in worker threads ---------------------------------------------------------------------

    def _read_limits(self) -> LengthRule:
        try:
            instance = self._call(self.api.instance_v2)
            statuses = instance["configuration"]["statuses"]
            limit = int(statuses["max_characters"])
            url_weight = int(statuses.get("characters_reserved_per_url", MASTODON_URL_WEIGHT))
        except (DeliveryError, KeyError, TypeError, ValueError) as exc:
            why = exc.reason if isinstance(exc, DeliveryError) else "no statuses configuration"
            log.warning(
                "Mastodon channel %r: could not read the instance's character limit (%s); using %d",
                self.name,
                why,
                MASTODON_DEFAULT.limit,
            )
            return MASTODON_DEFAULT
        if limit < 1 or url_weight < 0:
            return MASTODON_DEFAULT
        return LengthRule("mastodon", limit, url_weight=url_weight)

    def _call(
        self, method: Callable[..., T], *args: Any, gone: str | None = None, **kwargs: Any
    ) -> T:
        """One Mastodon.py call, its errors translated into newsbot's; ``gone`` names the
        published status the call is about, whose 404 is :class:`PostGone`."""
        where = f"Mastodon at {self.config.instance_url}"
        try:
            return method(*args, **kwargs)
        except MastodonRatelimitError as exc:
            wait = _retry_after(self.api.ratelimit_reset)
            raise TransientError(
                f"{where}: rate limit reached (429); retry after {wait:.0f} s", retry_after=wait
            ) from exc
        except MastodonUnauthorizedError as exc:
            raise PermanentError(
                f"{where} refused the access token (401: {self._detail(exc)}): check "
                f"access_token of channel {self.name!r}; the application needs the "
                "write:statuses and write:media scopes"
            ) from exc
        except MastodonServerError as exc:
            raise TransientError(
                f"{where} had a server error ({_status(exc)}): {self._detail(exc)}"
            ) from exc
        except MastodonNotFoundError as exc:
            if gone is not None:
                raise PostGone(
                    f"{where}: the status {gone} is no longer there (404: {self._detail(exc)})"
                ) from exc
            raise PermanentError(f"{where} answered 404: {self._detail(exc)}") from exc
        except MastodonAPIError as exc:
            status = _status(exc)
            reason = f"{where} refused the request ({status}): {self._detail(exc)}"
            if status in (408, 409):
                raise TransientError(reason) from exc
            raise PermanentError(reason) from exc
        except MastodonNetworkError as exc:
            cause = exc.__context__
            sent = _maybe_sent(cause)
            reason = f"{where}: no answer ({type(cause).__name__ if cause else 'network error'})"
            if sent:
                reason += "; the request may have reached the platform"
            raise TransientError(reason, maybe_sent=sent) from exc
        except MastodonError as exc:
            raise PermanentError(f"{where}: {self._scrub(str(exc))[:_MAX_DETAIL]}") from exc

    async def _attach(self, post: Post) -> Any:
        data, media_type = await download(
            self._fetcher, post.image or "", max_bytes=MAX_IMAGE_BYTES
        )
        try:
            media = await asyncio.to_thread(
                self._call,
                self.api.media_post,
                data,
                mime_type=media_type,
                description=post.title or None,
                file_name="image." + media_type.split("/")[1],
            )
        except DeliveryError as exc:
            raise NoImage(f"Mastodon refused the upload ({exc.reason})") from exc
        return media["id"]

    def _detail(self, exc: MastodonError) -> str:
        # Mastodon.py's API errors carry (message, status, reason, Mastodon's own "error").
        args = exc.args
        text = str(args[3]) if len(args) > 3 and args[3] else str(args[2] if len(args) > 2 else exc)
        return self._scrub(text)[:_MAX_DETAIL] or "no detail given"

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text


def _status(exc: MastodonError) -> int | str:
    return exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else "?"


def _retry_after(reset: object) -> float:
    if isinstance(reset, int | float):
        return max(1.0, float(reset) - time.time())
    return DEFAULT_RETRY_AFTER


def _maybe_sent(cause: BaseException | None) -> bool:
    """Did the request leave before it failed? A refused or timed-out connection: no."""
    if isinstance(cause, requests.ConnectTimeout):
        return False
    if isinstance(cause, requests.ConnectionError):
        return "NewConnectionError" not in repr(cause.args) and not isinstance(
            cause, requests.exceptions.SSLError
        )
    return True
