"""Fetching a feed: conditional GET over HTTP(S), or a read from disk for ``file://`` URLs.

The only module that knows the HTTP client. aiohttp was chosen by measurement: about 0.27 ms
of CPU per conditional GET at 50 concurrent, against 3–4.7 ms for httpx. One
:class:`Fetcher` holds one session for the whole process; build it in the CLI or daemon and pass
it to every source.

Every failure becomes a :class:`~bot.errors.SourceError` saying what happened and where. Headers
are never logged: a proxy or a future source might put a credential in one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Self
from urllib.parse import urljoin, urlsplit
from urllib.request import url2pathname

import aiohttp
from multidict import CIMultiDictProxy

from bot import USER_AGENT
from bot.errors import SourceError

__all__ = ["DEFAULT_USER_AGENT", "FetchResult", "Fetcher"]

DEFAULT_USER_AGENT = USER_AGENT
_CHUNK = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class FetchResult:
    """One response. ``url`` is the final URL after redirects; ``body`` is empty on a 304."""

    status: int
    body: bytes
    url: str
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    not_modified: bool = False


# Connections open at once. With sites answering in ~100 ms, 1,000 feeds poll in ~1 s (bench/).
DEFAULT_CONCURRENCY = 100


class Fetcher:
    """Conditional GETs with a size cap and an overall deadline. ``async with Fetcher() as f``."""

    def __init__(
        self,
        *,
        user_agent: str = DEFAULT_USER_AGENT,
        max_bytes: int = 10 * 1024 * 1024,
        timeout: float = 20.0,
        max_redirects: int = 5,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self.user_agent = user_agent
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None

    async def __aenter__(self) -> Self:
        # The session must be built inside a running loop, hence here and not in __init__.
        connector = aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=self.concurrency)
        self._slots = asyncio.Semaphore(self.concurrency)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": self.user_agent},
            # Our own deadline governs; aiohttp's default 5-minute total would only mask it.
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=True,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        max_bytes: int | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - a per-source deadline, applied below
    ) -> FetchResult:
        """GET ``url``; a 304 to the validators given comes back with ``not_modified=True``."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        deadline = self.timeout if timeout is None else timeout
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https", "file"):
            raise SourceError(f"cannot fetch {url}: only http, https and file URLs are supported")
        slots = self._slots or asyncio.Semaphore(1)
        # The deadline starts once a connection slot is ours: with a thousand feeds polled at
        # once, the time spent queueing behind the others is not the site's fault.
        async with slots:
            try:
                # One deadline over connect, redirects and the whole body: a server that
                # trickles a byte a second cannot hold a poll past it. A file (a FIFO, a stuck
                # network mount) gets the same deadline; its thread finishes on its own.
                async with asyncio.timeout(deadline):
                    if scheme == "file":
                        return await asyncio.to_thread(_read_file, url, limit)
                    return await self._get(url, etag, last_modified, limit)
            except TimeoutError as exc:
                raise SourceError(f"no complete answer from {url} within {deadline:g} s") from exc

    async def _get(
        self, url: str, etag: str | None, last_modified: str | None, limit: int
    ) -> FetchResult:
        if self._session is None:
            raise RuntimeError("use the Fetcher as `async with Fetcher() as fetcher`")
        headers: dict[str, str] = {"Accept": _ACCEPT}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        seen = {url}
        current = url
        for _ in range(self.max_redirects + 1):
            try:
                async with self._session.get(
                    current, headers=headers, allow_redirects=False
                ) as response:
                    if response.status in _REDIRECTS and "Location" in response.headers:
                        target = _redirect_target(current, response.headers["Location"])
                        if target in seen:
                            raise SourceError(f"redirect loop: {current} leads back to {target}")
                        seen.add(target)
                        current = target
                        continue
                    return await _finish(response, current, limit)
            except aiohttp.ClientError as exc:
                raise SourceError(f"cannot fetch {current}: {_client_error(exc)}") from exc
        raise SourceError(f"more than {self.max_redirects} redirects from {url}")


_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)


def _redirect_target(current: str, location: str) -> str:
    """The absolute URL a redirect points to; only http(s) is followed. A feed server must not
    be able to send us to ``file:///etc/passwd`` or to any other scheme."""
    try:
        target = urljoin(current, location.strip())
        scheme = urlsplit(target).scheme.lower()
    except ValueError as exc:  # e.g. an invalid IPv6 literal in the Location header
        raise SourceError(f"{current} redirects to an invalid URL {location[:200]!r}") from exc
    if scheme not in ("http", "https"):
        raise SourceError(
            f"{current} redirects to {target[:200]!r}; only http and https redirects are followed"
        )
    return target


async def _finish(response: aiohttp.ClientResponse, url: str, limit: int) -> FetchResult:
    headers = response.headers
    if response.status == 304:
        return _result(response.status, b"", url, headers, not_modified=True)
    if response.status >= 400:
        reason = response.reason or ""
        message = f"HTTP {response.status} {reason} from {url}".replace("  ", " ")
        retry_after = headers.get("Retry-After", "").strip()
        if retry_after:
            message += f" (Retry-After: {retry_after[:64]})"
        raise SourceError(message)
    if 300 <= response.status < 400:
        raise SourceError(f"HTTP {response.status} from {url} without a Location to follow")
    if response.status not in (200, 203):
        # 204 No Content, 206 Partial Content...: nothing a feed reader can use as a whole feed.
        reason = f"HTTP {response.status} {response.reason or ''}".strip()
        raise SourceError(f"{reason} from {url}: expected 200 with the feed")
    declared = response.content_length
    if declared is not None and declared > limit:
        raise SourceError(f"response larger than {limit} bytes from {url}")
    body = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > limit:
            # Stop reading here: leaving the block closes the connection instead of draining it.
            raise SourceError(f"response larger than {limit} bytes from {url}")
    return _result(response.status, bytes(body), url, headers)


def _result(
    status: int,
    body: bytes,
    url: str,
    headers: CIMultiDictProxy[str],
    *,
    not_modified: bool = False,
) -> FetchResult:
    return FetchResult(
        status=status,
        body=body,
        url=url,
        etag=headers.get("ETag"),
        last_modified=headers.get("Last-Modified"),
        content_type=headers.get("Content-Type"),
        headers=MappingProxyType({k.lower(): v for k, v in headers.items()}),
        not_modified=not_modified,
    )


def _client_error(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.os_error.strerror or exc.os_error})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the response ended early or was corrupt"
    return str(exc) or type(exc).__name__


def _read_file(url: str, limit: int) -> FetchResult:
    parts = urlsplit(url)
    path = Path(url2pathname(parts.path))
    try:
        with path.open("rb") as handle:
            body = handle.read(limit + 1)
    except FileNotFoundError as exc:
        raise SourceError(f"no such file: {path}") from exc
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(body) > limit:
        raise SourceError(f"response larger than {limit} bytes from {url}")
    suffix = path.suffix.lower()
    content_type = "application/feed+json" if suffix == ".json" else None
    return FetchResult(status=200, body=body, url=url, content_type=content_type)
