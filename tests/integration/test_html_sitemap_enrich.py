"""HtmlSource, SitemapSource and Enricher against a real FeedServer on 127.0.0.1."""

from __future__ import annotations

import gzip
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.config import HtmlSourceConfig, SitemapSourceConfig
from bot.errors import SourceError
from bot.model import Article
from bot.sources.base import SourceState
from bot.sources.enrich import Enricher, enriching
from bot.sources.fetch import Fetcher
from bot.sources.html import HtmlSource
from bot.sources.policy import FetchPolicy
from bot.sources.sitemap import SitemapSource, parse_sitemap
from bot.testing import LOCAL_FAKES
from bot.testing.feed_server import FeedServer

LOCAL = ["127.0.0.1"]  # the fakes listen there: allow_private for the test sources

PAGES = Path(__file__).parent.parent / "fixtures" / "pages"
TAIPEI = ZoneInfo("Asia/Taipei")
NOW = datetime(2025, 9, 16, 18, 0, tzinfo=TAIPEI)
HTML = "text/html; charset=utf-8"
XML = "application/xml; charset=utf-8"
SITE = "https://news.example.tw"

RELATED = {
    "item": "div.related-news li",
    "title": "h3.related-title",
    "link": "h3.related-title a@href",
    "excerpt": "p.related-excerpt",
    "date": "span.related-date",
    "image": "img@src",
}


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    async with FeedServer() as fs:
        yield fs


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with Fetcher(timeout=5.0, max_bytes=1024 * 1024) as f:
        yield f.scoped(LOCAL_FAKES)


def fixture(name: str, server: FeedServer | None = None) -> str:
    """A fixture's text; with a server, its news.example.tw URLs point at the server."""
    text = (PAGES / name).read_text(encoding="utf-8")
    return text.replace(SITE, server.url) if server is not None else text


def html_source(url: str, fetcher: Fetcher, **overrides: object) -> HtmlSource:
    config = HtmlSourceConfig.model_validate(
        {
            "kind": "html",
            "name": "newsvision",
            "url": url,
            "selectors": RELATED,
            "allow_private": LOCAL,
            **overrides,
        }
    )
    scoped = fetcher.scoped(FetchPolicy.for_source(config))
    return HtmlSource(config, scoped, timezone=TAIPEI, now=lambda: NOW)


def sitemap_source(url: str, fetcher: Fetcher, **kwargs: object) -> SitemapSource:
    enrich = bool(kwargs.pop("enrich", False))
    takedown_on_gone = bool(kwargs.pop("takedown_on_gone", False))
    config = SitemapSourceConfig.model_validate(
        {
            "kind": "sitemap",
            "name": "newsvision",
            "url": url,
            "enrich": enrich,
            "takedown_on_gone": takedown_on_gone,
            "allow_private": LOCAL,
        }
    )
    scoped = fetcher.scoped(FetchPolicy.for_source(config))
    return SitemapSource(config, scoped, now=lambda: NOW, timezone=TAIPEI, **kwargs)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------- HTML source


async def test_listing_page_yields_the_seed_shaped_articles(
    server: FeedServer, fetcher: Fetcher
) -> None:
    """The related-news list over HTTP: titles, excerpts, 9/15/2025 dates, absolute links."""
    url = server.publish("/category/finance", fixture("listing.html"), content_type=HTML)
    result = await html_source(url, fetcher).poll(SourceState())

    assert len(result.articles) == 10
    medical = result.articles[2]
    assert medical.title == "高雄醫材進軍泰國!經發局攜手在地業者參展曼谷醫材展,搶攻亞太醫療大商機"
    assert medical.url == f"{server.url}/news/20250915-kaohsiung-medical-thailand"
    assert medical.key == medical.url
    assert medical.summary_html.startswith("<p>在全球供應鏈因美國關稅政策調整而重新洗牌之際")
    assert medical.published == datetime(2025, 9, 15, tzinfo=TAIPEI).astimezone(UTC)
    assert medical.image == f"{server.url}/uploads/2025/09/kaohsiung-medical.jpg"
    assert result.articles[0].url == f"{server.url}/news/20250916-taoyuan-gopro-creator-camp"
    assert result.warnings == ()


