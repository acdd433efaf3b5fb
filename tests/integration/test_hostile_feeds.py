"""Hostile and broken feeds over real HTTP on 127.0.0.1: each yields the right articles or a
recorded source error with a clear reason; none crashes, hangs or posts twice."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.compose.length import TELEGRAM_MESSAGE, X_POST
from bot.compose.render import Renderer
from bot.config import Config, FeedSourceConfig, load_config
from bot.errors import SourceError
from bot.ledger import Ledger
from bot.pipeline import Pipeline
from bot.sources.base import SourceState, backoff_interval
from bot.sources.feed import FeedSource
from bot.sources.fetch import Fetcher
from bot.sources.policy import FetchPolicy
from bot.testing import LOCAL_FAKES
from bot.testing.feed_server import Fault, FeedItem, FeedServer, atom, rss, sample_items
from bot.testing.memory import MemoryChannel

LOCAL = ["127.0.0.1"]  # the fakes listen there: allow_private for the test sources

REPO = Path(__file__).resolve().parents[2]
HOSTILE = REPO / "tests" / "fixtures" / "feeds" / "hostile"
NOW = datetime(2025, 9, 17, 9, 0, tzinfo=UTC)
BIG5_TITLES = [
    "高雄與格丁尼亞簽署經濟合作備忘錄，攜手打造智慧城市",
    "陳其邁北上交流會議，呼籲朝野攜手共創財政公平與區域繁榮",
]


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    async with FeedServer() as fs:
        yield fs


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with Fetcher(timeout=5.0, max_bytes=1024 * 1024) as f:
        yield f.scoped(LOCAL_FAKES)


def source(url: str, fetcher: Fetcher, **overrides: object) -> FeedSource:
    config = FeedSourceConfig.model_validate(
        {"kind": "feed", "name": "newsvision", "url": url, "allow_private": LOCAL, **overrides}
    )
    return FeedSource(config, fetcher.scoped(FetchPolicy.for_source(config)), now=lambda: NOW)


# ------------------------------------------------------------------------- entity expansion


async def test_billion_laughs_is_refused_at_once(server: FeedServer, fetcher: Fetcher) -> None:
    """A nested-entity bomb is refused from its DTD, in milliseconds, naming the attack."""
    url = server.publish("/rss.xml", rss(sample_items(2)))
    server.set_fault("/rss.xml", "bomb")
    started = time.perf_counter()
    with pytest.raises(SourceError, match=r"'lol1' that expands into other entities.*billion"):
        await source(url, fetcher).poll(SourceState())
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    ("fixture", "reason"),
    [
        ("billion-laughs.xml", "billion laughs"),
        ("quadratic-blowup.xml", "would expand to more than 1048576 characters"),
        ("external-entity.xml", "'xxe' that points outside the document ('file:///etc/passwd')"),
        ("parameter-entity.xml", "parameter XML entity '外部'"),
    ],
)
async def test_entity_attacks_are_refused_quickly(
    server: FeedServer, fetcher: Fetcher, fixture: str, reason: str
) -> None:
    """Each kind of entity attack is a SourceError saying which, well under a second."""
    url = server.publish("/rss.xml", (HOSTILE / fixture).read_bytes())
    started = time.perf_counter()
    with pytest.raises(SourceError, match="refused") as caught:
        await source(url, fetcher).poll(SourceState())
    assert time.perf_counter() - started < 0.5
    assert reason in str(caught.value)


async def test_harmless_entities_are_expanded(server: FeedServer, fetcher: Fetcher) -> None:
    """A feed's own plain entities (&nbsp; &報社;) read as the text they stand for."""
    url = server.publish("/rss.xml", (HOSTILE / "safe-entities.xml").read_bytes())
    result = await source(url, fetcher).poll(SourceState())
    (article,) = result.articles
    assert article.title == "新聞視界時報專訪：高雄 × 格丁尼亞"
    assert article.summary_html.startswith("<p>新聞視界時報 記者 王秉程 整理報導</p>")
    assert result.warnings == ()


