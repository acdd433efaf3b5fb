"""Bluesky rich text, as pure functions: links shown short, and facets by UTF-8 byte offsets.

A Bluesky post carries no markup. Its ``text`` is plain and its links, hashtags and mentions are
*facets*: byte ranges of the UTF-8 encoded text with a feature attached (a link's URI, a tag, a
mention's DID) — https://docs.bsky.app/docs/advanced-guides/post-richtext. The ranges count
bytes, not code points: in ``高雄 https://…`` the link starts at byte 7, not at character 3.

Links are shown as the Bluesky app shows a link it shortens (social-app
``src/lib/strings/url-helpers.ts`` ``toShortUrl``): the host, then at most 13 characters of path,
query and fragment followed by ``...`` once they are longer than 15. The facet keeps the whole
URL, so the reader's click lands on the exact article link; only the visible text is short, and
that is also what Bluesky counts against its 300 graphemes.

URLs are found as twitter-text finds them (scheme required), which stops at CJK punctuation
such as ``。`` and ``」`` after a link; hashtags and mentions as the app's detector finds them
(``packages/api/src/rich-text/detection.ts``): after the start of the text or a space.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import regex

from bot.compose import length

SHORT_PATH = 15  # a longer path, query and fragment is cut...
SHORT_KEEP = 13  # ...to this many characters, then "..."
MAX_TAG_GRAPHEMES = 64

# Bluesky's tag rule: after the start or a space, `#` or `＃`, then no space; not only digits;
# trailing punctuation is not part of the tag.
_TAG = regex.compile(r"(?:^|(?<=\s))[#＃]([^\s\u00ad\u2060\u200a\u200b\u200c\u200d\u20e2]+)")
_TRAILING_PUNCT = regex.compile(r"\p{P}+$")
_ONLY_DIGITS = regex.compile(r"^[\p{N}_]+$")
# A handle is a domain name: labels of letters, digits and hyphens, a letter-led last label.
_MENTION = regex.compile(
    r"(?:^|(?<=[\s(]))@(([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)"
)

Kind = Literal["link", "tag", "mention"]


@dataclass(frozen=True, slots=True)
class Span:
    """One facet of the display text: ``start``/``end`` in code points, ``byte_start`` and
    ``byte_end`` in UTF-8 bytes, and the value (the full URI, the tag without ``#``, the handle
    without ``@``)."""

    kind: Kind
    start: int
    end: int
    byte_start: int
    byte_end: int
    value: str


@dataclass(frozen=True, slots=True)
class RichText:
    """The text as Bluesky will show it, and its facets in order."""

    text: str
    spans: tuple[Span, ...]

    def links(self) -> tuple[Span, ...]:
        return tuple(s for s in self.spans if s.kind == "link")


def short_url(url: str) -> str:
    """How the Bluesky app shows ``url``: ``news.example.tw/article/2...``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return url
    path = "" if parts.path == "/" else parts.path
    if parts.query:
        path += "?" + parts.query
    if parts.fragment:
        path += "#" + parts.fragment
    if len(path) > SHORT_PATH:
        return parts.netloc + path[:SHORT_KEEP] + "..."
    return parts.netloc + path


def url_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) in code points of each URL with an http(s) scheme, as twitter-text finds
    them (through the length module's chunked, cached extraction)."""
    if "://" not in text:
        return []
    return [
        (start, end)
        for start, end in length.url_spans(text)
        if text[start : start + 8].lower().startswith(("http://", "https://"))
    ]


@functools.lru_cache(maxsize=1024)
def display(text: str) -> RichText:
    """``text`` with its links shortened for display, and every link, tag and mention facet
    with its byte offsets in the shortened text."""
    pieces: list[str] = []
    links: list[tuple[int, int, str]] = []
    pos = 0
    out = 0
    for start, end in url_spans(text):
        pieces.append(text[pos:start])
        out += start - pos
        uri = text[start:end]
        shown = short_url(uri)
        pieces.append(shown)
        links.append((out, out + len(shown), uri))
        out += len(shown)
        pos = end
    pieces.append(text[pos:])
    shown_text = "".join(pieces)
    taken = [(a, b) for a, b, _ in links]
    raw: list[tuple[Kind, int, int, str]] = [("link", a, b, uri) for a, b, uri in links]
    for match in _TAG.finditer(shown_text):
        tag = _TRAILING_PUNCT.sub("", match.group(1))
        if not tag or _ONLY_DIGITS.match(tag) or len(regex.findall(r"\X", tag)) > MAX_TAG_GRAPHEMES:
            continue
        start = match.start()
        end = match.start(1) + len(tag)
        if not _overlaps(start, end, taken):
            raw.append(("tag", start, end, tag))
    for match in _MENTION.finditer(shown_text):
        start, end = match.start(), match.end(1)
        if not _overlaps(start, end, taken):
            raw.append(("mention", start, end, match.group(1).lower()))
    raw.sort(key=lambda item: item[1])
    return RichText(shown_text, tuple(_with_bytes(shown_text, raw)))


def _overlaps(start: int, end: int, taken: list[tuple[int, int]]) -> bool:
    return any(start < b and a < end for a, b in taken)


def _with_bytes(text: str, raw: list[tuple[Kind, int, int, str]]) -> list[Span]:
    spans = []
    for kind, start, end, value in raw:
        byte_start = len(text[:start].encode("utf-8"))
        byte_end = byte_start + len(text[start:end].encode("utf-8"))
        spans.append(Span(kind, start, end, byte_start, byte_end, value))
    return spans


__all__ = ["RichText", "Span", "display", "short_url", "url_spans"]
