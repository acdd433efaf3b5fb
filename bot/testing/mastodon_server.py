"""A local Mastodon instance on 127.0.0.1 that accepts, refuses and fails like the real one.

Endpoints newsbot uses: ``GET /api/v2/instance``, ``GET /api/v1/accounts/verify_credentials``,
``POST /api/v2/media``, ``POST /api/v1/statuses`` (``in_reply_to_id`` for a reply), and
``GET`` / ``PUT`` (edit) / ``DELETE /api/v1/statuses/:id``. What it enforces, measured here
independently of ``bot.compose``:

- a Bearer access token (``401 The access token is invalid``);
- the instance's character limit as ``StatusLengthValidator`` counts: grapheme clusters, every
  http(s) URL (found by twitter-text, the extractor Mastodon uses) as
  ``characters_reserved_per_url``, ``@user@domain`` as ``@user`` (``422 Validation failed``);
- ``visibility`` and ``language`` values, media ids uploaded here;
- ``Idempotency-Key``: a second request with a key already used returns the status the first
  created, never a new one (Mastodon keeps keys for an hour);
- a reply's ``in_reply_to_id``, an edited, shown or deleted status must be a status that is
  still there (``404 Record not found`` otherwise: a second delete too); an edit is validated
  as a new status is (``422``), keeps the media ids it is given (none given: none kept, as
  Mastodon's ``UpdateStatusService`` does) and sets ``edited_at``;
- 30 deletions per 30 minutes per account (Mastodon's own limit on ``DELETE``), ``429`` past
  them;
- 300 calls per 5 minutes with ``X-RateLimit-*`` headers on every answer and ``429`` past them.
  Scripted faults add rate limits, 5xx, dropped connections and late answers; a late answer
  carries the request out first, as a server whose reply is lost on the way does.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import regex
from aiohttp import web
from twitter_text import extract_urls_with_indices

from bot.images import sniff
from bot.testing.faults import Fault, FaultQueue, drop_connection
from bot.testing.server import LOOPBACK, LocalServer, Served, serve_until_signalled

CALLS_PER_WINDOW = 300
WINDOW_SECONDS = 300
DELETES_PER_WINDOW = 30
DELETE_WINDOW_SECONDS = 1800
VISIBILITIES = ("public", "unlisted", "private", "direct")
# ISO 639-1 codes a newsroom might use, plus the regional variants Mastodon lists.
LANGUAGES = frozenset({"zh", "zh-TW", "zh-CN", "zh-HK", "en", "ja", "ko", "de", "fr", "es"})
_GRAPHEME = regex.compile(r"\X")
_MENTION = regex.compile(r"(?<![=/\w])@([a-z0-9_]+)(?:@[\w.\-]+\w)?", regex.IGNORECASE)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Status:
    """One status the fake created."""

    id: str
    text: str
    visibility: str
    language: str | None
    media_ids: tuple[str, ...]
    idempotency_key: str | None
    length: int
    received_at: float
    in_reply_to_id: str | None = None
    edited_at: float | None = None
    deleted_at: float | None = None


@dataclass(frozen=True, slots=True)
class Edit:
    """One accepted edit of a status: its text before and after."""

    status_id: str
    before: str
    after: str
    at: float


@dataclass(frozen=True, slots=True)
class Attempt:
    path: str
    status: int | None
    at: float
    reason: str = ""
    idempotency_key: str | None = None


def countable_length(text: str, url_weight: int) -> int:
    """Mastodon's count, after ``StatusLengthValidator#countable_text``."""
    pieces, pos = [], 0
    for entity in extract_urls_with_indices(text):
        start, end = entity["indices"]
        if not text[start:end].lower().startswith(("http://", "https://")):
            continue
        pieces.append(text[pos:start])
        pieces.append("x" * url_weight)
        pos = end
    pieces.append(text[pos:])
    countable = _MENTION.sub(lambda m: "@" + m.group(1), "".join(pieces))
    return len(_GRAPHEME.findall(countable))


