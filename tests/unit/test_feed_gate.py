# ruff: noqa: E501 - feed documents read best on one line each
"""Each construct that fastfeedparser reads differently from feedparser: the feed is read as
feedparser reads it (the gate hands it to feedparser), and newsbot's Article says what the feed
says. Also the constructs both parsers needed help with (encodings, links, titles, dates)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from bot.compose.excerpt import html_to_text
from bot.model import Article
from bot.sources import feed
from bot.sources.feed import parse_feed
from bot.sources.gate import fast_path_allowed

NOW = datetime(2030, 1, 1, tzinfo=UTC)
BASE = "https://news.example.tw/rss.xml"
ATOM = "http://www.w3.org/2005/Atom"
XHTML = "http://www.w3.org/1999/xhtml"
LINK = "https://news.example.tw/article/1"
SECOND = (
    "<item><title>第二則</title><link>https://news.example.tw/article/2</link>"
    "<description>第二則內容</description></item>"
)
SECOND_ENTRY = (
    '<entry><title>第二則</title><id>urn:nv:2</id><link href="https://news.example.tw/article/2"/>'
    "<updated>2025-09-16T10:00:00Z</updated><summary>第二則內容</summary></entry>"
)


def rss(item: str, ns: str = "") -> str:
    return f'<rss version="2.0" {ns}><channel><title>報</title>{item}{SECOND}</channel></rss>'


def atom(entry: str) -> str:
    return f'<feed xmlns="{ATOM}"><title>報</title>{entry}{SECOND_ENTRY}</feed>'


def entry(inner: str, *, link: str = f'<link href="{LINK}"/>') -> str:
    return f"<entry><id>urn:nv:1</id>{link}<updated>2025-09-16T10:00:00Z</updated>{inner}</entry>"


def first(document: str | bytes, content_type: str | None = None) -> Article:
    body = document.encode() if isinstance(document, str) else document
    articles, _ = parse_feed(body, base_url=BASE, now=NOW, content_type=content_type)
    assert articles[-1].title == "第二則"  # the other entry is always read
    return articles[0]


def text(article: Article) -> str:
    return " ".join(html_to_text(article.summary_html).split())


# (id, document, field, expected): what the fast path read differently.
FAST_PATH_CASES = [
    (
        "atom-xhtml-title",
        atom(entry(f'<title type="xhtml"><div xmlns="{XHTML}">Example <b>Atom</b></div></title>')),
        "title",
        "Example Atom",
    ),
    (
        "inline-markup-title",
        rss(
            f'<item><title>高雄 <b xmlns="{XHTML}">格丁尼亞</b> 合作</title><link>{LINK}</link></item>'
        ),
        "title",
        "高雄 格丁尼亞 合作",
    ),
    (
        "base64-title",
        atom(
            entry(
                '<title type="text/plain" mode="base64">'
                + base64.b64encode("高雄合作".encode()).decode()
                + "</title>"
            )
        ),
        "title",
        "高雄合作",
    ),
    (
        "media-title",
        rss(
            f"<item><media:title>圖說</media:title><title>本文標題</title><link>{LINK}</link>"
            "</item>",
            'xmlns:media="http://search.yahoo.com/mrss/"',
        ),
        "title",
        "本文標題",
    ),
    (
        "foreign-description",
        rss(
            f"<item><title>t</title><link>{LINK}</link>"
            '<x:description xmlns:x="urn:x">別的</x:description></item>'
        ),
        "text",
        "",
    ),
    (
        "unescaped-xhtml-description",
        rss(
            f'<item><title>t</title><link>{LINK}</link><description><p xmlns="{XHTML}">本文</p></description></item>'
        ),
        "text",
        "本文",
    ),
    (
        "xhtml-body",
        rss(
            f'<item><title>t</title><link>{LINK}</link><xhtml:body xmlns:xhtml="{XHTML}">'
            "<xhtml:p>本文</xhtml:p></xhtml:body></item>"
        ),
        "text",
        "本文",
    ),
    (
        "atom-xhtml-summary",
        atom(
            entry(
                f'<title>t</title><summary type="xhtml"><div xmlns="{XHTML}"><p>本文</p></div></summary>'
            )
        ),
        "text",
        "本文",
    ),
    (
        "cp1252-reference",
        rss(f"<item><title>don&#146;t</title><link>{LINK}</link></item>"),
        "title",
        "don’t",
    ),
    (
        "cp1252-as-utf8",
        rss(f"<item><title>don\u0092t</title><link>{LINK}</link></item>"),
        "title",
        "don’t",
    ),
    (
        "upper-case-id",
        atom(
            entry("<title>t</title>", link="").replace(
                "urn:nv:1", "HTTP://news.example.tw/article/1"
            )
        ),
        "url",
        "http://news.example.tw/article/1",
    ),
    (
        "author-name-email",
        atom(
            entry("<title>t</title><author><name>王秉程 (editor@news.example.tw)</name></author>")
        ),
        "author",
        "王秉程 (editor@news.example.tw)",
    ),
    (
        "rss-author-name-email",
        rss(
            f"<item><title>t</title><link>{LINK}</link><author>王秉程 (editor@news.example.tw)</author></item>"
        ),
        "author",
        "王秉程",
    ),
    (
        "rss-author-email-name",
        rss(
            f"<item><title>t</title><link>{LINK}</link><author>editor@news.example.tw (王秉程)</author></item>"
        ),
        "author",
        "王秉程",
    ),
    (
        "two-updated",
        atom(entry("<title>t</title><updated>2025-09-18T10:00:00Z</updated>")),
        "published",
        "2025-09-18T10:00:00+00:00",
    ),
    (
        "enclosure-before-link",
        atom(
            entry(
                "<title>t</title>",
                link='<link rel="enclosure" type="audio/mpeg" href="https://news.example.tw/a.mp3"/>'
                f'<link rel="alternate" href="{LINK}"/>',
            )
        ),
        "url",
        LINK,
    ),
    (
        "self-link-first",
        atom(
            entry(
                "<title>t</title>",
                link='<link rel="self" href="https://news.example.tw/e/1.atom"/>'
                f'<link rel="alternate" href="{LINK}"/>',
            )
        ),
        "url",
        LINK,
    ),
    (
        "atom-text-content",
        atom(entry("<title>t</title><content>1 &lt; 2，高雄 &amp; 格丁尼亞</content>")),
        "text",
        "1 < 2，高雄 & 格丁尼亞",
    ),
]


def _field(article: Article, name: str) -> object:
    if name == "text":
        return text(article)
    if name == "published":
        return article.published.isoformat() if article.published else None
    return getattr(article, name)


@pytest.mark.parametrize(
    ("document", "name", "expected"),
    [c[1:] for c in FAST_PATH_CASES],
    ids=[c[0] for c in FAST_PATH_CASES],
)
def test_fast_path_misreading_goes_to_feedparser(document: str, name: str, expected: str) -> None:
    """The gate hands the feed to feedparser (or, for an upper-case scheme, both read it alike),
    and the field is what the feed says."""
    if "HTTP://" not in document:
        assert fast_path_allowed(document.encode()) is None
    assert _field(first(document), name) == expected
    fast = parse_feed(document.encode(), base_url=BASE, now=NOW)
    assert fast == parse_feed(document.encode(), base_url=BASE, now=NOW, fast_path=False)


def test_plain_feeds_keep_the_fast_path() -> None:
    """The common shape (RSS 2.0 with content and dc, Atom 1.0 with an image enclosure after its
    link, titles with & and <) is read by fastfeedparser, with feedparser's exact result."""
    documents = [
        rss(
            f"<item><title>高雄 &amp; 格丁尼亞簽署&lt;備忘錄&gt;</title><link>{LINK}?utm_source=rss</link>"
            '<guid isPermaLink="false">nv-1</guid><pubDate>Tue, 16 Sep 2025 18:00:00 +0800</pubDate>'
            "<dc:creator>王秉程</dc:creator><category>地方</category>"
            '<enclosure url="https://img.example.tw/1.jpg" type="image/jpeg" length="0"/>'
            "<content:encoded><![CDATA[<p>本文</p>]]></content:encoded></item>",
            'xmlns:dc="http://purl.org/dc/elements/1.1/" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/"',
        ),
        atom(
            entry(
                '<title type="html">高雄 &amp;amp; 格丁尼亞</title><author><name>王秉程</name></author>'
                '<category term="地方"/><summary type="html">&lt;p&gt;本文&lt;/p&gt;</summary>',
                link=f'<link rel="alternate" href="{LINK}"/>'
                '<link rel="enclosure" type="image/jpeg" href="https://img.example.tw/1.jpg"/>',
            )
        ),
    ]
    for document in documents:
        body = document.encode()
        assert fast_path_allowed(body) is not None
        assert parse_feed(body, base_url=BASE, now=NOW) == parse_feed(
            body, base_url=BASE, now=NOW, fast_path=False
        )
    rss_article = first(documents[0])
    assert rss_article.title == "高雄 & 格丁尼亞簽署<備忘錄>" and rss_article.author == "王秉程"
    assert rss_article.image == "https://img.example.tw/1.jpg"
    assert first(documents[1]).title == "高雄 & 格丁尼亞"


