"""parse_feed on the fixture feeds: what an Article looks like whichever parser read it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import fastfeedparser
import pytest

from bot.errors import SourceError
from bot.model import Article
from bot.sources import feed
from bot.sources.feed import parse_feed
from bot.testing.feed_server import FeedItem, atom, rss, sample_items

FEEDS = Path(__file__).parent.parent / "fixtures" / "feeds"
SAMPLE = Path(__file__).parent.parent.parent / "config" / "samples" / "newsvision.xml"
NOW = datetime(2025, 9, 17, 9, 0, tzinfo=UTC)
XML_FIXTURES = ["rss2.xml", "rss1.rdf", "rss091.xml", "atom.xml", "big5.xml", "malformed.xml"]


def parse(name: str, *, content_type: str | None = None) -> tuple[list[Article], list[str]]:
    body = (FEEDS / name).read_bytes()
    return parse_feed(
        body, base_url=f"https://news.example.tw/feeds/{name}", now=NOW, content_type=content_type
    )


def by_key(articles: list[Article]) -> dict[str, Article]:
    return {a.key: a for a in articles}


# ------------------------------------------------------------------------------------- RSS 2.0


def test_rss2_keys_prefer_guid_then_canonical_link() -> None:
    """A guid is the key; an item without one is keyed by its canonical link."""
    articles, _ = parse("rss2.xml")
    assert [a.key for a in articles] == [
        "newsvision-12345",
        "newsvision-12344",
        "https://news.example.tw/article/12337",
        "https://news.example.tw/article/12335",
        "https://news.example.tw/notice/7",
    ]


def test_rss2_links_are_absolute_and_canonical() -> None:
    """Relative links resolve against the feed URL; utm_* and fragments are dropped."""
    articles = by_key(parse("rss2.xml")[0])
    assert articles["newsvision-12345"].url == "https://news.example.tw/article/12345"
    assert articles["newsvision-12344"].url == "https://news.example.tw/article/12344?page=2"


def test_rss2_titles_are_plain_text() -> None:
    """Entities are decoded and markup in a title is stripped to its text."""
    articles = by_key(parse("rss2.xml")[0])
    assert articles["newsvision-12345"].title == "高雄 & 格丁尼亞再升級！簽署經濟合作備忘錄"
    assert articles["newsvision-12344"].title == "快訊 高雄迎來第43座姊妹市！🎉"


def test_rss2_dates_are_aware_and_exact() -> None:
    """+0800 and GMT pubDates become the same instants in UTC."""
    articles = by_key(parse("rss2.xml")[0])
    assert articles["newsvision-12345"].published == datetime(2025, 9, 15, 2, 0, tzinfo=UTC)
    assert articles["newsvision-12344"].published == datetime(2025, 9, 15, 8, 20, tzinfo=UTC)


def test_rss2_undated_item_is_published_now() -> None:
    """An item without any date gets the first-seen time."""
    articles = by_key(parse("rss2.xml")[0])
    assert articles["https://news.example.tw/notice/7"].published == NOW


def test_rss2_summary_prefers_full_content() -> None:
    """content:encoded wins over description, and stays HTML with its byline."""
    article = by_key(parse("rss2.xml")[0])["newsvision-12345"]
    assert article.summary_html.startswith("<p>新聞視界時報 記者 王秉程 整理報導</p>")
    assert "10/1/2025" in article.summary_html


def test_rss2_categories_and_author() -> None:
    """Categories come back as terms in order; an `email (Name)` author becomes the name."""
    articles = by_key(parse("rss2.xml")[0])
    assert articles["newsvision-12345"].categories == ("投資理財", "城市外交")
    assert articles["newsvision-12345"].author == "王秉程"
    assert articles["newsvision-12344"].author == "王秉程"
    assert articles["https://news.example.tw/notice/7"].author is None


@pytest.mark.parametrize(
    ("key", "image"),
    [
        ("newsvision-12345", "https://news.example.tw/images/2025/09/mou.jpg"),
        ("newsvision-12344", "https://news.example.tw/images/2025/09/gdynia.jpg"),
        ("https://news.example.tw/article/12337", "https://cdn.example.tw/photos/12337.jpg"),
        ("https://news.example.tw/article/12335", "https://cdn.example.tw/thumbs/12335.jpg"),
        ("https://news.example.tw/notice/7", None),
    ],
)
def test_rss2_lead_image(key: str, image: str | None) -> None:
    """Lead image from <img> in content, enclosure, media:content, media:thumbnail; absolute."""
    assert by_key(parse("rss2.xml")[0])[key].image == image


def test_entry_without_link_or_id_is_skipped_with_warning() -> None:
    """An entry nothing can identify is dropped, and the warning names it."""
    articles, warnings = parse("rss2.xml")
    assert all("沒有連結" not in a.title for a in articles)
    assert len(warnings) == 1
    assert "沒有連結也沒有編號的項目" in warnings[0]


# -------------------------------------------------------------------------- other formats


def test_rss1_reads_rdf_about_and_dc_fields() -> None:
    """RSS 1.0: rdf:about is the key, dc:date the date (naive means UTC), dc:subject a category."""
    articles, warnings = parse("rss1.rdf")
    assert warnings == []
    first, second = articles
    assert first.key == "https://news.example.tw/article/12329"
    assert first.url == "https://news.example.tw/article/12329"
    assert first.published == datetime(2025, 9, 13, 7, 40, tzinfo=UTC)
    assert first.categories == ("城市外交",)
    assert first.author == "王秉程"
    assert second.published == datetime(2025, 9, 13, 3, 5, tzinfo=UTC)


def test_rss091_items_keyed_by_link_and_dated_now() -> None:
    """RSS 0.91 has no guid and no dates: keys are links, published is first-seen."""
    articles, _ = parse("rss091.xml")
    assert [a.key for a in articles] == [
        "https://news.example.tw/article/12318",
        "https://news.example.tw/article/12316",
    ]
    assert {a.published for a in articles} == {NOW}


def test_atom_honours_xml_base_and_type_html_title() -> None:
    """Atom: links resolve against xml:base; a double-escaped html title decodes to text."""
    articles, warnings = parse("atom.xml")
    assert warnings == []
    first = articles[0]
    assert first.key == "tag:news.example.tw,2025:article-12360"
    assert first.url == "https://news.example.tw/article/12360"
    assert first.title == "住桃園很可以！GoPro Creator Camp 熱鬧登場 & 國際創作者看見桃園"
    assert first.image == "https://news.example.tw/images/2025/09/gopro.png"
    assert first.published == datetime(2025, 9, 16, 9, 45, tzinfo=UTC)
    assert first.summary_html.startswith("<p>新聞視界時報 記者 王秉程 整理報導</p>")
    assert first.categories == ("地方", "文化")


def test_atom_entry_with_only_updated_uses_it() -> None:
    """Published falls back to updated, and the summary's <img> becomes the lead image."""
    second = parse("atom.xml")[0][1]
    assert second.published == datetime(2025, 9, 16, 6, 10, tzinfo=UTC)
    assert second.image == "https://news.example.tw/images/2025/09/biotech.jpg"


