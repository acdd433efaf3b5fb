"""RSS 0.9x/1.0/2.0, Atom and JSON Feed: bytes in, normalised :class:`~bot.model.Article` out.

One reader, two speeds. The only module that knows ``feedparser`` and ``fastfeedparser``
(besides the gate). fastfeedparser reads a 50-entry feed several times faster, but it is a
different reader: it repairs broken XML silently, ignores ``xml:base``, assumes UTF-8, and
misreads a list of constructs (:mod:`bot.sources.gate`). So it only gets well-formed UTF-8
documents the gate passes, and its entry count must match the gate's; feedparser reads
everything else (and whatever fastfeedparser fails on). Both parsers' entries go through the
same normalisation, and the tests (tests/fixtures/corpus) hold them to identical articles.
JSON Feed is read here with :mod:`json`: feedparser 6 cannot read it.

Feeds are hostile input. Before either parser sees a document it is made UTF-8 whatever it
claims (:func:`_as_utf8`: a Big5 feed labelled UTF-8 reads right, a bad byte in a UTF-8 feed is
one U+FFFD, both with an alarm) and its DTD is defused (:func:`_defuse_entities`:
entity-expansion and external-entity attacks are refused in microseconds, harmless entities
expanded). Entries are normalised defensively, each on its own (one that fails is skipped with
its reason, never the feed): only absolute http(s) links are posted (the entry's link, else a
guid/id that is one, ``isPermaLink`` respected; never one made up from a relative id), one page
listed under several URLs is read once, a date in the future becomes the first-seen time,
titles are text (markup reduced to text, scripts and comments gone), without control or
invisible characters, capped.
"""

from __future__ import annotations

import calendar
import codecs
import contextlib
import html
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from xml.parsers import expat
from xml.sax.saxutils import escape

import fastfeedparser
import feedparser

from bot.compose.excerpt import clean_text, html_to_text, one_line, shorten
from bot.config import FeedSourceConfig
from bot.errors import SourceError
from bot.links import absolute_url, canonical_url
from bot.model import MAX_TITLE, Article
from bot.sources.base import PollResult, Source, SourceState
from bot.sources.charset import Decoded, bom_codec, codec, decode, sniff_xml
from bot.sources.fetch import Fetcher
from bot.sources.gate import fast_path_allowed

__all__ = ["FeedReading", "FeedSource", "parse_feed", "read_feed"]

