"""Lengths as each platform counts them, and cheap prefix weights for fitting.

X counts by twitter-text v3 (:func:`x_weighted_length`): NFC first, line endings folded to
``\\n``, any URL weighs 23, an emoji (even a multi-code-point sequence) 2, code points in the
v3 light ranges 1 and all others 2. twitter-text-parser's ``parse_tweet`` is the reference but
costs milliseconds on a long Chinese post (its URL and emoji regexes scan every position), so
this module computes the same number with three shortcuts, each exact:

- URLs never contain twitter-text's space characters, so only space-separated chunks that hold a
  ``.`` are handed to the library's URL extractor, and those results are cached per chunk (the
  link and hashtags of a post recur on every measure while fitting).
- An emoji match can only start at the first code point of some emoji; a one-pass character
  class finds those candidates, and the longest listed sequence wins exactly as the library's
  longest-first alternation does.
- The remaining text is weighed by counting light code points with one C-level regex.

Telegram counts code points of the text after its HTML parse (:func:`telegram_length`).

Threads counts characters, except that "emojis are counted as the number of UTF-8 bytes"
(developers.facebook.com/documentation/threads/posts, Limitations, 2026):
:func:`threads_length` counts one per code point and, for each emoji twitter-text's emoji list
finds (a whole ZWJ or keycap sequence included), the UTF-8 bytes of the emoji instead. Facebook
Pages take 63,206 characters; :func:`facebook_length` counts code points (never fewer than the
graphemes a person sees, so a post that fits here fits there).
Bluesky (:func:`bluesky_length`) counts graphemes of the text it shows — links shortened as its
app shortens them (:mod:`bot.compose.richtext`) — and also refuses more than 3,000 UTF-8 bytes;
one number covers both: the graphemes, or a tenth of the bytes when that is more, against 300.
Mastodon (:func:`mastodon_length`) counts graphemes with every http(s) URL weighing 23 (the
instance's ``characters_reserved_per_url``) and ``@user@domain`` counted as ``@user``, as its
``StatusLengthValidator`` does.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

import regex
from twitter_text import extract_urls_with_indices
from twitter_text.regexp import emoji as _tt_emoji

from bot.compose import richtext

Platform = Literal["telegram", "x", "threads", "facebook", "bluesky", "mastodon"]

# twitter-text v3 (conformance/twitter-text-v3.json): these ranges weigh 100, the rest 200, on a
# scale of 100; every weight is a multiple of the scale, so we count in whole units.
_V3_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
_URL_WEIGHT = 23
_EMOJI_WEIGHT = 2
_LIGHT = re.compile("[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in _V3_LIGHT_RANGES) + "]")

_SPACES = re.compile(
    r"[\x09-\x0D\x20\x85\xA0\u1680\u180E\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]+"
)
_SPACES_SPLIT = re.compile(f"({_SPACES.pattern})")
_LINE_ENDINGS = re.compile(r"\r\n|\r")


def _build_emoji_tables() -> tuple[frozenset[str], frozenset[str], dict[int, frozenset[str]]]:
    """First code points that can start an emoji, multi-code-point sequences by length, and
    single-code-point emoji.

    Built from the very lists twitter-text compiles its emoji regex from, so the match is the
    same: its alternation is sorted longest first, and a single code point comes last.
    """
    multi: dict[int, set[str]] = {}
    for entry in _tt_emoji.emoji_list:
        codes = entry.codepoint.split()
        if len(codes) > 1:
            seq = "".join(chr(int(c, 16)) for c in codes)
            multi.setdefault(len(seq), set()).add(seq)
    singles: set[str] = set()
    for low, high in _tt_emoji.single_codepoint_emoji_ranges:
        singles.update(chr(c) for c in range(low, high + 1))
    firsts = singles | {seq[0] for seqs in multi.values() for seq in seqs}
    by_length = {n: frozenset(seqs) for n, seqs in multi.items()}
    return frozenset(firsts), frozenset(singles), by_length


_EMOJI_FIRSTS, _EMOJI_SINGLE, _EMOJI_MULTI = _build_emoji_tables()
_EMOJI_LENGTHS = sorted(_EMOJI_MULTI, reverse=True)


def _candidate_pattern() -> re.Pattern[str]:
    """Where an emoji may start: a coarse class of few ranges (sre scans a class of many ranges
    one by one, which dominated the cost) and keycap starters followed by their second code
    point. Candidates are then checked exactly, so coarse is only a matter of speed."""
    ranges: list[list[int]] = []
    for code in sorted(ord(c) for c in _EMOJI_FIRSTS if ord(c) >= 128):
        if ranges and code - ranges[-1][1] <= 256:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    coarse = "[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges) + "]"
    ascii_firsts = sorted(c for c in _EMOJI_FIRSTS if ord(c) < 128)
    seconds = sorted(
        {seq[1] for seqs in _EMOJI_MULTI.values() for seq in seqs if ord(seq[0]) < 128}
    )
    keycaps = (
        "["
        + "".join(re.escape(c) for c in ascii_firsts)
        + "](?=["
        + "".join(f"\\U{ord(c):08x}" for c in seconds)
        + "])"
    )
    return re.compile(f"{coarse}|{keycaps}")


_EMOJI_CANDIDATE = _candidate_pattern()


def _normalise(text: str) -> str:
    """What twitter-text weighs: NFC, then ``\\r\\n`` and ``\\r`` as ``\\n``."""
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    if "\r" in text:
        text = _LINE_ENDINGS.sub("\n", text)
    return text


# A link as newsbot writes one: http(s), a lower-case ASCII host, then a path and a query made
# only of characters twitter-text takes anywhere in them and ending in one it lets a path or a
# query end with. No port, user info, fragment, parentheses or ``@``; everything else goes to
# the library. Such a chunk is one URL, whole, whenever its scheme and host alone are one.
_SIMPLE_URL = re.compile(
    r"(https?://[a-z0-9-]+(?:\.[a-z0-9-]+)+)"
    r"(?:/(?:[A-Za-z0-9/_.~%=+,;:!*$&|-]*[A-Za-z0-9/_=+-])?)?"
    r"(?:\?[A-Za-z0-9/_.~%=+,;:!*$&|-]*[A-Za-z0-9/_&=-])?"
)
_MAX_SIMPLE_URL = 2048  # far below twitter-text's 4096-character cap on a URL


@functools.lru_cache(maxsize=1024)
def _origin_is_url(origin: str) -> bool:
    """Whether twitter-text reads ``origin/`` (scheme and host) as one URL: asked once per host,
    so the library, not a list of ours, decides which top-level domains are valid."""
    probe = origin + "/"
    found: list[dict[str, object]] = extract_urls_with_indices(probe)
    return found == [{"url": probe, "indices": [0, len(probe)]}]


def _simple_url(chunk: str) -> bool:
    """A chunk that is exactly one simple link (see ``_SIMPLE_URL``), as twitter-text reads it.

    This spares the library's URL regex on the one URL nearly every post carries, which is new
    for every article and so never in the cache; tests hold it to the library's answer.
    """
    if len(chunk) > _MAX_SIMPLE_URL or not chunk.isascii():
        return False
    match = _SIMPLE_URL.fullmatch(chunk)
    if match is None:
        return False
    origin = match.group(1)
    # t.co links are cut after their slug by the library; leave them to it.
    return not origin.endswith("//t.co") and _origin_is_url(origin)


@functools.lru_cache(maxsize=4096)
def _chunk_urls(chunk: str, before: str = "") -> tuple[tuple[int, int], ...]:
    """URL entities of one space-free chunk as (start, length), the library's own answer.

    ``before`` is the space character in front of the chunk ("" at the start of the text): the
    library reads a URL without a protocol differently after a space than at the very start.
    """
    if _simple_url(chunk):
        return ((0, len(chunk)),)
    found: dict[int, int] = {}
    for entity in extract_urls_with_indices(before + chunk):
        found[entity["indices"][0] - len(before)] = len(entity["url"])
    return tuple(found.items())


def _url_entities(text: str) -> dict[int, int]:
    """URL start → length in code points, for the whole (normalised) text."""
    if "." not in text:
        return {}
    result: dict[int, int] = {}
    offset = 0
    before = ""
    # Pieces alternate chunk, spaces, chunk...: URLs live inside one chunk.
    for index, piece in enumerate(_SPACES_SPLIT.split(text)):
        if index % 2 == 0 and "." in piece:
            for start, length in _chunk_urls(piece, before):
                result[offset + start] = length
        elif index % 2 == 1:
            before = piece[-1]
        offset += len(piece)
    return result


def url_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every URL twitter-text finds in ``text`` (NFC), in order."""
    return sorted((start, start + length) for start, length in _url_entities(text).items())