async def test_unchanged_listing_costs_a_304(server: FeedServer, fetcher: Fetcher) -> None:
    """The listing is fetched with conditional GET like a feed."""
    url = server.publish("/category/finance", fixture("listing.html"), content_type=HTML)
    source = html_source(url, fetcher)
    first = await source.poll(SourceState())
    second = await source.poll(first.state)

    assert second.not_modified
    assert [r.status for r in server.requests_for("/category/finance")] == [200, 304]


async def test_a_redesign_is_a_source_error_not_silence(
    server: FeedServer, fetcher: Fetcher
) -> None:
    """The page changes its class names: the next poll fails naming the selector and page."""
    url = server.publish("/category/finance", fixture("listing.html"), content_type=HTML)
    source = html_source(url, fetcher)
    first = await source.poll(SourceState())
    assert len(first.articles) == 10

    server.publish("/category/finance", fixture("listing-redesigned.html"), content_type=HTML)
    with pytest.raises(SourceError) as caught:
        await source.poll(first.state)
    assert str(caught.value) == (
        f"the item selector 'div.related-news li' matched nothing on {url}: has the page changed?"
    )


async def test_a_redirected_listing_resolves_links_against_the_final_url(
    server: FeedServer, fetcher: Fetcher
) -> None:
    """Relative links resolve against where the page really is, after redirects."""
    server.publish(
        "/zh/finance/",
        fixture("listing.html").replace('href="/news/', 'href="news/'),
        content_type=HTML,
    )
    url = server.redirect("/finance", "/zh/finance/")
    result = await html_source(url, fetcher).poll(SourceState())
    assert result.articles[1].url == f"{server.url}/zh/finance/news/20250916-taipei-biotech-award"


# -------------------------------------------------------------------------------- sitemap source


async def test_news_sitemap_yields_titles_dates_keywords_and_images(
    server: FeedServer, fetcher: Fetcher
) -> None:
    """news:title, news:publication_date, news:keywords and image:loc become the article."""
    url = server.publish("/sitemap-news.xml", fixture("news-sitemap.xml"), content_type=XML)
    result = await sitemap_source(url, fetcher).poll(SourceState())

    assert len(result.articles) == 5
    gdynia = result.articles[3]
    assert gdynia.key == gdynia.url == f"{SITE}/news/20250915-kaohsiung-gdynia-sister-city"
    assert gdynia.title == "高雄迎來第43座姊妹市!與波蘭格丁尼亞締盟,攜手開創城市外交新篇章"
    assert gdynia.published == datetime(2025, 9, 15, 2, 30, tzinfo=UTC)
    assert gdynia.categories == ("高雄", "格丁尼亞", "城市外交")
    assert gdynia.image == f"{SITE}/uploads/2025/09/kaohsiung-gdynia.jpg"
    assert result.articles[4].image is None


async def test_unchanged_sitemap_costs_a_304(server: FeedServer, fetcher: Fetcher) -> None:
    """The top URL is fetched with conditional GET."""
    url = server.publish("/sitemap-news.xml", fixture("news-sitemap.xml"), content_type=XML)
    source = sitemap_source(url, fetcher)
    first = await source.poll(SourceState())
    second = await source.poll(first.state)
    assert second.not_modified
    assert [r.status for r in server.requests_for("/sitemap-news.xml")] == [200, 304]


async def test_gzipped_sitemap_reads_the_same(server: FeedServer, fetcher: Fetcher) -> None:
    """A .xml.gz served as application/gzip (no Content-Encoding) is inflated."""
    body = gzip.compress(fixture("news-sitemap.xml").encode("utf-8"))
    url = server.publish("/sitemap-news.xml.gz", body, content_type="application/gzip")
    result = await sitemap_source(url, fetcher).poll(SourceState())
    assert len(result.articles) == 5


