"""A news site's feeds on 127.0.0.1: published, changed, and broken on purpose.

Tests publish documents at paths (``fs.publish("/rss.xml", rss(items))``) and read back what
was asked (``fs.requests``). Every document answers with an ETag and a Last-Modified, and a
matching conditional request gets a 304, as a well-behaved site does. ``set_delay`` gives each
answer a site's latency (loopback has none, so a fetch benchmark without it measures only CPU);
``set_fault`` makes one path misbehave in one of the ways real sites do.

``rss()`` and ``atom()`` build feeds from :class:`FeedItem` values; ``sample_items()`` makes
Traditional Chinese items in the spirit of the seed article. ``serve()`` runs it from the
command line (``python -m bot.testing feed``).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import re
import struct
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime, formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from bot.testing.server import LOOPBACK, LocalServer, Served

__all__ = [
    "Fault",
    "FeedItem",
    "FeedServer",
    "RequestRecord",
    "atom",
    "billion_laughs",
    "rss",
    "sample_items",
    "serve",
]

Fault = Literal[
    "404",
    "410",
    "500",
    "503",
    "html",
    "trickle",
    "huge",
    "huge_declared",
    "gzip_bomb",
    "redirect_loop",
    "redirect_file",
    "drop",
    "bomb",
    "wrong_charset",
    "future_dates",
    "changing_ids",
    "truncated",
]
"""How a path can misbehave (:meth:`FeedServer.set_fault`):

- ``404`` / ``410`` / ``500``: that status; ``503`` also says ``Retry-After: 120``.
- ``html``: the site's maintenance page instead of the feed.
- ``trickle``: headers at once, then a byte every 0.2 s, forever.
- ``huge``: 100 MB of (well-formed) comment, streamed without a Content-Length.
- ``huge_declared``: a Content-Length of 100 MB, then a trickle of it.
- ``gzip_bomb``: ``Content-Encoding: gzip``, 100 MB of zeros compressed to about 100 KB.
- ``redirect_loop``: two URLs redirecting to each other; ``redirect_file`` to ``file:///etc/passwd``.
- ``drop``: the connection is closed without an answer.
- ``bomb``: a "billion laughs" document (:func:`billion_laughs`).

The rest rewrite the document published at the path, as broken sites do:

- ``wrong_charset``: re-encoded in Big5 while the header and the XML declaration say UTF-8.
- ``future_dates``: every date moved to 30 days after the request.
- ``changing_ids``: every guid / entry id gets a new suffix on every request (no validators).
- ``truncated``: only the first 60 % of the bytes, as a proxy that gave up mid-transfer.
"""

RSS_TYPE = "application/rss+xml; charset=utf-8"
TAIPEI = timezone(timedelta(hours=8), "Asia/Taipei")

_HTML_PAGE = (
    '<!DOCTYPE html>\n<html lang="zh-Hant-TW"><head><meta charset="utf-8">'
    "<title>新聞視界時報｜首頁</title></head><body><h1>新聞視界時報</h1>"
    "<p>網站維護中，請稍後再試。</p></body></html>\n"
)
_HUGE_BYTES = 100 * 1024 * 1024
_BIG5 = "cp950"
_TRICKLE_INTERVAL = 0.2


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the server saw it; ``headers`` holds the lower-cased ones that matter."""

    path: str
    query: str
    headers: dict[str, str]
    status: int

    @property
    def if_none_match(self) -> str | None:
        return self.headers.get("if-none-match")

    @property
    def if_modified_since(self) -> str | None:
        return self.headers.get("if-modified-since")


