"""A CMS pushes each article as it is published: ``POST /hooks/<source>`` with a signed JSON body.

The request
-----------
::

    POST /hooks/newsvision
    Content-Type: application/json
    X-Newsbot-Timestamp: 1758000000
    X-Newsbot-Signature: sha256=<hex HMAC-SHA256(secret, "1758000000." + raw body)>

    {"url": "https://news.example.tw/article/20051", "title": "高雄與格丁尼亞再升級！",
     "summary": "<p>…</p>", "published": "2025-09-16T18:00:00+08:00",
     "categories": ["地方", "國際交流"], "image": "https://…/20051.jpg", "id": "20051"}

``action`` says what happened to the article: ``"create"`` (the default: it was published),
``"update"`` (it was corrected: recorded as a revision, and each post gets what its channel's
correction policy says) or ``"delete"`` (it was withdrawn: a takedown on every channel; only
``id`` or ``url`` is needed, and ``reason`` is kept in the ledger and ``history``)::

    {"action": "delete", "id": "20051", "reason": "當事人要求撤下"}

Only ``url`` is required. ``title`` may be left out when the source can fetch the page to fill
it in (the ``enrich`` callable); ``summary`` is HTML; ``published`` is ISO 8601 and a time
without an offset is taken as UTC (or the zone given to the receiver); ``author`` is accepted
too. The article's key is ``id`` when given, else the canonical URL, so the same article pushed
twice (or pushed and also polled) is one article.

Authentication
--------------
The signature covers the timestamp and the raw body, as Stripe's and Slack's do, with the
source's ``secret``. A request is refused with 401, and nothing is recorded, when the signature
is missing or wrong, when the timestamp is more than ``tolerance`` away from our clock (stale or
from the future: a captured request cannot be replayed later), or when the same signature was
already received within the window (an exact replay). Several signatures may be sent,
comma-separated, while a secret is being rotated. The secret and the signatures are never
logged.

Answers
-------
``202 {"key": "..."}`` recorded (or already known: pushes are idempotent); ``400 {"error": ...}``
the body is not what is described above (an unknown ``action`` too); ``404 {"error": ...}`` a
``delete`` for an article this source never sent; ``401 {"error": ...}`` not authentic; ``502``
the page could not be fetched to fill in a missing title (try again).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import html
import json
import logging
import time
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import ClassVar, Literal
from urllib.parse import urlsplit

from bot.config import WebhookSourceConfig
from bot.errors import FetchRefused
from bot.links import canonical_url
from bot.model import Article
from bot.sources.policy import FetchPolicy, link_refusal
from bot.sources.push import DEFAULT_MAX_BODY, Accept, PushReceiver, PushRequest, PushResponse

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "BadPush",
    "Push",
    "WebhookReceiver",
    "parse_article",
    "parse_push",
    "sign",
    "signed_headers",
]

log = logging.getLogger("newsbot.sources.webhook")

SIGNATURE_HEADER = "X-Newsbot-Signature"
TIMESTAMP_HEADER = "X-Newsbot-Timestamp"

Enrich = Callable[[Article], Awaitable[Article]]
#: Records that source ``name`` withdrew the article of this key or URL, with the reason given;
#: false when no such article is known (the daemon passes ``Pipeline.withdraw``).
Withdraw = Callable[[str, str, str | None], Awaitable[bool]]

ACTIONS = ("create", "update", "delete")

_NO_TITLE = "title is required unless the page can be fetched"


class BadPush(ValueError):
    """The body is not a valid article push; the message says why (sent back with a 400)."""


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Newsbot-Signature`` value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    return sign_bytes(secret.encode("utf-8"), str(timestamp), body).decode("ascii")


def signed_headers(secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """The headers a sender adds: content type, timestamp (now unless given) and signature."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(stamp),
        SIGNATURE_HEADER: sign(secret, stamp, body),
    }


def _utc_now() -> datetime:
    return datetime.now(UTC)


