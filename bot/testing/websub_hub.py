"""A WebSub hub on 127.0.0.1, for tests: ``with FakeHub() as hub`` (thread) or ``async with``.

It does what a real hub does, in small: ``POST /hub`` takes ``hub.mode=subscribe|unsubscribe``
requests (202), then verifies each by calling the subscriber's callback with a ``GET`` carrying
``hub.challenge``; a subscription counts only when the callback echoes the challenge. It
remembers each subscription's secret and lease. :meth:`FakeHub.publish` pushes a feed body to
every live subscriber of a topic with a correct ``X-Hub-Signature``, :meth:`publish_badly` with
a wrong one, and :meth:`expire` ends leases early, for renewal tests.

It also serves topics (``serve_topic``), so discovery can be tested against one server: the
feed announces the hub in its document (:func:`with_hub_links`) or in ``Link`` headers.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlencode, urlsplit
from xml.sax.saxutils import quoteattr

import aiohttp
from aiohttp import web

from bot.testing.server import LOOPBACK, LocalServer, Served

__all__ = ["FakeHub", "HubSubscription", "Verification", "with_hub_links"]

RSS_TYPE = "application/rss+xml; charset=utf-8"


@dataclass(slots=True)
class HubSubscription:
    """A verified subscription as the hub keeps it."""

    callback: str
    topic: str
    secret: str | None = field(repr=False)
    lease_seconds: int
    expires_at: float  # time.monotonic()

    @property
    def live(self) -> bool:
        return time.monotonic() < self.expires_at


@dataclass(frozen=True, slots=True)
class Verification:
    """One verification the hub made: what it asked and whether the callback confirmed it."""

    mode: str
    callback: str
    topic: str
    status: int
    confirmed: bool


@dataclass(frozen=True, slots=True)
class _Topic:
    body: bytes
    content_type: str
    link_header: bool


class FakeHub(Served):
    """A hub at ``{url}/hub``; ``verify="sync"`` verifies before answering (204)."""

    def __init__(
        self,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        max_lease_seconds: int = 864000,
        verify: Literal["async", "sync"] = "async",
        algorithm: Literal["sha1", "sha256", "sha384", "sha512"] = "sha256",
    ) -> None:
        self.max_lease_seconds = max_lease_seconds
        self.verify = verify
        self.algorithm = algorithm
        self._lock = threading.Lock()
        self._subscriptions: dict[tuple[str, str], HubSubscription] = {}
        self._topics: dict[str, _Topic] = {}
        self.requests: list[dict[str, str]] = []
        self.verifications: list[Verification] = []
        self._tasks: set[asyncio.Task[None]] = set()
        app = web.Application()
        app.router.add_post("/hub", self._hub)
        app.router.add_get("/{path:.*}", self._topic)
        app.on_cleanup.append(self._cancel_tasks)
        self._server = LocalServer(app, host=host, port=port)

    # -- what tests call ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The hub endpoint, e.g. ``http://127.0.0.1:43121/hub``."""
        return self._server.url + "/hub"

    def serve_topic(
        self,
        path: str,
        body: bytes | str,
        *,
        content_type: str = RSS_TYPE,
        link_header: bool = False,
    ) -> str:
        """Serve a feed at ``path``; with ``link_header`` its answer carries
        ``Link: <hub>; rel="hub"`` and ``<topic>; rel="self"``. Returns its URL."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        path = path if path.startswith("/") else "/" + path
        with self._lock:
            self._topics[path] = _Topic(data, content_type, link_header)
        return self._server.url + path

    @property
    def subscriptions(self) -> list[HubSubscription]:
        """Verified subscriptions whose lease has not ended."""
        with self._lock:
            return [s for s in self._subscriptions.values() if s.live]

    def subscribers(self, topic: str) -> list[HubSubscription]:
        return [s for s in self.subscriptions if s.topic == topic]

    def expire(self, topic: str | None = None) -> int:
        """End the lease of every subscription (to ``topic``) now; returns how many."""
        ended = 0
        with self._lock:
            for subscription in self._subscriptions.values():
                if topic is None or subscription.topic == topic:
                    subscription.expires_at = time.monotonic() - 1
                    ended += 1
        return ended

    async def wait_for_subscriber(
        self,
        topic: str,
        *,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> list[HubSubscription]:
        """Wait until ``topic`` has ``count`` verified subscribers (polling; any event loop)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.subscribers(topic)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.01)

    async def publish(
        self, topic: str, body: bytes | str, *, content_type: str = RSS_TYPE
    ) -> list[int]:
        """Push ``body`` to every live subscriber of ``topic``, signed with each one's secret.
        Returns the status each callback answered."""
        return await self._push(topic, body, content_type, forge=False)

    def publish_from_thread(self, topic: str, body: bytes | str) -> list[int]:
        """:meth:`publish` for a test thread, when the hub runs in its own (``with FakeHub()``)."""
        return self._server.run(self.publish(topic, body))

    async def publish_badly(
        self, topic: str, body: bytes | str, *, content_type: str = RSS_TYPE
    ) -> list[int]:
        """Like :meth:`publish`, but with a signature made with the wrong secret."""
        return await self._push(topic, body, content_type, forge=True)

    # -- the hub --------------------------------------------------------------------------------

    async def _push(
        self, topic: str, body: bytes | str, content_type: str, *, forge: bool
    ) -> list[int]:
        data = body.encode("utf-8") if isinstance(body, str) else body
        statuses = []
        async with aiohttp.ClientSession() as session:
            for subscription in self.subscribers(topic):
                headers = {
                    "Content-Type": content_type,
                    "Link": f'<{self.url}>; rel="hub", <{topic}>; rel="self"',
                }
                if subscription.secret is not None:
                    key = secrets.token_hex(16) if forge else subscription.secret
                    digest = hmac.new(key.encode("utf-8"), data, self.algorithm).hexdigest()
                    headers["X-Hub-Signature"] = f"{self.algorithm}={digest}"
                async with session.post(
                    subscription.callback, data=data, headers=headers
                ) as response:
                    await response.read()
                    statuses.append(response.status)
        return statuses

    async def _hub(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        with self._lock:
            self.requests.append(dict(form))
        mode = form.get("hub.mode", "")
        callback = form.get("hub.callback", "")
        topic = form.get("hub.topic", "")
        if mode not in ("subscribe", "unsubscribe"):
            return web.Response(status=400, text=f"unknown hub.mode {mode!r}")
        for name, value in (("hub.callback", callback), ("hub.topic", topic)):
            if urlsplit(value).scheme not in ("http", "https"):
                return web.Response(status=400, text=f"{name} must be an http(s) URL")
        secret = form.get("hub.secret") or None
        if secret is not None and len(secret.encode("utf-8")) >= 200:
            return web.Response(status=400, text="hub.secret must be under 200 bytes")
        try:
            asked = int(form.get("hub.lease_seconds") or self.max_lease_seconds)
        except ValueError:
            return web.Response(status=400, text="hub.lease_seconds must be a number")
        lease = max(1, min(asked, self.max_lease_seconds))
        verifying = self._verify(mode, callback, topic, secret, lease)
        if self.verify == "sync":
            confirmed = await verifying
            return web.Response(status=204 if confirmed else 409)
        task: asyncio.Task[None] = asyncio.create_task(_discard(verifying))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.Response(status=202)

    async def _verify(
        self, mode: str, callback: str, topic: str, secret: str | None, lease: int
    ) -> bool:
        challenge = secrets.token_urlsafe(16)
        query = {"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge}
        if mode == "subscribe":
            query["hub.lease_seconds"] = str(lease)
        sep = "&" if urlsplit(callback).query else "?"
        status = 0
        confirmed = False
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(callback + sep + urlencode(query)) as response,
            ):
                status = response.status
                text = await response.text()
                confirmed = 200 <= status < 300 and text == challenge
        except aiohttp.ClientError:
            confirmed = False
        with self._lock:
            self.verifications.append(Verification(mode, callback, topic, status, confirmed))
            if confirmed and mode == "subscribe":
                self._subscriptions[(callback, topic)] = HubSubscription(
                    callback, topic, secret, lease, time.monotonic() + lease
                )
            elif confirmed:
                self._subscriptions.pop((callback, topic), None)
        return confirmed

    async def _topic(self, request: web.Request) -> web.Response:
        with self._lock:
            document = self._topics.get(request.path)
        if document is None:
            return web.Response(status=404, text="no such topic")
        response = web.Response(body=document.body)
        response.headers["Content-Type"] = document.content_type
        if document.link_header:
            topic = self._server.url + request.path
            response.headers.add("Link", f'<{self.url}>; rel="hub"')
            response.headers.add("Link", f'<{topic}>; rel="self"')
        return response

    async def _cancel_tasks(self, app: web.Application) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _discard(verifying: Awaitable[bool]) -> None:
    await verifying


def with_hub_links(feed: str, *, hub: str, self_url: str | None = None) -> str:
    """``feed`` (RSS or Atom text) with ``<atom:link rel="hub">`` (and ``rel="self"``) added
    at the top of its channel, as a publisher that uses a hub writes them."""
    atom = 'xmlns:atom="http://www.w3.org/2005/Atom"'
    links = f'<atom:link {atom} rel="hub" href={quoteattr(hub)}/>'
    if self_url:
        links += f'<atom:link {atom} rel="self" href={quoteattr(self_url)}/>'

    for opening in ("<channel>", "<feed "):
        at = feed.find(opening)
        if at >= 0:
            end = feed.index(">", at) + 1
            return feed[:end] + "\n" + links + feed[end:]
    raise ValueError("not an RSS or Atom document")
