"""A local Threads API (graph.threads.net) on 127.0.0.1 that publishes, refuses and fails like
the real one, as far as newsbot uses it.

- ``POST /v1.0/{user}/threads`` creates a media container (``media_type`` TEXT or IMAGE,
  ``text``, ``link_attachment`` for TEXT, ``image_url`` for IMAGE) and answers its id; a text
  over 500 characters as Threads counts them (emoji weigh their UTF-8 bytes), more than five
  distinct links, or a link attachment on an image is refused with code 100.
- ``POST /v1.0/{user}/threads_publish`` with ``creation_id`` publishes a FINISHED container
  once: a container already PUBLISHED, EXPIRED or unknown is refused, and 250 publishes in 24
  hours exhaust the profile's quota (refused, as Threads enforces the quota on this endpoint).
- ``GET /v1.0/{id}?fields=status,error_message`` tells a container's status (IN_PROGRESS,
  FINISHED, PUBLISHED, EXPIRED, ERROR); ``fields=permalink`` a post's permalink.
- ``GET /v1.0/{user}/threads_publishing_limit`` answers ``quota_usage`` and
  ``config.quota_total`` / ``quota_duration``; ``GET /v1.0/me`` the profile;
  ``GET /refresh_access_token?grant_type=th_refresh_token`` a new long-lived token.
- A container with ``reply_to_id`` is a reply to that post (which must exist); publishing it
  adds to ``replies`` (1,000 in 24 hours, a quota apart from the 250 posts).
  ``GET /v1.0/{media-id}/replies`` lists a post's top-level replies and ``GET /v1.0/{user}/
  threads`` the profile's posts, newest first (id, text, username, permalink, timestamp).
- ``DELETE /v1.0/{media-id}`` deletes a published post or reply (``{"success": true,
  "deleted_id"}``); a container id, an unknown or an already deleted post answer code 100
  "does not exist", and past 100 deletes in 24 hours the profile is refused with code 4.
  There is no edit: Threads has no such endpoint, so a ``POST`` to a post is refused.

The fake measures text with its own reading of Threads' rule (grapheme clusters with an emoji
or pictograph weigh their UTF-8 bytes, other text one per code point), not with
``bot.compose.length``, so a mistake in newsbot's count shows up as a refusal here. Refusing a
second publish of one container is how the fake models a container's single use; Threads does
not document the exact error for it.
"""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import dataclass
from typing import Literal

import regex
from aiohttp import web

from bot.testing.graph_server import GraphFake, GraphFault, serve_until_stopped
from bot.testing.server import LOOPBACK

THREADS_LIMIT = 500
QUOTA_TOTAL = 250
REPLY_QUOTA = 1000
DELETES_PER_DAY = 100
QUOTA_DURATION = 86_400
CONTAINER_LIFETIME = 86_400
MAX_LINKS = 5
DEFAULT_TOKEN = "THAAthreads-test-token-0123456789"
_EMOJI_CLUSTER = regex.compile(
    r"[\p{Extended_Pictographic}\p{Emoji_Presentation}\p{Regional_Indicator}\u20e3\ufe0f]"
)
_LINK = re.compile(r"https?://[^\s]+|www\.[^\s]+")

Status = Literal["IN_PROGRESS", "FINISHED", "PUBLISHED", "EXPIRED", "ERROR"]


def threads_count(text: str) -> int:
    """Threads' count as this fake reads the documentation: per grapheme cluster, UTF-8 bytes
    when it shows an emoji, else its code points."""
    total = 0
    for cluster in regex.findall(r"\X", text):
        if _EMOJI_CLUSTER.search(cluster):
            total += len(cluster.encode("utf-8"))
        else:
            total += len(cluster)
    return total


@dataclass(slots=True)
class Container:
    id: str
    media_type: str
    text: str
    link_attachment: str | None
    image_url: str | None
    created_at: float
    ready_at: float
    status: Status = "IN_PROGRESS"
    media_id: str | None = None
    reply_to_id: str | None = None


@dataclass(frozen=True, slots=True)
class ThreadsPost:
    """One published post."""

    id: str
    container_id: str
    text: str
    media_type: str
    link_attachment: str | None
    image_url: str | None
    length: int
    published_at: float
    permalink: str
    reply_to_id: str | None = None