@pytest.mark.parametrize("fast_path", [True, False])
def test_a_later_update_time_is_the_articles_modified_time(fast_path: bool) -> None:
    """An entry's update time later than its publication is Article.modified (Atom <updated>,
    JSON Feed date_modified), whichever parser reads it; equal to it, or absent, it is None."""
    published = datetime(2025, 9, 16, 1, 2, 3, tzinfo=UTC)
    later = datetime(2025, 9, 16, 8, 30, tzinfo=UTC)
    items = [
        FeedItem("nv-1", "高雄港更正報導", "https://news.example.tw/a/1", published=published,
                 updated=later),
        FeedItem("nv-2", "格丁尼亞論壇", "https://news.example.tw/a/2", published=published),
    ]  # fmt: skip
    got = {}
    for name, document in (("atom", atom(items)), ("rss", rss(items))):
        articles, _ = parse_feed(
            document.encode(), base_url="https://x.example/", now=NOW, fast_path=fast_path
        )
        got[name] = [(a.published, a.modified) for a in articles]
    assert got["atom"] == [(published, later), (published, None)]
    assert got["rss"] == [(published, None), (published, None)]  # RSS states no update time
    json_feed = (
        '{"version": "https://jsonfeed.org/version/1.1", "title": "新聞視界時報", "items": ['
        '{"id": "nv-3", "url": "https://news.example.tw/a/3", "title": "更正",'
        f' "date_published": "{published.isoformat()}", "date_modified": "{later.isoformat()}"}}]}}'
    )
    (article,), _ = parse_feed(
        json_feed.encode(), base_url="https://x.example/", now=NOW,
        content_type="application/feed+json", fast_path=fast_path,
    )  # fmt: skip
    assert (article.published, article.modified) == (published, later)


