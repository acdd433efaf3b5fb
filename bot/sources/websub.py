"""WebSub (W3C, formerly PubSubHubbub): the feed's hub pushes new entries to us as they appear.

For a feed source with ``websub: true`` the daemon builds a :class:`WebSubSubscriber`, which

1. **discovers** the hub: ``Link: <...>; rel="hub"`` headers of the feed's response first, then
   ``<link rel="hub">`` / ``<atom:link rel="hub">`` in the document (or ``hubs`` in a JSON
   Feed); the topic is ``rel="self"`` when given, else the feed's URL;
2. **subscribes** at the hub with the callback ``{public_url}/websub/<source>``, a fresh random
   ``hub.secret`` and the lease it would like;
3. answers the hub's **verification** ``GET`` (``hub.challenge`` is echoed only when mode and
   topic match a subscription we asked for; anything else gets a 404);
4. checks ``X-Hub-Signature`` (``sha1=``, ``sha256=``, ``sha384=`` or ``sha512=`` HMAC of the
   body with our secret) on every **content delivery**, reads the feed with
   :func:`bot.sources.feed.parse_feed` and hands the entries to ``accept``. A delivery with a
   missing or wrong signature is ignored, as the spec asks: answered 2xx, nothing recorded;
5. **renews** before the lease ends: :meth:`WebSubSubscriber.renew_due` tells the daemon's job
   when, :meth:`WebSubSubscriber.renew` does it (discovering the hub again, in case it moved).

The slower safety-net polling of the same feed (``websub_every``) is the daemon's job: a push
the hub never sends is still found.

Limitation: subscription state is kept in memory only. Persisting it would put the hub secret
in the database, which holds no secrets; instead the daemon subscribes again at every start
(one request, and the hub replaces the old subscription of the same callback and topic).
Pushes between a restart and the new verification are ignored and found by polling.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import html
import json
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import ClassVar, Literal, Self
from urllib.parse import quote, urljoin, urlsplit

import aiohttp

from bot.config import FeedSourceConfig
from bot.errors import ConfigError, FetchRefused, SourceError
from bot.sources.feed import parse_feed
from bot.sources.fetch import open_session, refusal_in
from bot.sources.policy import FetchPolicy
from bot.sources.push import Accept, PushReceiver, PushRequest, PushResponse

__all__ = [
    "Discovery",
    "Subscription",
    "WebSubSubscriber",
    "discover",
    "parse_link_header",
]

log = logging.getLogger("newsbot.sources.websub")

DEFAULT_LEASE = timedelta(days=10)
#: Renew when this share of the lease has passed.
RENEW_AT = 0.9
#: A subscription the hub has not verified after this long is asked for again.
VERIFY_WITHIN = timedelta(minutes=5)
#: After a failed or denied subscription, wait this long before trying again.
RETRY_AFTER = timedelta(minutes=10)
#: The previous secret stays valid this long after a renewal, for deliveries already in flight.
SECRET_GRACE = timedelta(minutes=10)

_ALGORITHMS: Mapping[str, Callable[[], hashlib._Hash]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}
_FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, "
    "text/xml;q=0.9, */*;q=0.5"
)
_LINK_VALUE = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]*)*)")
_REL_PARAM = re.compile(r"""\brel\s*=\s*(?:"([^"]*)"|([^\s;,]+))""", re.I)
_LINK_TAG = re.compile(rb"<(?:[\w.-]+:)?link\b([^>]*)>", re.I)
_ATTRIBUTE = re.compile(rb"""([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_FIRST_ENTRY = re.compile(rb"<(?:[\w.-]+:)?(?:item|entry)[\s>/]", re.I)

State = Literal["pending", "active", "denied", "failed", "unsubscribed"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Discovery:
    """Where to subscribe (``hub``) and to what (``topic``)."""

    hub: str
    topic: str


@dataclass(frozen=True, slots=True)
class Subscription:
    """One subscription as we asked for it and as the hub confirmed it.

    ``secret`` is never shown in ``repr`` (and so never in a log line)."""

    hub: str
    topic: str
    callback: str
    secret: str = dataclasses.field(repr=False)
    state: State
    requested_at: datetime
    lease: timedelta | None = None
    verified_at: datetime | None = None
    reason: str | None = None

    @property
    def expires_at(self) -> datetime | None:
        if self.verified_at is None or self.lease is None:
            return None
        return self.verified_at + self.lease

    @property
    def renew_at(self) -> datetime | None:
        if self.verified_at is None or self.lease is None:
            return None
        return self.verified_at + self.lease * RENEW_AT


# ------------------------------------------------------------------------------------- discovery


def parse_link_header(values: Iterable[str]) -> list[tuple[str, frozenset[str]]]:
    """``Link`` header values → ``(url, rels)`` pairs in order (RFC 8288, the common subset)."""
    found = []
    for value in values:
        for match in _LINK_VALUE.finditer(value):
            rel = _REL_PARAM.search(match.group(2) or "")
            rels = (rel.group(1) or rel.group(2) or "") if rel else ""
            found.append((match.group(1).strip(), frozenset(rels.lower().split())))
    return found


def discover(
    body: bytes, *, url: str, link_headers: Sequence[str] = (), content_type: str | None = None
) -> Discovery | None:
    """The hub and topic of the feed at ``url``; ``None`` when it names no hub.

    ``Link`` headers come first (the spec's order), then the document's own links."""
    hub = topic = None
    for target, rels in parse_link_header(link_headers):
        if "hub" in rels and hub is None:
            hub = urljoin(url, target)
        if "self" in rels and topic is None:
            topic = urljoin(url, target)
    if hub is None or topic is None:
        doc_hub, doc_topic = _document_links(body, content_type)
        hub = hub or (urljoin(url, doc_hub) if doc_hub else None)
        topic = topic or (urljoin(url, doc_topic) if doc_topic else None)
    if hub is None:
        return None
    return Discovery(hub=hub, topic=topic or url)


def _document_links(body: bytes, content_type: str | None) -> tuple[str | None, str | None]:
    stripped = body.removeprefix(b"\xef\xbb\xbf").lstrip()
    if (content_type and "json" in content_type.lower()) or stripped[:1] == b"{":
        return _json_feed_links(stripped)
    # Only the feed's own links count, not those inside its entries.
    first_entry = _FIRST_ENTRY.search(body)
    head = body[: first_entry.start()] if first_entry else body
    hub = topic = None
    for tag in _LINK_TAG.finditer(head):
        attributes = {
            name.lower(): (double if double is not None else single or b"")
            for name, double, single in _ATTRIBUTE.findall(tag.group(1))
        }
        href = attributes.get(b"href")
        if not href:
            continue
        rels = attributes.get(b"rel", b"").lower().split()
        text = html.unescape(href.decode("utf-8", "replace")).strip()
        if b"hub" in rels and hub is None:
            hub = text
        if b"self" in rels and topic is None:
            topic = text
    return hub, topic


def _json_feed_links(body: bytes) -> tuple[str | None, str | None]:
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, None
    if not isinstance(document, dict):
        return None, None
    hub = None
    for entry in document.get("hubs") or []:
        if isinstance(entry, dict) and str(entry.get("type", "")).lower() == "websub":
            hub = str(entry.get("url") or "") or None
            if hub:
                break
    topic = document.get("feed_url")
    return hub, topic if isinstance(topic, str) and topic else None


# ------------------------------------------------------------------------------------ subscriber


class WebSubSubscriber(PushReceiver):
    """``GET|POST /websub/<name>`` for one feed source, and its subscription at the hub.

    ``async with subscriber:`` opens (and closes) its HTTP client; ``await subscribe()`` once
    the listener is up, since the hub verifies by calling the listener back."""

    prefix: ClassVar[str] = "websub"
    methods: ClassVar[frozenset[str]] = frozenset({"GET", "POST"})

    def __init__(
        self,
        config: FeedSourceConfig,
        accept: Accept,
        *,
        public_url: str | None,
        clock: Callable[[], datetime] = _utc_now,
        lease: timedelta = DEFAULT_LEASE,
        session: aiohttp.ClientSession | None = None,
        unsubscribe_on_stop: bool = False,
    ) -> None:
        super().__init__(config.name, max_body=config.max_bytes)
        if not public_url:
            raise ConfigError(
                "websub: true needs public_url (the address at which hubs reach this daemon)",
                key=f"sources.{config.name}.websub",
            )
        self.config = config
        self.callback = f"{public_url.rstrip('/')}/websub/{quote(config.name, safe='')}"
        self._accept = accept
        self._clock = clock
        self._lease = lease
        self._session = session
        self._own_session = session is None
        self._unsubscribe_on_stop = unsubscribe_on_stop
        self._pending: Subscription | None = None
        self._current: Subscription | None = None
        self._previous: tuple[str, datetime] | None = None  # (secret, valid until)
        self._unsubscribing: Subscription | None = None
        self._last_attempt: datetime | None = None
        self._active = asyncio.Event()
        self._lock = asyncio.Lock()

    @property
    def subscription(self) -> Subscription | None:
        """The newest subscription: pending, active, denied or failed; ``None`` before any."""
        return self._pending or self._current

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._client()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Unsubscribe if asked to (best effort), then close our HTTP client."""
        if self._unsubscribe_on_stop and self._current and self._current.state == "active":
            try:
                await self.unsubscribe()
            except SourceError as problem:
                log.warning(
                    "websub %s: cannot unsubscribe: %s", self.name, problem, extra=self._ctx
                )
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            # The feed and the hub (a URL the feed named) are fetched under the source's policy.
            self._session = open_session(
                FetchPolicy.for_source(self.config).without_files(),
                headers={"User-Agent": self.config.user_agent},
                timeout=aiohttp.ClientTimeout(total=self.config.timeout.total_seconds()),
            )
        return self._session

    @property
    def _ctx(self) -> dict[str, str]:
        return {"source": self.name}

    # -- subscribing ---------------------------------------------------------------------------

    async def discover(self) -> Discovery:
        """Fetch the feed and find its hub; :class:`SourceError` when there is none."""
        url = self.config.url
        if urlsplit(url).scheme not in ("http", "https"):
            raise SourceError(f"WebSub needs an http(s) feed URL, not {url}")
        try:
            async with self._client().get(url, headers={"Accept": _FEED_ACCEPT}) as response:
                if response.status >= 400:
                    raise SourceError(f"HTTP {response.status} from {url} while looking for a hub")
                body = await _read_capped(response, self.config.max_bytes, url)
                found = discover(
                    body,
                    url=str(response.url),
                    link_headers=response.headers.getall("Link", []),
                    content_type=response.headers.get("Content-Type"),
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            refused = refusal_in(exc)
            if refused is not None:
                raise FetchRefused(f"refused to fetch {url} to find its hub: {refused}") from None
            reason = str(exc) or type(exc).__name__
            raise SourceError(f"cannot fetch {url} to find its hub: {reason}") from exc
        if found is None:
            raise SourceError(
                f'{url} names no WebSub hub (no Link rel="hub" header, no <link rel="hub">); '
                "it is polled only"
            )
        return found

    async def subscribe(self) -> Subscription:
        """Discover the hub and ask it for a subscription; the hub verifies it by calling back.

        Raises :class:`SourceError` when there is no hub or it refuses; the subscription is then
        recorded ``failed`` and :meth:`renew_due` says when to try again."""
        async with self._lock:
            now = self._clock()
            self._last_attempt = now
            try:
                found = await self.discover()
            except SourceError as exc:
                self._fail(str(exc), now)
                raise
            wanted = Subscription(
                hub=found.hub,
                topic=found.topic,
                callback=self.callback,
                secret=secrets.token_urlsafe(32),
                state="pending",
                requested_at=now,
            )
            # Pending before we ask: a hub may call back before it even answers our request.
            self._pending = wanted
            form = {
                "hub.mode": "subscribe",
                "hub.topic": wanted.topic,
                "hub.callback": wanted.callback,
                "hub.secret": wanted.secret,
                "hub.lease_seconds": str(int(self._lease.total_seconds())),
            }
            try:
                await self._ask_hub(found.hub, form)
            except SourceError as exc:
                if self._pending is wanted:
                    self._fail(str(exc), now)
                raise
            log.info(
                "websub %s: asked %s for %s; waiting for its verification",
                self.name,
                found.hub,
                found.topic,
                extra=self._ctx,
            )
            return self._pending or self._current or wanted

    async def renew(self) -> Subscription:
        """Subscribe again before the lease ends (discovering the hub again)."""
        return await self.subscribe()

    async def unsubscribe(self) -> None:
        """Ask the hub to stop; it verifies by calling back (a GET we answer)."""
        current = self._current
        if current is None:
            return
        self._unsubscribing = current
        form = {
            "hub.mode": "unsubscribe",
            "hub.topic": current.topic,
            "hub.callback": current.callback,
        }
        await self._ask_hub(current.hub, form)

    async def _ask_hub(self, hub: str, form: Mapping[str, str]) -> None:
        try:
            async with self._client().post(hub, data=dict(form)) as response:
                if not 200 <= response.status < 300:
                    text = (await response.text(errors="replace"))[:200].strip()
                    raise SourceError(
                        f"hub {hub} refused {form['hub.mode']}: HTTP {response.status}"
                        + (f" {text}" if text else "")
                    )
        except (aiohttp.ClientError, TimeoutError) as exc:
            refused = refusal_in(exc)
            if refused is not None:
                raise FetchRefused(f"refused to reach hub {hub}: {refused}") from None
            reason = str(exc) or type(exc).__name__
            raise SourceError(f"cannot reach hub {hub}: {reason}") from exc

    def _fail(self, reason: str, now: datetime) -> None:
        base = self._pending or self._current
        if base is not None and base.state != "active":
            self._pending = dataclasses.replace(base, state="failed", reason=reason)
        elif base is None:
            self._pending = Subscription(
                hub="",
                topic=self.config.url,
                callback=self.callback,
                secret="",
                state="failed",
                requested_at=now,
                reason=reason,
            )
        else:
            # An active subscription stays in force until its lease ends; only the renewal failed.
            self._pending = None
        log.warning("websub %s: %s", self.name, reason, extra=self._ctx)

    def renew_due(self, now: datetime) -> bool:
        """Whether :meth:`renew` should run now: never subscribed; the lease is 90 % over;
        the hub has not verified within 5 minutes; or 10 minutes after a failure or denial.
        (After :meth:`unsubscribe`, never.)"""
        pending, current = self._pending, self._current
        if pending is not None and pending.state == "pending":
            return now >= pending.requested_at + VERIFY_WITHIN
        if pending is not None and pending.state in ("failed", "denied"):
            if current is not None and current.renew_at is not None and now < current.renew_at:
                return False
            return self._last_attempt is None or now >= self._last_attempt + RETRY_AFTER
        if current is not None and current.state == "active" and current.renew_at is not None:
            return now >= current.renew_at
        # Never subscribed: due. Unsubscribed on purpose: not until subscribe() is called.
        return current is None or current.state != "unsubscribed"

    async def wait_active(self, timeout: float = 10.0) -> bool:  # noqa: ASYNC109
        """Wait until the hub has verified a subscription; ``False`` when it has not in time."""
        try:
            async with asyncio.timeout(timeout):
                await self._active.wait()
        except TimeoutError:
            return False
        return True

    # -- the hub's requests --------------------------------------------------------------------

    async def handle(self, request: PushRequest) -> PushResponse:
        if request.method == "GET":
            return self._verify(request.query)
        return await self._deliver(request)

    def _verify(self, query: Mapping[str, str]) -> PushResponse:
        mode = query.get("hub.mode", "")
        topic = query.get("hub.topic", "")
        challenge = query.get("hub.challenge", "")
        now = self._clock()
        if mode == "subscribe" and challenge:
            chosen = self._matching(topic, self._pending, self._current)
            if chosen is not None:
                lease = _lease(query.get("hub.lease_seconds"), self._lease)
                self._activate(chosen, lease, now)
                return PushResponse.text(200, challenge)
        elif mode == "unsubscribe" and challenge:
            leaving = self._unsubscribing
            if leaving is not None and leaving.topic == topic:
                self._unsubscribing = None
                if self._current is not None and self._current.topic == topic:
                    self._current = dataclasses.replace(self._current, state="unsubscribed")
                    self._active.clear()
                log.info("websub %s: unsubscribed from %s", self.name, topic, extra=self._ctx)
                return PushResponse.text(200, challenge)
        elif mode == "denied":
            chosen = self._matching(topic, self._pending, self._current)
            if chosen is not None:
                reason = query.get("hub.reason") or "no reason given"
                self._pending = dataclasses.replace(chosen, state="denied", reason=reason)
                log.warning(
                    "websub %s: the hub denied the subscription to %s: %s",
                    self.name,
                    topic,
                    reason,
                    extra=self._ctx,
                )
                return PushResponse.text(200, "ok")
        log.info(
            "websub %s: refused a verification (mode %r, topic %r) we did not ask for",
            self.name,
            mode,
            topic,
            extra=self._ctx,
        )
        return PushResponse.text(404, "no such subscription")

    @staticmethod
    def _matching(topic: str, *candidates: Subscription | None) -> Subscription | None:
        for candidate in candidates:
            if (
                candidate is not None
                and candidate.topic == topic
                and candidate.secret
                and candidate.state in ("pending", "active")
            ):
                return candidate
        return None

    def _activate(self, chosen: Subscription, lease: timedelta, now: datetime) -> None:
        previous = self._current
        if previous is not None and previous.secret != chosen.secret:
            self._previous = (previous.secret, now + SECRET_GRACE)
        self._current = dataclasses.replace(chosen, state="active", lease=lease, verified_at=now)
        if self._pending is chosen:
            self._pending = None
        self._active.set()
        log.info(
            "websub %s: subscribed to %s at %s until %s",
            self.name,
            chosen.topic,
            chosen.hub,
            (now + lease).isoformat(timespec="seconds"),
            extra=self._ctx,
        )

    async def _deliver(self, request: PushRequest) -> PushResponse:
        # Whatever happens to an unauthentic delivery, the hub gets the same 2xx (the spec's
        # rule: a forger learns nothing) and nothing is recorded.
        ignored = PushResponse.text(202, "ok", outcome="rejected")
        subscription = self._current or self._pending
        if subscription is None or not self._authentic(request):
            log.warning(
                "websub %s: ignored a delivery from %s with a missing or wrong X-Hub-Signature",
                self.name,
                request.remote or "?",
                extra=self._ctx,
            )
            return ignored
        try:
            articles, warnings = parse_feed(
                request.body,
                base_url=subscription.topic,
                now=self._clock(),
                content_type=request.header("content-type"),
            )
        except SourceError as exc:
            log.warning("websub %s: unreadable delivery: %s", self.name, exc, extra=self._ctx)
            return PushResponse.text(400, str(exc), outcome="rejected")
        for warning in warnings:
            log.info("websub %s: %s", self.name, warning, extra=self._ctx)
        if articles:
            await self._accept(self.name, articles)
        log.info(
            "websub %s: delivery of %d entr%s",
            self.name,
            len(articles),
            "y" if len(articles) == 1 else "ies",
            extra=self._ctx,
        )
        return PushResponse.text(202, "ok", outcome="accepted")

    def _authentic(self, request: PushRequest) -> bool:
        header = request.header("x-hub-signature") or ""
        method, _, offered = header.partition("=")
        algorithm = _ALGORITHMS.get(method.strip().lower())
        if algorithm is None or not offered:
            return False
        now = self._clock()
        keys = [s.secret for s in (self._current, self._pending) if s is not None and s.secret]
        if self._previous is not None and now <= self._previous[1]:
            keys.append(self._previous[0])
        given = offered.strip().lower().encode("ascii", "replace")
        return any(
            hmac.compare_digest(
                hmac.new(key.encode("utf-8"), request.body, algorithm).hexdigest().encode(), given
            )
            for key in keys
        )


def _lease(value: str | None, default: timedelta) -> timedelta:
    if value and value.strip().isdigit() and int(value) > 0:
        return timedelta(seconds=int(value))
    return default


async def _read_capped(response: aiohttp.ClientResponse, limit: int, url: str) -> bytes:
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise SourceError(f"response larger than {limit} bytes from {url}")
    return bytes(body)
