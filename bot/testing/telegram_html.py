"""Telegram's ``parse_mode=HTML``, as strict as the real Bot API, for the local fake.

This is a port of TDLib's ``parse_html`` (``td/telegram/MessageEntity.cpp``), which the Bot API
server runs on every HTML text: the same scan over UTF-8 bytes, the same allowed tags, the same
error texts with the same byte offsets, so a template that the fake accepts is one Telegram
accepts. Behaviour worth knowing, because it surprises people:

- only ``&lt; &gt; &amp; &quot;`` and numeric references are decoded; any other named entity
  (``&nbsp;``, ``&hellip;``) is *not* an error, it stays in the text literally, ``&`` and all;
- ``</>`` closes whatever is open; attributes other than the ones Telegram knows are ignored;
- a bare ``<`` is an error (``Unsupported start tag ""``), a bare ``>`` or ``&`` is text.

After parsing, the Bot API cleans the text (:func:`clean_text`): control characters become
spaces, ``\\r`` is dropped, and spaces and newlines at both ends are trimmed. Lengths are
measured on that result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_AMP, _LT, _GT, _SLASH, _EQ, _SEMI, _HASH = (ord(c) for c in "&<>/=;#")
_QUOTE, _APOS, _DOT, _DASH, _X = (ord(c) for c in "\"'.-x")
_SPACES = frozenset(b" \t\r\n\v\0")
_ALLOWED_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "tg-time",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_NAMED = {b"lt": ord("<"), b"gt": ord(">"), b"amp": ord("&"), b"quot": ord('"')}
_SIMPLE_TYPES = {
    "i": "italic",
    "em": "italic",
    "b": "bold",
    "strong": "bold",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "u": "underline",
    "ins": "underline",
    "tg-spoiler": "spoiler",
}
# Characters the Bot API deletes from a text (bidi controls and a few combining marks).
_REMOVED = frozenset("\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u0333\u033f\u030a")
_TO_SPACE = dict.fromkeys((*range(10), 11, 12, *range(14, 32)), " ")


class HtmlParseError(ValueError):
    """Telegram refused the markup; ``message`` is TDLib's text, e.g. ``Unclosed start tag at
    byte offset 12``, and ``description`` the Bot API's full answer."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)

    @property
    def description(self) -> str:
        return f"Bad Request: can't parse entities: {self.message}"