@dataclass(slots=True)
class _Document:
    body: bytes
    content_type: str
    etag: str
    last_modified: float


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One entry of a generated feed."""

    guid: str
    title: str
    link: str
    summary_html: str = ""
    published: datetime | None = None
    categories: Sequence[str] = ()
    author: str | None = None
    image: str | None = None
    #: Atom's <updated> (default: the published time), for an entry the newsroom changed.
    updated: datetime | None = None


class FeedServer(Served):
    """Feeds over real HTTP on the loopback interface; ``with`` (thread) or ``async with``."""

    _RECORDED = ("if-none-match", "if-modified-since", "user-agent", "accept")

    def __init__(self, *, host: str = LOOPBACK, port: int = 0) -> None:
        self._lock = threading.Lock()
        self._documents: dict[str, _Document] = {}
        self._faults: dict[str, Fault] = {}
        self._redirects: dict[str, tuple[str, int]] = {}
        self._delay = 0.0
        self._version = 0
        self._fetches: dict[str, int] = {}
        self.requests: list[RequestRecord] = []
        # Requests being answered at once, and the most seen: a client's concurrency, counted
        # where it shows, not guessed from a wall clock that a loaded machine stretches.
        self.in_flight = 0
        self.most_in_flight = 0
        app = web.Application()
        app.router.add_route("GET", "/{path:.*}", self._handle)
        app.router.add_route("HEAD", "/{path:.*}", self._handle)
        self._server = LocalServer(app, host=host, port=port)

    # -- what tests call ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:43121``."""
        return self._server.url

    def url_for(self, path: str) -> str:
        return self.url + _path(path)

    def publish(self, path: str, body: bytes | str, *, content_type: str = RSS_TYPE) -> str:
        """Serve ``body`` at ``path`` from now on, with a new ETag and Last-Modified."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        with self._lock:
            self._version += 1
            previous = self._documents.get(_path(path))
            # HTTP dates have whole seconds: two publishes in one second must still differ.
            stamp = float(int(time.time()))
            if previous is not None and stamp <= previous.last_modified:
                stamp = previous.last_modified + 1
            digest = hashlib.sha1(data, usedforsecurity=False).hexdigest()[:16]
            self._documents[_path(path)] = _Document(
                data, content_type, f'"{digest}-{self._version}"', stamp
            )
        return self.url_for(path)

    def redirect(self, path: str, to: str, *, status: int = 301) -> str:
        """Answer ``path`` with a redirect to ``to`` (a path or a full URL)."""
        with self._lock:
            self._redirects[_path(path)] = (to, status)
        return self.url_for(path)

    def set_delay(self, seconds: float) -> None:
        """Wait this long before every answer, as a real site over a real network would."""
        self._delay = max(0.0, seconds)

    def set_fault(self, path: str, fault: Fault | None) -> None:
        """Make ``path`` misbehave (``None`` heals it)."""
        with self._lock:
            if fault is None:
                self._faults.pop(_path(path), None)
            else:
                self._faults[_path(path)] = fault

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def requests_for(self, path: str) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self.requests if r.path == _path(path)]

    # -- answering ----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await self._answer_request(request)
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _answer_request(self, request: web.Request) -> web.StreamResponse:
        if self._delay:
            await asyncio.sleep(self._delay)
        path = request.path
        with self._lock:
            fault = self._faults.get(path)
            redirect = self._redirects.get(path)
            document = self._documents.get(path)
        if fault is not None:
            response = await self._misbehave(request, fault)
        elif redirect is not None:
            response = web.Response(status=redirect[1], headers={"Location": redirect[0]})
        elif document is None:
            response = web.Response(status=404, text="找不到這個頁面\n")
        else:
            response = _answer(request, document)
        self._record(request, response.status)
        return response

    def _record(self, request: web.Request, status: int) -> None:
        headers = {
            name: request.headers[name] for name in self._RECORDED if name in request.headers
        }
        with self._lock:
            self.requests.append(RequestRecord(request.path, request.query_string, headers, status))

    async def _misbehave(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        if fault in ("404", "410", "500"):
            return web.Response(status=int(fault), text=f"錯誤 {fault}\n")
        if fault == "503":
            return web.Response(status=503, text="伺服器忙碌中\n", headers={"Retry-After": "120"})
        if fault == "bomb":
            return web.Response(body=billion_laughs().encode(), headers={"Content-Type": RSS_TYPE})
        if fault == "redirect_file":
            return web.Response(status=302, headers={"Location": "file:///etc/passwd"})
        if fault in ("wrong_charset", "future_dates", "changing_ids", "truncated"):
            with self._lock:
                document = self._documents.get(request.path)
                self._fetches[request.path] = count = self._fetches.get(request.path, 0) + 1
            if document is None:
                return web.Response(status=404, text="找不到這個頁面\n")
            body = _rewrite(document.body, fault, count)
            # No validators: a site that rewrites its feed on every request rarely sends any.
            return web.Response(body=body, headers={"Content-Type": document.content_type})
        if fault == "huge_declared":
            declared = web.StreamResponse(
                headers={"Content-Type": RSS_TYPE, "Content-Length": str(_HUGE_BYTES)}
            )
            await declared.prepare(request)
            try:
                for _ in range(600):
                    await declared.write(b" " * 1024)
                    await asyncio.sleep(_TRICKLE_INTERVAL)
            except ConnectionError:
                pass
            return declared
        if fault == "gzip_bomb":
            return await _gzip_bomb(request)
        if fault == "html":
            return web.Response(text=_HTML_PAGE, content_type="text/html", charset="utf-8")
        if fault == "redirect_loop":
            # Two URLs pointing at each other, as a misconfigured pair of rewrite rules does.
            target = request.path if request.query_string else f"{request.path}?hop=1"
            return web.Response(status=302, headers={"Location": target})
        if fault == "drop":
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=499)
        response = web.StreamResponse(headers={"Content-Type": RSS_TYPE})
        await response.prepare(request)
        try:
            if fault == "trickle":
                # Headers at once, then a byte at a time: only an overall deadline stops this.
                for byte in b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0">':
                    await response.write(bytes([byte]))
                    await asyncio.sleep(_TRICKLE_INTERVAL)
            else:
                chunk = b"<!-- " + b"x" * (64 * 1024 - 9) + b" -->"
                for _ in range(_HUGE_BYTES // len(chunk)):
                    await response.write(chunk)
        except ConnectionError:
            pass  # the client gave up, which is what these faults are for
        return response


_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
_MEGABYTE = 1024 * 1024


@functools.cache
def _deflated_zeros() -> bytes:
    """One megabyte of zeros as a raw deflate block that ends byte-aligned (a full flush), so
    that copies of it concatenate into one valid stream: compressed once, sent many times."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(bytes(_MEGABYTE)) + packer.flush(zlib.Z_FULL_FLUSH)


