"""Article HTML to plain text, and plain text to an excerpt that ends where a reader expects.

Where an excerpt is cut, in order of preference (each taken only if it keeps about half the
budget, else the next is tried):

1. after a sentence end (``。！？!?``, with any closing quote or bracket right after, ``。」``).
   No ellipsis follows: a Chinese teaser that stops at ``。`` reads as a finished statement, and
   the link beside it already says there is more. ``。…`` would look like a typo.
2. at a clause end (``，、；：`` and ``,;:`` before a space). The clause mark is dropped and
   ``…`` added: ``…攜手打造新創…`` reads naturally, ``，…`` does not.
3. at a word boundary: between any two Han / kana characters (Chinese has no spaces, every
   character boundary is a word boundary), or at a space or script change in Latin text.
4. at any grapheme-cluster boundary.

Never inside a grapheme cluster (a ZWJ family emoji, a flag, a letter with combining marks) and
never inside a URL. Dangling opening brackets, quotes and spaces before the ``…`` are dropped.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser

import regex

from bot.compose.length import url_spans

_DROP_CONTENT = frozenset({"script", "style", "noscript", "template", "head", "title"})
_BLOCK = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "caption", "dd", "details", "dialog",
        "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2",
        "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre",
        "section", "summary", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
    }
)  # fmt: skip


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._dropping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP_CONTENT:
            self._dropping += 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/> and friends: a self-closing tag has no content to drop.
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP_CONTENT:
            self._dropping = max(0, self._dropping - 1)
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._dropping:
            self.parts.append(data)


_GRAPHEME = regex.compile(r"\X")
# Characters whose Grapheme_Cluster_Break is Other, Control or LF: printable ASCII, Latin
# letters and spacing modifiers, general punctuation (without ZWNJ/ZWJ), CJK symbols and
# ideographs (without the combining tone marks U+302A-302F and kana voicing marks U+3099-309A),
# Hangul syllables (no conjoining jamo), compatibility ideographs, vertical and small forms,
# full-width forms (without the half-width voicing marks U+FF9E-FF9F). A text made only of
# these has a cluster boundary between every two code points, so the \X pass (the costliest
# part of analysing a Chinese excerpt) can be skipped; a property test checks it against \X.
_ONE_CODE_POINT_CLUSTERS = regex.compile(
    "[\n\x20-\x7e\u00a0-\u02ff\u2000-\u200b\u2010-\u206f\u2e80-\u3029\u3030-\u3098"
    "\u309b-\u9fff\uac00-\ud7a3\uf900-\ufaff\ufe10-\ufe1f\ufe30-\ufe4f\uff01-\uff9d"
    "\uffe0-\uffee]*"
)

# Characters that never belong in a post: C0/C1 controls (tab and newline are whitespace and
# dealt with by the callers), and invisible format characters a CMS or an attacker leaves in
# text: bidi embeddings, overrides and isolates (an unclosed RLO turns the rest of a post, link
# included, backwards), LRM/RLM/ALM, zero-width space, word joiner, invisible operators,
# deprecated format controls, soft hyphen, Mongolian vowel separator, interlinear annotation
# and the BOM. Joiners and tag characters are judged per grapheme cluster (:func:`clean_text`).
_REMOVE = (
    "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b\u200e\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
)
_JOINERS = "\u200c\u200d\U000e0000-\U000e007f"
_SUSPECT = re.compile(f"[{_REMOVE}{_JOINERS}\r\u2028\u2029]")
_REMOVABLE = re.compile(f"[{_REMOVE}]")
_JOINER = re.compile(f"[{_JOINERS}]")
_LINE_BREAKS = re.compile(r"\r\n?|[\u2028\u2029]")
_ZWJ, _ZWNJ, _BLACK_FLAG = "\u200d", "\u200c", "\U0001f3f4"
# Scripts where a zero-width (non-)joiner shapes letters (Arabic, Indic...); in Han, Latin,
# kana, Hangul or punctuation it does nothing visible and only splits words and searches.
_JOINER_INERT = regex.compile(
    r"[\p{Han}\p{Latin}\p{Common}\p{Inherited}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Bopomofo}]"
)
_PICTOGRAPHIC = regex.compile(r"\p{Extended_Pictographic}|\p{Regional_Indicator}")


def one_line(text: str, limit: int) -> str:
    """NFC text on one line, without control or invisible characters (:func:`clean_text`),
    cut to ``limit`` code points at a grapheme boundary: what a title or a name must be."""
    text = unicodedata.normalize("NFC", " ".join(clean_text(text).split()))
    return text if len(text) <= limit else shorten(text, limit)


def clean_text(text: str) -> str:
    """``text`` without the characters that break or disguise a post (see ``_REMOVE``); line
    breaks become ``\\n``. ZWJ is kept inside emoji sequences (👨‍👩‍👧, 🧑🏽‍💻) and in scripts
    that shape with it, tag characters only inside subdivision flags (🏴󠁧󠁢󠁷󠁬󠁳󠁿); elsewhere they
    are invisible payload and go. Text without any of these is returned as is, quickly."""
    if not _SUSPECT.search(text):
        return text
    text = _LINE_BREAKS.sub("\n", text)
    text = _REMOVABLE.sub("", text)
    if not _JOINER.search(text):
        return text
    return "".join(map(_clean_cluster, _GRAPHEME.findall(text)))


def _clean_cluster(cluster: str) -> str:
    if not _JOINER.search(cluster):
        return cluster
    pictographic = bool(_PICTOGRAPHIC.search(cluster))
    shaping = not pictographic and not _JOINER_INERT.match(cluster)
    kept = []
    for char in cluster:
        if char == _ZWJ:
            keep = pictographic or shaping
        elif char == _ZWNJ:
            keep = shaping
        elif "\U000e0000" <= char <= "\U000e007f":
            keep = cluster.startswith(_BLACK_FLAG)
        else:
            keep = True
        if keep:
            kept.append(char)
    # In an emoji cluster a ZWJ at the end joins nothing (the sequence was cut short). In
    # shaping scripts the joiner always ends its cluster, as it affects the next letter.
    while pictographic and kept and kept[-1] == _ZWJ:
        kept.pop()
    return "".join(kept)


_SPACES = re.compile(r"[^\S\n]+")
_NEWLINES = re.compile(r" *\n[\s]*")


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML fragment: block elements become line breaks, script and
    style vanish, entities are decoded, invisible and control characters dropped
    (:func:`clean_text`), whitespace collapsed, NFC, stripped."""
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    text = clean_text("".join(parser.parts))
    text = _SPACES.sub(" ", text)
    text = _NEWLINES.sub("\n", text)
    return unicodedata.normalize("NFC", text).strip()