def _emoji_entities(text: str) -> dict[int, int]:
    """Emoji start → length in code points, as twitter-text's emoji ``finditer`` finds them."""
    result: dict[int, int] = {}
    pos = 0
    for candidate in _EMOJI_CANDIDATE.finditer(text):
        p = candidate.start()
        if p < pos or text[p] not in _EMOJI_FIRSTS:
            continue
        length = 0
        for n in _EMOJI_LENGTHS:
            if text[p : p + n] in _EMOJI_MULTI[n]:
                length = n
                break
        if not length and text[p] in _EMOJI_SINGLE:
            length = 1
        if length:
            result[p] = length
            pos = p + length
    return result


def _plain_weight(segment: str) -> int:
    return 2 * len(segment) - len(_LIGHT.findall(segment))


def _entities(text: str) -> list[tuple[int, int, int]]:
    """(start, end, weight) of each URL and emoji span twitter-text would weigh as a whole.

    Mirrors parse_tweet's walk: a URL wins over an emoji at the same index, and an entity that
    starts inside one already taken is not counted.
    """
    urls = _url_entities(text)
    emojis = _emoji_entities(text)
    if not urls and not emojis:
        return []
    spans: list[tuple[int, int, int]] = []
    pos = 0
    for start in sorted(urls.keys() | emojis.keys()):
        if start < pos:
            continue
        if start in urls:
            end, weight = start + urls[start], _URL_WEIGHT
        else:
            end, weight = start + emojis[start], _EMOJI_WEIGHT
        spans.append((start, end, weight))
        pos = end
    return spans


