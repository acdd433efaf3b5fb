"""Which feeds the fast parser may read: those it reads exactly as feedparser does.

fastfeedparser is some 30 times faster than feedparser, but it is a different reader: it takes
an enclosure or ``media:title`` for the entry's link or title, cuts titles at inline markup,
leaves base64 text encoded, loses XHTML content, reads ``&#146;`` as a control character, and
picks another of two dates. Measured against feedparser's own test corpus and ours, it agrees
on the plain shape almost every real feed has: RSS 2.0 or Atom 1.0, items made of the common
elements, text without markup in titles and names. :func:`fast_path_allowed` checks that shape in
one expat pass (the pass that also proves the document well-formed, which fastfeedparser would
otherwise repair silently) and stops at the first construct outside it; such a feed is read by
feedparser. Each refused construct has its test in ``tests/unit/test_feed_gate.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from xml.parsers import expat

__all__ = ["fast_path_allowed"]

_ATOM = "http://www.w3.org/2005/Atom"
_CONTENT = "http://purl.org/rss/1.0/modules/content/"
_DC = "http://purl.org/dc/elements/1.1/"
_MEDIA = "http://search.yahoo.com/mrss/"
_SEP = "\x01"

# What an entry may contain for the fast path, by (namespace, name): each was compared field by
# field with feedparser's reading. Everything else (foreign namespaces, RSS 1.0, Atom 0.3,
# iTunes, xhtml:body, media:title, dcterms...) is feedparser's.
_RSS_ITEM = frozenset(
    {
        "title",
        "link",
        "description",
        "guid",
        "pubDate",
        "category",
        "enclosure",
        "comments",
        f"{_CONTENT}{_SEP}encoded",
        f"{_DC}{_SEP}creator",
        f"{_MEDIA}{_SEP}content",
    }
)
_ATOM_ENTRY = frozenset(
    f"{_ATOM}{_SEP}{name}"
    for name in (
        "title",
        "link",
        "id",
        "updated",
        "published",
        "summary",
        "content",
        "author",
        "category",
    )
)
_ATOM_AUTHOR = frozenset(f"{_ATOM}{_SEP}{name}" for name in ("name", "email", "uri"))
# Elements an entry may repeat; of any other, the two parsers do not keep the same one.
_REPEATABLE = frozenset(
    {
        "category",
        f"{_ATOM}{_SEP}category",
        f"{_ATOM}{_SEP}link",
        f"{_MEDIA}{_SEP}content",
        "enclosure",
    }
)
# Names must be plain: markup, entities and "Name (address)" forms are read differently.
_NAMES = frozenset({f"{_DC}{_SEP}creator", f"{_ATOM}{_SEP}name"})
_ATOM_TEXT = frozenset(f"{_ATOM}{_SEP}{name}" for name in ("title", "summary", "content"))
# C1 controls, written as character references or as UTF-8: feedparser reads them as the cp1252
# characters a Windows editor meant (`&#146;` is ’), fastfeedparser as invisible controls.
_C1 = re.compile(rb"&#(?:0*1[2-5][0-9]|x0*[89][0-9a-f]);|\xc2[\x80-\x9f]", re.IGNORECASE)


class _Refused(Exception):
    """Raised from a handler: the document has a construct the fast path does not read right."""


# Entry children checked even without attributes (the common case needs no check at all).
_CHECKED = _NAMES | _ATOM_TEXT | {"link"}
_FEED = f"{_ATOM}{_SEP}feed"
_ENTRY = f"{_ATOM}{_SEP}entry"
_AUTHOR = f"{_ATOM}{_SEP}author"
_TITLE = f"{_ATOM}{_SEP}title"
_LINK = f"{_ATOM}{_SEP}link"


class _Gate:
    """The expat handlers. They run for every element of every feed polled, so they are written
    for speed: constants precomputed, the common case (a plain child of an entry) first."""

    def __init__(self) -> None:
        self.parser = expat.ParserCreate(namespace_separator=_SEP)
        self.parser.StartElementHandler = self.start
        self.parser.EndElementHandler = self.end
        self.depth = 0
        self.rss = True  # RSS 2.0, else Atom 1.0 (from the root)
        self.entry_name = "item"
        self.allowed = _RSS_ITEM
        self.entry_depth = 0  # depth of the open entry, 0 outside entries
        # Per entry: is its title HTML? Atom says so in its type; RSS does not (None):
        # feedparser guesses from the text, and so does feed.py.
        self.html_titles: list[bool | None] = []
        self.seen: set[str] = set()
        self.has_link = False
        self.guid_not_permalink = False
        self.in_text = False
        self.current = ""  # the entry's child element open now

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self.depth = depth = self.depth + 1
        entry_depth = self.entry_depth
        if entry_depth and depth == entry_depth + 1:
            seen = self.seen
            if name not in self.allowed:
                raise _Refused(f"{name!r} in an entry")
            if name in seen and name not in _REPEATABLE:
                raise _Refused(f"two {name!r} in an entry")
            seen.add(name)
            self.current = name
            if attrs or name in _CHECKED:
                self.check(name, attrs)
            return
        if entry_depth:
            if depth == entry_depth + 2 and self.current == _AUTHOR:
                if name not in _ATOM_AUTHOR:
                    raise _Refused(f"{name!r} in an author")
                if name in _NAMES:
                    self.watch(self.name_text)
                return
            raise _Refused(f"markup {name!r} inside an entry's element")
        if name == self.entry_name:
            if depth != (3 if self.rss else 2):  # rss/channel/item, feed/entry
                raise _Refused(f"an entry at depth {depth}")
            self.entry_depth = depth
            self.html_titles.append(None if self.rss else False)
            self.seen = set()
            self.has_link = False
            self.guid_not_permalink = False
        elif depth == 1:
            if name == _FEED:
                self.rss, self.entry_name, self.allowed = False, _ENTRY, _ATOM_ENTRY
            elif name != "rss":
                raise _Refused(f"root element {name!r}")

    def check(self, name: str, attrs: dict[str, str]) -> None:
        if name in _NAMES:
            self.watch(self.name_text)
        if self.rss:
            if name == "link":
                self.has_link = True
            elif name == "guid" and attrs.get("isPermaLink", "true") != "true":
                self.guid_not_permalink = True
        elif name in _ATOM_TEXT:
            kind = attrs.get("type", "text")
            if kind not in ("text", "html") or len(attrs) > 1:
                raise _Refused(f"{name!r} with {attrs}")
            if name == _TITLE:
                self.html_titles[-1] = kind == "html"
            elif kind == "text":
                # Text that fastfeedparser hands over as if it were markup.
                self.watch(self.plain_text)
        elif name == _LINK:
            rel = attrs.get("rel", "alternate")
            if "href" not in attrs:
                raise _Refused("a link without href")
            if rel == "alternate" and not self.has_link:
                self.has_link = True
            # An image enclosure after the article's link is read alike; an enclosure first
            # (or alone) is taken for the article's link by fastfeedparser.
            elif not (rel == "enclosure" and self.has_link):
                raise _Refused(f"a link with {attrs}")

    def watch(self, handler: Callable[[str], None]) -> None:
        self.parser.CharacterDataHandler = handler
        self.in_text = True

    def plain_text(self, data: str) -> None:
        if "<" in data or "&" in data:
            raise _Refused("markup or an entity in Atom text")

    def name_text(self, data: str) -> None:
        if "<" in data or "&" in data or "@" in data or "(" in data:
            raise _Refused("markup, an entity or an address in a name")

    def end(self, name: str) -> None:
        if self.in_text:
            self.parser.CharacterDataHandler = None
            self.in_text = False
        if self.depth == self.entry_depth:
            if self.guid_not_permalink and not self.has_link:
                raise _Refused("an entry whose only URL is a guid that is not a permalink")
            self.entry_depth = 0
        self.depth -= 1


def fast_path_allowed(body: bytes) -> list[bool | None] | None:
    """For each entry of the well-formed UTF-8 ``body``, whether its title is HTML (None: the
    feed does not say), when fastfeedparser reads it exactly as feedparser does; None when
    feedparser must read it (also when it is not well-formed)."""
    if b"xml:base" in body or _C1.search(body):
        return None
    gate = _Gate()
    try:
        gate.parser.Parse(body, True)
    except (_Refused, expat.ExpatError):
        return None
    return gate.html_titles