async def _gzip_bomb(request: web.Request) -> web.StreamResponse:
    """100 MB of zeros as ``Content-Encoding: gzip``: about 100 KB on the wire."""
    response = web.StreamResponse(headers={"Content-Type": RSS_TYPE, "Content-Encoding": "gzip"})
    # aiohttp compresses nothing unless asked (enable_compression), so this goes out as is.
    await response.prepare(request)
    block = _deflated_zeros()
    blocks = _HUGE_BYTES // _MEGABYTE
    try:
        await response.write(_GZIP_HEADER)
        for _ in range(blocks):
            await response.write(block)
            await asyncio.sleep(0)  # the client may share this event loop
        crc = 0
        for _ in range(blocks):
            crc = zlib.crc32(bytes(_MEGABYTE), crc)
        final = zlib.compressobj(9, zlib.DEFLATED, -15).flush()
        await response.write(final + struct.pack("<II", crc, (blocks * _MEGABYTE) & 0xFFFFFFFF))
    except ConnectionError:
        pass
    return response


_GUID = re.compile(r"(<guid\b[^>]*>)(.*?)(</guid>)", re.S)
_ENTRY = re.compile(r"<entry>.*?</entry>", re.S)
_ENTRY_ID = re.compile(r"(<id>)(.*?)(</id>)", re.S)
_DATES = re.compile(
    r"(<pubDate>|<published>|<updated>|<dc:date>)(.*?)(</pubDate>|</published>|</updated>|</dc:date>)"
)


def _rewrite(body: bytes, fault: Fault, count: int) -> bytes:
    text = body.decode("utf-8")
    if fault == "truncated":
        return body[: len(body) * 6 // 10]
    if fault == "wrong_charset":
        # Characters Big5 lacks (emoji) become character references, as an old CMS writes them.
        return text.encode(_BIG5, errors="xmlcharrefreplace")
    if fault == "changing_ids":

        def renumber(match: re.Match[str]) -> str:
            return f"{match.group(1)}{match.group(2)}-r{count}{match.group(3)}"

        text = _GUID.sub(renumber, text)
        text = _ENTRY.sub(lambda entry: _ENTRY_ID.sub(renumber, entry.group()), text)
        return text.encode("utf-8")
    later = datetime.now(UTC) + timedelta(days=30)

    def postdate(match: re.Match[str]) -> str:
        value = format_datetime(later) if match.group(1) == "<pubDate>" else later.isoformat()
        return f"{match.group(1)}{value}{match.group(3)}"

    return _DATES.sub(postdate, text).encode("utf-8")


def billion_laughs(levels: int = 10, fan_out: int = 10) -> str:
    """An RSS document whose title is an entity expanding to ``fan_out ** (levels - 1)`` × "哈"
    (by default 10⁹ characters, 3 GB as UTF-8): the classic XML entity-expansion attack."""
    declarations = ['<!ENTITY lol0 "哈">']
    for level in range(1, levels):
        declarations.append(f'<!ENTITY lol{level} "{f"&lol{level - 1};" * fan_out}">')
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f"<!DOCTYPE rss [\n{chr(10).join(declarations)}\n]>\n"
        '<rss version="2.0"><channel><title>新聞視界時報</title>'
        "<link>https://news.example.tw/</link><description>笑</description>"
        f"<item><title>&lol{levels - 1};</title>"
        "<link>https://news.example.tw/article/1</link><guid>newsvision-1</guid>"
        f"<description>&lol{levels - 1};</description></item></channel></rss>\n"
    )