_UTF8_NAMES = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
_XML_DECL_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_CHARSET = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9._-]+)""", re.IGNORECASE)
_HTML_START = re.compile(
    rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>]|head[\s>]|body[\s>])", re.I | re.S
)
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
        reading = read_feed(
            result.body, base_url=result.url, now=self._now(), content_type=result.content_type
        )
        # A server that drops its validators must not leave us sending stale ones forever.
        new_state = SourceState(etag=result.etag, last_modified=result.last_modified)
        return PollResult(
            articles=tuple(reading.articles),
            state=new_state,
            warnings=tuple(reading.alarms + reading.warnings + reading.rejected),
            rejected=tuple(reading.rejected),
            alarms=tuple(reading.alarms),
        )


# ----------------------------------------------------------------------------------- entry point


def parse_feed(
    body: bytes,
    *,
    base_url: str,
    now: datetime,
    content_type: str | None = None,
    fast_path: bool = True,
) -> tuple[list[Article], list[str]]:
    """Articles in feed order, plus warnings; :class:`SourceError` when nothing is readable.

    ``base_url`` is the URL the feed was fetched from (after redirects): relative links resolve
    against it. ``now`` is the published time of entries that carry no date. ``fast_path``
    false reads with feedparser alone (the differential tests compare the two).
    """
    reading = read_feed(
        body, base_url=base_url, now=now, content_type=content_type, fast_path=fast_path
    )
    return reading.articles, reading.alarms + reading.warnings + reading.rejected


@dataclass(frozen=True, slots=True)
class FeedReading:
    """One reading of a feed: its articles, warnings, why the entries skipped were, and alarms:
    what its owner must hear of although every entry was read (an encoding guessed or repaired:
    the text of some entries may be wrong)."""

    articles: list[Article]
    warnings: list[str]
    rejected: list[str]
    alarms: list[str]


def read_feed(
    body: bytes,
    *,
    base_url: str,
    now: datetime,
    content_type: str | None = None,
    fast_path: bool = True,
) -> FeedReading:
    """:func:`parse_feed`, with the entries that could not be posted kept apart (``rejected``):
    one broken entry is skipped with its reason, and never costs the others."""
    raws, warnings, alarms = _read_entries(body, content_type=content_type, fast_path=fast_path)
    articles: list[Article] = []
    rejected: list[str] = []
    first_entry: dict[str, int] = {}
    for index, raw in enumerate(raws, start=1):
        if isinstance(raw, str):
            rejected.append(f"entry {index} cannot be read ({raw}); skipped")
            continue
        try:
            article = _to_article(raw, base_url=base_url, now=now)
            label = _shown(
                article.title
                if isinstance(article, Article)
                else _plain_title(raw.title, is_html=raw.title_is_html)
            )
        except Exception as exc:  # one entry's surprise (a URL urllib refuses...) is its own
            label = _shown(raw.title[:40])
            rejected.append(f"entry {index} ({label}) cannot be read ({_failure(exc)}); skipped")
            continue
        if isinstance(article, str):
            rejected.append(f"entry {index} ({label}) {article}; skipped")
            continue
        # The same page listed twice (two categories, a utm_* or http/https variant): once.
        same = first_entry.setdefault(_identity(article.url), index)
        if same != index:
            warnings.append(
                f"entry {index} ({label}) links to the same page as entry {same}; skipped"
            )
            continue
        stated = raw.published
        if stated is not None and stated.tzinfo is None:
            stated = stated.replace(tzinfo=UTC)
        if stated is not None and stated > now + _CLOCK_SKEW:
            warnings.append(
                f"entry {index} ({label}) is dated in the future ({stated.isoformat()}); "
                "taken as published when first seen"
            )
        articles.append(article)
    return FeedReading(articles, warnings, rejected, alarms)


def _failure(exc: Exception) -> str:
    return f"{type(exc).__name__}: {_clip(str(exc), 120)[1:-1]}"


def _read_entries(
    body: bytes, *, content_type: str | None, fast_path: bool = True
) -> tuple[list[_RawEntry | str], list[str], list[str]]:
    """What the document's entries say, before normalisation (or why one cannot be read),
    plus warnings and alarms (see :func:`_as_utf8`)."""
    _reject_non_feed(body, content_type)
    if _looks_like_json(body, content_type):
        raws, warnings = _read_json_feed(body)
        return raws, warnings, []
    body, content_type, warnings, alarms = _as_utf8(body, content_type)
    body = _defuse_entities(body)
    raws, more = _read_xml_feed(body, content_type=content_type, fast_path=fast_path)
    return raws, warnings + more, alarms


# A feed's clock may run a little ahead of ours; beyond this a future date is worth a warning.
_CLOCK_SKEW = timedelta(minutes=5)
# Titles are headlines: a feed that puts a whole article (or 1 MB of one word) there is cut.
_DERIVED_TITLE = 60


def _shown(title: str) -> str:
    if not title:
        return "(untitled)"
    return title if len(title) <= 40 else title[:40] + "…"


def _identity(url: str) -> str:
    """The page a canonical URL names, whatever the scheme: http and https of one host and path
    are one article. A site that moves to https does not make its guid-less entries new."""
    return "https://" + url[7:] if url.startswith("http://") else url


def _reject_non_feed(body: bytes, content_type: str | None) -> None:
    head = body[:2048]
    if not head.strip():
        raise SourceError("not a feed: the response was empty")
    if b"\x00" in head and bom_codec(head) is None and sniff_xml(head) is None:
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
    # The entry's own "last changed" (Atom <updated>, JSON Feed date_modified): with
    # enrichment on, a new one is the reason to read the article's page again.
    updated: datetime | None = None
    author: str = ""
    categories: tuple[str, ...] = ()
    image: str = ""
    html_for_image: str = ""
    # Whether the title is HTML (markup reduced to its text) or plain text (kept as written:
    # an Atom type="text" title may really say "<b>").
    title_is_html: bool = True
    # Whether an absolute http(s) id may stand for a missing link (not an RSS guid that says
    # isPermaLink="false"; feedparser has already put a permalink guid into the link).
    id_is_link: bool = True


def _to_article(raw: _RawEntry, *, base_url: str, now: datetime) -> Article | str:
    """The entry as an Article, or why it cannot be one (for the warning)."""
    given = clean_text(raw.link).strip()
    key = clean_text(raw.id).strip()
    if not given and raw.id_is_link and _is_web(key):
        given = key  # a guid that is a URL is the article's permalink
    link = _absolute(given, base_url) if given else ""
    # A guid that merely repeats the link is a permalink: keyed canonically, a feed that rotates
    # its utm_* parameters (or moves to https) cannot make the same article look new.
    if key and given and key == given:
        key = _identity(link)
    # javascript:, data:, mailto:, file:... are never posted. A feed read from a file may keep
    # file: links (relative ones resolve to file:), which is for trying newsbot out locally.
    if link and not (_is_web(link) or (link.startswith("file:") and base_url.startswith("file:"))):
        return f"links to {_clip(link)}, not to a web page"
    if not link:
        return "has no link to post" if key else "has neither a link nor an id"
    if not key:
        # Keyed by its link alone; a feed that changes its ids on every fetch is still
        # caught by the ledger, which knows every article's canonical URL too.
        key = _identity(link)
    image = clean_text(raw.image).strip() or _first_img_src(raw.html_for_image)
    image = absolute_url(image, base_url, allow=None) if image else ""
    # A future date would put the entry ahead of the queue and out of max_age's reach for as
    # long as it lies: it is taken as first seen now (parse_feed warns when it is far off).
    published = _stated_time(raw.published or raw.updated or now, now)
    # Updated when it was published is no change, only a later time is. An entry with an
    # update time alone (an Atom entry without <published>) has no "modified": its update time
    # is all it says of its publication, and the fast parser reads it as the published time.
    modified = _stated_time(raw.updated, now) if raw.updated else None
    if modified == published:
        modified = None
    # Cleaned as text is: a NUL would even be refused by PostgreSQL when the ledger stores it.
    summary_html = unicodedata.normalize("NFC", clean_text(raw.summary_html).strip())
    return Article(
        key=key,
        url=link,
        title=_plain_title(raw.title, is_html=raw.title_is_html) or _title_from(summary_html),
        summary_html=summary_html,
        published=published,
        author=_author_name(raw.author),
        categories=_categories(raw.categories),
        image=image if _is_web(image) else None,
        modified=modified,
    )


def _stated_time(value: datetime, now: datetime) -> datetime:
    """A time the feed states, as the ledger keeps times: aware, UTC, whole seconds, and
    never later than ``now``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return min(value, now).astimezone(UTC).replace(microsecond=0)


