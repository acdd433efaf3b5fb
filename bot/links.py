"""Article links: made absolute and canonical on the way in, tracking added on the way out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import unquote, urlencode, urljoin, urlsplit, urlunsplit

# Parameters that only say where a click came from; two URLs that differ only in these are the
# same article.
_TRACKING_PREFIXES = ("utm_", "mtm_", "pk_")
_TRACKING_NAMES = frozenset(
    {"fbclid", "gclid", "dclid", "msclkid", "yclid", "igshid", "mc_cid", "mc_eid", "_ga", "ref_src"}
)


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith(_TRACKING_PREFIXES) or lowered in _TRACKING_NAMES


def canonical_url(url: str, base: str | None = None) -> str:
    """Absolute, without fragment or tracking parameters, scheme and host lower-cased.

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
    path = parts.path or ("/" if netloc else "")
    return urlunsplit((parts.scheme.lower(), netloc, path, query, ""))


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