def _index(server: FeedServer) -> str:
    """The index fixture pointing at the server, with its children published there."""
    news = fixture("news-sitemap.xml")
    server.publish("/sitemaps/news.xml", news, content_type=XML)
    server.publish(
        "/sitemaps/post-2025-09.xml",
        '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<url><loc>{SITE}/news/20250901-plain</loc><lastmod>2025-09-01</lastmod></url>"
        "</urlset>",
        content_type=XML,
    )
    server.publish("/sitemaps/post-2025-08.xml", news, content_type=XML)
    server.publish("/sitemaps/page.xml", news, content_type=XML)
    return server.publish(
        "/sitemap-index.xml", fixture("sitemap-index.xml", server), content_type=XML
    )


async def test_index_follows_only_the_newest_children(server: FeedServer, fetcher: Fetcher) -> None:
    """At most max_children children, newest lastmod first; the older ones are not fetched."""
    url = _index(server)
    result = await sitemap_source(url, fetcher, max_children=2).poll(SourceState())

    assert len(result.articles) == 5
    assert server.requests_for("/sitemaps/news.xml")
    assert server.requests_for("/sitemaps/post-2025-09.xml")
    assert not server.requests_for("/sitemaps/post-2025-08.xml")
    assert not server.requests_for("/sitemaps/page.xml")
    assert any("lists 4 sitemaps; read the newest 2" in w for w in result.warnings)
    # The plain child has no news:title: skipped, and said so.
    assert any("1 entries" in w and "no news:title" in w for w in result.warnings)


async def test_an_unchanged_index_still_checks_its_children(
    server: FeedServer, fetcher: Fetcher
) -> None:
    """Index 304, child changed: the new article is found; everything 304: not_modified."""
    url = _index(server)
    source = sitemap_source(url, fetcher, max_children=2)
    first = await source.poll(SourceState())

    extra = (
        f"<url><loc>{SITE}/news/20250916-breaking</loc><news:news>"
        "<news:publication_date>2025-09-16T17:30:00+08:00</news:publication_date>"
        "<news:title>快訊:高雄港新航線啟航</news:title></news:news></url></urlset>"
    )
    server.publish(
        "/sitemaps/news.xml",
        fixture("news-sitemap.xml").replace("</urlset>", extra),
        content_type=XML,
    )
    second = await source.poll(first.state)
    assert not second.not_modified
    assert "快訊:高雄港新航線啟航" in [a.title for a in second.articles]
    assert server.requests_for("/sitemap-index.xml")[-1].status == 304

    third = await source.poll(second.state)
    assert third.not_modified
    assert [r.status for r in server.requests_for("/sitemaps/news.xml")] == [200, 200, 304]


async def test_a_broken_child_is_a_warning_when_another_reads(
    server: FeedServer, fetcher: Fetcher
) -> None:
    """One child answering 500 does not hide the other's articles."""
    url = _index(server)
    server.set_fault("/sitemaps/post-2025-09.xml", "500")
    result = await sitemap_source(url, fetcher, max_children=2).poll(SourceState())
    assert len(result.articles) == 5
    assert any("post-2025-09.xml" in w and "HTTP 500" in w for w in result.warnings)


async def test_every_child_broken_is_a_source_error(server: FeedServer, fetcher: Fetcher) -> None:
    """When no child of the index can be read, the poll fails with the reasons."""
    url = _index(server)
    server.set_fault("/sitemaps/news.xml", "404")
    server.set_fault("/sitemaps/post-2025-09.xml", "html")
    with pytest.raises(SourceError, match="no sitemap of the index could be read"):
        await sitemap_source(url, fetcher, max_children=2).poll(SourceState())


def _sitemap_with_dtd(entities: str, title: str) -> bytes:
    return (
        f'<?xml version="1.0"?><!DOCTYPE urlset [{entities}]>'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"><url>'
        f"<loc>https://news.example.tw/news/1</loc><news:news><news:title>{title}</news:title>"
        "</news:news></url></urlset>"
    ).encode()