class WebhookReceiver(PushReceiver):
    """``POST /hooks/<name>`` for one webhook source."""

    prefix: ClassVar[str] = "hooks"

    def __init__(
        self,
        config: WebhookSourceConfig,
        accept: Accept,
        *,
        clock: Callable[[], datetime] = _utc_now,
        enrich: Enrich | None = None,
        withdraw: Withdraw | None = None,
        timezone: tzinfo = UTC,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        super().__init__(config.name, max_body=max_body)
        self.config = config
        self._accept = accept
        self._withdraw = withdraw
        self._clock = clock
        self._enrich = enrich
        self._timezone = timezone
        self._secret = config.secret.get_secret_value().encode("utf-8")
        self._policy = FetchPolicy.for_source(config)
        # Signatures already received, until their timestamp leaves the tolerance window.
        self._seen: dict[str, float] = {}

    async def handle(self, request: PushRequest) -> PushResponse:
        context = {"source": self.name}
        refusal = self._authenticate(request)
        if refusal is not None:
            log.warning(
                "webhook %s: refused a push from %s: %s",
                self.name,
                request.remote or "?",
                refusal,
                extra=context,
            )
            return PushResponse.problem(401, refusal)
        signature = self._remember(request)
        try:
            push = parse_push(request.body, timezone=self._timezone)
        except BadPush as exc:
            log.warning("webhook %s: bad push: %s", self.name, exc, extra=context)
            return PushResponse.problem(400, str(exc))
        if push.article is None:
            return await self._delete(push, signature)
        article = push.article
        refused = link_refusal(article.url, self._policy)
        if refused is not None:
            log.warning("webhook %s: refused a push: %s", self.name, refused, extra=context)
            return PushResponse.problem(400, f"not posted: {refused}")
        if not article.title:
            if self._enrich is None:
                return PushResponse.problem(400, _NO_TITLE)
            try:
                enriched = await self._enrich(article)
            except FetchRefused as exc:
                log.warning("webhook %s: refused a push: %s", self.name, exc, extra=context)
                return PushResponse.problem(400, f"not posted: {exc}")
            except Exception as exc:
                self._forget(signature)
                log.warning(
                    "webhook %s: cannot fetch %s to fill in the title: %s",
                    self.name,
                    article.url,
                    exc,
                    extra=context,
                )
                return PushResponse.problem(
                    502, f"{_NO_TITLE}, and {article.url} could not be fetched: {exc}"
                )
            # The key stays the one the push gave: it is what makes a second push the same.
            article = dataclasses.replace(enriched, key=article.key)
            if not article.title:
                return PushResponse.problem(400, f"{_NO_TITLE}, and {article.url} gave no title")
        if article.published is None:
            # Neither the push nor the page said when: it is news now.
            now = self._clock().astimezone(UTC).replace(microsecond=0)
            article = dataclasses.replace(article, published=now)
        try:
            key = await self._accept(self.name, [article])
        except Exception:
            self._forget(signature)
            raise
        log.info("webhook %s: accepted %s", self.name, key, extra={**context, "article": key})
        return PushResponse.json(202, {"key": key}, outcome="accepted")

    async def _delete(self, push: Push, signature: str) -> PushResponse:
        context = {"source": self.name, "article": push.key}
        if self._withdraw is None:
            return PushResponse.problem(400, "this source does not take deletes")
        try:
            found = await self._withdraw(self.name, push.key, push.reason)
        except Exception:
            self._forget(signature)
            raise
        if not found:
            log.warning(
                "webhook %s: delete of an unknown article %s", self.name, push.key, extra=context
            )
            return PushResponse.problem(
                404, f"no article {push.key!r} of source {self.name!r} is known: nothing to delete"
            )
        log.info("webhook %s: withdrawn %s", self.name, push.key, extra=context)
        return PushResponse.json(202, {"key": push.key, "action": "delete"}, outcome="accepted")

    # -- authentication ------------------------------------------------------------------------

    def _authenticate(self, request: PushRequest) -> str | None:
        """``None`` when authentic; else the reason (it names no secret and no signature)."""
        stamp_text = (request.header(TIMESTAMP_HEADER) or "").strip()
        offered = request.header(SIGNATURE_HEADER)
        if not stamp_text:
            return f"the {TIMESTAMP_HEADER} header is missing"
        if not offered:
            return f"the {SIGNATURE_HEADER} header is missing"
        if not self._secret.strip():
            # Configuration refuses an empty secret; a receiver built around it anyway must
            # not accept what anyone can sign.
            return "this source has no secret configured; no push is accepted"
        # ASCII digits only: int() also reads Arabic-Indic and other digits, and a long run
        # of them is no timestamp either.
        if not (stamp_text.isascii() and stamp_text.isdigit() and len(stamp_text) <= 12):
            return f"the {TIMESTAMP_HEADER} header must be Unix seconds"
        expected = sign_bytes(self._secret, stamp_text, request.body)
        candidates = [part.strip() for part in offered.split(",")]
        if not any(hmac.compare_digest(expected, c.encode("ascii", "replace")) for c in candidates):
            return "the signature does not match (check the secret and sign the raw body)"
        now = self._clock().timestamp()
        tolerance = self.config.tolerance.total_seconds()
        if abs(now - int(stamp_text)) > tolerance:
            return (
                f"the timestamp is more than {tolerance:g} s away from our clock "
                "(sign each request when sending it; check the sender's clock)"
            )
        self._prune(now)
        if expected.decode("ascii") in self._seen:
            return "this exact request was already received (a replay)"
        return None

    def _remember(self, request: PushRequest) -> str:
        stamp = (request.header(TIMESTAMP_HEADER) or "").strip()
        signature = sign_bytes(self._secret, stamp, request.body).decode("ascii")
        self._seen[signature] = int(stamp) + self.config.tolerance.total_seconds()
        return signature

    def _forget(self, signature: str) -> None:
        # The push was authentic but not recorded (our fault): the sender may retry it as is.
        self._seen.pop(signature, None)

    def _prune(self, now: float) -> None:
        for signature in [s for s, until in self._seen.items() if until < now]:
            del self._seen[signature]


def sign_bytes(secret: bytes, timestamp: str, body: bytes) -> bytes:
    digest = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return b"sha256=" + digest.hexdigest().encode("ascii")


# ------------------------------------------------------------------------------------- the body


@dataclass(frozen=True, slots=True)
class Push:
    """What a push asks: an article published or corrected (``article``), or one withdrawn
    (``article`` ``None``; ``key`` is its ``id``, else its canonical URL; ``reason`` why)."""

    action: Literal["create", "update", "delete"]
    key: str
    article: Article | None = None
    reason: str | None = None


def parse_push(body: bytes, *, timezone: tzinfo = UTC) -> Push:
    """What the push's body asks; :class:`BadPush` says what is wrong with it."""
    document = _document(body)
    action = document.get("action", "create")
    if action == "delete":
        key = _key(document)
        if not key:
            url = _http_url(document, "url", required=False)
            if url is None:
                raise BadPush("a delete needs the article's id or url")
            key = canonical_url(url)
        reason = _plain(_string(document, "reason")) or None
        return Push("delete", key, reason=reason)
    if action not in ("create", "update"):
        raise BadPush(
            f'action must be "create", "update" or "delete", got {json.dumps(action)[:80]}'
        )
    article = _article(document, timezone)
    return Push("create" if action == "create" else "update", article.key, article)


def parse_article(body: bytes, *, timezone: tzinfo = UTC) -> Article:
    """The article a push describes; :class:`BadPush` says what is wrong with the body.

    The title may come back empty (the caller fetches the page or refuses the push), and
    ``published`` ``None`` (the page may say; else the caller takes the time of the push)."""
    return _article(_document(body), timezone)


def _document(body: bytes) -> dict[str, object]:
    try:
        document = json.loads(body.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise BadPush("the body must be UTF-8 JSON") from exc
    except json.JSONDecodeError as exc:
        raise BadPush(f"the body is not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    except RecursionError as exc:
        raise BadPush("the body is nested too deeply for an article") from exc
    if not isinstance(document, dict):
        raise BadPush('the body must be a JSON object such as {"url": "https://..."}')
    return document


def _key(document: Mapping[str, object]) -> str:
    identifier = document.get("id")
    if identifier is not None and (
        isinstance(identifier, bool) or not isinstance(identifier, str | int)
    ):
        raise BadPush("id must be a string or a number")
    return str(identifier).strip() if identifier is not None else ""


def _article(document: Mapping[str, object], timezone: tzinfo) -> Article:
    url = _http_url(document, "url", required=True)
    if url is None:  # pragma: no cover - _http_url raised already
        raise BadPush("url is required")
    link = canonical_url(url)
    key = _key(document)
    published = _published(document.get("published"), timezone)
    return Article(
        key=key or link,
        url=link,
        title=_plain(_string(document, "title")),
        summary_html=unicodedata.normalize("NFC", _string(document, "summary").strip()),
        published=published.astimezone(UTC).replace(microsecond=0) if published else None,
        author=_plain(_string(document, "author")) or None,
        categories=_categories(document.get("categories")),
        image=_http_url(document, "image", required=False),
    )


def _string(document: Mapping[str, object], name: str) -> str:
    value = document.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadPush(f"{name} must be a string")
    return value


def _http_url(document: Mapping[str, object], name: str, *, required: bool) -> str | None:
    value = _string(document, name).strip()
    if not value:
        if required:
            raise BadPush(f"{name} is required")
        return None
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise BadPush(f"{name} must be an absolute http(s) URL, got {value!r}")
    return value


def _published(value: object, timezone: tzinfo) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadPush("published must be an ISO 8601 string such as 2025-09-16T18:00:00+08:00")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise BadPush(
            f"published must be ISO 8601 such as 2025-09-16T18:00:00+08:00, got {value!r}"
        ) from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone)


def _categories(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(term, str) for term in value):
        raise BadPush('categories must be a list of strings such as ["地方", "國際交流"]')
    seen: dict[str, None] = {}
    for term in value:
        clean = _plain(term)
        if clean:
            seen.setdefault(clean, None)
    return tuple(seen)


def _plain(text: str) -> str:
    # JSON strings are text: "使用 <script> 標籤" is a headline about a tag, kept as written
    # (templates escape it when rendering). A CMS (WordPress) escapes entities (&#8217;) in
    # what it sends: those are decoded.
    return unicodedata.normalize("NFC", " ".join(html.unescape(text).split()))
