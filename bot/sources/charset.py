"""Bytes to text for every source: which encoding a document is in, and decoding it.

One policy for feeds and pages: a BOM decides; else the declared encoding (HTTP charset, XML
declaration, ``<meta charset>``), else UTF-8, is used when the document is valid in it, or
nearly so: one bad byte in a UTF-8 feed is one U+FFFD, never a reason to read every Chinese
post of the feed in another encoding. Only a document that is not that encoding at all (a Big5
feed labelled UTF-8: nearly every non-ASCII byte invalid) is tried in the fallbacks. XML without
a BOM in UTF-16 or UTF-32 is recognised by its first character, as XML 1.0 appendix F says.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

__all__ = ["Decoded", "codec", "decode", "sniff_xml"]

# The web's names (WHATWG) mean supersets of what Python's codecs of the same name read.
_ALIASES = {"big5": "big5hkscs", "x-big5": "big5hkscs", "gb2312": "gb18030", "gbk": "gb18030"}
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# "<" (or "<?") in UTF-32/UTF-16 without a BOM, big- or little-endian.
_XML_STARTS = (
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<\x00?", "utf-16-be"),
    (b"<\x00?\x00", "utf-16-le"),
)
# A document is in the encoding tried, with a few bad bytes (a site's mistake, replaced), when it
# has this many valid non-ASCII characters per invalid sequence; a Big5 text read as UTF-8 has
# almost none valid.
_VALID_PER_INVALID = 4


def codec(label: str | None) -> str | None:
    """Python's name for the text encoding a document calls ``label``; None when there is none
    (unknown, or not a text codec such as ``zlib``)."""
    if not label:
        return None
    label = label.strip().lower()
    label = _ALIASES.get(label, label)
    try:
        info = codecs.lookup(label)
    except LookupError:
        return None
    return info.name if getattr(info, "_is_text_encoding", True) else None


def bom_codec(body: bytes) -> str | None:
    """The encoding a byte-order mark at the start of ``body`` says, if any."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name
    return None


def sniff_xml(body: bytes) -> str | None:
    """UTF-16 or UTF-32 of an XML document without a BOM, told by its first ``<``."""
    head = body[:4]
    for start, name in _XML_STARTS:
        if head.startswith(start):
            return name
    return None


@dataclass(frozen=True, slots=True)
class Decoded:
    """A document's text, the encoding it was read in, and where it was not valid in it."""

    text: str
    encoding: str
    bad_offset: int | None = None  # byte offset of the first invalid sequence, if any
    bad_count: int = 0


def decode(body: bytes, encoding: str, fallbacks: tuple[str, ...] = ()) -> Decoded | None:
    """``body`` in ``encoding`` (BOM first), with U+FFFD for a few invalid sequences; when it is
    not that encoding at all, the first fallback it is valid in; None when none fits."""
    marked = bom_codec(body)
    if marked is not None:
        try:
            return Decoded(body.decode(marked), marked)
        except UnicodeDecodeError:
            pass  # a BOM that lies: fall through to the declared encoding
    try:
        return Decoded(body.decode(encoding), encoding)
    except UnicodeDecodeError as exc:
        first = exc.start
    except LookupError:
        return None
    text = body.decode(encoding, "replace")
    bad = _count_invalid(body, encoding, text)
    valid = sum(1 for char in text if char > "\x7f") - text.count("\ufffd")
    if valid >= bad * _VALID_PER_INVALID:
        return Decoded(text, encoding, first, bad)
    for other in fallbacks:
        if other == encoding:
            continue
        try:
            return Decoded(body.decode(other), other)
        except (UnicodeDecodeError, LookupError):
            continue
    return None


def _count_invalid(body: bytes, encoding: str, text: str) -> int:
    replaced = text.count("\ufffd")
    try:
        # U+FFFD the document itself contains is no decoding error.
        return replaced - body.count("\ufffd".encode(encoding))
    except UnicodeEncodeError:
        return replaced