def x_weighted_length(text: str) -> int:
    """X's weighted length (twitter-text v3), equal to ``parse_tweet(text).weightedLength``."""
    text = _normalise(text)
    total = 0
    pos = 0
    for start, end, weight in _entities(text):
        total += _plain_weight(text[pos:start]) + weight
        pos = end
    return total + _plain_weight(text[pos:])


_TAG = re.compile(r"<[^>]*>")
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]+|#[xX][0-9a-fA-F]+);")


def telegram_length(html: str) -> int:
    """Code points of the text once Telegram's HTML is parsed: tags count 0, an entity 1."""
    text = _TAG.sub("", html)
    if "&" not in text:
        return len(text)
    return len(text) - sum(len(m) - 1 for m in _ENTITY.findall(text))


_LIGHT_RUN = re.compile(_LIGHT.pattern + "+")


@functools.lru_cache(maxsize=1024)
def _x_prefix_weights(text: str) -> tuple[int, ...]:
    # Two per code point, then the runs of light ones set to one: Chinese text has few runs
    # (digits, Latin words, spaces), and a slice per run costs less than a lookup per code point.
    own = [2] * len(text)
    for run in _LIGHT_RUN.finditer(text):
        start, end = run.span()
        own[start:end] = [1] * (end - start)
    for start, end, weight in _entities(text):
        # The whole span's weight is charged at its first code point: a careless cut inside it
        # can then only come out short, never over the limit.
        own[start] = weight
        for j in range(start + 1, end):
            own[j] = 0
    return (0, *itertools.accumulate(own))