# ---------------------------------------------------------------------------------- charsets


async def test_big5_served_as_utf8_reads_as_big5_with_a_warning(
    server: FeedServer, fetcher: Fetcher
) -> None:
    """A feed re-encoded in Big5 while header and declaration say UTF-8 still reads right."""
    items = [
        FeedItem(
            guid=f"newsvision-{12410 + n}",
            title=title,
            link=f"https://news.example.tw/article/{12410 + n}",
            published=datetime(2025, 9, 15, 2, 0, tzinfo=UTC),
        )
        for n, title in enumerate([*BIG5_TITLES, "高雄迎來第43座姊妹市！🎉"])
    ]
    url = server.publish("/rss.xml", rss(items))
    server.set_fault("/rss.xml", "wrong_charset")
    result = await source(url, fetcher).poll(SourceState())
    assert [a.title for a in result.articles] == [*BIG5_TITLES, "高雄迎來第43座姊妹市！🎉"]
    assert result.warnings == ("the feed says it is utf-8 but is written in cp950; read as cp950",)


@pytest.mark.parametrize(
    ("fixture", "content_type", "warning"),
    [
        (
            "big5-declared-utf8.xml",
            "application/rss+xml",
            "says it is utf-8 but is written in cp950",
        ),
        (
            "big5-undeclared.xml",
            "application/rss+xml",
            "declares no encoding but is written in cp950",
        ),
        (
            "utf8-declared-big5.xml",
            "text/xml; charset=big5",
            "says it is big5 but is written in utf-8",
        ),
        ("utf16-bom.xml", "application/rss+xml", None),
    ],
)
async def test_wrong_or_missing_charset_declarations(
    server: FeedServer, fetcher: Fetcher, fixture: str, content_type: str, warning: str | None
) -> None:
    """Whatever the document claims, its Chinese reads right; a wrong claim is warned about."""
    url = server.publish("/rss.xml", (HOSTILE / fixture).read_bytes(), content_type=content_type)
    result = await source(url, fetcher).poll(SourceState())
    assert [a.title for a in result.articles] == BIG5_TITLES
    if warning is None:
        assert result.warnings == ()
    else:
        (said,) = result.warnings
        assert warning in said


# --------------------------------------------------------------------------- broken entries


async def test_broken_entries_yield_the_good_ones_with_warnings(
    server: FeedServer, fetcher: Fetcher
) -> None:
    """No link, a javascript: link, no title, no date, a future date, one page under four URLs
    and markup-laden titles: the usable entries come through once each, the rest are named."""
    url = server.publish("/rss.xml", (HOSTILE / "hostile-entries.xml").read_bytes())
    result = await source(url, fetcher).poll(SourceState())
    by_key = {a.key: a for a in result.articles}
    assert list(by_key) == [
        "newsvision-12432",
        "https://news.example.tw/notice/12433",
        "newsvision-12434",
        "https://news.example.tw/article/12435",
        "newsvision-12436",
        "newsvision-12437",
    ]
    # No title: the start of the summary stands in.
    assert by_key["newsvision-12432"].title.startswith("高雄市再拓國際版圖！")
    # No date: first seen now. A date in 2035: clamped to now, so it cannot jump the queue.
    assert by_key["https://news.example.tw/notice/12433"].published == NOW
    assert by_key["newsvision-12434"].published == NOW
    # utm_*, fragment, :443, upper-case host, http and fbclid variants are one page.
    assert by_key["https://news.example.tw/article/12435"].url == (
        "https://news.example.tw/article/12435"
    )
    warnings = "\n".join(result.warnings)
    assert "entry 1 (沒有連結的快訊) has no link to post; skipped" in warnings
    assert "entry 2 (點我領獎) links to 'javascript:alert(document.cookie)'" in warnings
    assert "entry 5 (來自未來的報導) is dated in the future (2035-09-15T02:00:00+00:00)" in warnings
    assert warnings.count("links to the same page as entry 6; skipped") == 2
    assert all(a.url.startswith("https://news.example.tw/") for a in result.articles)