@dataclass(frozen=True, slots=True)
class Entity:
    """A Bot API MessageEntity; ``offset`` and ``length`` count UTF-16 code units."""

    type: str
    offset: int
    length: int
    url: str | None = None
    language: str | None = None
    custom_emoji_id: str | None = None

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"type": self.type, "offset": self.offset, "length": self.length}
        for key in ("url", "language", "custom_emoji_id"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data


@dataclass(frozen=True, slots=True)
class Parsed:
    """The text a reader sees (no markup, entities decoded) and the formatting on it."""

    text: str
    entities: tuple[Entity, ...] = field(default=())


@dataclass(slots=True)
class _Open:
    tag: str
    argument: str
    utf16_offset: int
    result_pos: int


def _utf16_units(lead_byte: int) -> int:
    """UTF-16 units of the character starting with this byte (0 for a continuation byte)."""
    if lead_byte & 0xC0 == 0x80:
        return 0
    return 2 if lead_byte >= 0xF0 else 1


def _is_alpha(c: int) -> bool:
    return 65 <= c <= 90 or 97 <= c <= 122


def _is_digit(c: int) -> bool:
    return 48 <= c <= 57


def _is_hex(c: int) -> bool:
    return _is_digit(c) or 65 <= c <= 70 or 97 <= c <= 102


def _lower(raw: bytes) -> str:
    # TDLib lowercases ASCII only; a tag name in another script is reported as written.
    return raw.lower().decode("utf-8", errors="replace")


class _Scanner:
    def __init__(self, html: str) -> None:
        self.data = html.encode("utf-8", errors="surrogatepass")
        self.size = len(self.data)

    def at(self, pos: int) -> int:
        """The byte at ``pos``, or 0 past the end, as TDLib reads its NUL-terminated string."""
        return self.data[pos] if pos < self.size else 0

    def decode_entity(self, pos: int) -> tuple[int, int]:
        """``(code point, position after it)``, or ``(0, pos)`` when ``&`` starts no entity."""
        end = pos + 1
        code = 0
        if self.at(pos + 1) == _HASH:
            end += 1
            if self.at(pos + 2) == _X:
                end += 1
                while _is_hex(self.at(end)):
                    code = code * 16 + int(chr(self.at(end)), 16)
                    end += 1
            else:
                while _is_digit(self.at(end)):
                    code = code * 10 + self.at(end) - 48
                    end += 1
            if code == 0 or code >= 0x10FFFF or end - pos >= 10:
                return 0, pos
        else:
            while _is_alpha(self.at(end)):
                end += 1
            code = _NAMED.get(self.data[pos + 1 : end], 0)
            if code == 0:
                return 0, pos
        if self.at(end) == _SEMI:
            end += 1
        return code, end


def parse_html(html: str) -> Parsed:
    """Parse Telegram HTML into plain text and entities; raise :class:`HtmlParseError` with
    Telegram's exact message when Telegram would refuse it. The text is not yet cleaned."""
    scan = _Scanner(html)
    at = scan.at
    data = scan.data
    result = bytearray()
    entities: list[Entity] = []
    nested: list[_Open] = []
    utf16 = 0
    saw_surrogate = False

    def append_code(code: int) -> None:
        nonlocal utf16, saw_surrogate
        utf16 += 2 if code > 0xFFFF else 1
        if 0xD800 <= code <= 0xDFFF:
            saw_surrogate = True
            result.extend(b"?")
        else:
            result.extend(chr(code).encode("utf-8"))

    i = 0
    while i < scan.size:
        c = data[i]
        if c == _AMP:
            code, after = scan.decode_entity(i)
            if code:
                append_code(code)
                i = after
                continue
        if c != _LT:
            utf16 += _utf16_units(c)
            result.append(c)
            i += 1
            continue

        begin = i
        i += 1
        if at(i) != _SLASH:
            while at(i) not in _SPACES and at(i) != _GT:
                i += 1
            if at(i) == 0:
                raise HtmlParseError(f"Unclosed start tag at byte offset {begin}")
            tag = _lower(data[begin + 1 : i])
            if tag not in _ALLOWED_TAGS:
                raise HtmlParseError(f'Unsupported start tag "{tag}" at byte offset {begin}')
            argument, i = _attributes(scan, tag, begin, i)
            if tag == "span" and argument != "spoiler":
                raise HtmlParseError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {begin}'
                )
            nested.append(_Open(tag, argument, utf16, len(result)))
        else:
            if not nested:
                raise HtmlParseError(f"Unexpected end tag at byte offset {begin}")
            while at(i) not in _SPACES and at(i) != _GT:
                i += 1
            end_tag = _lower(data[begin + 2 : i])
            while at(i) in _SPACES and at(i) != 0:
                i += 1
            if at(i) != _GT:
                raise HtmlParseError(f"Unclosed end tag at byte offset {begin}")
            opened = nested[-1]
            if end_tag and end_tag != opened.tag:
                raise HtmlParseError(
                    f"Unmatched end tag at byte offset {begin}, "
                    f'expected "</{opened.tag}>", found "</{end_tag}>"'
                )
            if utf16 > opened.utf16_offset:
                inner = bytes(result[opened.result_pos :]).decode("utf-8", errors="replace")
                entity = _entity(opened, utf16 - opened.utf16_offset, inner, entities)
                if entity is not None:
                    entities.append(entity)
            nested.pop()
        i += 1

    if nested:
        raise HtmlParseError(f'Can\'t find end tag corresponding to start tag "{nested[-1].tag}"')
    if saw_surrogate:
        raise HtmlParseError(
            "Text contains invalid Unicode characters after decoding HTML entities, "
            "check for unmatched surrogate code units"
        )
    # A language counts only on code inside pre; a lone code keeps none.
    entities = [
        Entity(e.type, e.offset, e.length) if e.type == "code" and e.language else e
        for e in entities
    ]
    entities.sort(key=lambda e: (e.offset, -e.length))
    return Parsed(bytes(result).decode("utf-8", errors="replace"), tuple(entities))