def _answer(request: web.Request, document: _Document) -> web.Response:
    headers = {
        "ETag": document.etag,
        "Last-Modified": formatdate(document.last_modified, usegmt=True),
        "Cache-Control": "max-age=60",
    }
    if _not_modified(request, document):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = document.content_type
    return web.Response(body=document.body, headers=headers)


def _not_modified(request: web.Request, document: _Document) -> bool:
    # RFC 9110 §13.2.2: If-None-Match, when present, decides alone.
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or document.etag in tags
    if_modified_since = request.headers.get("If-Modified-Since")
    if if_modified_since:
        try:
            since = parsedate_to_datetime(if_modified_since).timestamp()
        except (TypeError, ValueError):
            return False
        return document.last_modified <= since
    return False


def _path(path: str) -> str:
    return path if path.startswith("/") else "/" + path


# ----------------------------------------------------------------------------------- feed builders


def rss(
    items: Sequence[FeedItem],
    *,
    title: str = "新聞視界時報",
    link: str = "https://news.example.tw/",
    description: str = "新聞視界時報最新報導",
) -> str:
    """An RSS 2.0 document; summaries go in ``content:encoded`` and ``description``."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/">',
        "<channel>",
        f"<title>{escape(title)}</title>",
        f"<link>{escape(link)}</link>",
        f"<description>{escape(description)}</description>",
        "<language>zh-TW</language>",
    ]
    for item in items:
        parts.append("<item>")
        parts.append(f"<title>{escape(item.title)}</title>")
        parts.append(f"<link>{escape(item.link)}</link>")
        parts.append(f'<guid isPermaLink="false">{escape(item.guid)}</guid>')
        if item.published is not None:
            parts.append(f"<pubDate>{format_datetime(_aware(item.published))}</pubDate>")
        if item.author:
            parts.append(f"<dc:creator>{escape(item.author)}</dc:creator>")
        parts.extend(f"<category>{escape(term)}</category>" for term in item.categories)
        if item.image:
            parts.append(
                f'<enclosure url={quoteattr(item.image)} length="0"'
                f" type={quoteattr(_image_type(item.image))}/>"
            )
        if item.summary_html:
            parts.append(f"<description>{escape(item.summary_html)}</description>")
            parts.append(f"<content:encoded>{_cdata(item.summary_html)}</content:encoded>")
        parts.append("</item>")
    parts += ["</channel>", "</rss>", ""]
    return "\n".join(parts)


def atom(
    items: Sequence[FeedItem],
    *,
    title: str = "新聞視界時報",
    link: str = "https://news.example.tw/",
    feed_id: str = "tag:news.example.tw,2025:feed",
) -> str:
    """An Atom 1.0 document."""
    stamps = [_aware(i.published) for i in items if i.published is not None]
    updated = max(stamps, default=datetime(2025, 9, 16, tzinfo=TAIPEI))
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="zh-TW">',
        f"<title>{escape(title)}</title>",
        f"<id>{escape(feed_id)}</id>",
        f"<updated>{updated.isoformat()}</updated>",
        f'<link rel="alternate" href={quoteattr(link)}/>',
    ]
    for item in items:
        parts.append("<entry>")
        parts.append(f"<title>{escape(item.title)}</title>")
        parts.append(f"<id>{escape(item.guid)}</id>")
        parts.append(f'<link rel="alternate" type="text/html" href={quoteattr(item.link)}/>')
        when = _aware(item.published) if item.published is not None else updated
        parts.append(f"<published>{when.isoformat()}</published>")
        changed = _aware(item.updated) if item.updated is not None else when
        parts.append(f"<updated>{changed.isoformat()}</updated>")
        if item.author:
            parts.append(f"<author><name>{escape(item.author)}</name></author>")
        parts.extend(f"<category term={quoteattr(term)}/>" for term in item.categories)
        if item.image:
            parts.append(
                f'<link rel="enclosure" type={quoteattr(_image_type(item.image))}'
                f" href={quoteattr(item.image)}/>"
            )
        if item.summary_html:
            parts.append(f'<content type="html">{escape(item.summary_html)}</content>')
        parts.append("</entry>")
    parts += ["</feed>", ""]
    return "\n".join(parts)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _image_type(url: str) -> str:
    suffix = url.rsplit("?", 1)[0].rsplit(".", 1)[-1].lower()
    return {"png": "image/png", "gif": "image/gif", "webp": "image/webp"}.get(suffix, "image/jpeg")


_SEED_STORIES = (
    (
        "住桃園很可以！GoPro Creator Camp熱鬧登場，國際創作者用影像帶領世界重新看見桃園的真實魅力",
        "桃園市政府昨(15)日下午在桃園區舉辦「住桃園很可以！GoPro Creator Camp」記者會。"
        "副市長蘇俊賓特別出席。",
        ("地方", "文化"),
    ),
    (
        "2025臺北生技獎成果交流會──創新相聚，共探生醫未來。",
        "2025年9月24日(星期三)下午，臺北漢來大飯店鉑金A廳將迎來一場令人期待的盛會──「2025臺北生技獎成果交流會」。",
        ("生技",),
    ),
    (
        "高雄醫材進軍泰國！經發局攜手在地業者參展曼谷醫材展，搶攻亞太醫療大商機",
        "在全球供應鏈因美國關稅政策調整而重新洗牌之際，高雄市府經發局積極協助在地醫材業者「化危機為轉機」。",
        ("投資理財", "高雄"),
    ),
    (
        "高雄迎來第43座姊妹市！與波蘭格丁尼亞締盟，攜手開創城市外交新篇章 🎉",
        "高雄市再拓國際版圖！9 月 14 日，高雄與波蘭格丁尼亞市正式締結姊妹市，"
        "這不僅是高雄首座波蘭姊妹市。",
        ("城市外交",),
    ),
    (
        "陳其邁北上交流會議，呼籲朝野攜手共創財政公平與區域繁榮",
        "高雄市長 陳其邁 昨(13)日應行政院邀請，率領市府團隊北上參加「財政收支劃分法」座談。",
        ("政治",),
    ),
    (
        "高雄 & 格丁尼亞再升級！簽署<經濟合作備忘錄>，攜手打造新創與智慧城市新典範",
        "由高雄市副市長 羅達生 率領市府團隊，"
        "於波蘭時間 9 月 14 日與格丁尼亞市政府正式簽署 經濟合作備忘錄。",
        ("投資理財", "城市外交"),
    ),
)


def sample_items(
    count: int = 50, *, newest: datetime | None = None, start_id: int = 20000
) -> list[FeedItem]:
    """``count`` Traditional Chinese items, newest first, one every 20 minutes."""
    top = newest or datetime(2025, 9, 16, 18, 0, tzinfo=TAIPEI)
    items = []
    for n in range(count):
        title, lead, categories = _SEED_STORIES[n % len(_SEED_STORIES)]
        number = start_id + count - n
        body = (
            "<p>新聞視界時報 記者 王秉程 整理報導</p>"
            f"<p>{escape(lead)}</p>"
            f"<p>第 {number} 號報導，更新於 {top.month}/{top.day}/{top.year}。</p>"
        )
        items.append(
            FeedItem(
                guid=f"newsvision-{number}",
                title=title if n < len(_SEED_STORIES) else f"{title}（{number}）",
                link=f"https://news.example.tw/article/{number}?utm_source=rss",
                summary_html=body,
                published=top - timedelta(minutes=20 * n),
                categories=categories,
                author="王秉程",
                image=f"https://news.example.tw/images/{number}.jpg" if n % 3 == 0 else None,
            )
        )
    return items


# ------------------------------------------------------------------------------- command line

_TYPES = {
    ".xml": RSS_TYPE,
    ".rss": RSS_TYPE,
    ".rdf": "application/rdf+xml; charset=utf-8",
    ".atom": "application/atom+xml; charset=utf-8",
    ".json": "application/feed+json; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}


def serve(argv: list[str]) -> int:
    """Serve a folder of feeds, or a generated sample feed, until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m bot.testing feed", description="Serve news feeds on 127.0.0.1."
    )
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--dir", type=Path, help="serve every file of this folder at /<name>")
    parser.add_argument("--items", type=int, default=20, help="entries of the generated /rss.xml")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)
    if args.dir is not None and not args.dir.is_dir():
        parser.error(f"{args.dir} is not a folder")

    async def run() -> None:
        server = FeedServer(port=args.port)
        async with server:
            server.set_delay(args.delay)
            if args.dir is not None:
                for file in sorted(args.dir.iterdir()):
                    if file.is_file():
                        kind = _TYPES.get(file.suffix.lower(), "application/octet-stream")
                        print(server.publish("/" + file.name, file.read_bytes(), content_type=kind))
            else:
                items = sample_items(args.items)
                print(server.publish("/rss.xml", rss(items)))
                print(server.publish("/atom.xml", atom(items), content_type=_TYPES[".atom"]))
            print("serving; Ctrl-C stops", flush=True)
            await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        return 0
    return 0


main = serve