async def test_future_dates_are_clamped_to_first_seen(server: FeedServer, fetcher: Fetcher) -> None:
    """Every entry dated 30 days ahead is taken as published at the poll, with a warning."""
    url = server.publish("/atom.xml", atom(sample_items(3)), content_type="application/atom+xml")
    server.set_fault("/atom.xml", "future_dates")
    result = await source(url, fetcher).poll(SourceState())
    assert [a.published for a in result.articles] == [NOW, NOW, NOW]
    assert len(result.warnings) == 3
    assert all("dated in the future" in w for w in result.warnings)


async def test_truncated_feed_reads_what_arrived_or_says_why(
    server: FeedServer, fetcher: Fetcher
) -> None:
    """A feed cut mid-transfer gives the entries before the cut with a 'malformed' warning."""
    url = server.publish("/rss.xml", rss(sample_items(10)))
    server.set_fault("/rss.xml", "truncated")
    result = await source(url, fetcher).poll(SourceState())
    assert 0 < len(result.articles) < 10
    assert any("malformed" in w for w in result.warnings)
    assert all(a.url.startswith("https://news.example.tw/article/") for a in result.articles)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ((HOSTILE / "xhtml-page.xml").read_bytes(), "application/xhtml+xml"),
        ((HOSTILE / "xhtml-page.xml").read_bytes(), "application/rss+xml"),
        (
            b"<!DOCTYPE html><html><body>\xe7\xb6\xad\xe8\xad\xb7\xe4\xb8\xad</body></html>",
            "text/html",
        ),
    ],
    ids=["xhtml", "xhtml-as-rss", "html"],
)
async def test_web_page_instead_of_feed(
    server: FeedServer, fetcher: Fetcher, body: bytes, content_type: str
) -> None:
    """An (X)HTML page where the feed should be is 'not a feed', whatever its type says."""
    url = server.publish("/rss.xml", body, content_type=content_type)
    with pytest.raises(SourceError, match="not a feed"):
        await source(url, fetcher).poll(SourceState())


# ------------------------------------------------------------------------------ size and time


@pytest.mark.parametrize("fault", ["huge", "huge_declared", "gzip_bomb"])
async def test_oversized_bodies_are_cut_at_the_cap(
    server: FeedServer, fetcher: Fetcher, fault: Fault
) -> None:
    """100 MB streamed, declared, or inflated from gzip: refused at max_bytes, quickly."""
    url = server.publish("/rss.xml", rss([]))
    server.set_fault("/rss.xml", fault)
    started = time.perf_counter()
    with pytest.raises(SourceError, match="response larger than 65536 bytes"):
        await source(url, fetcher, max_bytes=64 * 1024).poll(SourceState())
    assert time.perf_counter() - started < 1.0


async def test_trickle_is_stopped_by_the_overall_deadline(
    server: FeedServer, fetcher: Fetcher
) -> None:
    """A server sending a byte every 0.2 s forever is cut off at the source's 0.3 s deadline."""
    url = server.publish("/rss.xml", rss([]))
    server.set_fault("/rss.xml", "trickle")
    started = time.perf_counter()
    with pytest.raises(SourceError, match=r"no complete answer .* within 0\.3 s"):
        await source(url, fetcher, timeout="0.3s").poll(SourceState())
    assert time.perf_counter() - started < 1.0


async def test_redirect_to_a_local_file_is_not_followed(
    server: FeedServer, fetcher: Fetcher
) -> None:
    """A redirect to file:///etc/passwd is refused, never read."""
    url = server.publish("/rss.xml", rss([]))
    server.set_fault("/rss.xml", "redirect_file")
    with pytest.raises(SourceError, match="only http and https redirects are followed"):
        await source(url, fetcher).poll(SourceState())


