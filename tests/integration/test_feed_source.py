"""Fetcher and FeedSource against a real FeedServer on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.config import FeedSourceConfig
from bot.errors import SourceError
from bot.sources.base import SourceState
from bot.sources.feed import FeedSource
from bot.sources.fetch import Fetcher
from bot.sources.policy import FetchPolicy
from bot.testing import LOCAL_FAKES
from bot.testing.feed_server import FeedItem, FeedServer, rss, sample_items

LOCAL = ["127.0.0.1"]  # the fakes listen there: allow_private for the test sources

FEEDS = Path(__file__).parent.parent / "fixtures" / "feeds"
SAMPLE = Path(__file__).parent.parent.parent / "config" / "samples" / "newsvision.xml"
NOW = datetime(2025, 9, 17, 9, 0, tzinfo=UTC)


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


# ---------------------------------------------------------------------------- conditional GET


async def test_second_poll_is_conditional_and_gets_304(
    server: FeedServer, fetcher: Fetcher
) -> None:
    """The state from poll 1 is sent back as If-None-Match/If-Modified-Since; 304 → not_modified."""
    url = server.publish("/rss.xml", rss(sample_items(5)))
    feed = source(url, fetcher)

    first = await feed.poll(SourceState())
    assert len(first.articles) == 5
    assert not first.not_modified
    assert first.state.etag
    assert first.state.last_modified

    second = await feed.poll(first.state)
    assert second.not_modified
    assert second.articles == ()
    assert second.state == first.state

    asked = server.requests_for("/rss.xml")
    assert asked[0].if_none_match is None
    assert asked[1].if_none_match == first.state.etag
    assert asked[1].if_modified_since == first.state.last_modified
    assert [r.status for r in asked] == [200, 304]


async def test_new_entry_after_publish_is_fetched_with_new_validators(
    server: FeedServer, fetcher: Fetcher
) -> None:
    """A republished feed answers 200 to the old validators, with the new entry and a new ETag."""
    items = sample_items(3)
    url = server.publish("/rss.xml", rss(items))
    feed = source(url, fetcher)
    first = await feed.poll(SourceState())

    newest = FeedItem(
        guid="newsvision-30001",
        title="高雄 & 格丁尼亞設立單一合作窗口！",
        link="https://news.example.tw/article/30001?utm_source=rss",
        summary_html="<p>新聞視界時報 記者 王秉程 整理報導</p><p>雙方將設立單一合作窗口。</p>",
        published=datetime(2025, 9, 17, 8, 0, tzinfo=UTC),
    )
    server.publish("/rss.xml", rss([newest, *items]))
    second = await feed.poll(first.state)
    assert not second.not_modified
    assert second.articles[0].key == "newsvision-30001"
    assert second.articles[0].title == "高雄 & 格丁尼亞設立單一合作窗口！"
    assert second.state.etag != first.state.etag


async def test_last_modified_alone_gets_304(server: FeedServer, fetcher: Fetcher) -> None:
    """A state holding only Last-Modified still earns a 304."""
    url = server.publish("/rss.xml", rss(sample_items(2)))
    first = await fetcher.get(url)
    again = await fetcher.get(url, last_modified=first.last_modified)
    assert again.not_modified
    assert again.status == 304
    assert again.body == b""


# -------------------------------------------------------------------------------- redirects


async def test_redirect_is_followed_and_links_resolve_against_final_url(
    server: FeedServer, fetcher: Fetcher
) -> None:
    """A moved feed is followed; relative links resolve against where it ended up."""
    item = FeedItem(guid="g-1", title="短訊", link="../article/1?utm_source=rss")
    final = server.publish("/v2/feeds/rss.xml", rss([item]))
    old = server.redirect("/rss.xml", "/v2/feeds/rss.xml")
    result = await source(old, fetcher).poll(SourceState())
    assert result.articles[0].url == server.url + "/v2/article/1"
    fetched = await fetcher.get(old)
    assert fetched.url == final


async def test_redirect_loop_is_a_source_error(server: FeedServer, fetcher: Fetcher) -> None:
    """Two URLs redirecting to each other end in SourceError, not an endless chase."""
    url = server.publish("/loop.xml", rss([]))
    server.set_fault("/loop.xml", "redirect_loop")
    with pytest.raises(SourceError, match="redirect loop"):
        await fetcher.get(url)
    assert len(server.requests_for("/loop.xml")) == 2


async def test_too_many_redirects_is_a_source_error(server: FeedServer) -> None:
    """A chain longer than max_redirects is refused."""
    for n in range(4):
        server.redirect(f"/hop{n}", f"/hop{n + 1}")
    server.publish("/hop4", rss([]))
    async with Fetcher(max_redirects=2, policy=LOCAL_FAKES) as short:
        with pytest.raises(SourceError, match="more than 2 redirects"):
            await short.get(server.url_for("/hop0"))
    async with Fetcher(max_redirects=4, policy=LOCAL_FAKES) as enough:
        assert (await enough.get(server.url_for("/hop0"))).status == 200


# ------------------------------------------------------------------------------ HTTP errors


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("404", "HTTP 404 Not Found from "),
        ("410", "HTTP 410 Gone from "),
        ("500", "HTTP 500 Internal Server Error from "),
    ],
)
async def test_http_error_status_is_named(
    server: FeedServer, fetcher: Fetcher, fault: str, message: str
) -> None:
    """4xx/5xx become SourceError naming status, reason and URL."""
    url = server.publish("/rss.xml", rss([]))
    server.set_fault("/rss.xml", fault)  # type: ignore[arg-type]
    with pytest.raises(SourceError) as caught:
        await source(url, fetcher).poll(SourceState())
    assert str(caught.value) == message + url


async def test_unknown_path_is_404(server: FeedServer, fetcher: Fetcher) -> None:
    """A path nothing was published at is an HTTP 404 SourceError."""
    with pytest.raises(SourceError, match="HTTP 404"):
        await fetcher.get(server.url_for("/nothing.xml"))


async def test_html_instead_of_feed(server: FeedServer, fetcher: Fetcher) -> None:
    """A site serving its maintenance page gives a clear 'not a feed' error."""
    url = server.publish("/rss.xml", rss([]))
    server.set_fault("/rss.xml", "html")
    with pytest.raises(SourceError, match="not a feed: the server sent an HTML page"):
        await source(url, fetcher).poll(SourceState())


async def test_dropped_connection_is_a_source_error(server: FeedServer, fetcher: Fetcher) -> None:
    """A server that hangs up without answering gives a SourceError, not an aiohttp error."""
    url = server.publish("/rss.xml", rss([]))
    server.set_fault("/rss.xml", "drop")
    with pytest.raises(SourceError, match="cannot fetch") as caught:
        await fetcher.get(url)
    assert caught.value.__cause__ is not None


async def test_connection_refused_is_a_source_error(fetcher: Fetcher) -> None:
    """Nobody listening on the port is a SourceError saying it cannot connect."""
    async with FeedServer() as gone:
        url = gone.url_for("/rss.xml")
    with pytest.raises(SourceError, match="cannot connect"):
        await fetcher.get(url)


# --------------------------------------------------------------------------- size and time


async def test_huge_response_is_cut_at_max_bytes(server: FeedServer) -> None:
    """A streamed body without Content-Length is abandoned once it passes the cap."""
    url = server.publish("/rss.xml", rss([]))
    server.set_fault("/rss.xml", "huge")
    async with Fetcher(max_bytes=256 * 1024, policy=LOCAL_FAKES) as fetcher:
        started = time.perf_counter()
        with pytest.raises(SourceError, match="response larger than 262144 bytes"):
            await fetcher.get(url)
        assert time.perf_counter() - started < 2.0


async def test_declared_length_over_cap_is_refused(server: FeedServer, fetcher: Fetcher) -> None:
    """A per-call max_bytes below the document's size refuses it."""
    url = server.publish("/rss.xml", rss(sample_items(50)))
    with pytest.raises(SourceError, match="response larger than 2048 bytes"):
        await fetcher.get(url, max_bytes=2048)