# ------------------------------------------------------------------------------ both paths


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_without_bom_are_read(encoding: str) -> None:
    """A feed in UTF-16 or UTF-32 without a BOM is read, not refused as binary."""
    document = f'<?xml version="1.0" encoding="{encoding[:6]}"?>' + rss(
        f"<item><title>高雄合作</title><link>{LINK}</link></item>"
    )
    assert first(document.encode(encoding)).title == "高雄合作"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_utf16_and_utf32_with_bom_are_read(encoding: str) -> None:
    """A feed in UTF-16 or UTF-32 with a BOM is read."""
    document = f'<?xml version="1.0" encoding="{encoding}"?>' + rss(
        f"<item><title>高雄合作</title><link>{LINK}</link></item>"
    )
    assert first(document.encode(encoding)).title == "高雄合作"


def test_one_invalid_byte_does_not_change_the_encoding() -> None:
    """One bad byte in a UTF-8 feed is one U+FFFD; every Chinese title stays Chinese, and an
    alarm names the byte offset."""
    document = rss(f"<item><title>高雄合作</title><link>{LINK}</link></item>").encode()
    bad = document.replace("報".encode(), b"\xe5\xa0\xff", 1)
    reading = feed.read_feed(bad, base_url=BASE, now=NOW, content_type="application/xml")
    assert [a.title for a in reading.articles] == ["高雄合作", "第二則"]
    assert len(reading.alarms) == 1
    offset = bad.index(b"\xff") - 2
    assert f"not valid utf-8 at byte {offset}" in reading.alarms[0]


