"""A local Facebook Graph API for Pages on 127.0.0.1 that posts, refuses and fails like the
real one, as far as newsbot uses it.

- ``POST /{version}/{page-id}/feed`` with ``message`` and ``link`` answers ``{"id":
  "<page>_<post>"}``; a message over 63,206 characters, neither message nor link, or the same
  message as the Page's last post (code 506, "Duplicate status message") is refused.
- ``POST /{version}/{page-id}/photos`` with ``url`` and ``caption`` answers ``{"id", "post_id"}``;
  the fake fetches the image itself, as Facebook does, and refuses one it cannot get (code 324).
- ``GET /{version}/{page-id}?fields=id,name`` and ``GET /{version}/me`` answer the Page.

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
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from bot.testing.graph_server import GraphFake, GraphFault, serve_until_stopped
from bot.testing.server import LOOPBACK
from bot.testing.x_server import sniff_image, tiny_png

FACEBOOK_LIMIT = 63_206
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

    @property
    def permalink(self) -> str:
        return f"https://www.facebook.com/{self.id}"


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
        self.images: dict[str, bytes] = {"/test-image.png": tiny_png()}
        self.route("POST", "/{version}/{page}/feed", self._feed)
        self.route("POST", "/{version}/{page}/photos", self._photos)
        self.route("GET", "/{version}/{page}", self._page)
        self.app.router.add_get("/{name:[^/]+\\.png}", self._image)

    @property
    def image_url(self) -> str:
        return self.url + "/test-image.png"

    def revoke_permission(self) -> None:
        """The token no longer carries pages_manage_posts: posting answers code 200."""
        self.permissions_revoked = True

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


__all__ = ["DEFAULT_PAGE", "DEFAULT_TOKEN", "FacebookPost", "FakeFacebook", "GraphFault"]