async def test_trickling_server_hits_the_overall_deadline(
    server: FeedServer, fetcher: Fetcher
) -> None:
    """A server sending a byte every 0.2 s is cut off at the overall deadline, not per read."""
    url = server.publish("/rss.xml", rss([]))
    server.set_fault("/rss.xml", "trickle")
    started = time.perf_counter()
    with pytest.raises(SourceError, match=r"within 0\.6 s"):
        await fetcher.get(url, timeout=0.6)
    assert time.perf_counter() - started < 1.5


async def test_slow_server_within_deadline_is_fine(server: FeedServer, fetcher: Fetcher) -> None:
    """set_delay adds latency, and a deadline longer than it still gets the feed."""
    url = server.publish("/rss.xml", rss(sample_items(2)))
    server.set_delay(0.1)
    started = time.perf_counter()
    result = await fetcher.get(url, timeout=2.0)
    assert result.status == 200
    assert time.perf_counter() - started >= 0.1


async def test_concurrent_polls_overlap_their_latency(server: FeedServer) -> None:
    """Twenty feeds with 0.5 s latency each are all fetched at once (counted at the server:
    at load 5-8 a wall-clock bound of 1 s for 0.1 s feeds failed at 1.03 s)."""
    urls = [server.publish(f"/f{n}.xml", rss(sample_items(3))) for n in range(20)]
    server.set_delay(0.5)
    async with Fetcher(concurrency=50, policy=LOCAL_FAKES) as fetcher:
        started = time.perf_counter()
        results = await asyncio.gather(*(fetcher.get(u) for u in urls))
        elapsed = time.perf_counter() - started
    assert all(r.status == 200 for r in results)
    assert server.most_in_flight == 20
    assert elapsed < 20 * 0.5  # not one after the other


