"""Fill what a source left out from the article's own page (``enrich: true``).

A listing or a sitemap often gives a title and a link and little else. :class:`Enricher` fetches
the article page, through the shared :class:`~bot.sources.fetch.Fetcher` with the same size and
time limits as feeds, and fills only what is missing:

- ``summary_html`` (empty): ``og:description``, else ``<meta name="description">``, else the first
  paragraphs of the article body;
- ``image`` (``None``): ``og:image`` / ``twitter:image``, else the JSON-LD image, else the first
  picture of the article body;
- ``published`` (``None``): ``article:published_time``, else JSON-LD ``datePublished`` of a
  ``NewsArticle`` (or any ``Article`` type), else ``itemprop="datePublished"``, else what
  htmldate finds in the page's markup;
- ``title`` (empty; a plain sitemap, a push without one): ``og:title`` or ``<title>``;
- ``url`` (empty): ``<link rel="canonical">`` (or ``og:url``), else the page's final URL.

The ``key`` is never changed: it is what dedupes an article in the ledger, and a canonical link
that differs from the listing's link (another host, a rewritten slug) would make the same article
look new. The canonical only fills a missing ``url``; an existing ``url`` is already canonical
(:func:`~bot.links.canonical_url` strips tracking and fragments on the way in).

Extraction is trafilatura's (metadata of many shapes, and main-text detection that leaves out
navigation, share buttons and related-news lists), measured at about 1.4 ms per page for the
metadata and 5–8 ms when the body text is needed, plus 260 ms to import once, done lazily.
The published time is read here first, because htmldate, left alone, prefers
``article:modified_time`` to JSON-LD ``datePublished``.

Pages are fetched with bounded concurrency, at least ``per_host_delay`` seconds apart per host
(politeness to the newsroom's own site), and remembered in an LRU cache by URL, so a listing
polled every few minutes costs one fetch per new article. A failure to enrich never loses the
article: :meth:`Enricher.enrich` logs a warning and returns it unchanged, and the failure is
remembered for ``retry_after`` seconds so a broken page is not fetched on every poll.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import json
import logging
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bot.errors import FetchRefused, PageGone, SourceError
from bot.links import absolute_url
from bot.model import Article
from bot.sources.base import PollResult, Source, SourceState, WrappedSource
from bot.sources.dates import read_date
from bot.sources.fetch import Fetcher
from bot.sources.html import decode_html

if TYPE_CHECKING:
    from lxml.html import HtmlElement  # type: ignore[import-untyped]

__all__ = ["Enricher", "PageFacts", "enriching", "extract_page"]

log = logging.getLogger("newsbot.sources.enrich")

_PARAGRAPHS = 3  # body paragraphs taken when the page has no description
_PARAGRAPH_CHARS = 600
_ARTICLE_TYPES = frozenset(
    {
        "newsarticle",
        "article",
        "reportagenewsarticle",
        "analysisnewsarticle",
        "blogposting",
        "opinionnewsarticle",
        "backgroundnewsarticle",
        "reviewnewsarticle",
    }
)
_PUBLISHED_META = (
    "article:published_time",
    "og:article:published_time",
    "datepublished",
    "pubdate",
    "publishdate",
    "parsely-pub-date",
    "sailthru.date",
)


@dataclass(frozen=True, slots=True)
class PageFacts:
    """What an article page says about itself."""

    title: str = ""
    description: str = ""
    paragraphs: tuple[str, ...] = ()
    image: str | None = None
    published: datetime | None = None
    canonical: str | None = None
    final_url: str = ""


# ------------------------------------------------------------------------------------ extraction


def extract_page(
    body: bytes | str,
    *,
    url: str,
    timezone: tzinfo = UTC,
    content_type: str | None = None,
    with_paragraphs: bool = True,
) -> PageFacts:
    """Read an article page (CPU only; no network). ``url`` is its final URL, for relative links.
    The body text is extracted only when ``with_paragraphs`` and there is no description."""
    from trafilatura import bare_extraction, extract_metadata
    from trafilatura.utils import load_html

    text = body if isinstance(body, str) else decode_html(body, content_type)
    tree = load_html(text) if text.strip() else None
    if tree is None:
        return PageFacts(final_url=url)
    ld = list(_json_ld_articles(tree))
    published = _meta_published(tree, timezone) or _ld_published(ld, timezone)
    metadata = extract_metadata(
        tree,
        default_url=url,
        date_config={
            "original_date": True,
            "extensive_search": False,
            "outputformat": "%Y-%m-%dT%H:%M:%S%z",
        },
        extensive=False,
    )
    if published is None and metadata.date:
        published = _read_when(metadata.date, timezone)
    description = _clean(metadata.description or "") or _ld_text(ld, "description")
    image = absolute_url(metadata.image or "", url) or absolute_url(_ld_image(ld), url)
    paragraphs: tuple[str, ...] = ()
    if with_paragraphs and (not description or not image):
        document = bare_extraction(
            tree,
            url=url,
            fast=True,
            with_metadata=False,
            include_images=True,
            include_comments=False,
            include_tables=False,
        )
        main = getattr(document, "body", None)
        if main is not None:
            if not description:
                paragraphs = _paragraphs(main, _clean(metadata.title or ""))
            if not image:
                image = _first_graphic(main, url)
    return PageFacts(
        title=_clean(metadata.title or "") or _ld_text(ld, "headline"),
        description=description,
        paragraphs=paragraphs,
        image=image or None,
        published=published,
        canonical=absolute_url(metadata.url or "", url) or None,
        final_url=url,
    )


def _meta_published(tree: HtmlElement, zone: tzinfo) -> datetime | None:
    for element in tree.iter("meta", "time"):
        if element.tag == "time":
            if (element.get("itemprop") or "").lower() == "datepublished":
                when = _read_when(element.get("datetime") or element.text_content(), zone)
                if when is not None:
                    return when
            continue
        name = element.get("property") or element.get("name") or element.get("itemprop") or ""
        if name.strip().lower() in _PUBLISHED_META:
            when = _read_when(element.get("content") or "", zone)
            if when is not None:
                return when
    return None


def _json_ld_articles(tree: HtmlElement) -> Iterator[dict[str, Any]]:
    for script in tree.iter("script"):
        if (script.get("type") or "").strip().lower() != "application/ld+json":
            continue
        try:
            data = json.loads(script.text_content() or "")
        except (json.JSONDecodeError, RecursionError):
            continue
        yield from _ld_nodes(data, depth=0)


def _ld_nodes(data: object, *, depth: int) -> Iterator[dict[str, Any]]:
    if depth > 4:
        return
    if isinstance(data, list):
        for item in data:
            yield from _ld_nodes(item, depth=depth + 1)
    elif isinstance(data, dict):
        kinds = data.get("@type")
        names = kinds if isinstance(kinds, list) else [kinds]
        if any(isinstance(k, str) and k.lower() in _ARTICLE_TYPES for k in names):
            yield data
        if "@graph" in data:
            yield from _ld_nodes(data["@graph"], depth=depth + 1)


def _ld_published(nodes: Sequence[dict[str, Any]], zone: tzinfo) -> datetime | None:
    for node in nodes:
        value = node.get("datePublished")
        if isinstance(value, str):
            when = _read_when(value, zone)
            if when is not None:
                return when
    return None


def _ld_text(nodes: Sequence[dict[str, Any]], key: str) -> str:
    for node in nodes:
        value = node.get(key)
        if isinstance(value, str) and value.strip():
            return _clean(value)
    return ""


def _ld_image(nodes: Sequence[dict[str, Any]]) -> str:
    for node in nodes:
        image = node.get("image")
        for candidate in image if isinstance(image, list) else [image]:
            if isinstance(candidate, str) and candidate.strip():
                return candidate.strip()
            if isinstance(candidate, dict) and isinstance(candidate.get("url"), str):
                return str(candidate["url"]).strip()
    return ""


def _paragraphs(main: Any, title: str) -> tuple[str, ...]:
    chosen: list[str] = []
    size = 0
    for element in main.iter("p"):
        text = _clean("".join(element.itertext()))
        if not text or text == title:
            continue
        chosen.append(text)
        size += len(text)
        if len(chosen) >= _PARAGRAPHS or size >= _PARAGRAPH_CHARS:
            break
    return tuple(chosen)


def _first_graphic(main: Any, base: str) -> str:
    for element in main.iter("graphic"):
        src = absolute_url(element.get("src") or "", base)
        if src:
            return src
    return ""


def _read_when(text: str, zone: tzinfo) -> datetime | None:
    reading = read_date(text, timezone=zone, now=datetime.now(UTC)) if text.strip() else None
    if reading is None or reading.relative:
        return None
    return reading.when.astimezone(UTC).replace(microsecond=0)


def _clean(text: str) -> str:
    return unicodedata.normalize("NFC", " ".join(html.unescape(text).split()))


# -------------------------------------------------------------------------------------- enricher


@dataclass(frozen=True, slots=True)
class _Failure:
    reason: str
    until: float
    refused: bool = False  # the fetch policy said no: still a refusal when read from the cache
    gone: int | None = None  # the page answered 404 or 410: still gone when read from the cache


#: What makes a cached page stale: the source's word that the article changed since the page
#: was read (a sitemap's ``lastmod``) and the title it lists.
_Version = tuple[datetime | None, str]


@dataclass(frozen=True, slots=True)
class _Page:
    facts: PageFacts
    version: _Version


class Enricher:
    """Fetches article pages to fill what sources leave out. One per source, or shared."""

    def __init__(
        self,
        fetcher: Fetcher,
        *,
        concurrency: int = 4,
        per_host_delay: float = 1.0,
        cache_size: int = 1000,
        timezone: tzinfo = UTC,
        max_bytes: int | None = None,
        timeout: float | None = None,
        retry_after: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._fetcher = fetcher
        self.per_host_delay = max(0.0, per_host_delay)
        self.cache_size = max(0, cache_size)
        self._timezone = timezone
        self._max_bytes = max_bytes
        self._timeout = timeout
        self._retry_after = retry_after
        self._clock = clock
        self._semaphore = asyncio.Semaphore(concurrency)
        self._cache: OrderedDict[str, _Page | _Failure] = OrderedDict()
        self._in_flight: dict[str, asyncio.Future[PageFacts]] = {}
        self._next_start: dict[str, float] = {}
        self.fetches = 0  # pages actually fetched (cache misses), for tests and metrics

    async def enrich(self, article: Article, *, gone: bool = False) -> Article:
        """The article with what was missing filled in; unchanged (and a warning logged) when
        the page cannot be read. Raises only :class:`FetchRefused`, when the page is one the
        source may not fetch: such an article must not be posted at all; and, with ``gone``,
        :class:`PageGone` when the page answers 404 or 410 (the caller decides what that
        means)."""
        try:
            return await self.fill(article)
        except FetchRefused:
            raise
        except SourceError as exc:
            if gone and isinstance(exc, PageGone):
                raise
            log.warning(
                "cannot enrich %s: %s",
                article.url or article.key,
                exc,
                extra={"article": article.key},
            )
            return article

    async def fill(self, article: Article) -> Article:
        """As :meth:`enrich`, but a page that cannot be read is a :class:`SourceError`."""
        if not _needs(article):
            return article
        url = article.url
        if not url and article.key.startswith(("http://", "https://")):
            url = article.key
        if not url:
            raise SourceError(f"article {article.key!r} has no URL to fetch")
        facts = await self._facts(url, (article.modified, article.title))
        return _apply(article, facts)

    async def enrich_many(self, articles: Iterable[Article]) -> list[Article]:
        """:meth:`enrich` for each, concurrently (within the limits), in the order given
        (:class:`FetchRefused` when one of them may not be fetched)."""
        return list(await asyncio.gather(*(self.enrich(a) for a in articles)))

    # -- pages --------------------------------------------------------------------------------

    async def _facts(self, url: str, version: _Version) -> PageFacts:
        cached = self._cache.get(url)
        if isinstance(cached, _Page):
            if cached.version == version:
                self._cache.move_to_end(url)
                return cached.facts
            # The source says the article changed since its page was read (a new lastmod, a
            # new title): read it again, a revision candidate (the digest decides).
            del self._cache[url]
        if isinstance(cached, _Failure):
            if cached.until > self._clock():
                reason = f"{cached.reason} (not retried before a while has passed)"
                if cached.gone is not None:
                    raise PageGone(reason, status=cached.gone)
                raise (FetchRefused if cached.refused else SourceError)(reason)
            del self._cache[url]
        pending = self._in_flight.get(url)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[PageFacts] = asyncio.get_running_loop().create_future()
        self._in_flight[url] = future
        try:
            facts = await self._fetch(url)
        except SourceError as exc:
            until = self._clock() + self._retry_after
            gone = exc.status if isinstance(exc, PageGone) else None
            self._remember(url, _Failure(str(exc), until, isinstance(exc, FetchRefused), gone))
            future.set_exception(exc)
            raise
        except BaseException:
            future.cancel()  # cancelled (a stop): whoever shares this fetch stops too
            raise
        else:
            self._remember(url, _Page(facts, version))
            future.set_result(facts)
            return facts
        finally:
            del self._in_flight[url]
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: no "never retrieved" noise when nobody waited

    async def _fetch(self, url: str) -> PageFacts:
        async with self._semaphore:
            await self._polite(url)
            self.fetches += 1
            result = await self._fetcher.get(url, max_bytes=self._max_bytes, timeout=self._timeout)
            kind = (result.content_type or "").lower()
            if kind and "html" not in kind and "xml" not in kind:
                raise SourceError(f"{result.url} is not a web page ({result.content_type})")
            return await asyncio.to_thread(
                extract_page,
                result.body,
                url=result.url,
                timezone=self._timezone,
                content_type=result.content_type,
            )

    async def _polite(self, url: str) -> None:
        if not self.per_host_delay:
            return
        host = urlsplit(url).netloc.lower()
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = max(now, self._next_start.get(host, now))
        self._next_start[host] = start + self.per_host_delay
        if start > now:
            await asyncio.sleep(start - now)

    def _remember(self, url: str, value: _Page | _Failure) -> None:
        if not self.cache_size:
            return
        self._cache[url] = value
        self._cache.move_to_end(url)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


def _needs(article: Article) -> bool:
    return (
        not article.summary_html.strip()
        or article.image is None
        or article.published is None
        or not article.title
        or not article.url
    )


def _apply(article: Article, facts: PageFacts) -> Article:
    changes: dict[str, Any] = {}
    if not article.summary_html.strip():
        if facts.description:
            changes["summary_html"] = f"<p>{html.escape(facts.description, quote=False)}</p>"
        elif facts.paragraphs:
            changes["summary_html"] = "".join(
                f"<p>{html.escape(p, quote=False)}</p>" for p in facts.paragraphs
            )
    if article.image is None and facts.image:
        changes["image"] = facts.image
    if article.published is None and facts.published is not None:
        changes["published"] = facts.published
    if not article.title and facts.title:
        changes["title"] = facts.title
    if not article.url:
        changes["url"] = facts.canonical or facts.final_url
    # The key is never touched: it is what makes this the same article in the ledger.
    return dataclasses.replace(article, **changes) if changes else article


# ------------------------------------------------------------------------------ source wrapper


class _EnrichingSource(WrappedSource):
    """A source whose articles are enriched before the pipeline sees them."""

    def __init__(self, inner: Source, enricher: Enricher) -> None:
        super().__init__(inner)
        self.enricher = enricher

    async def poll(self, state: SourceState) -> PollResult:
        result = await self.inner.poll(state)
        if result.not_modified or not result.articles:
            return result
        outcomes = await asyncio.gather(
            *(self.enricher.enrich(a, gone=True) for a in result.articles),
            return_exceptions=True,
        )
        enriched: list[Article] = []
        refusals = list(result.refusals)
        gone = list(result.gone)
        for article, outcome in zip(result.articles, outcomes, strict=True):
            if isinstance(outcome, PageGone):
                # Not enriched, and said: a known article's page gone may be a withdrawal.
                log.warning(
                    "source %s: the page of %s is gone: %s",
                    self.name,
                    article.url or article.key,
                    outcome,
                    extra={"source": self.name, "article": article.key},
                )
                gone.append((article.key, str(outcome)))
                enriched.append(article)
            elif isinstance(outcome, FetchRefused):
                # Nothing was fetched; and its link leads where this source may not go.
                refusal = f"article {article.title[:60] or article.url!r}: {outcome}; not posted"
                log.warning("source %s: %s", self.name, refusal, extra={"source": self.name})
                refusals.append(refusal)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                enriched.append(outcome)
        kept = [a for a in enriched if a.title]
        warnings = list(result.warnings)
        if len(kept) < len(enriched):
            untitled = [a.url or a.key for a in enriched if not a.title]
            warnings.append(
                f"{len(untitled)} article(s) still have no title after reading their pages and "
                f"wait for the next poll: {', '.join(untitled[:3])}"
            )
        return dataclasses.replace(
            result,
            articles=tuple(kept),
            warnings=tuple(warnings),
            refusals=tuple(refusals),
            gone=tuple(gone),
        )


def enriching(source: Source, enricher: Enricher) -> Source:
    """``source`` with each polled article enriched by ``enricher`` (``enrich: true``)."""
    return _EnrichingSource(source, enricher)