_GRAPHEME = regex.compile(r"\X")
# Bluesky: 300 graphemes and 3,000 bytes (lexicon app.bsky.feed.post: maxGraphemes, maxLength).
BLUESKY_GRAPHEMES = 300
BLUESKY_BYTES = 3000
_BYTES_PER_UNIT = BLUESKY_BYTES // BLUESKY_GRAPHEMES
MASTODON_URL_WEIGHT = 23
# Mastodon's Account::MENTION_RE: a remote mention counts only its local part.
_MASTODON_MENTION = regex.compile(r"(?<![=/\w])@([a-z0-9_]+)(?:@[\w.\-]+\w)?", regex.IGNORECASE)


def _one_code_point_clusters(text: str) -> bool:
    """Whether every code point of ``text`` is a cluster of its own (CJK, Latin, punctuation):
    the excerpt module's test, imported late because it imports this module."""
    from bot.compose.excerpt import _ONE_CODE_POINT_CLUSTERS

    return _ONE_CODE_POINT_CLUSTERS.fullmatch(text) is not None


def graphemes(text: str) -> int:
    """Extended grapheme clusters (UAX #29): what Bluesky and Mastodon call characters."""
    if _one_code_point_clusters(text):
        return len(text)
    return len(_GRAPHEME.findall(text))


