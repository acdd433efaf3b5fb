"""A local X API v2 server on 127.0.0.1 that accepts, refuses and fails like the real one.

It answers the endpoints newsbot uses — ``POST /2/tweets`` (a post, a reply with
``reply.in_reply_to_tweet_id``, an edit with ``edit_options.previous_post_id``),
``DELETE /2/tweets/:id``, ``GET /2/users/me`` and ``POST /2/media/upload`` — and verifies the
OAuth 1.0a signature of every call with the configured consumer and access secrets, as X does.
Because the channel signs for the public host and only then redirects the request here, the
signature is checked against ``signed_base`` (by default ``https://api.twitter.com``) plus the
path, not against the address the request reached.

Refusals use X's shapes: problem JSON for 401 / 403 / 429 / 503, the ``errors`` list for a text
that is too long, ``x-rate-limit-*`` headers on every answer. Tests queue failures with
:meth:`FakeX.fail_next`::

    with FakeX(consumer_key="ck", consumer_secret="cs", access_token="at",
               access_token_secret="ats") as x:
        x.fail_next(1, XFault.rate_limited(reset_in=30))
        ...                                   # configure api_url=x.url
        assert x.posts[0].text == "..."

What a test counts, plain attributes read in the test's own process: ``x.posts`` (every post
created, replies included, as created), ``x.replies`` (those replying to another),
``x.edits`` (every edit applied: the new version's id, the one it replaced, the text),
``x.deletions`` (every delete applied) and ``x.current(id)`` (the text the post shows now,
``None`` once deleted). ``x.age(minutes=...)`` moves posts back in time for the edit window.

Edits follow docs.x.com/x-api/fundamentals/edit-posts: within 30 minutes of the original post,
at most 5 times, each edit a new post id in the same chain, only the latest version editable,
and deleting any version deletes the whole chain. Deletes are held to X's 50 per 15 minutes
(``DELETES_PER_WINDOW``, which a test may lift as it lifts ``POSTS_PER_WINDOW``). A reply to
a deleted post is X's 403 "You attempted to reply to a Tweet that is deleted or not visible to
you."; a delete or an edit of a post that does not exist is 404 ``resource-not-found``. X
documents no texts for the edit refusals (too late, too many, not the latest): the fake's 403
details for those are its own.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import hmac
import itertools
import os
import signal
import struct
import sys
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import parse_qsl

from aiohttp import web
from oauthlib.oauth1.rfc5849 import signature as oauth_signature  # type: ignore[import-untyped]
from oauthlib.oauth1.rfc5849 import utils as oauth_utils
from twitter_text import parse_tweet

from bot.images import sniff
from bot.testing.server import LOOPBACK, LocalServer

PUBLIC_BASE = "https://api.twitter.com"
X_LIMIT = 280
MAX_IMAGE_BYTES = 5 * 1024 * 1024
# POST /2/tweets per user: 200 per 15 minutes and 300 per 3 hours (docs.x.com, manage Posts).
POSTS_PER_WINDOW = 200
WINDOW_SECONDS = 15 * 60
POSTS_PER_LONG_WINDOW = 300
LONG_WINDOW_SECONDS = 3 * 3600
# DELETE /2/tweets/:id: "50 requests per 15-minute window per each authenticated user"
# (developer.x.com, manage Tweets, delete-tweets-id).
DELETES_PER_WINDOW = 50
TIMESTAMP_SKEW = 300
_TWITTER_EPOCH_MS = 1288834974657

TOO_LONG = (
    "Your Tweet text is too long. For more information on how Twitter determines text length "
    "see https://github.com/twitter/twitter-text."
)
DUPLICATE = "You are not allowed to create a Tweet with duplicate content."
REPLY_TO_GONE = "You attempted to reply to a Tweet that is deleted or not visible to you."
EDIT_WINDOW_SECONDS = 30 * 60
MAX_EDITS = 5
NO_WRITE_PERMISSION = (
    "Your client app is not configured with the appropriate oauth1 app permissions for this "
    "endpoint."
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ------------------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class XPost:
    """One post the fake accepted."""

    id: str
    text: str
    media_ids: tuple[str, ...]
    received_at: float
    weighted_length: int
    reply_to: str | None = None


@dataclass(frozen=True, slots=True)
class XEdit:
    """An edit the fake applied: ``id`` is the new version's, ``previous_id`` the version it
    replaced and ``original_id`` the first post of the chain."""

    id: str
    previous_id: str
    original_id: str
    text: str
    received_at: float


@dataclass(frozen=True, slots=True)
class XDeletion:
    """A delete the fake applied: the id asked for and the chain's first post, all gone."""

    id: str
    original_id: str
    at: float


