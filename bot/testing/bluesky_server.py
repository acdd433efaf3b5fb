"""A local Bluesky PDS on 127.0.0.1 that accepts, refuses and fails like the real one.

XRPC endpoints newsbot uses: ``com.atproto.server.createSession`` / ``refreshSession`` /
``getSession``, ``com.atproto.identity.resolveHandle``, ``com.atproto.repo.uploadBlob`` and
``com.atproto.repo.createRecord`` (``app.bsky.feed.post``), ``getRecord`` and
``deleteRecord``. What it enforces, measured here independently of ``bot.compose``:

- sessions: a Bearer access JWT it issued and that has not expired (``400 ExpiredToken`` once it
  has, as the PDS answers), an app password at login (``401 AuthenticationRequired``);
- the post: at most 300 graphemes (``regex`` ``\\X``) and 3,000 UTF-8 bytes, ``createdAt``,
  at most 3 ``langs``;
- facets: byte ranges inside the text on UTF-8 character boundaries, and — stricter than the PDS,
  which would store a wrong range and show it garbled — the bytes of a link facet must read as
  its URI or as the app's short form of it, a tag's as ``#tag``, a mention's as ``@handle``;
- the card: a thumb that is a blob uploaded here, an image, at most 1,000,000 bytes;
- a reply: ``reply.root`` and ``reply.parent`` strong refs to posts of this repo that are still
  there, each with the cid the post was created with (stricter than the PDS, which stores a
  dangling reply and leaves the AppView to show "post not found"); replies are kept apart
  from ``posts``, in ``replies``;
- ``getRecord`` answers ``{uri, cid, value}`` or ``400 RecordNotFound``; ``listRecords`` the
  repo's posts and replies, newest rkey first (``reverse=true``: oldest); ``deleteRecord``
  deletes (``{commit}``) and answers a record already gone with success and no commit, as the
  PDS does ("delete a record, or ensure it doesn't exist");
- write points: 5,000 an hour, 3 per created record and 1 per deletion, with ``ratelimit-*``
  headers on every answer and ``429 RateLimitExceeded`` past them. Scripted faults
  (:class:`~bot.testing.faults.Fault`) add rate limits, 5xx answers, dropped connections and
  late answers.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import itertools
import json
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import regex
from aiohttp import web

from bot.images import sniff
from bot.testing.faults import Fault, FaultQueue, drop_connection
from bot.testing.server import LOOPBACK, LocalServer, Served, serve_until_signalled

MAX_GRAPHEMES = 300
MAX_BYTES = 3000
MAX_THUMB = 1_000_000
POINTS_PER_HOUR = 5000
POINTS_PER_CREATE = 3
POINTS_PER_DELETE = 1
COLLECTION = "app.bsky.feed.post"
ACCESS_SECONDS = 2 * 3600
_GRAPHEME = regex.compile(r"\X")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class BskyPost:
    """One post the fake accepted: the record as sent, and what the fake measured."""

    uri: str
    record: dict[str, Any]
    graphemes: int
    size: int
    received_at: float
    cid: str = ""
    deleted_at: float | None = None

    @property
    def rkey(self) -> str:
        return self.uri.rsplit("/", 1)[-1]

    @property
    def text(self) -> str:
        return str(self.record["text"])

    def facet_texts(self) -> list[tuple[str, str, str]]:
        """(feature type, the text the facet covers, its value) for every facet."""
        data = self.text.encode("utf-8")
        found = []
        for facet in self.record.get("facets") or ():
            index, feature = facet["index"], facet["features"][0]
            covered = data[index["byteStart"] : index["byteEnd"]].decode("utf-8")
            value = feature.get("uri") or feature.get("tag") or feature.get("did") or ""
            found.append((feature["$type"].rsplit("#", 1)[-1], covered, value))
        return found


@dataclass(frozen=True, slots=True)
class Attempt:
    path: str
    status: int | None
    at: float
    reason: str = ""


def short_form(uri: str) -> str:
    """The Bluesky app's short display of a link (social-app ``toShortUrl``), computed here on
    its own so that a bug in ``bot.compose.richtext`` shows up as a refusal."""
    parts = urlsplit(uri)
    rest = ("" if parts.path == "/" else parts.path) + (f"?{parts.query}" if parts.query else "")
    rest += f"#{parts.fragment}" if parts.fragment else ""
    return parts.netloc + (rest[:13] + "..." if len(rest) > 15 else rest)


def _jwt(payload: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signature = base64.urlsafe_b64encode(hashlib.sha256(part(payload).encode()).digest())
    return (
        f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(payload)}.{signature.rstrip(b'=').decode()}"
    )


def _cid(data: bytes) -> str:
    """A CIDv1 (raw, sha2-256) in base32, as a PDS names a blob."""
    digest = b"\x01\x55\x12\x20" + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(digest).decode().lower().rstrip("=")


def _error(
    status: int, error: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status, headers=headers)


class FakeBluesky(Served):
    """A PDS for one account; ``bsky.url`` is the ``pds_url`` to configure."""

    def __init__(
        self,
        *,
        handle: str = "newsvision.bsky.social",
        app_password: str = "abcd-efgh-ijkl-mnop",
        did: str = "did:plc:newsvision0000000000000",
        known_handles: dict[str, str] | None = None,
        access_seconds: float = ACCESS_SECONDS,
        host: str = LOOPBACK,
        port: int = 0,
    ) -> None:
        app = web.Application(client_max_size=8 * MAX_THUMB)
        self._server = LocalServer(app, host=host, port=port)
        self.handle, self.app_password, self.did = handle, app_password, did
        self.handles = {handle: did, **(known_handles or {})}
        self.access_seconds = access_seconds
        self.posts: list[BskyPost] = []
        self.replies: list[BskyPost] = []
        self.deletions: list[str] = []
        self._writes: list[tuple[float, int]] = []
        self.blobs: dict[str, tuple[str, int]] = {}
        self.attempts: list[Attempt] = []
        self.images: dict[str, tuple[bytes, str]] = {}
        self.logins = 0
        self.refreshes = 0
        self._access: dict[str, float] = {}
        self._refresh: set[str] = set()
        self._faults = FaultQueue()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        xrpc = {
            "com.atproto.server.createSession": (self._create_session, False),
            "com.atproto.server.refreshSession": (self._refresh_session, False),
            "com.atproto.server.getSession": (self._get_session, True),
            "com.atproto.identity.resolveHandle": (self._resolve_handle, True),
            "com.atproto.repo.uploadBlob": (self._upload_blob, True),
            "com.atproto.repo.createRecord": (self._create_record, True),
            "com.atproto.repo.getRecord": (self._get_record, False),
            "com.atproto.repo.listRecords": (self._list_records, False),
            "com.atproto.repo.deleteRecord": (self._delete_record, True),
        }
        for method, (handler, authed) in xrpc.items():
            app.router.add_route("*", f"/xrpc/{method}", self._guarded(handler, authed=authed))
        app.router.add_get("/img/{name}", self._image)

    @property
    def url(self) -> str:
        return self._server.url

    # -- what tests call -----------------------------------------------------------------------

    def fail_next(self, n: int, fault: Fault, *, method: str | None = None) -> None:
        """The next ``n`` XRPC calls (only ``method``, e.g. ``com.atproto.repo.createRecord``)
        meet ``fault``."""
        self._faults.add(n, fault, f"/xrpc/{method}" if method else None)

    def expire_sessions(self) -> None:
        """Every access token issued so far is expired from now on (refresh tokens stay)."""
        with self._lock:
            self._access = dict.fromkeys(self._access, 0.0)

    def revoke_sessions(self) -> None:
        """Access and refresh tokens are all expired: only a new login helps."""
        self.expire_sessions()
        with self._lock:
            self._refresh.clear()

    def serve_image(self, name: str, body: bytes, content_type: str = "image/png") -> str:
        self.images[name] = (body, content_type)
        return f"{self.url}/img/{name}"

    def calls(self, method: str) -> list[Attempt]:
        return [a for a in self.attempts if a.path == f"/xrpc/{method}"]

    # -- plumbing ------------------------------------------------------------------------------

    def _record(self, request: web.Request, status: int | None, reason: str = "") -> None:
        self.attempts.append(Attempt(request.path, status, time.time(), reason))

    def record(self, uri: str) -> BskyPost | None:
        """A post or reply as it stands (with its deletion time), if it was ever created."""
        return next((p for p in (*self.posts, *self.replies) if p.uri == uri), None)

    def _live(self, uri: str) -> BskyPost | None:
        found = self.record(uri)
        return found if found is not None and found.deleted_at is None else None

    def _rate_headers(self, now: float) -> dict[str, str]:
        recent = [(t, cost) for t, cost in self._writes if t > now - 3600]
        used = sum(cost for _, cost in recent)
        reset = (recent[0][0] if recent else now) + 3600
        return {
            "ratelimit-limit": str(POINTS_PER_HOUR),
            "ratelimit-remaining": str(max(0, POINTS_PER_HOUR - used)),
            "ratelimit-reset": str(int(reset)),
            "ratelimit-policy": f"{POINTS_PER_HOUR};w=3600",
        }

    def _guarded(self, handler: Handler, *, authed: bool) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            fault = self._faults.take(request.path)
            if fault is not None:
                refused = await self._apply(fault, request)
                if refused is not None:
                    return refused
            if authed:
                refusal = self._auth(request)
                if refusal is not None:
                    self._record(request, refusal.status, refusal.text or "")
                    return refusal
            response = await handler(request)
            for key, value in self._rate_headers(time.time()).items():
                response.headers.setdefault(key, value)
            return response

        return guarded

    async def _apply(self, fault: Fault, request: web.Request) -> web.StreamResponse | None:
        if fault.kind == "slow":
            await request.read()
            await asyncio.sleep(fault.seconds)
            return None
        if fault.kind == "drop":
            self._record(request, None, "dropped")
            drop_connection(request)
        if fault.kind == "rate_limited":
            self._record(request, 429, "rate limited")
            headers = {
                **self._rate_headers(time.time()),
                "ratelimit-remaining": "0",
                "ratelimit-reset": str(int(time.time() + fault.seconds)),
            }
            return _error(429, "RateLimitExceeded", "Rate Limit Exceeded", headers)
        self._record(request, fault.status, "server error")
        return _error(fault.status, "InternalServerError", "Internal Server Error")

    def _auth(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        with self._lock:
            expires = self._access.get(token)
        if expires is None:
            return _error(401, "AuthenticationRequired", "Authentication Required")
        if expires < time.time():
            return _error(400, "ExpiredToken", "Token has expired")
        return None

    def _issue(self) -> dict[str, Any]:
        now = int(time.time())
        access = _jwt(
            {
                "scope": "com.atproto.appPass",
                "sub": self.did,
                "iat": now,
                "exp": int(now + self.access_seconds),
                "jti": str(next(self._ids)),
            }
        )
        refresh = _jwt(
            {
                "scope": "com.atproto.refresh",
                "sub": self.did,
                "iat": now,
                "exp": now + 90 * 86400,
                "jti": str(next(self._ids)),
            }
        )
        with self._lock:
            self._access[access] = now + self.access_seconds
            self._refresh.add(refresh)
        return {
            "accessJwt": access,
            "refreshJwt": refresh,
            "handle": self.handle,
            "did": self.did,
            "active": True,
        }

    async def _json(self, request: web.Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    # -- endpoints -----------------------------------------------------------------------------

    async def _create_session(self, request: web.Request) -> web.StreamResponse:
        body = await self._json(request) or {}
        identifier = str(body.get("identifier", "")).lower().removeprefix("@")
        if identifier not in (self.handle, self.did) or body.get("password") != self.app_password:
            self._record(request, 401, "wrong identifier or password")
            return _error(401, "AuthenticationRequired", "Invalid identifier or password")
        self.logins += 1
        self._record(request, 200)
        return web.json_response(self._issue())

    async def _refresh_session(self, request: web.Request) -> web.StreamResponse:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        with self._lock:
            known = token in self._refresh
            self._refresh.discard(token)
        if not known:
            self._record(request, 400, "unknown refresh token")
            return _error(400, "ExpiredToken", "Token has been revoked")
        self.refreshes += 1
        self._record(request, 200)
        return web.json_response(self._issue())

    async def _get_session(self, request: web.Request) -> web.StreamResponse:
        self._record(request, 200)
        return web.json_response({"handle": self.handle, "did": self.did, "active": True})

    async def _resolve_handle(self, request: web.Request) -> web.StreamResponse:
        did = self.handles.get(request.query.get("handle", "").lower())
        if did is None:
            self._record(request, 400, "unknown handle")
            return _error(400, "InvalidRequest", "Unable to resolve handle")
        self._record(request, 200)
        return web.json_response({"did": did})

    async def _upload_blob(self, request: web.Request) -> web.StreamResponse:
        data = await request.read()
        mime = request.headers.get("Content-Type", "")
        if not data:
            self._record(request, 400, "empty blob")
            return _error(400, "InvalidRequest", "Request body is empty")
        sniffed = sniff(data)
        if mime in ("", "*/*") and sniffed:
            mime = sniffed
        cid = _cid(data)
        self.blobs[cid] = (mime, len(data))
        self._record(request, 200)
        blob = {"$type": "blob", "ref": {"$link": cid}, "mimeType": mime, "size": len(data)}
        return web.json_response({"blob": blob})

    async def _create_record(self, request: web.Request) -> web.StreamResponse:
        now = time.time()
        body = await self._json(request)
        if body is None:
            self._record(request, 400, "body is not a JSON object")
            return _error(400, "InvalidRequest", "Input must be a JSON object")
        if body.get("repo") not in (self.did, self.handle):
            self._record(request, 400, "wrong repo")
            return _error(400, "InvalidRequest", "Input/repo must be the session's own repo")
        record = body.get("record")
        if body.get("collection") != "app.bsky.feed.post" or not isinstance(record, dict):
            self._record(request, 400, "not a post")
            return _error(400, "InvalidRequest", "Input/record must be an app.bsky.feed.post")
        problem = self._invalid_post(record)
        if problem:
            self._record(request, 400, problem)
            return _error(400, "InvalidRequest", f"Invalid app.bsky.feed.post record: {problem}")
        with self._lock:
            headers = self._rate_headers(now)
            if int(headers["ratelimit-remaining"]) < POINTS_PER_CREATE:
                self._record(request, 429, "write points spent")
                return _error(429, "RateLimitExceeded", "Rate Limit Exceeded", headers)
            text = record["text"]
            rkey = f"3l{next(self._ids):011d}"
            post = BskyPost(
                f"at://{self.did}/{COLLECTION}/{rkey}",
                record,
                len(_GRAPHEME.findall(text)),
                len(text.encode("utf-8")),
                now,
                cid=_cid(json.dumps(record, sort_keys=True).encode()),
            )
            (self.replies if "reply" in record else self.posts).append(post)
            self._writes.append((now, POINTS_PER_CREATE))
        self._record(request, 200)
        return web.json_response(
            {"uri": post.uri, "cid": post.cid}, headers=self._rate_headers(now)
        )

    def _at_uri(self, body: dict[str, Any]) -> str | None:
        repo = body.get("repo")
        if repo not in (self.did, self.handle) or body.get("collection") != COLLECTION:
            return None
        return f"at://{self.did}/{COLLECTION}/{body.get('rkey')}"

    async def _get_record(self, request: web.Request) -> web.StreamResponse:
        uri = self._at_uri(dict(request.query))
        found = self._live(uri) if uri else None
        if found is None:
            self._record(request, 400, "record not found")
            return _error(400, "RecordNotFound", f"Could not locate record: {uri}")
        self._record(request, 200)
        return web.json_response({"uri": found.uri, "cid": found.cid, "value": found.record})

    async def _list_records(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        if (
            query.get("repo") not in (self.did, self.handle)
            or query.get("collection") != COLLECTION
        ):
            self._record(request, 400, "wrong repo or collection")
            return _error(400, "InvalidRequest", "Could not find repo or collection")
        live = [p for p in (*self.posts, *self.replies) if p.deleted_at is None]
        live.sort(key=lambda p: p.rkey, reverse=query.get("reverse") != "true")
        limit = int(query.get("limit") or 50)
        self._record(request, 200)
        records = [{"uri": p.uri, "cid": p.cid, "value": p.record} for p in live[:limit]]
        return web.json_response({"records": records})

    async def _delete_record(self, request: web.Request) -> web.StreamResponse:
        now = time.time()
        body = await self._json(request) or {}
        uri = self._at_uri(body)
        if uri is None:
            self._record(request, 400, "wrong repo or collection")
            return _error(400, "InvalidRequest", "Input/repo must be the session's own repo")
        with self._lock:
            headers = self._rate_headers(now)
            if int(headers["ratelimit-remaining"]) < POINTS_PER_DELETE:
                self._record(request, 429, "write points spent")
                return _error(429, "RateLimitExceeded", "Rate Limit Exceeded", headers)
            found = self._live(uri)
            if found is None:
                self._record(request, 200, "nothing to delete")
                return web.json_response({}, headers=headers)
            listed = self.replies if "reply" in found.record else self.posts
            listed[listed.index(found)] = replace(found, deleted_at=now)
            self.deletions.append(uri)
            self._writes.append((now, POINTS_PER_DELETE))
        self._record(request, 200)
        commit = {"cid": _cid(f"commit:{uri}:{now}".encode()), "rev": f"3l{next(self._ids):011d}"}
        return web.json_response({"commit": commit}, headers=self._rate_headers(now))

    def _invalid_post(self, record: dict[str, Any]) -> str | None:
        text = record.get("text")
        if not isinstance(text, str):
            return "Record/text must be a string"
        if len(_GRAPHEME.findall(text)) > MAX_GRAPHEMES:
            return f"Record/text must not be longer than {MAX_GRAPHEMES} graphemes"
        data = text.encode("utf-8")
        if len(data) > MAX_BYTES:
            return f"Record/text must not be longer than {MAX_BYTES} characters"
        if not isinstance(record.get("createdAt"), str):
            return 'Record must have the property "createdAt"'
        if len(record.get("langs") or ()) > 3:
            return "Record/langs must not have more than 3 elements"
        for n, facet in enumerate(record.get("facets") or ()):
            problem = self._invalid_facet(data, facet)
            if problem:
                return f"Record/facets/{n}: {problem}"
        if "reply" in record:
            problem = self._invalid_reply(record["reply"])
            if problem:
                return problem
        embed = record.get("embed")
        if embed is not None:
            return self._invalid_embed(embed)
        return None

    def _invalid_reply(self, reply: Any) -> str | None:
        for part in ("root", "parent"):
            ref = reply.get(part) if isinstance(reply, dict) else None
            if not isinstance(ref, dict) or not ref.get("uri") or not ref.get("cid"):
                return f"Record/reply/{part} must be a strong ref (uri and cid)"
            found = self._live(str(ref["uri"]))
            if found is None:
                return f"Record/reply/{part}: no post {ref['uri']} in this repo"
            if found.cid != ref["cid"]:
                return f"Record/reply/{part}: cid {ref['cid']} is not that of {ref['uri']}"
        return None

    def _invalid_facet(self, data: bytes, facet: Any) -> str | None:
        try:
            start, end = facet["index"]["byteStart"], facet["index"]["byteEnd"]
            (feature,) = facet["features"]
            kind = feature["$type"]
        except (KeyError, TypeError, ValueError):
            return "a facet needs index.byteStart, index.byteEnd and one feature"
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(data)):
            return f"byte range {start}..{end} is outside the text of {len(data)} bytes"
        try:
            covered = data[start:end].decode("utf-8")
        except UnicodeDecodeError:
            return f"byte range {start}..{end} cuts a character in two"
        if kind == "app.bsky.richtext.facet#link":
            uri = str(feature.get("uri", ""))
            if covered not in (uri, short_form(uri)):
                return f"the link facet covers {covered!r}, not its URI {uri!r}"
        elif kind == "app.bsky.richtext.facet#tag":
            if covered not in ("#" + str(feature.get("tag")), "＃" + str(feature.get("tag"))):
                return f"the tag facet covers {covered!r}, not #{feature.get('tag')}"
        elif kind == "app.bsky.richtext.facet#mention":
            handle = next((h for h, d in self.handles.items() if d == feature.get("did")), None)
            if handle is None or covered.lower() != "@" + handle:
                return f"the mention facet covers {covered!r}, not the handle of its DID"
        else:
            return f"unknown facet feature {kind!r}"
        return None

    def _invalid_embed(self, embed: Any) -> str | None:
        if not isinstance(embed, dict) or embed.get("$type") != "app.bsky.embed.external":
            return "Record/embed must be an app.bsky.embed.external here"
        external = embed.get("external") or {}
        for key in ("uri", "title", "description"):
            if not isinstance(external.get(key), str):
                return f'Record/embed/external must have the property "{key}"'
        thumb = external.get("thumb")
        if thumb is not None:
            cid = (thumb.get("ref") or {}).get("$link") if isinstance(thumb, dict) else None
            if cid not in self.blobs:
                return "Record/embed/external/thumb is not a blob uploaded to this repo"
            mime, size = self.blobs[cid]
            if not mime.startswith("image/") or size > MAX_THUMB:
                return f"Record/embed/external/thumb must be an image of at most {MAX_THUMB} bytes"
        return None

    async def _image(self, request: web.Request) -> web.StreamResponse:
        found = self.images.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        return web.Response(body=found[0], content_type=found[1])


def serve(argv: list[str]) -> int:
    """``python -m bot.testing bluesky``: run the fake until SIGINT; prints its URL first."""
    parser = argparse.ArgumentParser(prog="python -m bot.testing bluesky")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--handle", default=os.environ.get("BLUESKY_HANDLE", "newsvision.bsky.social")
    )
    parser.add_argument("--app-password", default=os.environ.get("BLUESKY_APP_PASSWORD"))
    args = parser.parse_args(argv)
    if not args.app_password:
        print("an app password is needed: --app-password or BLUESKY_APP_PASSWORD", file=sys.stderr)
        return 2
    fake = FakeBluesky(handle=args.handle, app_password=args.app_password, port=args.port)

    serve_until_signalled(fake, lambda: fake.url)
    return 0


__all__ = ["Attempt", "BskyPost", "FakeBluesky", "Fault", "serve", "short_form"]
