"""A local Facebook Graph API for Pages on 127.0.0.1 that posts, refuses and fails like the
real one, as far as newsbot uses it.

- ``POST /{version}/{page-id}/feed`` with ``message`` and ``link`` answers ``{"id":
  "<page>_<post>"}``; a message over 63,206 characters, neither message nor link, or the same
  message as the Page's last post (code 506, "Duplicate status message") is refused.
- ``POST /{version}/{page-id}/photos`` with ``url`` and ``caption`` answers ``{"id", "post_id"}``;
  the fake fetches the image itself, as Facebook does, and refuses one it cannot get (code 324).
- ``GET /{version}/{page-id}?fields=id,name`` and ``GET /{version}/me`` answer the Page.
- ``POST /{version}/{post-id}`` with ``message`` edits a post's text in place (``{"success":
  true}``); a ``link`` is refused (a published post's link cannot be changed), as is an empty or
  over-long message. ``DELETE /{version}/{post-id}`` deletes it. ``POST /{version}/{post-id}/
  comments`` with ``message`` (at most 8,000 characters) comments as the Page, and ``GET``
  lists the post's comments (``order=reverse_chronological``: newest first). Any of them on a
  post that is not there (never was, or deleted: a second delete too) answers code 100 subcode
  33, "does not exist".

Only the Page access token is accepted (code 190 otherwise); a Page whose token lost
``pages_manage_posts`` answers code 200. Every answer carries ``X-App-Usage`` and
``X-Business-Use-Case-Usage`` (Page tokens fall under Business Use Case rate limits); past the
hourly budget the Page is throttled with code 32 and ``estimated_time_to_regain_access``.
Error shapes: see :mod:`bot.testing.graph_server`.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import aiohttp
from aiohttp import web

from bot.testing.graph_server import GraphFake, GraphFault, Handler, serve_until_stopped
from bot.testing.server import LOOPBACK
from bot.testing.x_server import sniff_image, tiny_png

PostHandler = Callable[
    [web.Request, dict[str, str], int, "FacebookPost"], Awaitable[web.StreamResponse]
]

FACEBOOK_LIMIT = 63_206
COMMENT_LIMIT = 8_000
DEFAULT_TOKEN = "EAAGpage-test-token-0123456789"
DEFAULT_PAGE = "104000000000001"


@dataclass(frozen=True, slots=True)
class FacebookPost:
    """One post on the Page: a feed post or a photo."""

    id: str
    message: str
    link: str | None
    photo_url: str | None
    length: int
    created_at: float
    deleted_at: float | None = None

    @property
    def permalink(self) -> str:
        return f"https://www.facebook.com/{self.id}"


@dataclass(frozen=True, slots=True)
class FacebookEdit:
    """One accepted edit: the post, its text before and after."""

    post_id: str
    before: str
    after: str
    at: float


@dataclass(frozen=True, slots=True)
class FacebookComment:
    """One comment the Page made under one of its posts."""

    id: str
    post_id: str
    message: str
    created_at: float


class FakeFacebook(GraphFake):
    """The Graph API of one Page on 127.0.0.1; ``posts`` are what it published."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        page_id: str = DEFAULT_PAGE,
        name: str = "新聞視界 News Vision",
        host: str = LOOPBACK,
        port: int = 0,
    ) -> None:
        super().__init__(token=token, host=host, port=port)
        self.page_id = page_id
        self.name = name
        self.posts: list[FacebookPost] = []
        self.edits: list[FacebookEdit] = []
        self.deletions: list[str] = []
        self.comments: list[FacebookComment] = []
        self.images: dict[str, bytes] = {"/test-image.png": tiny_png()}
        self.route("POST", "/{version}/{page}/feed", self._feed)
        self.route("POST", "/{version}/{page}/photos", self._photos)
        self.route("GET", "/{version}/{page}", self._page)
        self.route("POST", "/{version}/{page}", self._on_post(self._update))
        self.route("DELETE", "/{version}/{page}", self._on_post(self._delete))
        self.route("POST", "/{version}/{page}/comments", self._on_post(self._comment))
        self.route("GET", "/{version}/{page}/comments", self._on_post(self._comments))
        self.app.router.add_get("/{name:[^/]+\\.png}", self._image)

    @property
    def image_url(self) -> str:
        return self.url + "/test-image.png"

    def revoke_permission(self) -> None:
        """The token no longer carries pages_manage_posts: posting answers code 200."""
        self.permissions_revoked = True

    def post(self, post_id: str) -> FacebookPost | None:
        """The post as it stands now (edited text, deletion time), if it was ever made."""
        return next((p for p in self.posts if p.id == post_id), None)

    def live(self) -> list[FacebookPost]:
        """The posts still on the Page."""
        return [p for p in self.posts if p.deleted_at is None]

    def business_usage(self, percent: int, regain_minutes: int) -> dict[str, str]:
        usage = {
            self.page_id: [
                {
                    "type": "pages",
                    "call_count": percent,
                    "total_cputime": percent // 2,
                    "total_time": percent // 2,
                    "estimated_time_to_regain_access": regain_minutes,
                }
            ]
        }
        return {"X-Business-Use-Case-Usage": json.dumps(usage)}

    # -- endpoints ---------------------------------------------------------------------------

    def _check(self, request: web.Request) -> web.Response | None:
        if not re.fullmatch(r"v\d+\.\d+", request.match_info["version"]):
            return self.refuse(request, 400, 2635, "(#2635) Unknown Graph API version")
        if request.match_info["page"] not in (self.page_id, "me"):
            return self.refuse(
                request,
                400,
                100,
                "(#100) Unsupported post request. Object does not exist",
                subcode=33,
            )
        if self.permissions_revoked:
            return self.refuse(
                request,
                403,
                200,
                "(#200) If posting to a page, requires both pages_read_engagement and "
                "pages_manage_posts as an admin with sufficient administrative permission",
            )
        return None

    def _length_error(self, request: web.Request, text: str) -> web.Response | None:
        if len(text) > FACEBOOK_LIMIT:
            return self.refuse(
                request, 400, 100, f"(#100) The message is longer than {FACEBOOK_LIMIT} characters"
            )
        if self.posts and text and self.posts[-1].message == text:
            return self.refuse(request, 400, 506, "Duplicate status message")
        return None

    async def _feed(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        refused = self._check(request)
        if refused is not None:
            return refused
        message = params.get("message", "")
        link = params.get("link") or None
        if not message and not link:
            return self.refuse(request, 400, 100, "(#100) Missing message or attachment")
        if link and not link.startswith(("http://", "https://")):
            return self.refuse(request, 400, 100, "(#100) The link is not a valid URL")
        refused = self._length_error(request, message)
        if refused is not None:
            return refused
        post_id = f"{self.page_id}_{self.next_id()}"
        self.posts.append(FacebookPost(post_id, message, link, None, len(message), time.time()))
        return self.ok(request, {"id": post_id})

    async def _photos(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        refused = self._check(request)
        if refused is not None:
            return refused
        url = params.get("url", "")
        caption = params.get("caption", "")
        refused = self._length_error(request, caption)
        if refused is not None:
            return refused
        if not await self._fetchable(url):
            return self.refuse(request, 400, 324, "(#324) Missing or invalid image file")
        post_id = f"{self.page_id}_{self.next_id()}"
        photo_id = self.next_id()
        self.posts.append(FacebookPost(post_id, caption, None, url, len(caption), time.time()))
        return self.ok(request, {"id": photo_id, "post_id": post_id})

    async def _fetchable(self, url: str) -> bool:
        """Facebook downloads the photo; the fake only ever fetches from the loopback."""
        if not url.startswith(("http://127.0.0.1", "http://localhost")):
            return False
        try:
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                return response.status == 200 and sniff_image(await response.read()) is not None
        except aiohttp.ClientError:
            return False

    def _existing(self, request: web.Request) -> tuple[int, FacebookPost] | web.Response:
        """The post the path names, or Graph's refusal of an object it cannot see."""
        node = request.match_info["page"]
        for n, found in enumerate(self.posts):
            if found.id == node and found.deleted_at is None:
                return n, found
        return self.refuse(
            request,
            400,
            100,
            f"Unsupported post request. Object with ID '{node}' does not exist, cannot be "
            "loaded due to missing permissions, or does not support this operation",
            subcode=33,
        )

    def _on_post(self, handler: PostHandler) -> Handler:
        """``handler`` for the published post the path names, once Graph would let it through."""

        async def checked(request: web.Request, params: dict[str, str]) -> web.StreamResponse:
            if not re.fullmatch(r"v\d+\.\d+", request.match_info["version"]):
                return self.refuse(request, 400, 2635, "(#2635) Unknown Graph API version")
            if self.permissions_revoked:
                return self.refuse(
                    request,
                    403,
                    200,
                    "(#200) Requires pages_manage_posts permission to manage the object",
                )
            found = self._existing(request)
            if isinstance(found, web.Response):
                return found
            return await handler(request, params, *found)

        return checked

    def _message_refused(
        self, request: web.Request, message: str, limit: int
    ) -> web.Response | None:
        if not message.strip():
            return self.refuse(request, 400, 100, "(#100) Missing message or attachment")
        if len(message) > limit:
            return self.refuse(
                request, 400, 100, f"(#100) The message is longer than {limit} characters"
            )
        return None

    async def _update(
        self, request: web.Request, params: dict[str, str], n: int, post: FacebookPost
    ) -> web.StreamResponse:
        if "link" in params:
            return self.refuse(
                request, 400, 100, "(#100) The link of a published post cannot be changed"
            )
        message = params.get("message", "")
        refused = self._message_refused(request, message, FACEBOOK_LIMIT)
        if refused is not None:
            return refused
        now = time.time()
        self.posts[n] = replace(post, message=message, length=len(message))
        self.edits.append(FacebookEdit(post.id, post.message, message, now))
        return self.ok(request, {"success": True})

    async def _delete(
        self, request: web.Request, params: dict[str, str], n: int, post: FacebookPost
    ) -> web.StreamResponse:
        self.posts[n] = replace(post, deleted_at=time.time())
        self.deletions.append(post.id)
        return self.ok(request, {"success": True})

    async def _comment(
        self, request: web.Request, params: dict[str, str], n: int, post: FacebookPost
    ) -> web.StreamResponse:
        message = params.get("message", "")
        refused = self._message_refused(request, message, COMMENT_LIMIT)
        if refused is not None:
            return refused
        comment = FacebookComment(f"{post.id}_{self.next_id()}", post.id, message, time.time())
        self.comments.append(comment)
        return self.ok(request, {"id": comment.id})

    async def _comments(
        self, request: web.Request, params: dict[str, str], n: int, post: FacebookPost
    ) -> web.StreamResponse:
        found = [c for c in self.comments if c.post_id == post.id]
        if params.get("order") == "reverse_chronological":
            found.reverse()
        author = {"id": self.page_id, "name": self.name}
        data = [{"id": c.id, "message": c.message, "from": author} for c in found]
        return self.ok(request, {"data": data[: int(params.get("limit") or 25)]})

    async def _page(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        if not re.fullmatch(r"v\d+\.\d+", request.match_info["version"]):
            return self.refuse(request, 400, 2635, "(#2635) Unknown Graph API version")
        if request.match_info["page"] not in (self.page_id, "me"):
            return self.refuse(request, 400, 100, "(#100) Object does not exist", subcode=33)
        return self.ok(request, {"id": self.page_id, "name": self.name})

    async def _image(self, request: web.Request) -> web.StreamResponse:
        body = self.images.get(request.path)
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(body=body, content_type="image/png")


def serve(argv: list[str]) -> int:
    """``python -m bot.testing facebook``: the fake until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m bot.testing facebook")
    parser.add_argument("--port", type=int, default=8084)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--page", default=DEFAULT_PAGE)
    args = parser.parse_args(argv)

    fake = FakeFacebook(token=args.token, page_id=args.page, port=args.port)
    return serve_until_stopped(fake, f"Facebook fake (page {args.page})")


__all__ = [
    "DEFAULT_PAGE",
    "DEFAULT_TOKEN",
    "FacebookComment",
    "FacebookEdit",
    "FacebookPost",
    "FakeFacebook",
    "GraphFault",
]