def test_json_feed() -> None:
    """JSON Feed 1.1: numeric ids become strings, text content is escaped HTML, tags kept."""
    articles, warnings = parse("feed.json")
    first, second = articles
    assert first.key == "newsvision-12351"
    assert first.url == "https://news.example.tw/article/12351"
    assert first.title == "高雄醫材進軍泰國！經發局攜手在地業者參展曼谷醫材展 & 搶攻亞太商機"
    assert first.categories == ("投資理財", "高雄")
    assert first.author == "王秉程"
    assert first.image == "https://news.example.tw/images/2025/09/bangkok.jpg"
    assert first.published == datetime(2025, 9, 15, 8, 30, tzinfo=UTC)
    assert second.key == "12344"
    assert second.url == "https://news.example.tw/article/12344"
    assert second.image == "https://cdn.example.tw/photos/12344.jpg"
    assert second.published == datetime(2025, 9, 15, 0, 20, tzinfo=UTC)
    assert len(warnings) == 1
    assert "skipped" in warnings[0]


def test_big5_feed_decodes() -> None:
    """A Big5 document with its encoding declared reads as proper Chinese."""
    articles, warnings = parse("big5.xml")
    assert warnings == []
    assert articles[0].title == "高雄與格丁尼亞簽署經濟合作備忘錄，攜手打造智慧城市"
    assert "「人才交流」" in articles[0].summary_html


def test_charset_from_content_type_header_is_honoured() -> None:
    """A Big5 body with no declaration reads correctly when the header names the charset."""
    body = (FEEDS / "big5.xml").read_bytes().replace(b' encoding="big5"', b"")
    articles, _ = parse_feed(
        body,
        base_url="https://news.example.tw/big5.xml",
        now=NOW,
        content_type="application/rss+xml; charset=big5",
    )
    assert articles[0].title == "高雄與格丁尼亞簽署經濟合作備忘錄，攜手打造智慧城市"


def test_malformed_feed_still_yields_entries_with_warning() -> None:
    """An unclosed tag is reported but the entries are still read."""
    articles, warnings = parse("malformed.xml")
    assert [a.key for a in articles] == ["newsvision-12345", "newsvision-12351"]
    assert len(warnings) == 1
    assert "malformed" in warnings[0]


# ---------------------------------------------------------------------------------- not feeds


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ((FEEDS / "not-a-feed.html").read_bytes(), "HTML page"),
        (b"", "empty"),
        (b"  \n ", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        (b'{"hello": "world"}', "JSON"),
        (b"{not json", "JSON"),
        ("就只是一段文字，不是訂閱。".encode(), "not a feed"),
    ],
)
def test_unreadable_bodies_raise_source_error(body: bytes, reason: str) -> None:
    """HTML, empty, binary, non-feed JSON or plain text is a SourceError saying why."""
    with pytest.raises(SourceError, match="not a feed") as caught:
        parse_feed(body, base_url="https://news.example.tw/rss.xml", now=NOW)
    assert reason in str(caught.value)


