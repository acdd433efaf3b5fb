"""Reading a listing page with CSS selectors (bot.sources.html), from bytes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.config import HtmlSelectors, HtmlSourceConfig
from bot.errors import ConfigError, SourceError
from bot.model import Article
from bot.sources.fetch import Fetcher
from bot.sources.html import HtmlSource, Selector, decode_html, parse_listing

PAGES = Path(__file__).parent.parent / "fixtures" / "pages"
TAIPEI = ZoneInfo("Asia/Taipei")
NOW = datetime(2025, 9, 16, 18, 0, tzinfo=TAIPEI)
PAGE_URL = "https://news.example.tw/category/finance"

RELATED = HtmlSelectors(
    item="div.related-news li",
    title="h3.related-title",
    link="h3.related-title a@href",
    excerpt="p.related-excerpt",
    date="span.related-date",
    image="img@src",
)


def listing(
    body: bytes | str,
    selectors: HtmlSelectors = RELATED,
    *,
    now: datetime = NOW,
    base_url: str = PAGE_URL,
    content_type: str | None = "text/html; charset=utf-8",
) -> tuple[list[Article], list[str]]:
    data = body.encode("utf-8") if isinstance(body, str) else body
    return parse_listing(
        data,
        base_url=base_url,
        selectors=selectors,
        timezone=TAIPEI,
        now=now,
        content_type=content_type,
    )


def page(items: str) -> str:
    return f'<html><body><div class="related-news"><ul>{items}</ul></div></body></html>'


def item(title: str = "標題", href: str = "/news/1", date: str = "9/15/2025", **extra: str) -> str:
    excerpt = extra.get("excerpt", "摘要")
    image = extra.get("image", '<img src="/a.jpg">')
    return (
        f'<li>{image}<h3 class="related-title"><a href="{href}">{title}</a></h3>'
        f'<p class="related-excerpt">{excerpt}</p><span class="related-date">{date}</span></li>'
    )


# ------------------------------------------------------------------------------ the seed's list


def test_the_seed_shaped_listing_yields_its_ten_articles_in_page_order() -> None:
    """The related-news list gives one article per item: title, excerpt, date, link, image."""
    articles, warnings = listing((PAGES / "listing.html").read_bytes())

    assert warnings == []
    assert len(articles) == 10
    first = articles[0]
    assert first.title == (
        "住桃園很可以!GoPro Creator Camp熱鬧登場,國際創作者用影像帶領世界重新看見桃園的真實魅力"
    )
    assert first.url == "https://news.example.tw/news/20250916-taoyuan-gopro-creator-camp"
    assert first.key == first.url
    assert first.summary_html.startswith("<p>桃園市政府昨(15)日下午在桃園區舉辦「住桃園很可以!")
    assert first.image == "https://news.example.tw/uploads/2025/09/taoyuan-gopro.jpg"
    assert [a.title[:6] for a in articles[-2:]] == ["臺北熱情迎接", "高雄與德勒斯"]


def test_m_d_yyyy_dates_are_read_in_the_configured_zone() -> None:
    """9/15/2025 on a Taipei site is the start of 15 September in Taipei (16:00 UTC the 14th)."""
    articles, _ = listing((PAGES / "listing.html").read_bytes())
    by_slug = {a.url.rsplit("/", 1)[1]: a for a in articles}

    assert by_slug["20250915-kaohsiung-medical-thailand"].published == datetime(
        2025, 9, 14, 16, 0, tzinfo=UTC
    )
    assert by_slug["20250912-kaohsiung-dresden"].published == datetime(
        2025, 9, 11, 16, 0, tzinfo=UTC
    )


def test_an_article_dated_today_without_a_time_is_published_now() -> None:
    """9/16/2025 seen at 18:00 on the 16th: the first sighting, not midnight, is its time."""
    articles, _ = listing((PAGES / "listing.html").read_bytes())
    assert articles[0].published == NOW.astimezone(UTC)


def test_links_are_absolute_and_canonical() -> None:
    """Relative links resolve against the page; tracking parameters and fragments go."""
    articles, _ = listing((PAGES / "listing.html").read_bytes())
    urls = [a.url for a in articles]

    assert all(u.startswith("https://news.example.tw/news/") for u in urls)
    assert not any("utm_" in u or "#" in u for u in urls)
    assert "https://news.example.tw/news/20250915-kaohsiung-gdynia-sister-city" in urls


def test_a_lazy_loaded_image_uses_its_real_source() -> None:
    """An <img> whose src is a data: placeholder gives its data-src picture."""
    articles, _ = listing((PAGES / "listing.html").read_bytes())
    katowice = next(a for a in articles if "katowice" in a.url)
    assert katowice.image == "https://news.example.tw/uploads/2025/09/katowice.jpg"


def test_excerpts_are_escaped_text_in_a_paragraph() -> None:
    """The excerpt is the element's text, escaped, whitespace collapsed, in one <p>."""
    body = page(item(excerpt="AT&amp;T <b>與</b>\n   中華電信 &lt;合作&gt;"))
    articles, _ = listing(body)
    assert articles[0].summary_html == "<p>AT&amp;T 與 中華電信 &lt;合作&gt;</p>"