_WIDE = frozenset("WF")


def _join_line(match: re.Match[str]) -> str:
    """Lines join with nothing between CJK text (it has no spaces), else with one space."""
    text = match.string
    before = text[match.start() - 1] if match.start() else ""
    after = text[match.end()] if match.end() < len(text) else ""
    if (
        before
        and after
        and (
            unicodedata.east_asian_width(before) in _WIDE
            or unicodedata.east_asian_width(after) in _WIDE
        )
    ):
        return ""
    return " "


_ANY_SPACE = re.compile(r"\s*\n\s*|\s+")


def _one_paragraph(text: str) -> str:
    return _ANY_SPACE.sub(lambda m: _join_line(m) if "\n" in m.group() else " ", text).strip()


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def build_excerpt(html: str, *, strip: Sequence[str] = (), length: int = 160) -> str:
    """The article's excerpt: plain text without the ``strip`` patterns (bylines and the like),
    as one paragraph, shortened to ``length`` code points."""
    text = html_to_text(html)
    for pattern in strip:
        text = _compiled(pattern).sub("", text)
    return shorten(_one_paragraph(text), length)


_SENTENCE_END = re.compile(r"[。！？!?]+[」』”’）)】\]]*|(?<=[A-Za-z0-9])\.[”’)]*(?=\s)")
_CLAUSE_END = re.compile(r"[，、；：]|[,;:](?=\s)")
_WORD_RUN = regex.compile(r"[\p{Latin}\p{Greek}\p{Cyrillic}\p{Hangul}\p{N}\p{M}_'’]+")
# Trimmed from the end of a cut before the ellipsis: an opening bracket or quote with nothing
# after it, a clause mark, or a space.
_DANGLING = " \t\n\u3000「『“‘（(【[《〈，、；：,;:-—"


_SPACE = re.compile(r"\s")


@dataclass(frozen=True, slots=True)
class _Cuts:
    """Where one text may be cut. Ends are exclusive; all tuples ascend."""

    boundaries: tuple[int, ...]  # grapheme-cluster boundaries outside URLs, from 0
    sentence: tuple[int, ...]  # kept ends after a sentence end (closing quote included)
    clause: tuple[int, ...]  # kept ends before a clause mark (the mark is dropped)
    word_starts: tuple[int, ...]  # runs of space-separated-script letters: no cut inside
    word_ends: tuple[int, ...]

    def is_boundary(self, k: int) -> bool:
        i = bisect.bisect_left(self.boundaries, k)
        return i < len(self.boundaries) and self.boundaries[i] == k

    def inside_word(self, k: int) -> bool:
        i = bisect.bisect_left(self.word_starts, k) - 1
        return i >= 0 and self.word_ends[i] > k


