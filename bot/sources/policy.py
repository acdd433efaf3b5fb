"""What newsbot may fetch, and which links it may post, on a source's behalf.

Everything newsbot fetches for a source (the feed, listing page or sitemap, the sitemaps an
index names, article pages for enrichment, the WebSub hub) goes to a public ``http(s)``
address. Loopback, private, link-local (cloud metadata at ``169.254.169.254``), shared (CGNAT),
multicast, reserved and unspecified addresses are refused, including the same addresses written
as IPv4-mapped, 6to4, Teredo or NAT64 IPv6. A source's ``allow_private`` names the hosts,
addresses and networks it may reach although they are private, and nothing else:
:class:`FetchPolicy` is that allowlist. The address is checked where the connection is made
(:mod:`bot.sources.fetch`); this module holds the rules, which need no network.

A link that is posted but not fetched is checked as written (:func:`link_refusal`): ``http(s)``
only, no user name or password, and no literal address or ``localhost`` the source may not
fetch. Its host name is not resolved: that would send a DNS query for every link of every
poll, and a name resolving to an intranet address harms nobody who reads the post.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import logging
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bot.model import Article
from bot.sources.base import PollResult, Source, SourceState, WrappedSource

if TYPE_CHECKING:
    from bot.config import SourceConfig

__all__ = [
    "STRICT",
    "FetchPolicy",
    "IPAddress",
    "IPNetwork",
    "address_kind",
    "allow_entry",
    "link_refusal",
    "screen",
    "screened",
]

log = logging.getLogger("newsbot.sources.policy")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits are an IPv4 address
_LEGACY_IPV4 = re.compile(r"^(?:0x[0-9a-f]+|[0-9]+)(?:\.(?:0x[0-9a-f]+|[0-9]+)){0,3}$", re.I)
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def address_kind(address: IPAddress) -> str | None:
    """Why ``address`` is not public (``"loopback"``, ``"private"``...), ``None`` when it is.

    An IPv6 address that carries an IPv4 one (mapped, 6to4, Teredo, NAT64) is judged by the
    IPv4 address it reaches: ``::ffff:127.0.0.1`` is loopback.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = address_kind(embedded)
            return f"{inner} (inside an IPv6 address)" if inner else None
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        return "shared (carrier-grade NAT)"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "not publicly routable"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def parse_address(host: str) -> IPAddress | None:
    """``host`` (as in a URL, maybe ``[v6]`` or with a zone) as an address; ``None`` for a name.

    The legacy IPv4 spellings that browsers and ``inet_aton`` still read (``2130706433``,
    ``0x7f.1``, ``0177.0.0.1``) are addresses too: a link written so is still 127.0.0.1.
    """
    text = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if _LEGACY_IPV4.match(text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def _host_name(host: str) -> str:
    return host.strip().rstrip(".").lower()


def allow_entry(entry: str) -> str:
    """One ``allow_private`` entry, checked and normalised: a host name, an address or a network.

    Raises :class:`ValueError` saying what was expected. A network must be written by its first
    address (``10.1.2.0/24``, not ``10.1.2.5/24``: which one was meant?) and may not be ``/0``:
    opening every address is not least privilege.
    """
    text = entry.strip()
    if not text:
        raise ValueError("an empty entry; expected a host name, an address or a network")
    if "://" in text:
        raise ValueError(f"{entry!r} is a URL; write only its host name, such as cms.intranet")
    if "/" in text:
        try:
            network = ipaddress.ip_network(text)
        except ValueError as exc:
            raise ValueError(
                f"{entry!r} is not a network such as 10.1.2.0/24 or fd00:1::/64 ({exc})"
            ) from None
        if network.prefixlen == 0:
            raise ValueError(
                f"{entry!r} would allow every address; name the hosts or networks that this "
                "source needs"
            )
        return str(network)
    if _LEGACY_IPV4.match(text):
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            # 127.1, 2130706433: resolvers read these as addresses; say which one was meant.
            raise ValueError(
                f"{entry!r} is not a valid address; write it as four numbers, 10.1.2.3"
            ) from None
    address = parse_address(text)
    if address is not None:
        return str(address)
    name = _host_name(text)
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_name = ""
    labels = ascii_name.split(".")
    if not ascii_name or not all(_HOST_LABEL.match(label) for label in labels):
        raise ValueError(
            f"{entry!r} is not a host name, an address or a network "
            "(such as cms.intranet, 10.1.2.3 or 10.1.2.0/24; no wildcards, ports or URLs)"
        )
    return ascii_name


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """What one source may fetch. The default allows public http(s) addresses only.

    ``hosts`` and ``networks`` come from ``allow_private``; ``files`` are the ``file:`` URLs
    this source was *configured* with (its own ``url``). A ``file:`` URL found in fetched
    content (an item link, a sitemap ``<loc>``, a redirect) is never one of them.
    """

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()
    files: frozenset[str] = frozenset()

    @classmethod
    def allowing(cls, entries: Iterable[str], *, files: Iterable[str] = ()) -> FetchPolicy:
        """The policy for an ``allow_private`` list (entries as :func:`allow_entry` reads them)."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            normal = allow_entry(entry)
            address = parse_address(normal)
            if "/" in normal:
                networks.append(ipaddress.ip_network(normal))
            elif address is not None:
                networks.append(ipaddress.ip_network(address))
            else:
                hosts.add(normal)
        return cls(frozenset(hosts), tuple(networks), frozenset(files))

    @classmethod
    def for_source(cls, config: SourceConfig) -> FetchPolicy:
        """The policy of a configured source: its ``allow_private``, and its own ``file:`` URL."""
        url = str(getattr(config, "url", "") or "")  # a webhook source has none
        files = (url,) if url.startswith("file:") else ()
        return cls.allowing(config.allow_private, files=files)

    def without_files(self) -> FetchPolicy:
        """The same allowlist for URLs found in content: no ``file:`` at all."""
        return dataclasses.replace(self, files=frozenset()) if self.files else self

    def allows_host(self, host: str) -> bool:
        return _host_name(host) in self.hosts

    def address_refusal(self, address: IPAddress, host: str | None = None) -> str | None:
        """Why this source may not connect to ``address`` (reached as ``host``); ``None`` if it
        may: the address is public, in ``allow_private``, or ``host`` is an allowed name."""
        kind = address_kind(address)
        if kind is None:
            return None
        if any(address in network for network in self.networks):
            return None
        if host is not None and self.allows_host(host):
            return None
        if isinstance(address, ipaddress.IPv6Address):
            embedded = _embedded_ipv4(address)
            if embedded is not None and any(embedded in n for n in self.networks):
                return None
        shown = str(address) if host is None or parse_address(host) else f"{host} ({address})"
        return f"{shown} is a {kind} address this source may not fetch (see allow_private)"


STRICT = FetchPolicy()


def link_refusal(url: str, policy: FetchPolicy = STRICT, *, what: str = "link") -> str | None:
    """Why ``url`` may not be posted (or fetched) for a source with ``policy``; ``None`` if it
    may. The reason (``its <what> ...``) never repeats a password the link carried."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        has_credentials = parts.username is not None or parts.password is not None
    except ValueError:
        return f"its {what} is not a valid URL"
    if parts.scheme.lower() not in ("http", "https"):
        scheme = parts.scheme.lower() or "relative"
        return f"its {what} is a {scheme}: URL, not http(s)"
    if has_credentials:
        # Someone's login published with the link; and readers could not open it anyway.
        return f"its {what} to {host} carries a user name or password"
    if not host:
        return f"its {what} has no host"
    return _host_refusal(host, policy, what)


@functools.lru_cache(maxsize=4096)
def _host_refusal(host: str, policy: FetchPolicy, what: str) -> str | None:
    """:func:`link_refusal`'s verdict on the host alone. Kept per host and policy: a feed's
    fifty links share one or two hosts, and reading a host as an address (a ValueError for
    every name) was most of the screen's cost on a first sight of many feeds."""
    address = parse_address(host)
    if address is not None:
        refusal = policy.address_refusal(address, host)
        return f"its {what} may not be followed: {refusal}" if refusal else None
    name = _host_name(host)
    if (name == "localhost" or name.endswith(".localhost")) and not policy.allows_host(name):
        return f"its {what} points to {name}, this machine, which this source may not fetch"
    return None


def screen(articles: Iterable[Article], policy: FetchPolicy) -> tuple[list[Article], list[str]]:
    """The articles whose link may be posted, and a warning for each one dropped. An image
    that may not be fetched is dropped from its article, which is kept."""
    kept: list[Article] = []
    warnings: list[str] = []
    for article in articles:
        refusal = link_refusal(article.url, policy)
        if refusal is not None:
            warnings.append(f"{_label(article)}: {refusal}; not posted")
            continue
        image_refusal = link_refusal(article.image, policy, what="image") if article.image else None
        if image_refusal is not None:
            warnings.append(f"{_label(article)}: {image_refusal}; posted without it")
        kept.append(dataclasses.replace(article, image=None) if image_refusal else article)
    return kept, warnings


def _label(article: Article) -> str:
    title = article.title[:60] or "(untitled)"
    return f"article {title!r}"


class _ScreenedSource(WrappedSource):
    """A source whose articles pass :func:`screen` before the pipeline sees them."""

    def __init__(self, inner: Source, policy: FetchPolicy) -> None:
        super().__init__(inner)
        self.policy = policy

    async def poll(self, state: SourceState) -> PollResult:
        result = await self.inner.poll(state)
        if not result.articles:
            return result
        kept, refused = screen(result.articles, self.policy)
        if not refused:
            return result
        for warning in refused:
            log.warning("source %s: %s", self.name, warning, extra={"source": self.name})
        return dataclasses.replace(
            result, articles=tuple(kept), refusals=(*result.refusals, *refused)
        )


def screened(source: Source, policy: FetchPolicy) -> Source:
    """``source`` with every article whose link may not be posted dropped, with the reason."""
    return _ScreenedSource(source, policy)