def test_empty_but_valid_feed_gives_no_articles() -> None:
    """A feed with no items is not an error: it is a quiet newsroom."""
    articles, warnings = parse_feed(
        rss([]).encode(), base_url="https://news.example.tw/rss.xml", now=NOW
    )
    assert articles == []
    assert warnings == []


# ------------------------------------------------------------------------ fast path vs feedparser


@pytest.mark.parametrize("name", XML_FIXTURES)
def test_fast_and_feedparser_paths_give_identical_articles(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whichever parser reads a fixture, the Articles are the same."""
    default = parse(name)
    monkeypatch.setattr(feed, "_fast_path_allowed", lambda body, content_type: False)
    assert parse(name) == default


@pytest.mark.parametrize(
    "body",
    [
        rss(sample_items(50)).encode(),
        atom(sample_items(12)).encode(),
        SAMPLE.read_bytes(),
    ],
    ids=["generated-rss", "generated-atom", "sample"],
)
def test_fast_path_is_taken_and_matches_feedparser(
    body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Well-formed UTF-8 feeds go through fastfeedparser, with feedparser's exact results."""
    calls: list[int] = []
    real = fastfeedparser.parse

    def spy(source: bytes) -> object:
        calls.append(1)
        return real(source)

    monkeypatch.setattr(fastfeedparser, "parse", spy)
    fast = parse_feed(body, base_url="https://news.example.tw/rss.xml", now=NOW)
    assert calls == [1]
    monkeypatch.setattr(feed, "_fast_path_allowed", lambda body, content_type: False)
    assert parse_feed(body, base_url="https://news.example.tw/rss.xml", now=NOW) == fast


@pytest.mark.parametrize("name", ["malformed.xml", "big5.xml", "atom.xml"])
def test_fast_path_refuses_what_it_would_misread(name: str) -> None:
    """Broken XML, non-UTF-8 and xml:base documents are left to feedparser."""
    assert not feed._fast_path_allowed((FEEDS / name).read_bytes(), None)


def test_fastfeedparser_failure_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """If fastfeedparser raises, feedparser still reads the feed."""

    def broken(source: bytes) -> object:
        raise ValueError("boom")

    monkeypatch.setattr(fastfeedparser, "parse", broken)
    articles, _ = parse("rss2.xml")
    assert len(articles) == 5


# -------------------------------------------------------------------------------- the sample


def test_sample_feed_for_the_default_config() -> None:
    """The runnable default's sample feed parses cleanly into the seed's stories."""
    articles, warnings = parse_feed(
        SAMPLE.read_bytes(), base_url=SAMPLE.resolve().as_uri(), now=NOW
    )
    assert warnings == []
    assert len(articles) >= 8
    assert all(a.url.startswith("https://news.example.tw/article/") for a in articles)
    assert all("utm_" not in a.url for a in articles)
    titles = {a.title for a in articles}
    assert any("&" in t and "<經濟合作備忘錄>" in t for t in titles)
    assert any("🎉" in t for t in titles)
    assert any(a.image for a in articles)
    assert all(a.published and a.published.tzinfo for a in articles)


def test_builder_round_trip_keeps_item_fields() -> None:
    """rss() output reads back to the FeedItem it was built from."""
    item = FeedItem(
        guid="newsvision-99",
        title="高雄 & 格丁尼亞「智慧城市」論壇 🎉",
        link="https://news.example.tw/article/99?utm_source=rss",
        summary_html="<p>新聞視界時報 記者 王秉程 整理報導</p><p>短文。]]>結尾</p>",
        published=datetime(2025, 9, 16, 1, 2, 3, tzinfo=UTC),
        categories=("城市外交",),
        author="王秉程",
        image="https://news.example.tw/images/99.png",
    )
    for document in (rss([item]), atom([item])):
        (article,) = parse_feed(document.encode(), base_url="https://x.example/", now=NOW)[0]
        assert article == Article(
            key="newsvision-99",
            url="https://news.example.tw/article/99",
            title=item.title,
            summary_html=item.summary_html,
            published=item.published,
            author="王秉程",
            categories=("城市外交",),
            image="https://news.example.tw/images/99.png",
        )