def test_a_billion_laughs_is_refused_not_expanded() -> None:
    """Nested entities are never expanded: libxml2's amplification guard refuses the document."""
    laughs = "".join(f'<!ENTITY l{n} "{f"&l{n - 1};" * 10}">' for n in range(1, 10))
    body = _sitemap_with_dtd('<!ENTITY l0 "lol">' + laughs, "標題&l9;")
    with pytest.raises(SourceError, match="not well-formed"):
        parse_sitemap(body, url="https://news.example.tw/sitemap.xml")


def test_external_entities_are_never_read() -> None:
    """An external entity naming a file of ours stays an unresolved reference."""
    body = _sitemap_with_dtd('<!ENTITY xxe SYSTEM "file:///etc/passwd">', "標題&xxe;")
    document = parse_sitemap(body, url="https://news.example.tw/sitemap.xml")
    assert "root:" not in document.articles[0].title
    assert document.articles[0].title.startswith("標題")


def test_a_gzip_bomb_stops_at_the_size_cap() -> None:
    """A small .gz that inflates past max_bytes is refused, not inflated."""
    bomb = gzip.compress(b"<urlset>" + b" " * 5_000_000 + b"</urlset>")
    with pytest.raises(SourceError, match="inflates to more than"):
        parse_sitemap(bomb, url="https://news.example.tw/s.xml.gz", max_bytes=1024 * 1024)


def test_what_is_not_a_sitemap_says_so() -> None:
    """An HTML page, an RSS feed or broken XML is 'not a sitemap', with what it was."""
    with pytest.raises(SourceError, match="HTML page"):
        parse_sitemap(b"<!DOCTYPE html><html><body></body></html>", url="https://a.tw/s")
    with pytest.raises(SourceError, match="<rss> root"):
        parse_sitemap(b'<rss version="2.0"><channel/></rss>', url="https://a.tw/s")
    with pytest.raises(SourceError, match="not well-formed"):
        parse_sitemap(b"<urlset><url>", url="https://a.tw/s")


# ----------------------------------------------------------------------------------- enrichment


def bare(url: str, **fields: object) -> Article:
    """An article as a listing without excerpts, images or dates gives it."""
    return Article(
        key=url, url=url, title=str(fields.pop("title", "高雄 × 格丁尼亞再升級")), **fields
    )  # type: ignore[arg-type]


async def test_enrichment_fills_excerpt_image_and_date_from_the_article_page(
    server: FeedServer, fetcher: Fetcher
) -> None:
    """og:description, og:image and article:published_time fill what the listing lacked."""
    url = server.publish(
        "/news/20250915-kaohsiung-gdynia-mou", fixture("article.html"), content_type=HTML
    )
    article = bare(url)
    enriched = await Enricher(fetcher, per_host_delay=0).enrich(article)

    assert enriched.summary_html == (
        "<p>高雄與波蘭姊妹市格丁尼亞的交流再度邁向新里程!由高雄市副市長羅達生率領市府團隊,"
        "於波蘭時間9月14日與格丁尼亞市政府正式簽署經濟合作備忘錄。</p>"
    )
    assert enriched.image == "https://news.example.tw/uploads/2025/09/kaohsiung-gdynia-mou.jpg"
    assert enriched.published == datetime(2025, 9, 15, 2, 30, tzinfo=UTC)
    assert enriched.key == article.key
    assert enriched.url == article.url
    assert enriched.title == article.title


async def test_json_ld_date_published_is_used_without_the_meta_tag(
    server: FeedServer, fetcher: Fetcher
) -> None:
    """Without article:published_time, JSON-LD NewsArticle.datePublished is the time, not
    dateModified."""
    page = "\n".join(
        line for line in fixture("article.html").splitlines() if "article:" not in line
    )
    url = server.publish("/news/ld", page, content_type=HTML)
    enriched = await Enricher(fetcher, per_host_delay=0).enrich(bare(url))
    assert enriched.published == datetime(2025, 9, 15, 2, 30, tzinfo=UTC)