def test_text_is_nfc_normalised() -> None:
    """Titles come out NFC, like every article's text."""
    articles, _ = listing(page(item(title="Gdyn\u0301ia")))
    assert articles[0].title == "Gdyńia"


# ------------------------------------------------------------------------- redesigns and gaps


def test_a_redesigned_page_is_a_clear_source_error() -> None:
    """When the item selector matches nothing, the error names it and the page."""
    with pytest.raises(SourceError) as caught:
        listing((PAGES / "listing-redesigned.html").read_bytes())
    message = str(caught.value)
    assert "the item selector 'div.related-news li' matched nothing" in message
    assert PAGE_URL in message
    assert "has the page changed?" in message


@pytest.mark.parametrize(
    ("field", "selector"),
    [
        ("title", "h3.news-title"),
        ("link", "h3.news-title a@href"),
        ("excerpt", "p.summary"),
        ("date", "time.published"),
    ],
)
def test_a_selector_that_matches_in_no_item_is_named(field: str, selector: str) -> None:
    """Items match but one selector finds nothing in any of them: that selector is named."""
    selectors = RELATED.model_copy(update={field: selector})
    with pytest.raises(SourceError) as caught:
        listing((PAGES / "listing.html").read_bytes(), selectors)
    message = str(caught.value)
    assert f"the {field} selector {selector!r} matched nothing in any of the 10 items" in message
    assert "'div.related-news li'" in message


def test_dates_that_cannot_be_read_anywhere_are_a_source_error() -> None:
    """A date selector that now points at the font-size widget is an error, with a sample."""
    body = page(item(date="A- A A+") + item(href="/news/2", date="A- A A+"))
    with pytest.raises(SourceError, match=r"date selector .* such as 'A- A A\+'"):
        listing(body)


def test_a_missing_image_everywhere_is_only_a_warning() -> None:
    """A text-only list is real: no picture in any item warns, and the articles still come."""
    articles, warnings = listing(page(item(image="") + item(href="/news/2", image="")))
    assert len(articles) == 2
    assert all(a.image is None for a in articles)
    assert any("image selector 'img@src' matched nothing" in w for w in warnings)


def test_one_item_without_a_link_is_skipped_with_a_warning() -> None:
    """A single broken item is skipped and named; the others are read."""
    broken = (
        '<li><h3 class="related-title">只有標題</h3>'
        '<span class="related-date">9/15/2025</span></li>'
    )
    articles, warnings = listing(page(item() + broken))
    assert [a.title for a in articles] == ["標題"]
    assert warnings == ["item 2 (只有標題) has no link; skipped"]


def test_one_unreadable_date_leaves_that_article_undated() -> None:
    """A date that cannot be read is a warning; published is left for enrichment to fill."""
    articles, warnings = listing(page(item() + item(href="/news/2", date="近日")))
    assert articles[1].published is None
    assert warnings == ["item 2: cannot read a date from '近日'"]


def test_the_same_link_twice_is_one_article() -> None:
    """A story listed twice (a pinned copy) is yielded once, the first time it appears."""
    articles, _ = listing(page(item(title="一") + item(title="二", href="/news/1?utm_source=x")))
    assert [a.title for a in articles] == ["一"]


def test_javascript_links_are_not_articles() -> None:
    """A javascript: or # link is no link at all."""
    articles, warnings = listing(page(item(href="javascript:void(0)") + item(href="/news/2")))
    assert [a.url for a in articles] == ["https://news.example.tw/news/2"]
    assert "has no link" in warnings[0]