@dataclass(frozen=True, slots=True)
class XMedia:
    """One uploaded image."""

    id: str
    media_key: str
    media_type: str
    size: int
    received_at: float


@dataclass(frozen=True, slots=True)
class XAttempt:
    """Every request that reached the fake, refused or not; ``status`` is None when dropped."""

    method: str
    path: str
    status: int | None
    at: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class XFault:
    """A failure to inject; build one with the class methods."""

    kind: Literal["rate_limited", "server_error", "drop", "slow", "forbidden"]
    seconds: float = 0.0
    status: int = 503
    detail: str = ""

    @classmethod
    def rate_limited(cls, reset_in: float = 60.0) -> XFault:
        """429 with ``x-rate-limit-reset`` ``reset_in`` seconds from now."""
        return cls("rate_limited", seconds=reset_in, status=429)

    @classmethod
    def server_error(cls, status: int = 503) -> XFault:
        return cls("server_error", status=status)

    @classmethod
    def forbidden(cls, detail: str = NO_WRITE_PERMISSION) -> XFault:
        """403 problem JSON other than duplicate content, e.g. an app without write access."""
        return cls("forbidden", status=403, detail=detail)

    @classmethod
    def drop(cls) -> XFault:
        """Close the connection without answering."""
        return cls("drop")

    @classmethod
    def slow(cls, seconds: float) -> XFault:
        """Wait, then carry out the request and answer normally (even if the client left)."""
        return cls("slow", seconds=seconds)


@dataclass(slots=True)
class _Queued:
    fault: XFault
    remaining: int
    path: str | None


@dataclass(frozen=True, slots=True)
class Credentials:
    consumer_key: str
    consumer_secret: str
    access_token: str
    access_token_secret: str


# ------------------------------------------------------------------------------------ OAuth 1.0a