async def test_a_page_without_og_description_gives_its_first_paragraphs(
    server: FeedServer, fetcher: Fetcher
) -> None:
    """No og:description or meta description: the body's first paragraphs, and the lead
    picture of the body as the image; related news and navigation stay out."""
    url = server.publish(
        "/news/20250915-kaohsiung-gdynia-sister-city",
        fixture("article-no-og.html"),
        content_type=HTML,
    )
    enriched = await Enricher(fetcher, per_host_delay=0).enrich(
        bare(url, title="高雄迎來第43座姊妹市")
    )

    assert enriched.summary_html.startswith("<p>新聞視界時報 記者 王秉程 整理報導</p>")
    assert (
        "<p>高雄市再拓國際版圖!9 月 14 日,高雄與波蘭格丁尼亞市正式締結姊妹市"
        in enriched.summary_html
    )
    assert "相關新聞" not in enriched.summary_html
    assert "住桃園很可以" not in enriched.summary_html
    assert enriched.image == f"{server.url}/uploads/2025/09/kaohsiung-gdynia.jpg"


async def test_only_what_is_missing_is_filled(server: FeedServer, fetcher: Fetcher) -> None:
    """A summary and image the source gave are kept; only the missing date is filled."""
    url = server.publish("/news/1", fixture("article.html"), content_type=HTML)
    article = bare(url, summary_html="<p>列表摘要</p>", image=f"{server.url}/list.jpg")
    enriched = await Enricher(fetcher, per_host_delay=0).enrich(article)
    assert enriched.summary_html == "<p>列表摘要</p>"
    assert enriched.image == f"{server.url}/list.jpg"
    assert enriched.published == datetime(2025, 9, 15, 2, 30, tzinfo=UTC)


async def test_a_complete_article_is_not_fetched(server: FeedServer, fetcher: Fetcher) -> None:
    """Nothing missing, nothing fetched."""
    url = server.url_for("/news/complete")
    article = bare(url, summary_html="<p>摘要</p>", image=f"{url}.jpg", published=NOW)
    enricher = Enricher(fetcher, per_host_delay=0)
    assert await enricher.enrich(article) is article
    assert server.requests == []


async def test_a_failed_page_returns_the_article_unchanged_with_a_warning(
    server: FeedServer, fetcher: Fetcher, caplog: pytest.LogCaptureFixture
) -> None:
    """A 404 page never loses the article; the failure is logged and not retried at once."""
    url = server.url_for("/news/gone")
    article = bare(url)
    enricher = Enricher(fetcher, per_host_delay=0)
    with caplog.at_level(logging.WARNING, logger="newsbot.sources.enrich"):
        assert await enricher.enrich(article) is article
        assert await enricher.enrich(article) is article
    assert "cannot enrich" in caplog.text and "HTTP 404" in caplog.text
    assert len(server.requests_for("/news/gone")) == 1
    with pytest.raises(SourceError, match="HTTP 404"):
        await enricher.fill(article)


async def test_pages_are_cached_by_url(server: FeedServer, fetcher: Fetcher) -> None:
    """The same page asked for twice (two polls, or at once) is fetched once."""
    url = server.publish("/news/1", fixture("article.html"), content_type=HTML)
    enricher = Enricher(fetcher, per_host_delay=0, cache_size=10)
    await enricher.enrich_many([bare(url), bare(url)])
    await enricher.enrich(bare(url))
    assert len(server.requests_for("/news/1")) == 1


async def test_the_cache_forgets_the_least_recently_used(
    server: FeedServer, fetcher: Fetcher
) -> None:
    """With room for two pages, a third evicts the oldest, which is then fetched again."""
    urls = [
        server.publish(f"/news/{n}", fixture("article.html"), content_type=HTML) for n in range(3)
    ]
    enricher = Enricher(fetcher, per_host_delay=0, cache_size=2)
    for url in [*urls, urls[2], urls[0]]:
        await enricher.enrich(bare(url))
    assert [len(server.requests_for(f"/news/{n}")) for n in range(3)] == [2, 1, 1]