def _is_web(url: str) -> bool:
    # The scheme is case-insensitive (`HTTP://`); canonical_url writes it in lower case.
    return url[:8].lower().startswith(("http://", "https://")) and len(url) > len("https://")


def _clip(text: str, size: int = 80) -> str:
    return repr(text if len(text) <= size else text[:size] + "…")


def _title_from(summary_html: str) -> str:
    """A headline for an entry without one (a micro-post): the start of its text."""
    if not summary_html:
        return ""
    text = " ".join(html_to_text(summary_html).split())
    return shorten(text, _DERIVED_TITLE)


def _absolute(url: str, base_url: str) -> str:
    # urljoin is most of canonical_url's cost and nearly every feed link is already absolute.
    if url.startswith(("http://", "https://")):
        return canonical_url(url)  # also the case for _is_web's upper-case schemes
    return canonical_url(url, base_url)


def _plain_title(title: str, *, is_html: bool = True) -> str:
    """A title as one line of text: HTML (what feedparser found to be HTML) reduced to its text,
    script, style, comments and doctype gone with their content; plain text kept as written."""
    if is_html and ("<" in title or "&" in title):
        title = html_to_text(title)
    return one_line(title, MAX_TITLE)


def _author_name(author: str) -> str | None:
    match = _AUTHOR_WITH_EMAIL.match(author)
    name = match.group(1) if match else author
    name = one_line(html.unescape(name), 200)
    return name or None


