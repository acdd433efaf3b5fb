"""X (API v2) through tweepy: the only module that imports tweepy.

tweepy is synchronous, so every call runs in a worker thread and the event loop never waits on
X. tweepy's host is fixed in its code; to reach a configured ``api_url`` (a local fake, a proxy)
a transport adapter on the client's ``requests`` session rewrites each request's URL *after*
OAuth 1.0a signing, so the signature still covers the public URL, as X verifies it.

Platform errors become :class:`TransientError` (rate limit, 5xx, network) or
:class:`PermanentError` (credentials, duplicate, invalid post). No message names a secret.

A published post can be corrected and taken down:

- **reply** (the default for corrections): ``POST /2/tweets`` with
  ``reply.in_reply_to_tweet_id``, a post of its own, priced and rate-limited as one
  (``XChannelConfig.post_cost`` of the reply's text). X's 403 "You attempted to reply to a
  Tweet that is deleted or not visible to you." is :class:`~bot.errors.PostGone`.
- **delete** (the default for takedowns): ``DELETE /2/tweets/:id``, answered
  ``{"data": {"deleted": true}}``; a 404 (the post is gone) is ``PostGone``. Deleting any
  version of an edited post deletes them all.
- **edit**, when the config asks for it: ``POST /2/tweets`` with
  ``edit_options.previous_post_id``. X allows it within 30 minutes of the original post, up to
  5 times, and each edit is a new post id (the receipt carries it; the next edit must name it)
  (docs.x.com/x-api/fundamentals/edit-posts); editing is a feature of the account (X Premium),
  and it is charged and counted as a new post. newsbot refuses an edit past the 30 minutes
  itself, without a paid request; X's own refusals come back with its words.

Why ``reply`` and not ``edit`` by default: a newsroom's correction mostly comes hours after the
post, long past X's 30 minutes; editing needs a paid account the API keys do not reveal; and a
reply stays visible under the post to everyone who saw it, where an edit only adds a label.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests
import tweepy
from requests.adapters import HTTPAdapter

from bot.channels.base import Channel
from bot.compose.length import X_POST, LengthRule
from bot.config import XChannelConfig
from bot.errors import DeliveryError, PermanentError, PostGone, SourceError, TransientError
from bot.images import sniff
from bot.model import Correction, Post, Published, Receipt, Takedown
from bot.redact import Redactor
from bot.sources.fetch import Fetcher
from bot.sources.policy import STRICT, FetchPolicy

PUBLIC_BASE = "https://api.twitter.com"
MAX_IMAGE_BYTES = 5 * 1024 * 1024
IMAGE_TIMEOUT = 10.0
DEFAULT_RETRY_AFTER = 60.0
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_MAX_DETAIL = 300
#: "Posts on X can be edited within 30 minutes of posting, up to 5 times" (docs.x.com).
EDIT_WINDOW = timedelta(minutes=30)
# X's 403 for a reply to a post that is no longer there.
_REPLY_TARGET_GONE = "deleted or not visible"

log = logging.getLogger(__name__)

# requests-oauthlib logs the signed Authorization header (consumer key, access token) at DEBUG;
# secrets must never reach a log line, whatever level the operator turns on.
for _chatty in ("requests_oauthlib", "oauthlib"):
    logging.getLogger(_chatty).setLevel(logging.INFO)

T = TypeVar("T")


class RedirectAdapter(HTTPAdapter):
    """Sends requests signed for ``https://api.twitter.com`` to ``api_url`` instead.

    Adapters run after the auth hook has signed the prepared request, so only the destination
    changes. It also supplies the configured timeout, which tweepy never passes.
    """

    def __init__(self, api_url: str | None, timeout: float) -> None:
        super().__init__()
        self.target = urlsplit(api_url.rstrip("/")) if api_url else None
        self.timeout = timeout

    def send(  # noqa: PLR0917 -- the signature is HTTPAdapter's
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        if self.target is not None and request.url:
            original = urlsplit(request.url)
            path = self.target.path + original.path
            request.url = urlunsplit(
                (self.target.scheme, self.target.netloc, path, original.query, "")
            )
        return super().send(
            request,
            stream=stream,
            timeout=self.timeout if timeout is None else timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )


class _NoImage(Exception):
    """The image could not be attached; the message says why, for the receipt's notes."""