async def test_one_host_is_fetched_at_a_polite_pace(server: FeedServer, fetcher: Fetcher) -> None:
    """Three pages of one host, 0.15 s apart at least, even with room to fetch all at once."""
    urls = [
        server.publish(f"/news/{n}", fixture("article.html"), content_type=HTML) for n in range(3)
    ]
    enricher = Enricher(fetcher, per_host_delay=0.15, concurrency=4)
    started = time.monotonic()
    await enricher.enrich_many([bare(u) for u in urls])
    assert time.monotonic() - started >= 0.3


async def test_concurrency_is_bounded(server: FeedServer, fetcher: Fetcher) -> None:
    """Four pages answering in 0.2 s each are fetched two at a time, never more: two rounds.
    (Counted at the server; only the lower bound of the time holds on a loaded machine.)"""
    server.set_delay(0.2)
    urls = [
        server.publish(f"/news/{n}", fixture("article.html"), content_type=HTML) for n in range(4)
    ]
    enricher = Enricher(fetcher, per_host_delay=0, concurrency=2)
    started = time.monotonic()
    articles = await enricher.enrich_many([bare(u) for u in urls])
    elapsed = time.monotonic() - started
    assert elapsed >= 0.4
    assert server.most_in_flight == 2
    assert all(a.image for a in articles)


async def test_enriching_wraps_a_listing_source(server: FeedServer, fetcher: Fetcher) -> None:
    """A listing of titles and links only, wrapped: each article gets its page's excerpt,
    image and date; an article whose page fails comes through unchanged."""
    listing = (
        '<div class="related-news"><ul>'
        '<li><h3 class="related-title"><a href="/news/mou">高雄 × 格丁尼亞再升級</a></h3></li>'
        '<li><h3 class="related-title"><a href="/news/missing">找不到的新聞</a></h3></li>'
        "</ul></div>"
    )
    server.publish("/news/mou", fixture("article.html"), content_type=HTML)
    url = server.publish("/latest", listing, content_type=HTML)
    selectors = {"item": "div.related-news li", "title": "h3.related-title", "link": "h3 a@href"}
    source = enriching(
        html_source(url, fetcher, selectors=selectors, enrich=True),
        Enricher(fetcher, per_host_delay=0),
    )
    async with source:
        result = await source.poll(SourceState())

    mou, missing = result.articles
    assert mou.image == "https://news.example.tw/uploads/2025/09/kaohsiung-gdynia-mou.jpg"
    assert mou.summary_html.startswith("<p>高雄與波蘭姊妹市格丁尼亞")
    assert mou.published == datetime(2025, 9, 15, 2, 30, tzinfo=UTC)
    assert missing.title == "找不到的新聞"
    assert missing.summary_html == ""
    assert source.name == "newsvision"


async def test_enriching_a_plain_sitemap_reads_titles_from_the_pages(
    server: FeedServer, fetcher: Fetcher
) -> None:
    """With enrich: true, sitemap entries without news:title keep, and get the page's title;
    a 304 passes through untouched."""
    server.publish("/news/mou", fixture("article.html"), content_type=HTML)
    url = server.publish(
        "/sitemap.xml",
        '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<url><loc>{server.url}/news/mou</loc></url></urlset>",
        content_type=XML,
    )
    source = enriching(
        sitemap_source(url, fetcher, enrich=True), Enricher(fetcher, per_host_delay=0)
    )
    first = await source.poll(SourceState())
    (article,) = first.articles
    assert article.title == "高雄 × 格丁尼亞再升級!簽署合作備忘錄,攜手打造新創與智慧城市新典範"
    assert article.key == f"{server.url}/news/mou"
    assert (await source.poll(first.state)).not_modified