def _categories(terms: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for term in terms:
        clean = one_line(html.unescape(term), 100)
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

# What a Taiwanese site that is not UTF-8 is written in: Big5 as Windows extended it (cp950),
# then Big5-HKSCS for Hong Kong's extra characters.
_LEGACY = ("cp950", "big5hkscs")
_DECL_ENCODING_TEXT = re.compile(
    r"""^(\s*<\?xml[^>]*?encoding\s*=\s*["'])([A-Za-z0-9._-]+)(["'])"""
)
_WIDE_UNICODE = ("utf-16", "utf-32")


def _as_utf8(
    body: bytes, content_type: str | None
) -> tuple[bytes, str | None, list[str], list[str]]:
    """The document as UTF-8 bytes saying so, whatever it was written in and whatever it claims,
    plus warnings, and alarms (a guess or a repair the source's owner should hear of).

    A BOM decides, then the first character of BOM-less UTF-16/32; else valid UTF-8 is UTF-8 (a
    Big5 or Latin-1 text that is also valid UTF-8 does not occur in practice, while servers that
    mislabel UTF-8 do); else the charset of the Content-Type, then of the XML declaration, else
    UTF-8, with U+FFFD for a few invalid bytes (:func:`~bot.sources.charset.decode`); only a
    document that is not in it at all is read as Big5. What nothing decodes is left as it is,
    for feedparser's own repairs. Both parsers then read one encoding, and the fast one can be
    used.
    """
    header_match = _CHARSET.search(content_type or "")
    header_name = header_match.group(1) if header_match else None
    marked = bom_codec(body) or sniff_xml(body)
    head = body[:400]
    if marked and marked.startswith(_WIDE_UNICODE):
        with contextlib.suppress(UnicodeDecodeError):
            head = body[:1600].decode(marked, "ignore").encode("utf-8")
    decl_match = _XML_DECL_ENCODING.match(head.removeprefix(codecs.BOM_UTF8)[:200])
    decl_name = decl_match.group(1).decode("ascii") if decl_match else None
    claimed_name = header_name or decl_name
    claimed = codec(claimed_name)
    if claimed and claimed.startswith(_WIDE_UNICODE) and not marked:
        claimed = None  # a label saying UTF-16 on a document that starts with an ASCII "<"
    warnings: list[str] = []
    alarms: list[str] = []

    decoded = None
    if marked:
        decoded = decode(body, marked)
    if decoded is None:
        with contextlib.suppress(UnicodeDecodeError):
            decoded = Decoded(body.decode("utf-8"), "utf-8")
    if decoded is None:
        primary = claimed if claimed and not claimed.startswith(_WIDE_UNICODE) else "utf-8"
        fallbacks = tuple(c for c in (codec(decl_name), *_LEGACY) if c)
        decoded = decode(body, primary, fallbacks)
    if decoded is None:
        if claimed in (None, "utf-8"):
            return body, content_type, warnings, alarms
        alarms.append(f"the feed is not valid {claimed_name}; read as feedparser sees fit")
        return body, content_type, warnings, alarms
    used = decoded.encoding
    if decoded.bad_offset is not None:
        alarms.append(
            f"the feed is not valid {used} at byte {decoded.bad_offset} "
            f"({decoded.bad_count} invalid sequence(s)); read as {used}, each replaced by U+FFFD"
        )
    elif (
        used.removesuffix("-sig") != (claimed or "utf-8")
        and not used.startswith(_WIDE_UNICODE)
        and not body.isascii()
    ):
        said = f"says it is {claimed_name}" if claimed_name else "declares no encoding"
        alarms.append(f"the feed {said} but is written in {used}; read as {used}")
    if used == "utf-8" and claimed in (None, "utf-8") and decoded.bad_offset is None:
        return body, content_type, warnings, alarms  # the common case: nothing to rewrite
    text = _DECL_ENCODING_TEXT.sub(r"\g<1>utf-8\g<3>", decoded.text.removeprefix("\ufeff"), count=1)
    if content_type and header_match:
        content_type = (
            content_type[: header_match.start(1)] + "utf-8" + content_type[header_match.end(1) :]
        )
    return text.encode("utf-8"), content_type, warnings, alarms


class _PrologRead(Exception):
    """Raised from expat's start-element handler: the DTD, if any, is behind us."""


# How much text the declared entities of one document may expand to, all references together.
# A feed that declares `&nbsp;` and uses it a thousand times is far below; an expansion attack
# (one 50 KB entity referenced 100 000 times, 5 GB) is far above.
_MAX_ENTITY_EXPANSION = 1024 * 1024
_ENTITY_REF = re.compile(rb"&([^\s&;<>\"'#][^\s&;<>\"']*);")
_PREDEFINED = frozenset({"amp", "lt", "gt", "quot", "apos"})


def _defuse_entities(body: bytes) -> bytes:
    """The document with its own entities expanded and its DOCTYPE gone, or SourceError when
    its DTD could make a parser expand text without bound.

    Entity declarations are read with expat's EntityDeclHandler (the technique defusedxml uses)
    and the parse stops at the root element, so this costs a scan of the prolog. Refused: a
    parameter entity, an external entity (SYSTEM / PUBLIC: no parser may read a file or URL a
    feed names), an entity whose text refers to other entities (the nesting of "billion
    laughs"), and entities whose references add up to more than ``_MAX_ENTITY_EXPANSION``
    characters (the "quadratic blowup"). expat (≥ 2.4) would stop most of these by itself, but
    only after 8 MiB and a second or more of work per poll, and feedparser's lenient fallback
    then still reads the entries, with entity names as their text.

    What is left (``<!ENTITY nbsp "&#160;">``, ``<!ENTITY 報社 "新聞視界時報">``) is expanded
    here, as text: neither parser reads a document's own entities faithfully (fastfeedparser
    drops the text around them, feedparser keeps only ASCII-named ones, mangled).
    """
    if b"<!ENTITY" not in body:
        return body
    values: dict[str, str] = {}
    doctype: list[int] = []

    def declared(name: str, is_parameter: bool, value: str | None, *rest: str | None) -> None:
        _base, system_id, public_id, _notation = rest
        what = f"the feed declares {'a parameter' if is_parameter else 'an'} XML entity {name!r}"
        if is_parameter:
            raise SourceError(f"refused: {what}; a feed has no use for one")
        if value is None:
            raise SourceError(
                f"refused: {what} that points outside the document "
                f"({_clip(system_id or public_id or '')}), an external-entity attack"
            )
        if "&" in value:
            raise SourceError(
                f"refused: {what} that expands into other entities, an entity-expansion "
                '("billion laughs") attack'
            )
        values.setdefault(name, value)  # the first declaration binds, as in XML

    def doctype_start(*_: object) -> None:
        doctype.append(body.rfind(b"<!DOCTYPE", 0, parser.CurrentByteIndex + 1))

    def doctype_end() -> None:
        doctype.append(body.index(b">", parser.CurrentByteIndex) + 1)

    def root(*_: object) -> None:
        raise _PrologRead

    parser = expat.ParserCreate()
    parser.EntityDeclHandler = declared
    parser.StartDoctypeDeclHandler = doctype_start
    parser.EndDoctypeDeclHandler = doctype_end
    parser.StartElementHandler = root
    try:
        parser.Parse(body, True)
    except _PrologRead:
        pass
    except expat.ExpatError as exc:
        # A broken prolog that declares entities: feedparser's lenient reader would keep some
        # of them without our limits. Nothing honest needs both.
        raise SourceError(
            f"refused: the feed declares XML entities and its DTD does not parse ({exc})"
        ) from exc
    values = {name: value for name, value in values.items() if name not in _PREDEFINED}
    if not values:
        return body
    expansion = 0
    replacements: dict[bytes, bytes] = {}
    for raw in _ENTITY_REF.findall(body):
        value = values.get(raw.decode("utf-8", "replace"))
        if value is None:
            continue
        expansion += len(value)
        if expansion > _MAX_ENTITY_EXPANSION:
            raise SourceError(
                f"refused: the feed's XML entities would expand to more than "
                f"{_MAX_ENTITY_EXPANSION} characters, an entity-expansion attack"
            )
        replacements[raw] = escape(value, {'"': "&quot;"}).encode("utf-8")
    if len(doctype) == 2 and 0 <= doctype[0] < doctype[1]:
        body = body[: doctype[0]] + body[doctype[1] :]
    return _ENTITY_REF.sub(lambda m: replacements.get(m.group(1), m.group()), body)


def _read_xml_feed(
    body: bytes, *, content_type: str | None, fast_path: bool = True
) -> tuple[list[_RawEntry | str], list[str]]:
    if fast_path:
        html_titles = _fast_path_allowed(body, content_type)
        if html_titles:
            try:
                parsed = fastfeedparser.parse(body)
            except Exception:  # any failure of the fast path is feedparser's to judge
                parsed = None
            entries = parsed.get("entries") if parsed is not None else None
            # An entry the fast parser dropped or invented: feedparser reads the feed instead.
            if entries and len(entries) == len(html_titles):
                return [
                    _guarded(_from_fast, entry, html_title=html)
                    for entry, html in zip(entries, html_titles, strict=True)
                ], []
    return _read_with_feedparser(body, content_type=content_type)


def _fast_path_allowed(body: bytes, content_type: str | None) -> list[bool | None] | None:
    """Per entry, whether its title is HTML (None: not said), when fastfeedparser reads ``body`` as
    feedparser would; else None.

    fastfeedparser assumes UTF-8, so the document must not say otherwise; the rest is
    :func:`~bot.sources.gate.fast_path_allowed`'s to judge."""
    if content_type:
        charset = _CHARSET.search(content_type)
        if charset and charset.group(1).lower() not in _UTF8_NAMES:
            return None
    declared = _XML_DECL_ENCODING.match(body.removeprefix(b"\xef\xbb\xbf")[:200])
    if declared and declared.group(1).decode("ascii").lower() not in _UTF8_NAMES:
        return None
    return fast_path_allowed(body)


def _from_fast(entry: Mapping[str, Any], *, html_title: bool | None) -> _RawEntry:
    link = _str(entry.get("link"))
    entry_id = _str(entry.get("id"))
    title = _str(entry.get("title"))
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
        title=title,
        summary_html=summary,
        published=_iso_datetime(_str(entry.get("published"))),
        updated=_iso_datetime(_str(entry.get("updated"))),
        author=_str(entry.get("author")),
        categories=tuple(_str(tag.get("term")) for tag in entry.get("tags") or []),
        image=image,
        html_for_image=summary,
        # Atom says which (the gate found out); RSS leaves it to the reader, and feedparser's
        # own guess is the one to make.
        title_is_html=(
            _looks_like_html(title) or _has_hidden_markup(title)
            if html_title is None
            else html_title
        ),
    )