class XChannel(Channel):
    """Posts plain text (and optionally the article's image) to one X account."""

    # X answers a second identical post with 403 "duplicate content", so a post whose fate is
    # unknown (a timeout after sending) can be sent again: it either goes out or proves it had.
    resend_is_safe = True
    can_edit = True
    can_reply = True
    can_delete = True
    default_corrections = Correction.REPLY
    default_takedowns = Takedown.DELETE

    def __init__(
        self, config: XChannelConfig, client: tweepy.Client, *, image_policy: FetchPolicy = STRICT
    ) -> None:
        super().__init__(config.name or "x")
        self.config = config
        self.client = client
        self._timeout = config.timeout.total_seconds()
        self._redactor = Redactor(config.secrets())
        # Images are fetched like pages, under the fetch policy: public addresses only unless a
        # test gives its local fakes.
        self._image_policy = image_policy

    @classmethod
    def from_config(cls, config: XChannelConfig, *, image_policy: FetchPolicy = STRICT) -> XChannel:
        """A channel with a tweepy client for the account's OAuth 1.0a user-context keys."""
        client = tweepy.Client(
            consumer_key=config.consumer_key.get_secret_value(),
            consumer_secret=config.consumer_secret.get_secret_value(),
            access_token=config.access_token.get_secret_value(),
            access_token_secret=config.access_token_secret.get_secret_value(),
        )
        redirect = None if _same_origin(config.api_url, PUBLIC_BASE) else config.api_url
        adapter = RedirectAdapter(redirect, config.timeout.total_seconds())
        client.session.mount(PUBLIC_BASE, adapter)
        return cls(config, client, image_policy=image_policy)

    def rule(self, *, has_image: bool) -> LengthRule:
        return X_POST

    async def send(self, post: Post) -> Receipt:
        notes: list[str] = []
        image = await self._image_for(post, notes)
        return await asyncio.to_thread(self._send, post, image, notes)

    async def reply(self, published: Published, post: Post) -> Receipt:
        """A post of its own under the published one; text only (a correction notice)."""
        return await asyncio.to_thread(
            self._send, post, None, [], reply_to=_post_id(published), on=published
        )

    async def edit(self, published: Published, post: Post) -> Receipt:
        """A new version of the published post; refused here, without a request, once X's
        30 minutes are over."""
        age = published.age(datetime.now(UTC))
        if age > EDIT_WINDOW:
            raise PermanentError(
                f"too old to edit: X post {published.remote_id} was posted "
                f"{age.total_seconds() / 60:.0f} minutes ago and X allows edits only within "
                f"{EDIT_WINDOW.total_seconds() / 60:.0f} minutes of posting; use "
                "`corrections: reply` for this channel"
            )
        notes: list[str] = []
        image = await self._image_for(post, notes)
        return await asyncio.to_thread(
            self._send, post, image, notes, edit_of=_post_id(published), on=published
        )

    async def delete(self, published: Published) -> None:
        response = await asyncio.to_thread(
            self._call_on, published, self.client.delete_tweet, _post_id(published)
        )
        data = getattr(response, "data", None)
        if not (isinstance(data, dict) and data.get("deleted") is True):
            raise PermanentError(
                f"X did not confirm deleting post {published.remote_id} (answered {data!r})"
            )

    async def verify(self) -> str:
        """The account's username (``GET /2/users/me``): proves the keys work."""
        response = await asyncio.to_thread(self._call, self.client.get_me, user_auth=True)
        return str(response.data.username)

    async def close(self) -> None:
        await asyncio.to_thread(self.client.session.close)

    # -- in the worker thread ----------------------------------------------------------------

    def _send(
        self,
        post: Post,
        image: tuple[bytes, str] | None,
        notes: list[str],
        *,
        reply_to: str | None = None,
        edit_of: str | None = None,
        on: Published | None = None,
    ) -> Receipt:
        """POST /2/tweets: a post, a reply to ``reply_to``, or a new version of ``edit_of``
        (tweepy's ``create_tweet`` has no ``edit_options``, hence the plain request)."""
        media_ids: list[str] | None = None
        if image is not None:
            try:
                media_ids = [self._attach(*image)]
            except _NoImage as exc:
                notes.append(f"posted without the image: {self._scrub(str(exc))}")
                log.warning("%s: %s", self.name, notes[-1])
        if edit_of is not None and on is not None:
            body: dict[str, Any] = {
                "text": post.text,
                "edit_options": {"previous_post_id": edit_of},
            }
            if media_ids:
                body["media"] = {"media_ids": media_ids}
            answer = self._call_on(
                on, self.client.request, "POST", "/2/tweets", json=body, user_auth=True
            )
            remote_id = str(_json_data(answer)["id"])
        else:
            response = self._call_on(
                on,
                self.client.create_tweet,
                text=post.text,
                media_ids=media_ids,
                in_reply_to_tweet_id=reply_to,
                user_auth=True,
            )
            remote_id = str(response.data["id"])
        return Receipt(
            remote_id=remote_id,
            url=f"https://x.com/i/web/status/{remote_id}",
            accepted_at=datetime.now(UTC),
            notes=tuple(notes),
        )

    def _attach(self, data: bytes, media_type: str) -> str:
        body = {
            "media": base64.b64encode(data).decode("ascii"),
            "media_category": "tweet_image",
            "media_type": media_type,
        }
        try:
            response = self._call(
                self.client.request, "POST", "/2/media/upload", json=body, user_auth=True
            )
            media_id = response.json()["data"]["id"]
        except DeliveryError as exc:
            raise _NoImage(f"X refused the upload ({exc.reason})") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise _NoImage("X's answer to the upload had no media id") from exc
        return str(media_id)

    async def _download(self, url: str) -> tuple[bytes, str]:
        """The image's bytes and type; X cannot fetch an image from a URL itself. Fetched by
        the one fetcher, so the outbound-fetch policy (and its size and time caps) applies."""
        if urlsplit(url).scheme not in ("http", "https"):
            raise _NoImage(f"the image URL {url!r} is not http(s)")
        try:
            async with Fetcher(
                max_bytes=MAX_IMAGE_BYTES,
                timeout=min(self._timeout, IMAGE_TIMEOUT),
                concurrency=1,
                policy=self._image_policy,
            ) as fetcher:
                result = await fetcher.get(url)
        except SourceError as exc:
            raise _NoImage(f"downloading the image failed: {exc}") from exc
        media_type = sniff(result.body) or (result.content_type or "").split(";")[0].strip()
        if media_type.lower() not in _IMAGE_TYPES:
            raise _NoImage("the file at the image URL is not a JPEG, PNG, GIF or WebP image")
        return result.body, media_type.lower()

    async def _image_for(self, post: Post, notes: list[str]) -> tuple[bytes, str] | None:
        if not (self.config.media and post.image):
            return None
        try:
            return await self._download(post.image)
        except _NoImage as exc:
            notes.append(f"posted without the image: {self._scrub(str(exc))}")
            log.warning("%s: %s", self.name, notes[-1])
            return None

    def _call_on(
        self, published: Published | None, method: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        """:meth:`_call` for a request about a published post: X saying it is gone (404, or a
        reply's target deleted) becomes :class:`PostGone`."""
        try:
            return self._call(method, *args, **kwargs)
        except PermanentError as exc:
            cause = exc.__cause__
            gone = isinstance(cause, tweepy.NotFound) or (
                isinstance(cause, tweepy.Forbidden) and _REPLY_TARGET_GONE in exc.reason
            )
            if published is None or not gone:
                raise
            raise PostGone(
                f"X post {published.remote_id} is no longer on X ({exc.reason})"
            ) from cause

    def _call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One tweepy call, its errors translated into newsbot's."""
        try:
            return method(*args, **kwargs)
        except tweepy.TooManyRequests as exc:
            raise TransientError(
                f"X rate limit reached on {self.name} (429 Too Many Requests)",
                retry_after=_retry_after(exc),
            ) from exc
        except tweepy.TwitterServerError as exc:
            status = _status(exc)
            raise TransientError(f"X had a server error ({status}): {self._detail(exc)}") from exc
        except tweepy.Unauthorized as exc:
            raise PermanentError(
                "X rejected the credentials (401 Unauthorized): check X_CONSUMER_KEY, "
                "X_CONSUMER_SECRET, X_ACCESS_TOKEN and X_ACCESS_TOKEN_SECRET "
                f"(consumer_key, consumer_secret, access_token, access_token_secret of channel "
                f"{self.name!r}); the app needs read and write permission"
            ) from exc
        except tweepy.Forbidden as exc:
            detail = self._detail(exc)
            if "duplicate content" in detail.lower():
                raise PermanentError(
                    "X refused the post as duplicate content: the account already has a post "
                    f"with this exact text (403 Forbidden: {detail})",
                    duplicate=True,
                ) from exc
            raise PermanentError(f"X refused the post (403 Forbidden): {detail}") from exc
        except tweepy.BadRequest as exc:
            raise PermanentError(
                f"X rejected the post (400 Bad Request): {self._detail(exc)}"
            ) from exc
        except tweepy.HTTPException as exc:
            status = _status(exc)
            raise PermanentError(f"X answered HTTP {status}: {self._detail(exc)}") from exc
        except tweepy.TweepyException as exc:
            raise PermanentError(f"tweepy failed: {self._scrub(str(exc))}") from exc
        except requests.ReadTimeout as exc:
            raise TransientError(
                f"X at {self.config.api_url} did not answer within {self._timeout:g} s "
                "(ReadTimeout); the request was sent, so X may have carried it out",
                maybe_sent=True,
            ) from exc
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            raise TransientError(
                f"could not reach X at {self.config.api_url} ({type(exc).__name__}): "
                f"{self._scrub(str(exc))[:_MAX_DETAIL]}",
                maybe_sent=_maybe_sent(exc),
            ) from exc
        except requests.RequestException as exc:
            raise PermanentError(
                f"the request to X at {self.config.api_url} could not be made "
                f"({type(exc).__name__}): {self._scrub(str(exc))[:_MAX_DETAIL]}"
            ) from exc

    def _detail(self, exc: Any) -> str:
        """X's own words: the ``errors`` messages, else the problem's ``detail``."""
        messages = [str(m) for m in getattr(exc, "api_messages", []) if m]
        if not messages:
            try:
                body = exc.response.json()
                if isinstance(body, dict) and body.get("detail"):
                    messages = [str(body["detail"])]
            except (ValueError, AttributeError):
                pass
        text = "; ".join(messages) or getattr(getattr(exc, "response", None), "reason", "") or ""
        return self._scrub(str(text))[:_MAX_DETAIL] or "no detail given"

    def _scrub(self, text: str) -> str:
        # X never echoes a secret, but a message that could is not worth the risk.
        return self._redactor.redact(text)


def _post_id(published: Published) -> str:
    if not published.remote_id.isdigit():
        raise PermanentError(
            f"the X post id recorded for this post ({published.remote_id!r}) is not a number; "
            "the post cannot be found to change it"
        )
    return published.remote_id


def _json_data(response: Any) -> dict[str, Any]:
    """``data`` of a plain ``client.request`` answer."""
    try:
        data = response.json()["data"]
    except (ValueError, KeyError, TypeError) as exc:
        raise PermanentError("X's answer had no post in it (no `data`)") from exc
    if not isinstance(data, dict) or "id" not in data:
        raise PermanentError("X's answer had no post id in it")
    return data


def _status(exc: Any) -> int | str:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None) or "?"


def _retry_after(exc: Any) -> float:
    reset = getattr(exc, "reset_time", None)
    if reset is None:
        header = getattr(getattr(exc, "response", None), "headers", {}).get("x-rate-limit-reset")
        reset = int(header) if header and str(header).isdigit() else None
    if reset is None:
        return DEFAULT_RETRY_AFTER
    return max(1.0, float(reset) - time.time())


def _same_origin(a: str, b: str) -> bool:
    left, right = urlsplit(a.rstrip("/")), urlsplit(b.rstrip("/"))
    return (left.scheme, left.netloc, left.path) == (right.scheme, right.netloc, right.path)


def _maybe_sent(exc: requests.RequestException) -> bool:
    """Did the request leave before it failed? A refused or timed-out connection: no."""
    return not isinstance(exc, requests.ConnectTimeout | requests.exceptions.SSLError) and not (
        isinstance(exc, requests.ConnectionError) and "NewConnectionError" in repr(exc.args)
    )