class FakeMastodon(Served):
    """One account on one instance; ``masto.url`` is the ``instance_url`` to configure."""

    def __init__(
        self,
        *,
        access_token: str = "masto-TEST-token",
        acct: str = "newsvision",
        max_characters: int = 500,
        url_weight: int = 23,
        host: str = LOOPBACK,
        port: int = 0,
    ) -> None:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        self._server = LocalServer(app, host=host, port=port)
        self.access_token = access_token
        self.acct = acct
        self.max_characters = max_characters
        self.url_weight = url_weight
        self.statuses: list[Status] = []
        self.replies: list[Status] = []
        self.edits: list[Edit] = []
        self.deletions: list[str] = []
        self.media: dict[str, tuple[str, int, str | None]] = {}
        self.attempts: list[Attempt] = []
        self.images: dict[str, tuple[bytes, str]] = {}
        self._keys: dict[str, Status] = {}
        self._faults = FaultQueue()
        self._lock = threading.Lock()
        self._ids = itertools.count(113_000_000_000_000_001)
        self._calls: list[float] = []
        for path in ("/api/v2/instance", "/api/v2/instance/"):
            app.router.add_get(path, self._guarded(self._instance, authed=False))
        app.router.add_get(
            "/api/v1/accounts/verify_credentials", self._guarded(self._verify, authed=True)
        )
        app.router.add_post("/api/v2/media", self._guarded(self._upload, authed=True))
        app.router.add_post("/api/v1/statuses", self._guarded(self._status, authed=True))
        app.router.add_get("/api/v1/statuses/{id}", self._guarded(self._show, authed=True))
        app.router.add_put("/api/v1/statuses/{id}", self._guarded(self._edit, authed=True))
        app.router.add_delete("/api/v1/statuses/{id}", self._guarded(self._destroy, authed=True))
        app.router.add_get("/img/{name}", self._image)

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def posts(self) -> list[Status]:
        return self.statuses

    def fail_next(self, n: int, fault: Fault, *, path: str | None = None) -> None:
        """The next ``n`` API calls (only to ``path`` when given) meet ``fault``."""
        self._faults.add(n, fault, path)

    def serve_image(self, name: str, body: bytes, content_type: str = "image/png") -> str:
        self.images[name] = (body, content_type)
        return f"{self.url}/img/{name}"

    def status(self, status_id: str) -> Status | None:
        """A status or reply as it stands now (edited text, deletion time)."""
        return next((s for s in (*self.statuses, *self.replies) if s.id == status_id), None)

    def calls(self, path: str) -> list[Attempt]:
        return [a for a in self.attempts if a.path == path]

    # -- plumbing ------------------------------------------------------------------------------

    def _record(self, request: web.Request, status: int | None, reason: str = "") -> None:
        key = request.headers.get("Idempotency-Key")
        self.attempts.append(Attempt(request.path, status, time.time(), reason, key))

    def _rate_headers(self, now: float) -> dict[str, str]:
        recent = [t for t in self._calls if t > now - WINDOW_SECONDS]
        reset = (recent[0] if recent else now) + WINDOW_SECONDS
        return {
            "X-RateLimit-Limit": str(CALLS_PER_WINDOW),
            "X-RateLimit-Remaining": str(max(0, CALLS_PER_WINDOW - len(recent))),
            "X-RateLimit-Reset": datetime.fromtimestamp(reset, UTC).isoformat(),
        }

    def _guarded(self, handler: Handler, *, authed: bool) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            now = time.time()
            fault = self._faults.take(request.path)
            if fault is not None and fault.kind != "slow":
                return self._apply(fault, request)
            if authed:
                if request.headers.get("Authorization") != f"Bearer {self.access_token}":
                    self._record(request, 401, "bad token")
                    return web.json_response({"error": "The access token is invalid"}, status=401)
                with self._lock:
                    headers = self._rate_headers(now)
                    if headers["X-RateLimit-Remaining"] == "0":
                        self._record(request, 429, "rate limited")
                        return web.json_response(
                            {"error": "Too many requests"}, status=429, headers=headers
                        )
                    self._calls.append(now)
            response = await handler(request)
            for key, value in self._rate_headers(now).items():
                response.headers.setdefault(key, value)
            if fault is not None:
                # Carried out already; only the answer is late (the client may have left).
                await asyncio.sleep(fault.seconds)
            return response

        return guarded

    def _apply(self, fault: Fault, request: web.Request) -> web.StreamResponse:
        if fault.kind == "drop":
            self._record(request, None, "dropped")
            drop_connection(request)
        if fault.kind == "rate_limited":
            self._record(request, 429, "rate limited")
            reset = datetime.fromtimestamp(time.time() + fault.seconds, UTC).isoformat()
            headers = {
                "X-RateLimit-Limit": str(CALLS_PER_WINDOW),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": reset,
            }
            return web.json_response({"error": "Too many requests"}, status=429, headers=headers)
        self._record(request, fault.status, "server error")
        return web.json_response(
            {"error": "We're sorry, but something went wrong on our end."}, status=fault.status
        )

    def _account(self) -> dict[str, Any]:
        return {
            "id": "109000000000000001",
            "username": self.acct,
            "acct": self.acct,
            "display_name": "新聞視界",
            "url": f"{self.url}/@{self.acct}",
        }

    # -- endpoints -----------------------------------------------------------------------------

    async def _instance(self, request: web.Request) -> web.StreamResponse:
        self._record(request, 200)
        statuses = {
            "max_characters": self.max_characters,
            "max_media_attachments": 4,
            "characters_reserved_per_url": self.url_weight,
        }
        return web.json_response(
            {
                "domain": "127.0.0.1",
                "title": "新聞視界 Mastodon",
                "version": "4.3.0",
                "api_versions": {"mastodon": 2},
                "configuration": {"statuses": statuses, "urls": {}},
            }
        )

    async def _verify(self, request: web.Request) -> web.StreamResponse:
        self._record(request, 200)
        return web.json_response(self._account())

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        part = form.get("file")
        if not isinstance(part, web.FileField):
            self._record(request, 422, "no file")
            return web.json_response(
                {"error": "Validation failed: File can't be blank"}, status=422
            )
        data = part.file.read()
        mime = sniff(data)
        if mime is None:
            self._record(request, 422, "not an image")
            return web.json_response(
                {"error": "Validation failed: File content type is invalid"}, status=422
            )
        media_id = str(next(self._ids))
        description = form.get("description")
        self.media[media_id] = (mime, len(data), str(description) if description else None)
        self._record(request, 200)
        return web.json_response(
            {
                "id": media_id,
                "type": "image",
                "url": f"{self.url}/media/{media_id}",
                "preview_url": f"{self.url}/media/{media_id}/small",
                "description": description,
            }
        )

    async def _fields(self, request: web.Request) -> tuple[dict[str, Any], list[str]]:
        if request.content_type == "application/json":
            body = await request.json()
            fields = body if isinstance(body, dict) else {}
            return fields, [str(i) for i in fields.get("media_ids") or ()]
        form = await request.post()
        media_ids = [str(v) for k, v in form.items() if k in ("media_ids[]", "media_ids")]
        return dict(form), media_ids

    def _invalid(
        self, text: str, media_ids: list[str], visibility: str, language: object
    ) -> str | None:
        if not text.strip() and not media_ids:
            return "Validation failed: Text can't be blank"
        if countable_length(text, self.url_weight) > self.max_characters:
            return f"Validation failed: Text character limit of {self.max_characters} exceeded"
        if visibility not in VISIBILITIES:
            return f"Validation failed: Visibility is not included in the list ({visibility})"
        if language is not None and str(language) not in LANGUAGES:
            return f"Validation failed: Language is not a valid language code ({language})"
        if any(m not in self.media for m in media_ids):
            return "Validation failed: media id unknown"
        return None

    def _not_found(self, request: web.Request) -> web.Response:
        self._record(request, 404, "no such status")
        return web.json_response({"error": "Record not found"}, status=404)

    def _live(self, status_id: str | None) -> Status | None:
        found = self.status(status_id) if status_id else None
        return found if found is not None and found.deleted_at is None else None

    async def _status(self, request: web.Request) -> web.StreamResponse:
        now = time.time()
        fields, media_ids = await self._fields(request)
        text = str(fields.get("status") or "")
        visibility = str(fields.get("visibility") or "public")
        language = fields.get("language")
        reply_to = str(fields.get("in_reply_to_id") or "") or None
        key = request.headers.get("Idempotency-Key")
        with self._lock:
            if key and key in self._keys:
                self._record(request, 200, "idempotent replay")
                return web.json_response(self._json(self._keys[key]))
        if reply_to is not None and self._live(reply_to) is None:
            return self._not_found(request)
        problem = self._invalid(text, media_ids, visibility, language)
        if problem:
            self._record(request, 422, problem)
            return web.json_response({"error": problem}, status=422)
        with self._lock:
            if key and key in self._keys:
                return web.json_response(self._json(self._keys[key]))
            status = Status(
                str(next(self._ids)),
                text,
                visibility,
                str(language) if language else None,
                tuple(media_ids),
                key,
                countable_length(text, self.url_weight),
                now,
                in_reply_to_id=reply_to,
            )
            (self.replies if reply_to else self.statuses).append(status)
            if key:
                self._keys[key] = status
        self._record(request, 200)
        return web.json_response(self._json(status))

    def _replace(self, old: Status, new: Status) -> None:
        listed = self.replies if old.in_reply_to_id else self.statuses
        listed[listed.index(old)] = new

    async def _show(self, request: web.Request) -> web.StreamResponse:
        status = self._live(request.match_info["id"])
        if status is None:
            return self._not_found(request)
        self._record(request, 200)
        return web.json_response(self._json(status))

    async def _edit(self, request: web.Request) -> web.StreamResponse:
        fields, media_ids = await self._fields(request)
        with self._lock:
            status = self._live(request.match_info["id"])
            if status is None:
                return self._not_found(request)
            text = str(fields.get("status") or "")
            language = fields.get("language", status.language)
            problem = self._invalid(text, media_ids, status.visibility, language)
            if problem:
                self._record(request, 422, problem)
                return web.json_response({"error": problem}, status=422)
            edited = replace(
                status,
                text=text,
                language=str(language) if language else None,
                media_ids=tuple(media_ids),
                length=countable_length(text, self.url_weight),
                edited_at=time.time(),
            )
            self._replace(status, edited)
            self.edits.append(Edit(status.id, status.text, text, edited.edited_at or 0.0))
        self._record(request, 200)
        return web.json_response(self._json(edited))

    async def _destroy(self, request: web.Request) -> web.StreamResponse:
        now = time.time()
        with self._lock:
            status = self._live(request.match_info["id"])
            if status is None:
                return self._not_found(request)
            recent = [
                s.deleted_at
                for s in (*self.statuses, *self.replies)
                if s.deleted_at and s.deleted_at > now - DELETE_WINDOW_SECONDS
            ]
            if len(recent) >= DELETES_PER_WINDOW:
                self._record(request, 429, "deletions limited")
                reset = datetime.fromtimestamp(min(recent) + DELETE_WINDOW_SECONDS, UTC)
                headers = {
                    "X-RateLimit-Limit": str(DELETES_PER_WINDOW),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": reset.isoformat(),
                }
                return web.json_response(
                    {"error": "Too many requests"}, status=429, headers=headers
                )
            gone = replace(status, deleted_at=now)
            self._replace(status, gone)
            self.deletions.append(status.id)
        self._record(request, 200)
        # Mastodon answers the deleted status with its source text, for "delete and redraft".
        return web.json_response({**self._json(gone), "text": gone.text})

    def _json(self, status: Status) -> dict[str, Any]:
        return {
            "id": status.id,
            "uri": f"{self.url}/users/{self.acct}/statuses/{status.id}",
            "url": f"{self.url}/@{self.acct}/{status.id}",
            "content": status.text,
            "visibility": status.visibility,
            "language": status.language,
            "created_at": datetime.fromtimestamp(status.received_at, UTC).isoformat(),
            "edited_at": (
                datetime.fromtimestamp(status.edited_at, UTC).isoformat()
                if status.edited_at
                else None
            ),
            "in_reply_to_id": status.in_reply_to_id,
            "account": self._account(),
            "media_attachments": [{"id": m, "type": "image"} for m in status.media_ids],
        }

    async def _image(self, request: web.Request) -> web.StreamResponse:
        found = self.images.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        return web.Response(body=found[0], content_type=found[1])


def serve(argv: list[str]) -> int:
    """``python -m bot.testing mastodon``: run the fake until SIGINT; prints its URL first."""
    parser = argparse.ArgumentParser(prog="python -m bot.testing mastodon")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-characters", type=int, default=500)
    parser.add_argument("--access-token", default=os.environ.get("MASTODON_ACCESS_TOKEN"))
    args = parser.parse_args(argv)
    if not args.access_token:
        print("a token is needed: --access-token or MASTODON_ACCESS_TOKEN", file=sys.stderr)
        return 2
    fake = FakeMastodon(
        access_token=args.access_token, max_characters=args.max_characters, port=args.port
    )

    serve_until_signalled(fake, lambda: fake.url)
    return 0


__all__ = ["Attempt", "Edit", "FakeMastodon", "Fault", "Status", "countable_length", "serve"]