# What no RSS headline means as text, though feedparser's guess calls the title plain: a script
# or style element, a comment, a doctype. Such a title is read as HTML, and they go with their
# content. (An Atom or JSON Feed title that says it is text is kept as written.)
_HIDDEN_MARKUP = re.compile(r"<(?:script|style)[\s>/]|<!--|<!doctype", re.IGNORECASE)


def _has_hidden_markup(text: str) -> bool:
    return "<" in text and _HIDDEN_MARKUP.search(text) is not None


def _looks_like_html(text: str) -> bool:
    return bool(feedparser.mixin._FeedParserMixin.looks_like_html(text))


def _read_with_feedparser(
    body: bytes, *, content_type: str | None
) -> tuple[list[_RawEntry | str], list[str]]:
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
    atom = _str(parsed.get("version")).startswith("atom")
    return [_guarded(_from_feedparser, entry, atom=atom) for entry in entries], warnings


def _guarded(
    read: Callable[..., _RawEntry], entry: Mapping[str, Any], **extra: Any
) -> _RawEntry | str:
    """One entry read, or why it could not be (a value no parser should have produced)."""
    try:
        return read(entry, **extra)
    except Exception as exc:  # one entry's surprise is its own, never the feed's
        return _failure(exc)


# What feedparser calls markup; any other type (text/plain, a base64 application/* it decoded) is
# text as written.
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


