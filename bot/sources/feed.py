"""RSS 0.9x/1.0/2.0, Atom and JSON Feed: bytes in, normalised :class:`~bot.model.Article` out.

The only module that knows ``feedparser`` and ``fastfeedparser``. fastfeedparser reads a
50-entry feed about 50 times faster, but it repairs broken XML without saying so, ignores
``xml:base`` and assumes UTF-8; so it only gets well-formed UTF-8 documents without
``xml:base``, and feedparser reads everything else (and whatever fastfeedparser fails on).
Both parsers' entries go through the same normalisation, and the tests hold them to giving
identical articles. JSON Feed is read here with :mod:`json`: feedparser 6 cannot read it.
"""

from __future__ import annotations

import calendar
import html
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from xml.parsers import expat

import fastfeedparser
import feedparser

from bot.config import FeedSourceConfig
from bot.errors import SourceError
from bot.links import canonical_url
from bot.model import Article
from bot.sources.base import PollResult, Source, SourceState
from bot.sources.fetch import Fetcher

__all__ = ["FeedSource", "parse_feed"]

_UTF8_NAMES = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
_XML_DECL_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_CHARSET = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9._-]+)""", re.IGNORECASE)
_HTML_START = re.compile(
    rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>]|head[\s>]|body[\s>])", re.I | re.S
)
# Only ASCII-led tags are stripped, so a title like 「AI < 人才」 or <經濟合作備忘錄> survives.
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
_AUTHOR_WITH_EMAIL = re.compile(r"^\s*\S+@\S+\s*\((.+)\)\s*$")


# ------------------------------------------------------------------------------------- the source


class FeedSource(Source):
    """A feed over HTTP(S) or from a file, fetched with conditional GET."""

    def __init__(
        self,
        config: FeedSourceConfig,
        fetcher: Fetcher,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(config.name)
        self.config = config
        self._fetcher = fetcher
        self._now = now

    async def poll(self, state: SourceState) -> PollResult:
        """One conditional GET; 304 → ``not_modified`` with the state unchanged."""
        result = await self._fetcher.get(
            self.config.url,
            etag=state.etag,
            last_modified=state.last_modified,
            max_bytes=self.config.max_bytes,
            timeout=self.config.timeout.total_seconds(),
        )
        if result.not_modified:
            return PollResult(state=state, not_modified=True)
        articles, warnings = parse_feed(
            result.body, base_url=result.url, now=self._now(), content_type=result.content_type
        )
        # A server that drops its validators must not leave us sending stale ones forever.
        new_state = SourceState(etag=result.etag, last_modified=result.last_modified)
        return PollResult(articles=tuple(articles), state=new_state, warnings=tuple(warnings))


# ----------------------------------------------------------------------------------- entry point


def parse_feed(
    body: bytes, *, base_url: str, now: datetime, content_type: str | None = None
) -> tuple[list[Article], list[str]]:
    """Articles in feed order, plus warnings; :class:`SourceError` when nothing is readable.

    ``base_url`` is the URL the feed was fetched from (after redirects): relative links resolve
    against it. ``now`` is the published time of entries that carry no date.
    """
    _reject_non_feed(body, content_type)
    if _looks_like_json(body, content_type):
        raws, warnings = _read_json_feed(body)
    else:
        raws, warnings = _read_xml_feed(body, content_type=content_type)
    articles: list[Article] = []
    for index, raw in enumerate(raws, start=1):
        article = _to_article(raw, base_url=base_url, now=now)
        if article is None:
            title = _plain_title(raw.title) or "(untitled)"
            warnings.append(f"entry {index} ({title}) has neither a link nor an id; skipped")
            continue
        articles.append(article)
    return articles, warnings


def _reject_non_feed(body: bytes, content_type: str | None) -> None:
    head = body[:2048]
    if not head.strip():
        raise SourceError("not a feed: the response was empty")
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SourceError("not a feed: the server sent binary data")
    if _HTML_START.match(head.removeprefix(b"\xef\xbb\xbf")):
        raise SourceError("not a feed: the server sent an HTML page")


def _looks_like_json(body: bytes, content_type: str | None) -> bool:
    if content_type and "json" in content_type.lower():
        return True
    return body.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"{"


# --------------------------------------------------------------------- one shape for every parser


@dataclass(slots=True)
class _RawEntry:
    """What a parser found for one entry, before normalisation; link/image may be relative."""

    id: str = ""
    link: str = ""
    title: str = ""
    summary_html: str = ""
    published: datetime | None = None
    author: str = ""
    categories: tuple[str, ...] = ()
    image: str = ""
    html_for_image: str = ""


def _to_article(raw: _RawEntry, *, base_url: str, now: datetime) -> Article | None:
    link = _absolute(raw.link, base_url) if raw.link.strip() else ""
    key = raw.id.strip()
    # A guid that merely repeats the link is a permalink: keyed canonically, a feed that rotates
    # its utm_* parameters cannot make the same article look new.
    if key and raw.link.strip() and key == raw.link.strip():
        key = link
    if not key:
        key = link
    if not key:
        return None
    image = raw.image.strip() or _first_img_src(raw.html_for_image)
    published = raw.published or now
    if published.tzinfo is None:
        published = published.replace(tzinfo=UTC)
    return Article(
        key=key,
        url=link or (canonical_url(key) if key.startswith(("http://", "https://")) else ""),
        title=_plain_title(raw.title),
        summary_html=unicodedata.normalize("NFC", raw.summary_html.strip()),
        published=published.astimezone(UTC).replace(microsecond=0),
        author=_author_name(raw.author),
        categories=_categories(raw.categories),
        image=_absolute(image, base_url) if image else None,
    )


def _absolute(url: str, base_url: str) -> str:
    # urljoin is most of canonical_url's cost and nearly every feed link is already absolute.
    if url.startswith(("http://", "https://")):
        return canonical_url(url)
    return canonical_url(url, base_url)


def _plain_title(title: str) -> str:
    # Feeds double-escape (`&amp;amp;`) or put markup in titles; both parsers hand these back
    # unchanged, so decoding here makes a title text whichever parser read it.
    text = html.unescape(_TAG.sub("", title))
    return unicodedata.normalize("NFC", " ".join(text.split()))


def _author_name(author: str) -> str | None:
    match = _AUTHOR_WITH_EMAIL.match(author)
    name = match.group(1) if match else author
    name = unicodedata.normalize("NFC", " ".join(html.unescape(name).split()))
    return name or None


def _categories(terms: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for term in terms:
        clean = unicodedata.normalize("NFC", " ".join(html.unescape(term).split()))
        if clean:
            seen.setdefault(clean, None)
    return tuple(seen)


class _FirstImage(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.src: str = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img" and not self.src:
            self.src = dict(attrs).get("src") or ""


def _first_img_src(markup: str) -> str:
    if "<img" not in markup.lower():
        return ""
    finder = _FirstImage()
    finder.feed(markup)
    finder.close()
    return finder.src.strip()


# ------------------------------------------------------------------------------------------- XML


def _read_xml_feed(body: bytes, *, content_type: str | None) -> tuple[list[_RawEntry], list[str]]:
    if _fast_path_allowed(body, content_type):
        try:
            parsed = fastfeedparser.parse(body)
        except Exception:  # any failure of the fast path is feedparser's to judge
            parsed = None
        if parsed is not None and parsed.get("entries"):
            return [_from_fast(entry) for entry in parsed["entries"]], []
    return _read_with_feedparser(body, content_type=content_type)


def _fast_path_allowed(body: bytes, content_type: str | None) -> bool:
    if b"xml:base" in body:
        return False
    if content_type:
        charset = _CHARSET.search(content_type)
        if charset and charset.group(1).lower() not in _UTF8_NAMES:
            return False
    declared = _XML_DECL_ENCODING.match(body.removeprefix(b"\xef\xbb\xbf")[:200])
    if declared and declared.group(1).decode("ascii").lower() not in _UTF8_NAMES:
        return False
    # fastfeedparser silently repairs broken XML; expat tells us it is broken so that feedparser
    # reads it and the source's owner hears about it.
    try:
        expat.ParserCreate().Parse(body, True)
    except expat.ExpatError:
        return False
    return True


def _from_fast(entry: Mapping[str, Any]) -> _RawEntry:
    link = _str(entry.get("link"))
    entry_id = _str(entry.get("id"))
    content = entry.get("content") or []
    summary = _str(content[0].get("value")) if content else ""
    summary = summary or _str(entry.get("description"))
    image = ""
    for enclosure in entry.get("enclosures") or []:
        if _str(enclosure.get("type")).startswith("image/") and enclosure.get("url"):
            image = _str(enclosure["url"])
            break
    if not image:
        image = _media_image(entry.get("media_content") or [])
    if not image:
        image = _enclosure_link(entry.get("links") or [])
    return _RawEntry(
        id=entry_id,
        link=link,
        title=_str(entry.get("title")),
        summary_html=summary,
        published=_iso_datetime(_str(entry.get("published")) or _str(entry.get("updated"))),
        author=_str(entry.get("author")),
        categories=tuple(_str(tag.get("term")) for tag in entry.get("tags") or []),
        image=image,
        html_for_image=summary,
    )


def _read_with_feedparser(
    body: bytes, *, content_type: str | None
) -> tuple[list[_RawEntry], list[str]]:
    # No content-location: feedparser would resolve Atom ids against it, so a key would change
    # when a feed moves. Links are made absolute against base_url in _to_article instead.
    headers = {
        # Without a type feedparser complains; application/xml lets the XML declaration decide
        # the charset, as RFC 7303 says for a document served without one.
        "content-type": content_type or "application/xml",
    }
    # Relative URIs and sanitising are off: summary_html stays as the site wrote it (it is only
    # ever turned into text), and both parsers then hand over the same HTML.
    parsed = feedparser.parse(
        body, response_headers=headers, resolve_relative_uris=False, sanitize_html=False
    )
    entries = parsed.get("entries") or []
    warnings: list[str] = []
    if parsed.get("bozo"):
        problem = parsed.get("bozo_exception")
        if not entries and not parsed.get("version"):
            raise SourceError(f"not a feed: {_describe(problem)}")
        warnings.append(f"the feed is malformed ({_describe(problem)}); read it leniently")
    elif not parsed.get("version") and not entries:
        raise SourceError("not a feed: no RSS, Atom or JSON Feed document found")
    return [_from_feedparser(entry) for entry in entries], warnings


def _describe(problem: object) -> str:
    text = str(problem or "").strip()
    return text.removeprefix("<unknown>:") or "unreadable"


def _from_feedparser(entry: Mapping[str, Any]) -> _RawEntry:
    content = entry.get("content") or []
    summary = _str(content[0].get("value")) if content else ""
    summary = summary or _str(entry.get("summary"))
    image = ""
    for enclosure in entry.get("enclosures") or []:
        if _str(enclosure.get("type")).startswith("image/") and enclosure.get("href"):
            image = _str(enclosure["href"])
            break
    if not image:
        image = _media_image(entry.get("media_content") or [])
    if not image:
        thumbnails = entry.get("media_thumbnail") or []
        image = _str(thumbnails[0].get("url")) if thumbnails else ""
    parsed_time = entry.get("published_parsed") or entry.get("updated_parsed")
    published = datetime.fromtimestamp(calendar.timegm(parsed_time), UTC) if parsed_time else None
    author = _str((entry.get("author_detail") or {}).get("name")) or _str(entry.get("author"))
    return _RawEntry(
        id=_str(entry.get("id")),
        link=_str(entry.get("link")),
        title=_str(entry.get("title")),
        summary_html=summary,
        published=published,
        author=author,
        categories=tuple(_str(tag.get("term")) for tag in entry.get("tags") or []),
        image=image,
        html_for_image=summary,
    )


def _media_image(media: Iterable[Mapping[str, Any]]) -> str:
    for item in media:
        kind = _str(item.get("type"))
        medium = _str(item.get("medium"))
        is_image = kind.startswith("image/") or medium == "image" or (not kind and not medium)
        if is_image and item.get("url"):
            return _str(item["url"])
    return ""


def _enclosure_link(links: Iterable[Mapping[str, Any]]) -> str:
    for link in links:
        if link.get("rel") == "enclosure" and _str(link.get("type")).startswith("image/"):
            return _str(link.get("href"))
    return ""


def _str(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _iso_datetime(value: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


# ------------------------------------------------------------------------------------ JSON Feed


def _read_json_feed(body: bytes) -> tuple[list[_RawEntry], list[str]]:
    try:
        document = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"not a feed: the JSON does not parse ({exc})") from exc
    version = document.get("version") if isinstance(document, dict) else None
    if not isinstance(version, str) or "jsonfeed.org" not in version:
        raise SourceError("not a feed: JSON without a jsonfeed.org version")
    items = document.get("items")
    if not isinstance(items, list):
        raise SourceError("not a feed: the JSON Feed has no items list")
    warnings: list[str] = []
    raws: list[_RawEntry] = []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            warnings.append(f"entry {index} is not a JSON object; skipped")
            continue
        raws.append(_from_json_item(item))
    return raws, warnings


def _from_json_item(item: Mapping[str, Any]) -> _RawEntry:
    content = _str(item.get("content_html"))
    if not content and item.get("content_text"):
        content = html.escape(_str(item["content_text"]), quote=False)
    if not content:
        content = html.escape(_str(item.get("summary")), quote=False)
    image = _str(item.get("image")) or _str(item.get("banner_image"))
    if not image:
        for attachment in item.get("attachments") or []:
            if isinstance(attachment, dict) and _str(attachment.get("mime_type")).startswith(
                "image/"
            ):
                image = _str(attachment.get("url"))
                break
    authors = item.get("authors") or ([item["author"]] if item.get("author") else [])
    author = next(
        (_str(a.get("name")) for a in authors if isinstance(a, dict) and a.get("name")), ""
    )
    tags = item.get("tags") or []
    return _RawEntry(
        # JSON Feed ids may be numbers; the spec says to treat them as strings.
        id=_str(item.get("id")),
        link=_str(item.get("url")) or _str(item.get("external_url")),
        title=_str(item.get("title")),
        summary_html=content,
        published=_iso_datetime(_str(item.get("date_published")))
        or _iso_datetime(_str(item.get("date_modified"))),
        author=author,
        categories=tuple(_str(tag) for tag in tags if isinstance(tag, str | int)),
        image=image,
        html_for_image=content,
    )