# ------------------------------------------------------------- recorded through the pipeline

CONFIG = """\
timezone: Asia/Taipei
database: sqlite:///ledger.db
templates: {templates}
sources:
  newsvision:
    kind: feed
    url: {url}
    allow_private: [127.0.0.1]
    backlog: {backlog}
    max_age: 48h
    timeout: 2s
channels:
  telegram:
    kind: console
    template: telegram.html.j2
  x:
    kind: console
    template: x.txt.j2
"""


class World:
    """A Pipeline with a real FeedSource and a real SQLite ledger; memory channels."""

    def __init__(self, tmp_path: Path, url: str, fetcher: Fetcher, backlog: int = 0) -> None:
        path = tmp_path / "newsbot.yaml"
        path.write_text(
            CONFIG.format(templates=REPO / "templates", url=url, backlog=backlog), "utf-8"
        )
        self.config: Config = load_config(path, environ={})
        self.ledger = Ledger.open(self.config.database)
        self.now = NOW
        settings = self.config.sources["newsvision"]
        assert isinstance(settings, FeedSourceConfig)
        policy = FetchPolicy.for_source(settings)
        self.feed = FeedSource(settings, fetcher.scoped(policy), now=lambda: self.now)
        self.telegram = MemoryChannel("telegram", TELEGRAM_MESSAGE)
        self.x = MemoryChannel("x", X_POST)
        self.pipeline = Pipeline(
            self.config,
            self.ledger,
            {"newsvision": self.feed},
            {"telegram": self.telegram, "x": self.x},
            Renderer(self.config.templates, self.config.tz),
            holder="test:hostile",
            clock=lambda: self.now,
        )

    async def cycle(self) -> None:
        self.now += timedelta(minutes=2)
        await self.pipeline.poll_all()
        await self.pipeline.deliver_due()

    def posted(self) -> list[str]:
        return [p.link for p in self.x.posts]


@pytest.fixture
def worlds() -> Iterator[list[World]]:
    made: list[World] = []
    yield made
    for world in made:
        world.ledger.close()


async def test_changing_ids_never_repost(
    server: FeedServer, fetcher: Fetcher, tmp_path: Path, worlds: list[World]
) -> None:
    """A feed whose guids change on every fetch posts each article once: the ledger knows
    its canonical link. A genuinely new entry is still posted, once."""
    items = sample_items(3, newest=NOW)
    url = server.publish("/rss.xml", rss(items))
    server.set_fault("/rss.xml", "changing_ids")
    world = World(tmp_path, url, fetcher, backlog=3)
    worlds.append(world)

    await world.cycle()
    assert len(world.x.posts) == 3 and len(world.telegram.posts) == 3
    for _ in range(3):
        await world.cycle()
    assert len(world.x.posts) == 3 and len(world.telegram.posts) == 3
    keys = [r.if_none_match for r in server.requests_for("/rss.xml")]
    assert len(keys) == 4  # every poll was a full fetch with fresh ids

    newest = FeedItem(
        guid="newsvision-30001",
        title="高雄 & 格丁尼亞設立單一合作窗口！",
        link="https://news.example.tw/article/30001?utm_source=rss",
        summary_html="<p>新聞視界時報 記者 王秉程 整理報導</p><p>雙方將設立單一合作窗口。</p>",
        published=world.now,
    )
    server.publish("/rss.xml", rss([newest, *items]))
    await world.cycle()
    await world.cycle()
    assert world.posted()[3:] == ["https://news.example.tw/article/30001"]
    assert world.ledger.counts() == {"sent": 8}


