"""Google News sitemaps and sitemap indexes (``kind: sitemap``).

A news sitemap is a ``<urlset>`` whose ``<url>`` entries carry ``news:news`` (``news:title``,
``news:publication_date``, ``news:keywords``) and maybe ``image:image/image:loc``. The article's
key is the canonical ``<loc>``; keywords become categories; the publication date (else
``<lastmod>``) is the published time, read as W3C datetime, a date-only value in the configured
time zone. An entry without ``news:title`` has no title to post: it is skipped, with one warning
for all of them, unless the source enriches (``enrich: true``), where the page gives the title.

A ``<sitemapindex>`` is followed: its children newest first by ``<lastmod>``, at most
``max_children`` of them per index and ``max_documents`` fetches per poll, to ``max_depth``
levels of indexes. A child that cannot be read is a warning; the others still count.

Conditional GET applies to the top URL, whose validators go in the ledger. Many sites keep an
index unchanged while its children change, so an index answering 304 does not end the poll: the
children read last time (remembered in memory, with their own validators) are asked again,
conditionally; after a restart, when nothing is remembered, the index is fetched in full.

XML is parsed by lxml with entity resolution, DTD loading and network access off and without
``huge_tree``: a billion-laughs document or an external entity reads as nothing, not as a
gigabyte or a file of ours. A ``.xml.gz`` body (gzip magic bytes, whatever the URL says) is
inflated with the same size cap as the download, so a gzip bomb stops at ``max_bytes``.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import unicodedata
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

from lxml import etree  # type: ignore[import-untyped]

from bot.config import SitemapSourceConfig
from bot.errors import FetchRefused, PageGone, SourceError
from bot.links import WEB_OR_FILE, absolute_url
from bot.model import Article
from bot.sources.base import PollResult, Source, SourceState
from bot.sources.dates import parse_date
from bot.sources.fetch import Fetcher, FetchResult

log = logging.getLogger("newsbot.sources.sitemap")

__all__ = ["ChildSitemap", "SitemapDocument", "SitemapSource", "parse_sitemap"]

PAGE_BYTES = 2 * 1024 * 1024  # an article page checked for being gone; larger is not gone
MAX_GONE_CHECKS = 20  # pages of entries that left the sitemap checked per poll (takedown_on_gone)
MAX_ARTICLES = 1000  # Google News sitemaps hold at most 1000 URLs; a 50,000-URL one is not news
_GZIP_MAGIC = b"\x1f\x8b"
_HTML_START = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>])", re.I | re.S)
_KEYWORD_SPLIT = re.compile(r"[,，、;；]")
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")


@dataclass(frozen=True, slots=True)
class ChildSitemap:
    """One ``<sitemap>`` of an index."""

    url: str
    lastmod: datetime | None = None


@dataclass(frozen=True, slots=True)
class SitemapDocument:
    """One parsed sitemap: articles of a ``urlset``, or the children of a ``sitemapindex``."""

    kind: Literal["urlset", "sitemapindex"]
    articles: tuple[Article, ...] = ()
    children: tuple[ChildSitemap, ...] = ()
    warnings: tuple[str, ...] = ()


# ------------------------------------------------------------------------------------- the source


@dataclass(slots=True)
class _Poll:
    """What one poll gathered across documents."""

    articles: list[Article] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    fetched: int = 0
    unchanged: int = 0
    failed: int = 0
    gone: tuple[tuple[str, str], ...] = ()


class SitemapSource(Source):
    """A news sitemap or an index of them, fetched with conditional GET."""

    def __init__(
        self,
        config: SitemapSourceConfig,
        fetcher: Fetcher,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        timezone: tzinfo = UTC,
        max_children: int = 5,
        max_depth: int = 2,
        max_documents: int = 10,
    ) -> None:
        super().__init__(config.name)
        self.config = config
        self._fetcher = fetcher
        self._now = now
        self._timezone = timezone
        self.max_children = max_children
        self.max_depth = max_depth
        self.max_documents = max_documents
        # What the top URL was last time, and, for an index, the children read and their
        # validators: an unchanged index may still have changed children.
        self._top_kind: Literal["urlset", "sitemapindex"] | None = None
        self._children: tuple[str, ...] = ()
        self._validators: dict[str, tuple[str | None, str | None]] = {}
        # The entries each urlset listed when last read: one that leaves a sitemap read again
        # is checked (takedown_on_gone) for a page that answers 404 or 410.
        self._listed: dict[str, frozenset[str]] = {}

    async def poll(self, state: SourceState) -> PollResult:
        top = await self._get(self.config.url, state.etag, state.last_modified)
        if top.not_modified:
            if self._top_kind == "urlset":
                return PollResult(state=state, not_modified=True)
            if self._top_kind == "sitemapindex" and self._children:
                gathered = _Poll()
                await self._read_children(list(self._children), 1, gathered, remember=False)
                gathered.gone = await self._gone(gathered)
                return self._result(gathered, state, index_unchanged=True)
            # Restarted: what the index holds is not remembered, so ask for it in full.
            top = await self._get(self.config.url, None, None)
        new_state = SourceState(etag=top.etag, last_modified=top.last_modified)
        document = self._parse(top)
        self._top_kind = document.kind
        gathered = _Poll(warnings=list(document.warnings))
        if document.kind == "urlset":
            self._take(top.url, document, gathered)
        else:
            chosen = self._choose(document.children, self.config.url, gathered)
            await self._read_children(chosen, 1, gathered, remember=True)
        gathered.gone = await self._gone(gathered)
        return self._result(gathered, new_state, index_unchanged=False)

    def _take(self, url: str, document: SitemapDocument, gathered: _Poll) -> None:
        """A urlset read: its articles, and the entries it listed last time and no more."""
        gathered.articles.extend(document.articles)
        listed = frozenset(article.key for article in document.articles)
        before = self._listed.pop(url, None)
        if before is not None:
            gathered.vanished.extend(sorted(before - listed))
        self._listed[url] = listed  # last in the order: the least recently read go first
        while len(self._listed) > 4 * self.max_documents:
            del self._listed[next(iter(self._listed))]

    async def _gone(self, gathered: _Poll) -> tuple[tuple[str, str], ...]:
        """Of the entries that left the sitemap, those whose page answers 404 or 410. Only
        with ``takedown_on_gone``: a sitemap drops its older entries all the time, and
        leaving it alone says nothing. Entries listed in another document still are fine."""
        listed = {article.key for article in gathered.articles}
        candidates = [key for key in dict.fromkeys(gathered.vanished) if key not in listed]
        if not self.config.takedown_on_gone or not candidates:
            return ()
        checked = candidates[:MAX_GONE_CHECKS]
        timeout = self.config.timeout.total_seconds()
        answers = await asyncio.gather(
            *(self._fetcher.get(key, max_bytes=PAGE_BYTES, timeout=timeout) for key in checked),
            return_exceptions=True,
        )
        gone = []
        for key, answer in zip(checked, answers, strict=True):
            if isinstance(answer, PageGone):
                gone.append((key, str(answer)))
            elif isinstance(answer, BaseException) and not isinstance(answer, SourceError):
                raise answer
        return tuple(gone)

    def _result(self, gathered: _Poll, state: SourceState, *, index_unchanged: bool) -> PollResult:
        if gathered.fetched and gathered.failed == gathered.fetched:
            raise SourceError(
                "no sitemap of the index could be read: "
                + "; ".join([*gathered.refusals, *gathered.warnings])
            )
        if gathered.fetched and gathered.unchanged == gathered.fetched:
            # Every child answered 304.
            return PollResult(state=state, not_modified=index_unchanged)
        unique: dict[str, Article] = {}
        for article in gathered.articles:
            unique.setdefault(article.key, article)
        return PollResult(
            articles=tuple(unique.values()),
            state=state,
            warnings=tuple(gathered.warnings),
            refusals=tuple(gathered.refusals),
            gone=gathered.gone,
        )

    def _choose(
        self, children: Sequence[ChildSitemap], index_url: str, gathered: _Poll
    ) -> list[str]:
        # Newest first; children without a lastmod keep their order after the dated ones.
        ordered = sorted(
            enumerate(children),
            key=lambda pair: (
                pair[1].lastmod is None,
                -(pair[1].lastmod.timestamp() if pair[1].lastmod else 0.0),
                pair[0],
            ),
        )
        if len(children) > self.max_children:
            gathered.warnings.append(
                f"the index {index_url} lists {len(children)} sitemaps; "
                f"read the newest {self.max_children}"
            )
        return [child.url for _, child in ordered[: self.max_children]]

    async def _read_children(
        self, urls: list[str], depth: int, gathered: _Poll, *, remember: bool
    ) -> None:
        room = self.max_documents - gathered.fetched
        if room <= 0:
            gathered.warnings.append(
                f"stopped after {self.max_documents} sitemaps in one poll; {len(urls)} not read"
            )
            return
        if len(urls) > room:
            gathered.warnings.append(
                f"stopped after {self.max_documents} sitemaps in one poll; "
                f"{len(urls) - room} not read"
            )
            urls = urls[:room]
        if remember and depth == 1:
            self._children = tuple(urls)
            self._validators = {u: v for u, v in self._validators.items() if u in urls}
        gathered.fetched += len(urls)
        answers = await asyncio.gather(
            *(self._get_child(url) for url in urls), return_exceptions=True
        )
        for url, answer in zip(urls, answers, strict=True):
            if isinstance(answer, FetchRefused):
                # A <loc> pointing where this source may not go: nothing was fetched.
                gathered.failed += 1
                gathered.refusals.append(f"sitemap {url}: {answer}")
                log.warning("source %s: %s", self.name, gathered.refusals[-1])
                continue
            if isinstance(answer, SourceError):
                gathered.failed += 1
                gathered.warnings.append(f"sitemap {url}: {answer}")
                continue
            if isinstance(answer, BaseException):
                raise answer
            if answer.not_modified:
                gathered.unchanged += 1
                continue
            try:
                document = self._parse(answer)
            except SourceError as exc:
                gathered.failed += 1
                gathered.warnings.append(f"sitemap {url}: {exc}")
                continue
            gathered.warnings.extend(document.warnings)
            if document.kind == "urlset":
                self._take(url, document, gathered)
            elif depth >= self.max_depth:
                gathered.warnings.append(
                    f"the index {url} is more than {self.max_depth} levels deep; not followed"
                )
            else:
                chosen = self._choose(document.children, url, gathered)
                await self._read_children(chosen, depth + 1, gathered, remember=False)

    async def _get_child(self, url: str) -> FetchResult:
        etag, last_modified = self._validators.get(url, (None, None))
        result = await self._get(url, etag, last_modified)
        if not result.not_modified:
            self._validators[url] = (result.etag, result.last_modified)
        return result

    async def _get(self, url: str, etag: str | None, last_modified: str | None) -> FetchResult:
        return await self._fetcher.get(
            url,
            etag=etag,
            last_modified=last_modified,
            max_bytes=self.config.max_bytes,
            timeout=self.config.timeout.total_seconds(),
        )

    def _parse(self, result: FetchResult) -> SitemapDocument:
        return parse_sitemap(
            result.body,
            url=result.url,
            timezone=self._timezone,
            require_title=not self.config.enrich,
            max_bytes=self.config.max_bytes,
        )


# ---------------------------------------------------------------------------------- the parsing


def parse_sitemap(
    body: bytes,
    *,
    url: str,
    timezone: tzinfo = UTC,
    require_title: bool = True,
    max_bytes: int = 50 * 1024 * 1024,
) -> SitemapDocument:
    """Parse one sitemap document (gzip'ed or not); :class:`SourceError` when it is not one."""
    data = _inflate(body, url, max_bytes) if body.startswith(_GZIP_MAGIC) else body
    if not data.strip():
        raise SourceError(f"not a sitemap: {url} was empty")
    if _HTML_START.match(data[:2048].removeprefix(b"\xef\xbb\xbf")):
        raise SourceError(f"not a sitemap: {url} sent an HTML page")
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise SourceError(f"not a sitemap: {url} is not well-formed XML ({exc})") from exc
    if root is None:
        raise SourceError(f"not a sitemap: {url} has no root element")
    kind = _local(root)
    if kind == "sitemapindex":
        return _read_index(root, url, timezone)
    if kind == "urlset":
        return _read_urlset(root, url, timezone, require_title)
    raise SourceError(f"not a sitemap: {url} has a <{kind}> root, not <urlset> or <sitemapindex>")


def _inflate(body: bytes, url: str, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise SourceError(f"not a sitemap: {url} is not valid gzip ({exc})") from exc
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise SourceError(f"sitemap {url} inflates to more than {max_bytes} bytes")
    return data


def _read_index(root: Any, url: str, zone: tzinfo) -> SitemapDocument:
    children: list[ChildSitemap] = []
    for entry in _elements(root, "sitemap"):
        loc = _child_text(entry, "loc")
        if not loc:
            continue
        child_url = absolute_url(loc, url, allow=WEB_OR_FILE)
        if child_url:
            lastmod = _child_text(entry, "lastmod")
            children.append(ChildSitemap(child_url, _date(lastmod, zone)))
    return SitemapDocument("sitemapindex", children=tuple(children))


def _read_urlset(root: Any, url: str, zone: tzinfo, require_title: bool) -> SitemapDocument:
    articles: list[Article] = []
    untitled = 0
    for entry in _elements(root, "url"):
        article = _read_url(entry, url, zone)
        if article is None:
            continue
        if not article.title and require_title:
            untitled += 1
            continue
        articles.append(article)
    warnings: list[str] = []
    if untitled:
        warnings.append(
            f"{untitled} entries of {url} have no news:title and were skipped "
            "(enrich: true reads titles from the pages)"
        )
    if len(articles) > MAX_ARTICLES:
        warnings.append(f"{url} lists {len(articles)} URLs; read the newest {MAX_ARTICLES}")
        articles.sort(key=lambda a: a.published or datetime.min.replace(tzinfo=UTC), reverse=True)
        articles = articles[:MAX_ARTICLES]
    return SitemapDocument("urlset", articles=tuple(articles), warnings=tuple(warnings))


def _read_url(entry: Any, base: str, zone: tzinfo) -> Article | None:
    link = ""
    lastmod = ""
    title = ""
    published_text = ""
    keywords = ""
    image = ""
    for child in entry:
        name = _local(child)
        if name == "loc":
            link = absolute_url(_text(child), base, allow=WEB_OR_FILE)
        elif name == "lastmod":
            lastmod = _text(child)
        elif name == "news":
            title = _child_text(child, "title")
            published_text = _child_text(child, "publication_date")
            keywords = _child_text(child, "keywords")
        elif name == "image" and not image:
            image = absolute_url(_child_text(child, "loc"), base, allow=WEB_OR_FILE)
    if not link:
        return None
    modified = _date(lastmod, zone)
    published = _date(published_text, zone) or modified
    return Article(
        key=link,
        url=link,
        title=_plain(title),
        published=published.astimezone(UTC).replace(microsecond=0) if published else None,
        categories=_keywords(keywords),
        image=image or None,
        modified=modified.astimezone(UTC) if modified else None,
    )


def _elements(parent: Any, name: str) -> list[Any]:
    return [child for child in parent if _local(child) == name]


def _child_text(parent: Any, name: str) -> str:
    for child in parent:
        if _local(child) == name:
            return _text(child)
    return ""


def _local(element: Any) -> str:
    tag = element.tag
    if not isinstance(tag, str):  # an unresolved entity reference
        return ""
    return tag.rpartition("}")[2]


def _text(element: Any) -> str:
    return "".join(element.itertext()).strip()


def _date(text: str, zone: tzinfo) -> datetime | None:
    # A date without time or offset in a sitemap is a day in the site's zone.
    return parse_date(text, timezone=zone, now=datetime.now(UTC)) if text else None


def _plain(text: str) -> str:
    # Some CMSs escape titles twice (&amp;amp;) or leave markup in them, as feeds do.
    clean = html.unescape(_TAG.sub("", text))
    return unicodedata.normalize("NFC", " ".join(clean.split()))


def _keywords(text: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for word in _KEYWORD_SPLIT.split(text):
        clean = unicodedata.normalize("NFC", " ".join(word.split()))
        if clean:
            seen.setdefault(clean, None)
    return tuple(seen)