def _attributes(scan: _Scanner, tag: str, begin: int, i: int) -> tuple[str, int]:
    """Reads a start tag's attributes up to its ``>``; returns the argument Telegram keeps."""
    at = scan.at
    argument = ""
    while at(i) != _GT:
        while at(i) != 0 and at(i) in _SPACES:
            i += 1
        if at(i) == _GT:
            break
        name_begin = i
        while at(i) not in _SPACES and at(i) not in (_EQ, _GT, _SLASH, _QUOTE, _APOS):
            i += 1
        name = scan.data[name_begin:i]
        if not name:
            raise HtmlParseError(f'Empty attribute name in the tag "{tag}" at byte offset {begin}')
        while at(i) != 0 and at(i) in _SPACES:
            i += 1
        if at(i) != _EQ:
            if at(i) == 0:
                raise HtmlParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
            if tag == "blockquote" and name == b"expandable":
                argument = "1"
            continue
        i += 1
        while at(i) != 0 and at(i) in _SPACES:
            i += 1
        if at(i) == 0:
            raise HtmlParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')

        if at(i) not in (_QUOTE, _APOS):
            # An unquoted value is an SGML name token: letters, digits, periods and hyphens.
            token_begin = i
            while chr(at(i)).isascii() and (chr(at(i)).isalnum() or at(i) in (_DOT, _DASH)):
                i += 1
            value = _lower(scan.data[token_begin:i])
            if at(i) not in _SPACES and at(i) != _GT:
                raise HtmlParseError(f"Unexpected end of name token at byte offset {token_begin}")
        else:
            quote = at(i)
            i += 1
            raw = bytearray()
            while at(i) != quote and at(i) != 0:
                if at(i) == _AMP:
                    code, after = scan.decode_entity(i)
                    if code:
                        raw.extend(chr(code).encode("utf-8", errors="surrogatepass"))
                        i = after
                        continue
                raw.append(at(i))
                i += 1
            if at(i) == quote:
                i += 1
            value = bytes(raw).decode("utf-8", errors="replace")
        if at(i) == 0:
            raise HtmlParseError(f"Unclosed start tag at byte offset {begin}")

        if tag == "a" and name == b"href":
            argument = value
        elif tag == "code" and name == b"class" and value.startswith("language-"):
            argument = value[len("language-") :]
        elif tag == "span" and name == b"class" and value.startswith("tg-"):
            argument = value[len("tg-") :]
        elif (tag == "tg-emoji" and name == b"emoji-id") or (
            tag == "tg-time" and name == b"format"
        ):
            argument = value
        elif tag == "blockquote" and name == b"expandable":
            argument = "1"
    return argument, i


def _entity(opened: _Open, length: int, inner: str, previous: list[Entity]) -> Entity | None:
    tag, offset = opened.tag, opened.utf16_offset
    simple = _SIMPLE_TYPES.get(tag)
    if simple is not None or (tag == "span" and opened.argument == "spoiler"):
        return Entity(simple or "spoiler", offset, length)
    if tag == "tg-emoji":
        if not opened.argument.isdigit() or int(opened.argument) == 0:
            raise HtmlParseError("Invalid custom emoji identifier specified")
        return Entity("custom_emoji", offset, length, custom_emoji_id=opened.argument)
    if tag == "tg-time":
        return None
    if tag == "a":
        url = opened.argument or inner
        if url.startswith("tg://user?id="):
            return Entity("text_mention", offset, length)
        checked = _checked_link(url)
        return Entity("text_link", offset, length, url=checked) if checked else None
    if tag == "blockquote":
        kind = "expandable_blockquote" if opened.argument else "blockquote"
        return Entity(kind, offset, length)
    if tag == "pre":
        last = previous[-1] if previous else None
        if (
            last
            and last.type == "code"
            and (last.offset, last.length) == (offset, length)
            and last.language
        ):
            previous.pop()
            return Entity("pre", offset, length, language=last.language)
        return Entity("pre", offset, length)
    # tag == "code"
    last = previous[-1] if previous else None
    if (
        last
        and last.type == "pre"
        and (last.offset, last.length) == (offset, length)
        and opened.argument
    ):
        previous.pop()
        return Entity("pre", offset, length, language=opened.argument)
    return Entity("code", offset, length, language=opened.argument or None)


def _checked_link(url: str) -> str | None:
    """A rough stand-in for TDLib's link check: no spaces, and a scheme or a dotted host."""
    url = url.strip()
    if not url or any(ch.isspace() for ch in url):
        return None
    if "://" in url or url.startswith(("tg:", "mailto:")):
        return url
    if "." in url.split("/", 1)[0]:
        return f"http://{url}" if "/" in url else f"http://{url}/"
    return None


def clean_text(text: str) -> str:
    """What the Bot API does to any text before sending it: control characters become spaces,
    ``\\r`` and bidi controls are dropped, and spaces and newlines at both ends are trimmed."""
    cleaned = "".join(ch for ch in text if ch != "\r" and ch not in _REMOVED)
    return cleaned.translate(_TO_SPACE).strip(" \n")


def plain_text(html: str) -> str:
    """The text a reader sees for this HTML, cleaned as the Bot API cleans it."""
    return clean_text(parse_html(html).text)


def code_points(html: str) -> int:
    """The length Telegram checks against its 4096 / 1024 limits, in Unicode code points."""
    return len(plain_text(html))