class FakeThreads(GraphFake):
    """The Threads API on 127.0.0.1; ``posts`` are what it published."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        user_id: str = "17841400000000001",
        username: str = "newsvision.tw",
        image_processing: float = 0.0,
        host: str = LOOPBACK,
        port: int = 0,
    ) -> None:
        super().__init__(token=token, host=host, port=port)
        self.user_id = user_id
        self.username = username
        self.image_processing = image_processing
        self.containers: dict[str, Container] = {}
        self.posts: list[ThreadsPost] = []
        self.replies: list[ThreadsPost] = []
        self.deleted: dict[str, float] = {}
        self.quota_total = QUOTA_TOTAL
        self.refreshed: list[str] = []
        self.route("GET", "/refresh_access_token", self._refresh)
        self.route("POST", "/{version}/{user}/threads", self._create)
        self.route("GET", "/{version}/{user}/threads", self._list)
        self.route("POST", "/{version}/{user}/threads_publish", self._publish)
        self.route("GET", "/{version}/{user}/threads_publishing_limit", self._limit)
        self.route("GET", "/{version}/{node}", self._node)
        self.route("DELETE", "/{version}/{node}", self._delete)
        self.route("POST", "/{version}/{node}", self._no_edit)
        self.route("GET", "/{version}/{node}/replies", self._replies)

    # -- what tests call ---------------------------------------------------------------------

    def expire(self, container_id: str) -> None:
        """The container was not published within 24 hours."""
        self.containers[container_id].status = "EXPIRED"

    def published(self, media_id: str) -> ThreadsPost | None:
        """A published post or reply that is still up."""
        if media_id in self.deleted:
            return None
        return next((p for p in (*self.posts, *self.replies) if p.id == media_id), None)

    def replies_to(self, media_id: str) -> list[ThreadsPost]:
        return [r for r in self.replies if r.reply_to_id == media_id and r.id not in self.deleted]

    def published_containers(self) -> list[str]:
        return [post.container_id for post in self.posts]

    # -- endpoints ---------------------------------------------------------------------------

    def _user_ok(self, request: web.Request) -> bool:
        return request.match_info["user"] in ("me", self.user_id)

    def _version_ok(self, request: web.Request) -> bool:
        return re.fullmatch(r"v\d+\.\d+", request.match_info.get("version", "")) is not None

    def _status(self, container: Container, now: float) -> Status:
        if container.status == "IN_PROGRESS" and now >= container.ready_at:
            container.status = "FINISHED"
        if container.status == "FINISHED" and now > container.created_at + CONTAINER_LIFETIME:
            container.status = "EXPIRED"
        return container.status

    async def _create(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        if not self._version_ok(request) or not self._user_ok(request):
            return self.refuse(request, 400, 100, "Unsupported post request.")
        media_type = params.get("media_type", "")
        text = params.get("text", "")
        link = params.get("link_attachment") or None
        image = params.get("image_url") or None
        if media_type not in ("TEXT", "IMAGE"):
            return self.refuse(request, 400, 100, "(#100) Param media_type must be TEXT or IMAGE")
        if media_type == "TEXT" and not text:
            return self.refuse(request, 400, 100, "(#100) Param text is required for TEXT")
        if media_type == "IMAGE" and not (image and image.startswith(("http://", "https://"))):
            return self.refuse(request, 400, 100, "(#100) Param image_url must be a URL")
        if link and media_type != "TEXT":
            return self.refuse(request, 400, 100, "(#100) link_attachment is only for TEXT posts")
        length = threads_count(text)
        if length > THREADS_LIMIT:
            return self.refuse(
                request,
                400,
                100,
                f"(#100) Param text must be at most {THREADS_LIMIT} characters long.",
                subcode=4279009,
            )
        links = set(_LINK.findall(text)) | ({link} if link else set())
        if len(links) > MAX_LINKS:
            return self.refuse(request, 400, 100, "THREADS_API__LINK_LIMIT_EXCEEDED")
        reply_to = params.get("reply_to_id") or None
        if reply_to is not None and self.published(reply_to) is None:
            return self._missing(request, reply_to)
        now = time.time()
        ready = now + (self.image_processing if media_type == "IMAGE" else 0.0)
        container = Container(self.next_id(), media_type, text, link, image, now, ready)
        container.reply_to_id = reply_to
        self.containers[container.id] = container
        return self.ok(request, {"id": container.id})

    async def _publish(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        if not self._version_ok(request) or not self._user_ok(request):
            return self.refuse(request, 400, 100, "Unsupported post request.")
        container = self.containers.get(params.get("creation_id", ""))
        if container is None:
            return self.refuse(
                request, 400, 100, "(#100) The parameter creation_id is not a valid container"
            )
        now = time.time()
        status = self._status(container, now)
        if status == "PUBLISHED":
            return self.refuse(
                request, 400, 100, "(#100) The media container has already been published"
            )
        if status != "FINISHED":
            return self.refuse(
                request, 400, 100, f"(#100) The media container is {status}, not FINISHED"
            )
        if container.reply_to_id is not None:
            if self.published(container.reply_to_id) is None:
                return self._missing(request, container.reply_to_id)
            if sum(1 for r in self.replies if r.published_at > now - QUOTA_DURATION) >= REPLY_QUOTA:
                return self.refuse(request, 400, 4, "(#4) Threads reply limit reached")
        elif self._quota_usage(now) >= self.quota_total:
            return self.refuse(
                request, 400, 4, "(#4) Threads publishing limit reached for this profile"
            )
        media_id = self.next_id()
        container.status = "PUBLISHED"
        container.media_id = media_id
        post = ThreadsPost(
            id=media_id,
            container_id=container.id,
            text=container.text,
            media_type=container.media_type,
            link_attachment=container.link_attachment,
            image_url=container.image_url,
            length=threads_count(container.text),
            published_at=now,
            permalink=f"https://www.threads.net/@{self.username}/post/{media_id}",
            reply_to_id=container.reply_to_id,
        )
        (self.replies if post.reply_to_id else self.posts).append(post)
        return self.ok(request, {"id": media_id})

    def _quota_usage(self, now: float) -> int:
        return sum(1 for post in self.posts if post.published_at > now - QUOTA_DURATION)

    async def _limit(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        if not self._user_ok(request):
            return self.refuse(request, 400, 100, "Unsupported get request.")
        usage = self._quota_usage(time.time())
        config = {"quota_total": self.quota_total, "quota_duration": QUOTA_DURATION}
        return self.ok(request, {"data": [{"quota_usage": usage, "config": config}]})

    async def _node(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        node = request.match_info["node"]
        if node in ("me", self.user_id):
            return self.ok(request, {"id": self.user_id, "username": self.username})
        container = self.containers.get(node)
        if container is not None:
            return self.ok(
                request, {"id": container.id, "status": self._status(container, time.time())}
            )
        post = self.published(node)
        if post is not None:
            return self.ok(request, {"id": post.id, "permalink": post.permalink})
        return self._missing(request, node)

    def _missing(self, request: web.Request, node: str) -> web.Response:
        return self.refuse(
            request,
            400,
            100,
            f"Unsupported {request.method.lower()} request. Object with ID '{node}' does not "
            "exist, cannot be loaded due to missing permissions, or does not support this "
            "operation",
            subcode=33,
        )

    async def _delete(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        node = request.match_info["node"]
        if not self._version_ok(request) or self.published(node) is None:
            return self._missing(request, node)
        now = time.time()
        if sum(1 for t in self.deleted.values() if t > now - QUOTA_DURATION) >= DELETES_PER_DAY:
            return self.refuse(
                request, 400, 4, "(#4) Threads delete limit reached for this profile"
            )
        self.deleted[node] = now
        return self.ok(request, {"success": True, "deleted_id": node})

    async def _no_edit(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        return self.refuse(
            request, 400, 100, "Unsupported post request. Threads posts cannot be edited"
        )

    async def _replies(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        node = request.match_info["node"]
        if self.published(node) is None:
            return self._missing(request, node)
        return self.ok(request, {"data": self._listing(self.replies_to(node), len(self.replies))})

    async def _list(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        if not self._user_ok(request):
            return self.refuse(request, 400, 100, "Unsupported get request.")
        live = [p for p in self.posts if p.id not in self.deleted]
        return self.ok(request, {"data": self._listing(live, int(params.get("limit") or 25))})

    def _listing(self, posts: list[ThreadsPost], limit: int) -> list[dict[str, str]]:
        """Newest first, as the API lists a profile's threads and a post's replies."""
        newest = sorted(posts, key=lambda p: p.published_at, reverse=True)[:limit]
        return [
            {
                "id": p.id,
                "text": p.text,
                "username": self.username,
                "permalink": p.permalink,
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(p.published_at)),
            }
            for p in newest
        ]

    async def _refresh(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        if params.get("grant_type") != "th_refresh_token":
            return self.refuse(request, 400, 100, "(#100) grant_type must be th_refresh_token")
        self.refreshed.append(self.token)
        self.token = f"THAArefreshed-{len(self.refreshed)}-{self.next_id()}"
        body = {"access_token": self.token, "token_type": "bearer", "expires_in": 5_184_000}
        return self.ok(request, body)


def serve(argv: list[str]) -> int:
    """``python -m bot.testing threads``: the fake until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m bot.testing threads")
    parser.add_argument("--port", type=int, default=8083)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    args = parser.parse_args(argv)

    fake = FakeThreads(token=args.token, port=args.port)
    return serve_until_stopped(fake, f"Threads fake (token {args.token})")


__all__ = ["DEFAULT_TOKEN", "FakeThreads", "GraphFault", "ThreadsPost", "threads_count"]