def _describe(problem: object) -> str:
    text = str(problem or "").strip()
    return text.removeprefix("<unknown>:") or "unreadable"


def _from_feedparser(entry: Mapping[str, Any], *, atom: bool) -> _RawEntry:
    content = entry.get("content") or []
    summary = _str(content[0].get("value")) if content else ""
    detail = content[0] if summary else entry.get("summary_detail") or {}
    summary = summary or _str(entry.get("summary"))
    if _str(detail.get("type") or "text/html") not in _HTML_TYPES:
        summary = html.escape(summary, quote=False)  # text that says "a < b" is not markup
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
    parsed_time = entry.get("published_parsed") or entry.get("created_parsed")
    published = datetime.fromtimestamp(calendar.timegm(parsed_time), UTC) if parsed_time else None
    # feedparser's get() answers "updated_parsed" with the published time when the entry has
    # none (`in` does not): only an update time the entry states is asked for.
    updated_time = entry["updated_parsed"] if "updated_parsed" in entry else None  # noqa: SIM401
    updated = datetime.fromtimestamp(calendar.timegm(updated_time), UTC) if updated_time else None
    author = _str((entry.get("author_detail") or {}).get("name")) or _str(entry.get("author"))
    link = _str(entry.get("link"))
    if entry.get("guidislink") and link == _str(entry.get("id")) and not _is_web(link):
        link = ""  # feedparser's guess that a guid like "newsvision-12345" is a link: it is not
    title_type = _str((entry.get("title_detail") or {}).get("type"))
    title = _str(entry.get("title"))
    return _RawEntry(
        id=_str(entry.get("id")),
        link=link,
        title=title,
        summary_html=summary,
        published=published,
        updated=updated,
        author=author,
        categories=tuple(_str(tag.get("term")) for tag in entry.get("tags") or []),
        image=image,
        html_for_image=summary,
        title_is_html=title_type in _HTML_TYPES or (not atom and _has_hidden_markup(title)),
        # An RDF item's rdf:about or an Atom id without a link (guidislink is set);
        # a guid that says isPermaLink="false" is not one (guidislink is false).
        id_is_link=bool(entry.get("guidislink", True)),
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


def _read_json_feed(body: bytes) -> tuple[list[_RawEntry | str], list[str]]:
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
    raws: list[_RawEntry | str] = []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            warnings.append(f"entry {index} is not a JSON object; skipped")
            continue
        raws.append(_guarded(_from_json_item, item))
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
        # JSON Feed titles are plain text: "使用 <script> 標籤" is what it says. Entities are
        # decoded all the same: a CMS that escaped its titles twice is common enough.
        title=html.unescape(_str(item.get("title"))),
        title_is_html=False,
        summary_html=content,
        published=_iso_datetime(_str(item.get("date_published"))),
        updated=_iso_datetime(_str(item.get("date_modified"))),
        author=author,
        categories=tuple(_str(tag) for tag in tags if isinstance(tag, str | int)),
        image=image,
        html_for_image=content,
    )