# ---------------------------------------------------------------------------- selector syntax


def test_relative_dates_in_a_latest_news_list() -> None:
    """3 小時前 / 15 分鐘前 / 昨天 14:30 count back from now in the site's zone."""
    body = page(
        item(date="3 小時前") + item(href="/news/2", date="15 分鐘前")
        + item(href="/news/3", date="昨天 14:30")
    )  # fmt: skip
    articles, _ = listing(body)
    assert [a.published for a in articles] == [
        datetime(2025, 9, 16, 7, 0, tzinfo=UTC),
        datetime(2025, 9, 16, 9, 45, tzinfo=UTC),
        datetime(2025, 9, 15, 6, 30, tzinfo=UTC),
    ]


def test_attribute_selectors_read_attributes() -> None:
    """``time@datetime`` reads the attribute; ``@href`` reads the item's own attribute."""
    body = (
        '<div class="list"><a class="card" href="/news/9">'
        '<span class="t">卡片標題</span><time datetime="2025-09-15T10:30:00+08:00">9/15</time>'
        "</a></div>"
    )
    selectors = HtmlSelectors(
        item="div.list a.card", title="span.t", link="@href", date="time@datetime"
    )
    articles, _ = listing(body, selectors)
    assert articles[0].url == "https://news.example.tw/news/9"
    assert articles[0].published == datetime(2025, 9, 15, 2, 30, tzinfo=UTC)


def test_base_href_decides_relative_links() -> None:
    """A <base href> in the page is what relative links resolve against."""
    body = (
        '<html><head><base href="https://cdn.example.tw/zh/"></head><body>'
        + page(item(href="n/1"))[12:]
    )
    articles, _ = listing(body)
    assert articles[0].url == "https://cdn.example.tw/zh/n/1"


@pytest.mark.parametrize(
    ("text", "css", "attribute"),
    [
        ("a@href", "a", "href"),
        ("h3.title a @ href", "h3.title a", "href"),
        ("img@data-src", "img", "data-src"),
        ("@href", "", "href"),
        ("h3.title", "h3.title", None),
        ('a[href*="@"]', 'a[href*="@"]', None),
        ('a[href*="@"]@href', 'a[href*="@"]', "href"),
    ],
)
def test_selector_syntax(text: str, css: str, attribute: str | None) -> None:
    """``sel@attr`` splits at the last @ outside brackets and quotes."""
    selector = Selector.parse("link", text)
    assert (selector.css, selector.attribute) == (css, attribute)


def test_an_invalid_css_selector_is_a_config_error_naming_it() -> None:
    """A selector Lexbor cannot compile stops the source at construction, named."""
    config = HtmlSourceConfig.model_validate(
        {
            "kind": "html",
            "name": "newsvision",
            "url": PAGE_URL,
            "selectors": {"item": "div.related-news li", "title": "h3[class="},
        }
    )
    with pytest.raises(ConfigError, match=r"title selector 'h3\[class=' is not a CSS selector"):
        HtmlSource(config, Fetcher(), timezone=TAIPEI)


# ------------------------------------------------------------------------------------ decoding


def test_big5_pages_decode_by_their_meta_charset() -> None:
    """A Big5 page declared in <meta charset> reads as Traditional Chinese."""
    html = (
        '<html><head><meta charset="big5"></head><body>' + page(item(title="高雄迎來姊妹市"))[12:]
    )
    articles, _ = listing(html.encode("big5"), content_type="text/html")
    assert articles[0].title == "高雄迎來姊妹市"


def test_the_header_charset_wins_over_the_meta_one() -> None:
    """Content-Type's charset is what the server says the bytes are."""
    text = '<meta charset="utf-8"><p>臺北</p>'
    assert "臺北" in decode_html(text.encode("big5"), "text/html; charset=Big5")


def test_undeclared_bytes_try_utf8_then_big5() -> None:
    """No declaration: UTF-8 if it decodes, else Big5."""
    assert decode_html("格丁尼亞".encode()) == "格丁尼亞"
    assert decode_html("格丁尼亞".encode("big5")) == "格丁尼亞"


def test_an_empty_page_is_a_source_error() -> None:
    """An empty 200 answer is reported, not read as "no articles"."""
    with pytest.raises(SourceError, match="was empty"):
        listing(b"  ")