def test_big5_mislabelled_as_utf8_is_still_read_as_big5() -> None:
    """A Big5 feed that says UTF-8 is not 'a few bad bytes': it is read as Big5."""
    document = '<?xml version="1.0" encoding="utf-8"?>' + rss(
        f"<item><title>高雄合作</title><link>{LINK}</link></item>"
    )
    reading = feed.read_feed(document.encode("big5"), base_url=BASE, now=NOW)
    assert reading.articles[0].title == "高雄合作"
    assert "written in cp950" in reading.alarms[0]


@pytest.mark.parametrize(
    "item",
    [
        "<item><title>快訊</title><guid>newsvision-12345</guid></item>",
        '<item><title>快訊</title><guid isPermaLink="false">https://news.example.tw/a/1</guid></item>',
        "<item><title>快訊</title><link>javascript:alert(1)</link></item>",
        "<item><title>快訊</title><link>http://example.c[o.test/</link></item>",
    ],
    ids=["guid-not-url", "guid-not-permalink", "javascript", "malformed-url"],
)
def test_no_invented_links(item: str) -> None:
    """An entry without a usable absolute link is skipped with a reason, never posted under a
    link made up from the feed's URL; the other entries are posted."""
    reading = feed.read_feed(rss(item).encode(), base_url=BASE, now=NOW)
    assert [a.title for a in reading.articles] == ["第二則"]
    assert len(reading.rejected) == 1 and "快訊" in reading.rejected[0]


def test_an_enclosure_is_not_the_article() -> None:
    """An Atom entry whose only link is an enclosure is skipped, not posted as the MP3."""
    only = '<link rel="enclosure" type="audio/mpeg" href="https://news.example.tw/a.mp3"/>'
    reading = feed.read_feed(
        atom(entry("<title>快訊</title>", link=only)).encode(), base_url=BASE, now=NOW
    )
    assert [a.url for a in reading.articles] == ["https://news.example.tw/article/2"]
    assert len(reading.rejected) == 1


def test_atom_id_that_is_not_a_url_is_no_link() -> None:
    """`<id>right</id>` and no link: skipped, not posted as <feed URL>/right."""
    reading = feed.read_feed(
        atom(entry("<title>快訊</title>", link="").replace("urn:nv:1", "right")).encode(),
        base_url=BASE,
        now=NOW,
    )
    assert [a.url for a in reading.articles] == ["https://news.example.tw/article/2"]
    assert len(reading.rejected) == 1


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("安全&lt;script&gt;alert(1)&lt;/script&gt;的標題", "安全的標題"),
        ("<![CDATA[<!DOCTYPE html>標題]]>", "標題"),
        ("<![CDATA[標題<!-- 註解 -->文字]]>", "標題文字"),
        ("<![CDATA[標題<style>b{}</style>文字]]>", "標題文字"),
        ("Example &lt;b&gt;Atom&lt;/b&gt;", "Example Atom"),
    ],
)
def test_rss_titles_are_text(title: str, expected: str) -> None:
    """Script, style, comments and doctype leave a title with their content; markup is reduced
    to its text."""
    assert first(rss(f"<item><title>{title}</title><link>{LINK}</link></item>")).title == expected


def test_a_text_title_keeps_its_angle_brackets() -> None:
    """An Atom type="text" title that says `<b>` keeps it, as text."""
    document = atom(entry('<title type="text">使用 &lt;b&gt; 標籤</title>'))
    assert first(document).title == "使用 <b> 標籤"


def test_created_only_date_is_the_published_date() -> None:
    """An entry dated only by `created` is published then, not when first seen."""
    document = (
        '<feed version="0.3" xmlns="http://purl.org/atom/ns#"><title>報</title>'
        f'<entry><title>t</title><link rel="alternate" type="text/html" href="{LINK}"/>'
        "<id>urn:1</id><created>2025-09-14T10:00:00Z</created></entry></feed>"
    )
    (article,), _ = parse_feed(document.encode(), base_url=BASE, now=NOW)
    assert article.published == datetime(2025, 9, 14, 10, tzinfo=UTC)