def bluesky_length(text: str) -> int:
    """Bluesky's count of ``text`` once its links are shown short: its graphemes, or a tenth of
    its UTF-8 bytes when that is more (so that ``<= 300`` means both limits hold)."""
    shown = richtext.display(text).text
    units = -(-len(shown.encode("utf-8")) // _BYTES_PER_UNIT)
    return max(graphemes(shown), units)


def mastodon_length(text: str, url_weight: int = MASTODON_URL_WEIGHT) -> int:
    """Mastodon's count: graphemes, each http(s) URL as ``url_weight``, ``@a@b`` as ``@a``."""
    pieces: list[str] = []
    pos = 0
    for start, end in richtext.url_spans(text):
        pieces.append(text[pos:start])
        pieces.append("x" * url_weight)
        pos = end
    pieces.append(text[pos:])
    countable = "".join(pieces)
    if "@" in countable:
        countable = _MASTODON_MENTION.sub(lambda m: "@" + m.group(1), countable)
    return graphemes(countable)


@functools.lru_cache(maxsize=1024)
def _cluster_prefix_weights(text: str, platform: Platform) -> tuple[int, ...]:
    """Per code point: a grapheme cluster's weight charged at its first code point (on Bluesky
    at least a tenth of its bytes), a URL's display weight at its first; 0 elsewhere. A cut
    can then only come out short, never over."""
    if _one_code_point_clusters(text):
        # One code point of at most 3 bytes each: a tenth of the bytes never exceeds 1.
        own = [1] * len(text)
    else:
        own = [0] * len(text)
        for match in _GRAPHEME.finditer(text):
            weight = 1
            if platform == "bluesky":
                weight = max(1, -(-len(match.group().encode("utf-8")) // _BYTES_PER_UNIT))
            own[match.start()] = weight
    for start, end in richtext.url_spans(text):
        if platform == "bluesky":
            weight = graphemes(richtext.short_url(text[start:end]))
        else:
            weight = MASTODON_URL_WEIGHT
        own[start] = weight
        for j in range(start + 1, end):
            own[j] = 0
    return (0, *itertools.accumulate(own))


def prefix_weights(text: str, platform: Platform) -> list[int]:
    """Cumulative weights: ``result[i]`` is the weight of ``text[:i]`` on ``platform``.

    For X, a URL or emoji weighs as a whole and its whole weight is charged from its first code
    point onward (positions inside it are not cut points, and weigh as if the span were kept).
    The text should already be NFC (excerpts are); otherwise positions follow the text as given
    and the weights are an estimate, which the fitter verifies with a real measure anyway.
    """
    if platform in ("telegram", "facebook"):
        return list(range(len(text) + 1))
    if platform == "threads":
        return list(_threads_prefix_weights(text))
    if platform in ("bluesky", "mastodon"):
        return list(_cluster_prefix_weights(text, platform))
    return list(_x_prefix_weights(text))


def total_weight(text: str, platform: Platform) -> int:
    """``prefix_weights(text, platform)[-1]`` without building the list: the text's weight as
    given (not normalised first, unlike :func:`x_weighted_length`)."""
    if platform in ("telegram", "facebook"):
        return len(text)
    if platform == "threads":
        return _threads_weight(text)
    if platform in ("bluesky", "mastodon"):
        return _cluster_prefix_weights(text, platform)[-1]
    total = 0
    pos = 0
    for start, end, weight in _entities(text):
        total += _plain_weight(text[pos:start]) + weight
        pos = end
    return total + _plain_weight(text[pos:])


def _emoji_bytes(text: str) -> dict[int, tuple[int, int]]:
    """Emoji start → (end, UTF-8 bytes) in ``text``."""
    return {
        start: (start + length, len(text[start : start + length].encode("utf-8")))
        for start, length in _emoji_entities(text).items()
    }


def _threads_weight(text: str) -> int:
    total = len(text)
    for start, (end, size) in _emoji_bytes(text).items():
        total += size - (end - start)
    return total


def threads_length(text: str) -> int:
    """Threads' count (see the module doc): code points, an emoji weighing its UTF-8 bytes."""
    return _threads_weight(_normalise(text))


def facebook_length(text: str) -> int:
    """Code points of the message, as sent."""
    return len(text)


@functools.lru_cache(maxsize=1024)
def _threads_prefix_weights(text: str) -> tuple[int, ...]:
    own = [1] * len(text)
    for start, (end, size) in _emoji_bytes(text).items():
        # As for X: the whole emoji is charged at its first code point.
        own[start] = size
        for j in range(start + 1, end):
            own[j] = 0
    return (0, *itertools.accumulate(own))


_MEASURES = {
    "telegram": telegram_length,
    "x": x_weighted_length,
    "threads": threads_length,
    "facebook": facebook_length,
}


def measure(text: str, platform: Platform, *, url_weight: int = MASTODON_URL_WEIGHT) -> int:
    """The length of ``text`` as ``platform`` counts it."""
    if platform == "bluesky":
        return bluesky_length(text)
    if platform == "mastodon":
        return mastodon_length(text, url_weight)
    return _MEASURES[platform](text)


@dataclass(frozen=True, slots=True)
class LengthRule:
    """How one kind of post is measured, and its limit. ``url_weight`` is what a URL counts on
    Mastodon, where each instance says (``characters_reserved_per_url``)."""

    platform: Platform
    limit: int
    url_weight: int = MASTODON_URL_WEIGHT

    def measure(self, text: str) -> int:
        return measure(text, self.platform, url_weight=self.url_weight)


TELEGRAM_MESSAGE = LengthRule("telegram", 4096)
TELEGRAM_CAPTION = LengthRule("telegram", 1024)
X_POST = LengthRule("x", 280)
THREADS_POST = LengthRule("threads", 500)
FACEBOOK_POST = LengthRule("facebook", 63206)

BLUESKY_POST = LengthRule("bluesky", BLUESKY_GRAPHEMES)
MASTODON_DEFAULT = LengthRule("mastodon", 500)

__all__ = [
    "BLUESKY_POST",
    "FACEBOOK_POST",
    "MASTODON_DEFAULT",
    "TELEGRAM_CAPTION",
    "TELEGRAM_MESSAGE",
    "THREADS_POST",
    "X_POST",
    "LengthRule",
    "Platform",
    "bluesky_length",
    "facebook_length",
    "graphemes",
    "mastodon_length",
    "measure",
    "prefix_weights",
    "telegram_length",
    "threads_length",
    "total_weight",
    "url_spans",
    "x_weighted_length",
]
