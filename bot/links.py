"""Article links: made absolute and canonical on the way in, tracking added on the way out."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from urllib.parse import quote, unquote, urlencode, urljoin, urlsplit, urlunsplit

# Parameters that only say where a click came from; two URLs that differ only in these are the
# same article.
_TRACKING_PREFIXES = ("utm_", "mtm_", "pk_")
_TRACKING_NAMES = frozenset(
    {"fbclid", "gclid", "dclid", "msclkid", "yclid", "igshid", "mc_cid", "mc_eid", "_ga", "ref_src"}
)


# Session ids some sites append to every link: new on every poll, they would make the same
# article look new each time. Only names that mean nothing else: ``sid`` is left alone because
# old CMSes (PHP-Nuke's ``article&sid=123``) use it for the story's id.
_SESSION_NAMES = frozenset(
    {"session", "sessionid", "session_id", "sessid", "phpsessid", "jsessionid", "cfid", "cftoken"}
)
_SESSION_PREFIXES = ("aspsessionid",)  # ASP appends letters: ASPSESSIONIDQATRBDSA
# Java servlets put theirs in the path: /article/1;jsessionid=0A1B2C
_PATH_SESSION = re.compile(r";(?:jsessionid|phpsessid|sessionid)=[^/;?#]*", re.IGNORECASE)


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return (
        lowered.startswith(_TRACKING_PREFIXES)
        or lowered in _TRACKING_NAMES
        or lowered in _SESSION_NAMES
        or lowered.startswith(_SESSION_PREFIXES)
    )


WEB = ("http://", "https://")
WEB_OR_FILE = (*WEB, "file://")


def absolute_url(url: str, base: str | None = None, *, allow: tuple[str, ...] | None = WEB) -> str:
    """``url`` (as a page or feed gave it) made absolute against ``base`` and canonical; ``""``
    when it is empty, a fragment, unparseable, or leads to a scheme outside ``allow`` (a
    ``javascript:`` or ``mailto:`` link, a ``data:`` image). ``allow=None`` keeps any scheme,
    for a caller that reports what the link was."""
    url = url.strip()
    if allow is not None and (not url or url.startswith("#")):
        return ""
    try:
        # urljoin is most of canonical_url's cost and nearly every link is already absolute.
        absolute = canonical_url(url) if url.startswith(WEB) else canonical_url(url, base)
    except ValueError:
        return ""
    if allow is not None and not absolute.startswith(allow):
        return ""
    return absolute


def canonical_url(url: str, base: str | None = None) -> str:
    """Absolute, without fragment, tracking or session parameters, scheme and host lower-cased.

    The path and the remaining query keep their order and spelling: a site may treat them as
    case-sensitive, and reordering would change what a server sees.
    """
    url = url.strip()
    if base:
        url = urljoin(base, url)
    parts = urlsplit(url)
    query = _without(parts.query, _is_tracking)
    netloc = parts.netloc.lower()
    if parts.scheme == "http" and netloc.endswith(":80"):
        netloc = netloc[:-3]
    elif parts.scheme == "https" and netloc.endswith(":443"):
        netloc = netloc[:-4]
    path = _PATH_SESSION.sub("", parts.path) or ("/" if netloc else "")
    return urlunsplit(
        (
            parts.scheme.lower(),
            _ascii_host(netloc),
            _ascii(path, _PATH_SAFE),
            _ascii(query, _QUERY_SAFE),
            "",
        )
    )


# Characters left as they are when a URL is made ASCII: reserved ones keep their meaning, and
# '%' keeps what the site already encoded from being encoded twice.
_PATH_SAFE = "/%:@!$&'()*+,;=~"
_QUERY_SAFE = "/%:@!$&'()*+,;=~?"


def _ascii(part: str, safe: str) -> str:
    """Non-ASCII and spaces percent-encoded (UTF-8): X weighs a URL as 23 only up to its
    first non-ASCII character (the rest would count as text), a space would end the link in
    a post, and every client opens the encoded form."""
    return quote(part, safe=safe)


def _ascii_host(netloc: str) -> str:
    if netloc.isascii():
        return netloc
    userinfo, at, hostport = netloc.rpartition("@")
    host, colon, port = hostport.partition(":")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return netloc
    return f"{userinfo}{at}{host}{colon}{port}"


def with_tracking(url: str, params: Mapping[str, str]) -> str:
    """The URL with the channel's tracking parameters added (replacing any of the same name)."""
    if not params:
        return url
    parts = urlsplit(url)
    kept = _without(parts.query, lambda name: name in params)
    added = urlencode(list(params.items()))
    return urlunsplit(parts._replace(query=f"{kept}&{added}" if kept else added))


def _without(query: str, drop: Callable[[str], bool]) -> str:
    # Filtered as text so the parameters we keep stay byte for byte as the site wrote them.
    pieces = [p for p in query.split("&") if p and not drop(unquote(p.split("=", 1)[0]))]
    return "&".join(pieces)