def _kept_end(text: str, end: int) -> int:
    """End of the kept text once dangling marks before ``end`` are dropped."""
    while end > 0 and text[end - 1] in _DANGLING:
        end -= 1
    return end


@functools.lru_cache(maxsize=2048)
def _analyse(text: str) -> _Cuts:
    """The cut candidates of ``text``, computed once: fitting asks for many budgets. Word and
    grapheme cuts are found at query time by walking back, which touches only a few."""
    if _ONE_CODE_POINT_CLUSTERS.fullmatch(text):
        boundaries = list(range(len(text) + 1))
    else:
        boundaries = [0, *itertools.accumulate(map(len, _GRAPHEME.findall(text)))]
    spans = url_spans(text)
    for start, end in spans:
        boundaries = [b for b in boundaries if not start < b < end]
    cuts = _Cuts(tuple(boundaries), (), (), (), ())
    sentence = sorted({m.end() for m in _SENTENCE_END.finditer(text) if cuts.is_boundary(m.end())})
    clause = sorted(
        {
            k
            for m in _CLAUSE_END.finditer(text)
            if cuts.is_boundary(m.start()) and (k := _kept_end(text, m.start()))
        }
    )
    runs = [(m.start(), m.end()) for m in _WORD_RUN.finditer(text)]
    return _Cuts(
        cuts.boundaries,
        tuple(sentence),
        tuple(clause),
        tuple(s for s, _ in runs),
        tuple(e for _, e in runs),
    )


def _longest(cuts: tuple[int, ...], weights: Sequence[int], budget: int) -> int:
    """The longest cut whose kept text weighs at most ``budget`` (0 when none does)."""
    i = bisect.bisect_right(cuts, budget, key=weights.__getitem__)
    return cuts[i - 1] if i else 0


def shorten(
    text: str,
    budget: int,
    weights: Sequence[int] | None = None,
    ellipsis: str = "…",
    *,
    ellipsis_weight: int | None = None,
) -> str:
    """``text`` unchanged if it weighs at most ``budget``, else cut (see the module docstring)
    so that the cut plus its ellipsis weighs at most ``budget``; ``""`` when nothing fits.

    ``weights`` is cumulative (``weights[i]`` weighs ``text[:i]``, one entry more than the text
    has code points), e.g. :func:`bot.compose.length.prefix_weights`; by default one per code
    point. ``ellipsis_weight`` defaults to one per code point of ``ellipsis`` without
    ``weights``, and to two per code point with them (the heaviest a code point weighs on X).
    """
    if weights is None:
        if len(text) <= budget:
            return text
        if budget <= 0:
            return ""
        ell = len(ellipsis) if ellipsis_weight is None else ellipsis_weight
        # Nothing past the budget can be kept, so only the start is analysed: up to the next
        # space, since a URL (never cut inside) has no spaces and must be seen whole.
        space = _SPACE.search(text, budget)
        window = text[: space.start() + 1] if space else text
        cuts = _analyse(window)
        weights = range(len(window) + 1)
    else:
        if len(weights) != len(text) + 1:
            raise ValueError("weights must have one entry more than text has code points")
        if weights[-1] <= budget:
            return text
        if budget <= 0:
            return ""
        ell = 2 * len(ellipsis) if ellipsis_weight is None else ellipsis_weight
        cuts = _analyse(text)
    half = budget / 2

    k = _longest(cuts.sentence, weights, budget)
    if k and weights[k] >= half:
        return text[:k]
    room = budget - ell
    if room <= 0:
        return ""
    k = _longest(cuts.clause, weights, room)
    if k and weights[k] + ell >= half:
        return text[:k] + ellipsis

    last = bisect.bisect_right(cuts.boundaries, room, key=weights.__getitem__) - 1
    for i in range(last, 0, -1):
        b = cuts.boundaries[i]
        if weights[b] + ell < half:
            break
        if not cuts.inside_word(b):
            k = _kept_end(text, b)
            if k and cuts.is_boundary(k):
                return text[:k] + ellipsis
    for i in range(last, 0, -1):
        k = _kept_end(text, cuts.boundaries[i])
        if k and cuts.is_boundary(k):
            return text[:k] + ellipsis
    return ""
