"""X (API v2) through tweepy: the only module that imports tweepy.

tweepy is synchronous, so every call runs in a worker thread and the event loop never waits on
X. tweepy's host is fixed in its code; to reach a configured ``api_url`` (a local fake, a proxy)
a transport adapter on the client's ``requests`` session rewrites each request's URL *after*
OAuth 1.0a signing, so the signature still covers the public URL, as X verifies it.

Platform errors become :class:`TransientError` (rate limit, 5xx, network) or
:class:`PermanentError` (credentials, duplicate, invalid post). No message names a secret.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests
import tweepy
from requests.adapters import HTTPAdapter

from bot.channels.base import Channel
from bot.compose.length import X_POST, LengthRule
from bot.config import XChannelConfig
from bot.errors import DeliveryError, PermanentError, SourceError, TransientError
from bot.images import sniff
from bot.model import Post, Receipt
from bot.redact import Redactor
from bot.sources.fetch import Fetcher
from bot.sources.policy import STRICT, FetchPolicy

PUBLIC_BASE = "https://api.twitter.com"
MAX_IMAGE_BYTES = 5 * 1024 * 1024
IMAGE_TIMEOUT = 10.0
DEFAULT_RETRY_AFTER = 60.0
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_MAX_DETAIL = 300

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
        image: tuple[bytes, str] | None = None
        if self.config.media and post.image:
            try:
                image = await self._download(post.image)
            except _NoImage as exc:
                notes.append(f"posted without the image: {self._scrub(str(exc))}")
                log.warning("%s: %s", self.name, notes[-1])
        return await asyncio.to_thread(self._send, post, image, notes)

    async def verify(self) -> str:
        """The account's username (``GET /2/users/me``): proves the keys work."""
        response = await asyncio.to_thread(self._call, self.client.get_me, user_auth=True)
        return str(response.data.username)

    async def close(self) -> None:
        await asyncio.to_thread(self.client.session.close)

    # -- in the worker thread ----------------------------------------------------------------

    def _send(self, post: Post, image: tuple[bytes, str] | None, notes: list[str]) -> Receipt:
        media_ids: list[str] | None = None
        if image is not None:
            try:
                media_ids = [self._attach(*image)]
            except _NoImage as exc:
                notes.append(f"posted without the image: {self._scrub(str(exc))}")
                log.warning("%s: %s", self.name, notes[-1])
        response = self._call(
            self.client.create_tweet, text=post.text, media_ids=media_ids, user_auth=True
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