@dataclass(slots=True)
class NonceBook:
    """Nonces already used; X refuses a replayed one within the timestamp window."""

    seen: set[tuple[str, str]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def first_use(self, timestamp: str, nonce: str) -> bool:
        with self.lock:
            if (timestamp, nonce) in self.seen:
                return False
            self.seen.add((timestamp, nonce))
            return True


def verify_oauth1(
    *,
    method: str,
    url: str,
    authorization: str | None,
    query: str,
    form: Sequence[tuple[str, str]],
    credentials: Credentials,
    nonces: NonceBook,
    now: float,
) -> str | None:
    """Why an OAuth 1.0a HMAC-SHA1 request is refused, or None when it is genuine.

    ``url`` is the URL the client must have signed (scheme, host and path; no query). ``form``
    holds the body parameters of a form-encoded body, the only kind of body OAuth 1.0a signs.
    """
    if not authorization or not authorization.lower().startswith("oauth "):
        return "no OAuth Authorization header"
    try:
        pairs = oauth_utils.parse_authorization_header(authorization)
        oauth = {str(k): str(oauth_utils.unescape(v)) for k, v in pairs}
    except ValueError:
        return "malformed Authorization header"
    if oauth.get("oauth_signature_method") != "HMAC-SHA1":
        return "signature method is not HMAC-SHA1"
    if oauth.get("oauth_version", "1.0") != "1.0":
        return "OAuth version is not 1.0"
    if not hmac.compare_digest(oauth.get("oauth_consumer_key", ""), credentials.consumer_key):
        return "unknown consumer key"
    if not hmac.compare_digest(oauth.get("oauth_token", ""), credentials.access_token):
        return "unknown access token"
    timestamp, nonce = oauth.get("oauth_timestamp", ""), oauth.get("oauth_nonce", "")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > TIMESTAMP_SKEW:
        return "timestamp missing or out of the allowed window"
    if not nonce:
        return "nonce missing"
    params = oauth_signature.collect_parameters(
        uri_query=query, body=list(form), headers={"Authorization": authorization}
    )
    base = oauth_signature.signature_base_string(
        method.upper(),
        oauth_signature.base_string_uri(url),
        oauth_signature.normalize_parameters(params),
    )
    key = "&".join(
        oauth_utils.escape(secret)
        for secret in (credentials.consumer_secret, credentials.access_token_secret)
    )
    digest = hmac.new(key.encode(), str(base).encode(), hashlib.sha1).digest()
    expected = base64.b64encode(digest).decode("ascii")
    if not hmac.compare_digest(expected, oauth.get("oauth_signature", "")):
        return "signature does not match"
    # A nonce is spent only by a request that was otherwise genuine, as a replay check should.
    if not nonces.first_use(timestamp, nonce):
        return "nonce already used"
    return None


# ------------------------------------------------------------------------------------- helpers


def _problem(status: int, title: str, detail: str, kind: str = "about:blank") -> dict[str, Any]:
    return {"title": title, "detail": detail, "type": kind, "status": status}


def _json(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    content_type = "application/problem+json" if status >= 400 else "application/json"
    response = web.json_response(body, status=status, headers=headers)
    response.content_type = content_type
    return response


def weighted_length(text: str) -> int:
    """X's count, from the reference twitter-text implementation.

    The fake plays X, so it measures with X's own library rather than with
    ``bot.compose.length`` — a bug there must show up as a refusal here, not be mirrored.
    """
    return int(parse_tweet(text).weightedLength)


# The fake reads an image's type as X does, from its first bytes.
sniff_image = sniff


def tiny_png(width: int = 2, height: int = 2) -> bytes:
    """A valid PNG, so tests need no image files."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + b"\xcc\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


# ------------------------------------------------------------------------------------- the fake


class FakeX(LocalServer):
    """The X API v2, as far as newsbot uses it, on 127.0.0.1."""

    def __init__(
        self,
        *,
        consumer_key: str,
        consumer_secret: str,
        access_token: str,
        access_token_secret: str,
        signed_base: str | None = PUBLIC_BASE,
        user_id: str = "1490278571950612480",
        name: str = "新聞視界",
        username: str = "newsvision_tw",
        host: str = LOOPBACK,
        port: int = 0,
    ) -> None:
        app = web.Application(client_max_size=4 * MAX_IMAGE_BYTES)
        super().__init__(app, host=host, port=port)
        self.credentials = Credentials(
            consumer_key, consumer_secret, access_token, access_token_secret
        )
        # None means: verify against the URL the request actually reached.
        self.signed_base = signed_base
        self.user = {"id": user_id, "name": name, "username": username}
        self.posts: list[XPost] = []
        self.edits: list[XEdit] = []
        self.deletions: list[XDeletion] = []
        self.media: list[XMedia] = []
        self.attempts: list[XAttempt] = []
        self.images: dict[str, tuple[bytes, str]] = {
            "/test-image.png": (tiny_png(), "image/png"),
        }
        self._faults: list[_Queued] = []
        self._lock = threading.Lock()
        self._nonces = NonceBook()
        self._sequence = itertools.count()
        app.router.add_post("/2/tweets", self._guarded(self._create_tweet))
        app.router.add_delete("/2/tweets/{id}", self._guarded(self._delete_tweet))
        app.router.add_get("/2/users/me", self._guarded(self._me))
        app.router.add_post("/2/media/upload", self._guarded(self._upload))
        app.router.add_get("/{name:[^/]+}", self._image)

    # -- what tests call ---------------------------------------------------------------------

    def fail_next(self, n: int, fault: XFault, *, path: str | None = None) -> None:
        """The next ``n`` API requests (only those to ``path`` when given) meet ``fault``.
        ``path="/2/tweets/:id"`` stands for any delete; ``"/2/tweets"`` takes posts, replies
        and edits alike."""
        with self._lock:
            self._faults.append(_Queued(fault, n, path))

    def serve_image(self, path: str, body: bytes, content_type: str = "image/png") -> str:
        """Serve ``body`` at ``path``; returns its URL (the channel downloads images itself)."""
        self.images[path] = (body, content_type)
        return self.url + path

    @property
    def image_url(self) -> str:
        return self.url + "/test-image.png"

    def attempts_to(self, path: str) -> list[XAttempt]:
        return [attempt for attempt in self.attempts if attempt.path == path]

    @property
    def replies(self) -> list[XPost]:
        """The posts created as a reply to another."""
        with self._lock:
            return [post for post in self.posts if post.reply_to is not None]

    def current(self, post_id: str) -> str | None:
        """The text a post (any version of it) shows now; ``None`` once deleted or unknown."""
        with self._lock:
            original = self._original_of(post_id)
            if original is None or self._is_deleted(original):
                return None
            return self._latest(original)[1]

    def age(self, *, minutes: float, post_id: str | None = None) -> None:
        """Moves every post (or one) ``minutes`` back in time: as if posted that much earlier."""
        with self._lock:
            self.posts = [
                replace(post, received_at=post.received_at - minutes * 60)
                if post_id in (None, post.id)
                else post
                for post in self.posts
            ]

    # -- plumbing ----------------------------------------------------------------------------

    def _take_fault(self, path: str) -> XFault | None:
        with self._lock:
            for queued in self._faults:
                if queued.remaining > 0 and queued.path in (None, path, _route_of(path)):
                    queued.remaining -= 1
                    return queued.fault
            return None

    def _record(self, request: web.Request, status: int | None, reason: str = "") -> None:
        self.attempts.append(XAttempt(request.method, request.path, status, time.time(), reason))

    def _rate_headers(self, now: float) -> dict[str, str]:
        """The 15-minute window's figures, unless the 3-hour window is the one exhausted. An
        edit is a request to POST /2/tweets too, so it counts."""
        times = sorted([p.received_at for p in self.posts] + [e.received_at for e in self.edits])
        short = [at for at in times if at > now - WINDOW_SECONDS]
        long = [at for at in times if at > now - LONG_WINDOW_SECONDS]
        limit, window, seconds = POSTS_PER_WINDOW, short, WINDOW_SECONDS
        if len(long) >= POSTS_PER_LONG_WINDOW and len(short) < POSTS_PER_WINDOW:
            limit, window, seconds = POSTS_PER_LONG_WINDOW, long, LONG_WINDOW_SECONDS
        reset = (window[0] if window else now) + seconds
        return {
            "x-rate-limit-limit": str(limit),
            "x-rate-limit-remaining": str(max(0, limit - len(window))),
            "x-rate-limit-reset": str(int(reset)),
        }

    def _guarded(self, handler: Handler) -> Handler:
        """Faults first, then OAuth, then the endpoint — and a record of every attempt."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            fault = self._take_fault(request.path)
            if fault is not None:
                refused = await self._apply(fault, request)
                if refused is not None:
                    return refused
            reason = await self._refuse_auth(request)
            if reason is not None:
                self._record(request, 401, reason)
                return _json(_problem(401, "Unauthorized", "Unauthorized"), 401)
            response = await handler(request)
            return response

        return guarded

    async def _apply(self, fault: XFault, request: web.Request) -> web.StreamResponse | None:
        if fault.kind == "slow":
            # The body is taken before the wait, so the request is carried out even when the
            # client has given up by then: like X, a late answer can still mean a published post.
            await request.read()
            await asyncio.sleep(fault.seconds)
            return None
        if fault.kind == "drop":
            self._record(request, None, "dropped")
            if request.transport is not None:
                request.transport.abort()
            # Nothing can be written to an aborted transport; end the handler quietly.
            raise asyncio.CancelledError
        if fault.kind == "rate_limited":
            reset = int(time.time() + fault.seconds)
            self._record(request, 429, "rate limited")
            headers = {
                "x-rate-limit-limit": str(POSTS_PER_WINDOW),
                "x-rate-limit-remaining": "0",
                "x-rate-limit-reset": str(reset),
            }
            body = _problem(429, "Too Many Requests", "Too Many Requests")
            return _json(body, 429, headers)
        if fault.kind == "forbidden":
            self._record(request, 403, "forbidden")
            return _json(_problem(403, "Forbidden", fault.detail), 403)
        self._record(request, fault.status, "server error")
        body = _problem(fault.status, "Service Unavailable", "Service Unavailable")
        return _json(body, fault.status)

    async def _refuse_auth(self, request: web.Request) -> str | None:
        form: list[tuple[str, str]] = []
        if request.content_type == "application/x-www-form-urlencoded":
            form = parse_qsl(await request.text(), keep_blank_values=True)
        base = self.signed_base or f"{request.scheme}://{request.host}"
        return verify_oauth1(
            method=request.method,
            url=base.rstrip("/") + request.path,
            authorization=request.headers.get("Authorization"),
            query=request.query_string,
            form=form,
            credentials=self.credentials,
            nonces=self._nonces,
            now=time.time(),
        )

    def _next_id(self, now: float) -> str:
        millis = int(now * 1000) - _TWITTER_EPOCH_MS
        return str((millis << 22) | (1 << 17) | (next(self._sequence) & 0xFFF))

    # -- endpoints ---------------------------------------------------------------------------

    async def _create_tweet(self, request: web.Request) -> web.StreamResponse:
        now = time.time()
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._record(request, 400, "body is not a JSON object")
            return _invalid_request("The request body is not valid JSON.")
        text = body.get("text")
        media = body.get("media") or {}
        media_ids = (
            tuple(str(i) for i in media.get("media_ids", ())) if isinstance(media, dict) else ()
        )
        if not isinstance(text, str) and not media_ids:
            self._record(request, 400, "no text and no media")
            return _invalid_request("One of text or media.media_ids must be present.")
        text = text if isinstance(text, str) else ""
        known = {m.id for m in self.media}
        if any(media_id not in known for media_id in media_ids):
            self._record(request, 400, "unknown media id")
            return _invalid_request("Your media IDs are invalid.")
        length = weighted_length(text)
        if length > X_LIMIT:
            self._record(request, 400, f"too long ({length} weighted)")
            return _invalid_request(TOO_LONG)
        reply_to = _nested_id(body, "reply", "in_reply_to_tweet_id")
        edit_of = _nested_id(body, "edit_options", "previous_post_id")
        with self._lock:
            if text and self._is_duplicate(text):
                self._record(request, 403, "duplicate content")
                return _json(_problem(403, "Forbidden", DUPLICATE), 403)
            headers = self._rate_headers(now)
            if headers["x-rate-limit-remaining"] == "0":
                self._record(request, 429, "post limit reached")
                body429 = _problem(429, "Too Many Requests", "Too Many Requests")
                return _json(body429, 429, headers)
            if reply_to is not None and self._visible(reply_to) is None:
                self._record(request, 403, "reply to a post that is gone")
                return _json(_problem(403, "Forbidden", REPLY_TO_GONE), 403)
            if edit_of is not None:
                refused = self._edit_refusal(edit_of, now)
                if refused is not None:
                    self._record(request, refused.status, "edit refused")
                    return refused
                original = self._original_of(edit_of) or edit_of
                new_id = self._next_id(now)
                self.edits.append(XEdit(new_id, edit_of, original, text, now))
                history = [original, *(e.id for e in self.edits if e.original_id == original)]
            else:
                new_id = self._next_id(now)
                self.posts.append(XPost(new_id, text, media_ids, now, length, reply_to))
                history = [new_id]
        self._record(request, 201)
        data = {"id": new_id, "text": text, "edit_history_tweet_ids": history}
        return _json({"data": data}, 201, self._rate_headers(now))

    async def _delete_tweet(self, request: web.Request) -> web.StreamResponse:
        """Deleting any version of an edited post deletes the whole chain."""
        post_id = request.match_info["id"]
        now = time.time()
        with self._lock:
            recent = [d.at for d in self.deletions if d.at > now - WINDOW_SECONDS]
            headers = {
                "x-rate-limit-limit": str(DELETES_PER_WINDOW),
                "x-rate-limit-remaining": str(max(0, DELETES_PER_WINDOW - len(recent))),
                "x-rate-limit-reset": str(int((recent[0] if recent else now) + WINDOW_SECONDS)),
            }
            if len(recent) >= DELETES_PER_WINDOW:
                self._record(request, 429, "delete limit reached")
                return _json(_problem(429, "Too Many Requests", "Too Many Requests"), 429, headers)
            original = self._visible(post_id)
            if original is None:
                self._record(request, 404, "no such post")
                return _not_found(post_id)
            self.deletions.append(XDeletion(post_id, original, now))
        self._record(request, 200)
        return _json({"data": {"deleted": True}}, headers=headers)

    # -- the posts as they stand (the caller holds the lock) ----------------------------------

    def _original_of(self, post_id: str) -> str | None:
        """The first post of the chain ``post_id`` belongs to (itself when never edited)."""
        if any(post.id == post_id for post in self.posts):
            return post_id
        return next((e.original_id for e in self.edits if e.id == post_id), None)

    def _is_deleted(self, original: str) -> bool:
        return any(deletion.original_id == original for deletion in self.deletions)

    def _visible(self, post_id: str) -> str | None:
        """The chain's first post when ``post_id`` is a version of a post still up."""
        original = self._original_of(post_id)
        return None if original is None or self._is_deleted(original) else original

    def _latest(self, original: str) -> tuple[str, str]:
        """The id and text of the version shown now."""
        for edit in reversed(self.edits):
            if edit.original_id == original:
                return edit.id, edit.text
        post = next(post for post in self.posts if post.id == original)
        return post.id, post.text

    def _is_duplicate(self, text: str) -> bool:
        """X refuses a text the account already shows; a deleted post no longer counts."""
        versions = [(p.id, p.text) for p in self.posts] + [
            (e.original_id, e.text) for e in self.edits
        ]
        return any(said == text and not self._is_deleted(original) for original, said in versions)

    def _edit_refusal(self, previous: str, now: float) -> web.Response | None:
        original = self._visible(previous)
        if original is None:
            return _not_found(previous)
        latest, _ = self._latest(original)
        if latest != previous:
            detail = (
                f"Only the latest version of a Post can be edited: {previous} was edited "
                f"into {latest}."
            )
            return _json(_problem(403, "Forbidden", detail), 403)
        posted = next(post.received_at for post in self.posts if post.id == original)
        if now - posted > EDIT_WINDOW_SECONDS:
            minutes = EDIT_WINDOW_SECONDS // 60
            detail = f"A Post can be edited only within {minutes} minutes of being posted."
            return _json(_problem(403, "Forbidden", detail), 403)
        if sum(1 for e in self.edits if e.original_id == original) >= MAX_EDITS:
            detail = f"A Post can be edited at most {MAX_EDITS} times."
            return _json(_problem(403, "Forbidden", detail), 403)
        return None

    async def _me(self, request: web.Request) -> web.StreamResponse:
        self._record(request, 200)
        return _json({"data": dict(self.user)})

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        now = time.time()
        try:
            data, category = await _read_media(request)
        except ValueError as exc:
            self._record(request, 400, str(exc))
            return _invalid_request(str(exc))
        if category not in ("tweet_image", "dm_image"):
            self._record(request, 400, "unsupported media_category")
            return _invalid_request(f"media_category {category!r} is not supported here.")
        media_type = sniff_image(data)
        if media_type is None:
            self._record(request, 400, "not an image")
            return _invalid_request("media type unrecognized.")
        if len(data) > MAX_IMAGE_BYTES:
            self._record(request, 400, "image too large")
            return _invalid_request("File size exceeds 5242880 bytes.")
        media_id = self._next_id(now)
        item = XMedia(media_id, f"3_{media_id}", media_type, len(data), now)
        self.media.append(item)
        self._record(request, 200)
        body = {
            "data": {
                "id": media_id,
                "media_key": item.media_key,
                "size": len(data),
                "expires_after_secs": 86400,
                "image": {"image_type": media_type},
            }
        }
        return _json(body)

    async def _image(self, request: web.Request) -> web.StreamResponse:
        found = self.images.get(request.path)
        if found is None:
            raise web.HTTPNotFound()
        body, content_type = found
        return web.Response(body=body, content_type=content_type)


def _not_found(post_id: str) -> web.Response:
    body = {
        "title": "Not Found Error",
        "detail": f"Could not find tweet with id: [{post_id}].",
        "type": "https://api.twitter.com/2/problems/resource-not-found",
        "resource_type": "tweet",
        "resource_id": post_id,
        "parameter": "id",
        "value": post_id,
        "status": 404,
    }
    return _json(body, 404)


def _route_of(path: str) -> str:
    """``/2/tweets/123`` → ``/2/tweets/:id``, the name a fault can be queued under."""
    head, _, last = path.rpartition("/")
    return f"{head}/:id" if head == "/2/tweets" and last.isdigit() else path


def _nested_id(body: dict[str, Any], key: str, field_name: str) -> str | None:
    """``body[key][field_name]`` as a string id, e.g. ``reply.in_reply_to_tweet_id``."""
    inner = body.get(key)
    value = inner.get(field_name) if isinstance(inner, dict) else None
    return None if value is None else str(value)


def _invalid_request(message: str) -> web.Response:
    body = {
        "errors": [{"parameters": {}, "message": message}],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }
    return _json(body, 400)


async def _read_media(request: web.Request) -> tuple[bytes, str]:
    """The image bytes and media_category, from the JSON (base64) or the multipart form."""
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise ValueError("The request body is not valid JSON.") from None
        if not isinstance(body, dict) or not isinstance(body.get("media"), str):
            raise ValueError("media is required (base64 of the file).")
        try:
            data = base64.b64decode(body["media"], validate=True)
        except binascii.Error:
            raise ValueError("media is not valid base64.") from None
        return data, str(body.get("media_category", "tweet_image"))
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        part = form.get("media")
        if part is None:
            raise ValueError("media is required.")
        data = part.file.read() if isinstance(part, web.FileField) else str(part).encode()
        return data, str(form.get("media_category", "tweet_image"))
    raise ValueError("Send media as JSON with base64 or as multipart/form-data.")


# ---------------------------------------------------------------------------------------- the CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot.testing x",
        description="A local X API v2 server. Keys default to X_CONSUMER_KEY, X_CONSUMER_SECRET, "
        "X_ACCESS_TOKEN and X_ACCESS_TOKEN_SECRET from the environment.",
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--signed-base", default=PUBLIC_BASE)
    for flag in ("consumer-key", "consumer-secret", "access-token", "access-token-secret"):
        env = "X_" + flag.upper().replace("-", "_")
        parser.add_argument(f"--{flag}", default=os.environ.get(env), help=f"default: ${env}")
    return parser


def serve(argv: list[str]) -> int:
    """Run the fake until SIGINT / SIGTERM; prints its base URL first so a caller can read it."""
    args = _parser().parse_args(argv)
    keys = (args.consumer_key, args.consumer_secret, args.access_token, args.access_token_secret)
    if not all(keys):
        print(
            "all four keys are needed: --consumer-key ... or X_CONSUMER_KEY, X_CONSUMER_SECRET, "
            "X_ACCESS_TOKEN, X_ACCESS_TOKEN_SECRET",
            file=sys.stderr,
        )
        return 2
    fake = FakeX(
        consumer_key=args.consumer_key,
        consumer_secret=args.consumer_secret,
        access_token=args.access_token,
        access_token_secret=args.access_token_secret,
        signed_base=args.signed_base or None,
        host=args.host,
        port=args.port,
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with fake:
            print(fake.url, flush=True)
            await stop.wait()

    asyncio.run(run())
    return 0


__all__ = [
    "PUBLIC_BASE",
    "Credentials",
    "FakeX",
    "NonceBook",
    "XAttempt",
    "XDeletion",
    "XEdit",
    "XFault",
    "XMedia",
    "XPost",
    "serve",
    "sniff_image",
    "tiny_png",
    "verify_oauth1",
    "weighted_length",
]