async def test_same_article_under_other_urls_is_posted_once(
    server: FeedServer, fetcher: Fetcher, tmp_path: Path, worlds: list[World]
) -> None:
    """A guid-less article whose link gains utm_*, a fragment, :443 or moves from http to
    https between polls is not posted again."""

    def feed(link: str) -> str:
        return rss(
            [FeedItem(guid="", title="高雄醫材進軍泰國！", link=link, published=NOW)]
        ).replace('<guid isPermaLink="false"></guid>', "")

    url = server.publish("/rss.xml", feed("https://news.example.tw/article/12500"))
    world = World(tmp_path, url, fetcher, backlog=1)
    worlds.append(world)
    await world.cycle()
    for variant in (
        "http://news.example.tw/article/12500",
        "https://news.example.tw:443/article/12500?utm_source=rss#top",
        "HTTP://NEWS.EXAMPLE.TW:80/article/12500?fbclid=abc",
    ):
        server.publish("/rss.xml", feed(variant))
        await world.cycle()
    assert world.posted() == ["https://news.example.tw/article/12500"]
    assert len(world.telegram.posts) == 1


@pytest.mark.parametrize(
    "case",
    [
        ("404", "HTTP 404 Not Found from "),
        ("410", "HTTP 410 Gone from "),
        ("500", "HTTP 500 Internal Server Error from "),
        ("503", "HTTP 503 Service Unavailable from "),
        ("html", "not a feed: the server sent an HTML page"),
        ("bomb", "billion laughs"),
        ("redirect_loop", "redirect loop"),
        ("redirect_file", "only http and https redirects are followed"),
        ("drop", "the server closed the connection without answering"),
        ("huge", "response larger than"),
        ("gzip_bomb", "response larger than"),
    ],
    ids=lambda case: str(case[0]),
)
async def test_failures_are_recorded_with_their_reason_and_others_carry_on(
    server: FeedServer,
    fetcher: Fetcher,
    tmp_path: Path,
    worlds: list[World],
    case: tuple[Fault, str],
) -> None:
    """A failing feed is a recorded source error with its reason, counted in a row, never an
    exception out of the pipeline; once healed, it is read again."""
    fault, reason = case
    url = server.publish("/rss.xml", rss(sample_items(2, newest=NOW)))
    server.set_fault("/rss.xml", fault)
    world = World(tmp_path, url, fetcher)
    worlds.append(world)
    for attempt in (1, 2):
        (report,) = await world.pipeline.poll_all()
        assert not report.ok
        assert reason in (report.error or "")
        record = world.ledger.source("newsvision")
        assert record.last_error == report.error
        assert record.consecutive_errors == attempt
    assert "(Retry-After: 120)" in (record.last_error or "") or fault != "503"
    server.set_fault("/rss.xml", None)
    (report,) = await world.pipeline.poll_all()
    assert report.ok and report.seen == 2
    assert world.ledger.source("newsvision").consecutive_errors == 0


# --------------------------------------------------------------------------------- back-off


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        (-1, timedelta(minutes=2)),
        (0, timedelta(minutes=2)),
        (1, timedelta(minutes=4)),
        (2, timedelta(minutes=8)),
        (4, timedelta(minutes=32)),
        (5, timedelta(hours=1)),
        (10_000, timedelta(hours=1)),
    ],
)
def test_backoff_doubles_per_consecutive_error_up_to_the_cap(
    errors: int, expected: timedelta
) -> None:
    """Every consecutive error doubles a 2-minute interval, never past the 1-hour cap."""
    assert backoff_interval(timedelta(minutes=2), errors) == expected


def test_backoff_never_shortens_an_interval_longer_than_the_cap() -> None:
    """A source polled every 3 h keeps 3 h however often it fails; a custom cap is honoured."""
    assert backoff_interval(timedelta(hours=3), 5) == timedelta(hours=3)
    assert backoff_interval(timedelta(seconds=30), 3, cap=timedelta(minutes=3)) == timedelta(
        minutes=3
    )
    assert backoff_interval(timedelta(seconds=30), 2, cap=timedelta(minutes=3)) == timedelta(
        minutes=2
    )