# ------------------------------------------------------------------------------------ files


async def test_file_url_is_read_from_disk(fetcher: Fetcher) -> None:
    """The default config's file:// sample feed polls without any network."""
    result = await source(SAMPLE.resolve().as_uri(), fetcher).poll(SourceState())
    assert len(result.articles) >= 8
    assert result.warnings == ()
    assert result.articles[0].url.startswith("https://news.example.tw/article/")


async def test_file_url_json_feed(fetcher: Fetcher) -> None:
    """A JSON Feed on disk is read too."""
    result = await source((FEEDS / "feed.json").resolve().as_uri(), fetcher).poll(SourceState())
    assert [a.key for a in result.articles] == ["newsvision-12351", "12344"]


async def test_missing_file_is_a_source_error(fetcher: Fetcher, tmp_path: Path) -> None:
    """A file:// URL to nothing names the missing file."""
    gone = (tmp_path / "gone.xml").as_uri()
    with pytest.raises(SourceError, match="no such file"):
        await fetcher.scoped(FetchPolicy(files=frozenset({gone}))).get(gone)


async def test_file_over_max_bytes_is_refused(fetcher: Fetcher, tmp_path: Path) -> None:
    """max_bytes applies to files as it does to HTTP bodies."""
    big = tmp_path / "big.xml"
    big.write_bytes(b"x" * 5000)
    own = FetchPolicy(files=frozenset({big.as_uri()}))
    with pytest.raises(SourceError, match="response larger than 4096 bytes"):
        await fetcher.scoped(own).get(big.as_uri(), max_bytes=4096)


async def test_user_agent_and_accept_are_sent(server: FeedServer) -> None:
    """The configured User-Agent and a feed-first Accept header reach the site."""
    url = server.publish("/rss.xml", rss([]))
    async with Fetcher(user_agent="newsbot-test/1.0", policy=LOCAL_FAKES) as fetcher:
        await fetcher.get(url)
    (request,) = server.requests_for("/rss.xml")
    assert request.headers["user-agent"] == "newsbot-test/1.0"
    assert request.headers["accept"].startswith("application/rss+xml")


def test_threaded_server_serves_while_caller_blocks() -> None:
    """`with FeedServer()` runs in a thread, so blocking code (a subprocess) can fetch from it."""
    with FeedServer() as fs:
        url = fs.publish("/rss.xml", rss(sample_items(1)))
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
            assert response.headers["ETag"]
    assert fs.requests[0].status == 200


def test_publish_changes_validators_even_within_one_second() -> None:
    """Two publishes in the same second still give different ETag and Last-Modified."""
    with FeedServer() as fs:
        seen = []
        for body in ("第一版", "第二版"):
            url = fs.publish("/rss.xml", body)
            with urllib.request.urlopen(url, timeout=5) as response:
                seen.append((response.headers["ETag"], response.headers["Last-Modified"]))
    assert seen[0][0] != seen[1][0]
    assert seen[0][1] != seen[1][1]
