"""The feed corpus of tests/fixtures/corpus: small feeds, one construct each, in every format and
encoding, with the Article fields each must give.

    python -m tests.corpus            # (re)writes tests/fixtures/corpus/*.xml|json + expected.json

Each case states what a person reading the feed sees (title, link, author, the summary's text):
written here by hand, not taken from newsbot. Writing the corpus also reads every XML file with
feedparser alone and stops when feedparser sees a different title, link or author than the one
stated (beyond the deliberate normalisations): the expectation is checked against feedparser's
reading, and by eye. ``tests/unit/test_feed_corpus.py`` then holds newsbot, fast path and
feedparser-only path both, to it.
"""

from __future__ import annotations

import base64
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).parent / "fixtures" / "corpus"
BASE = "https://news.example.tw/feeds/corpus.xml"

ATOM = "http://www.w3.org/2005/Atom"
NS = (
    'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:dcterms="http://purl.org/dc/terms/" '
    'xmlns:media="http://search.yahoo.com/mrss/" '
    'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd" '
    'xmlns:xhtml="http://www.w3.org/1999/xhtml"'
)


@dataclass
class Want:
    """What one entry must give; url "" means: skipped (with a reason)."""

    url: str
    title: str
    text: str = ""
    author: str | None = None
    published: str | None = None
    categories: list[str] = field(default_factory=list)


@dataclass
class Case:
    name: str
    body: bytes
    content_type: str | None
    want: list[Want]


# One entry's parts: each variant says how a format writes them.
TITLE = "高雄與格丁尼亞簽署經濟合作備忘錄"
TEXT = "新聞視界時報 記者 王秉程 整理報導：雙方將設立單一合作窗口，首年投入 3,000 萬元。"
LINK = "https://news.example.tw/article/{n}"


def rss2(items: str, version: str = "2.0") -> str:
    return (
        f'<rss version="{version}" {NS}><channel><title>新聞視界時報</title>'
        f"<link>https://news.example.tw/</link><description>最新報導</description>"
        f"{items}</channel></rss>"
    )


def rdf(items: str) -> str:
    return (
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        f'xmlns="http://purl.org/rss/1.0/" {NS}>'
        '<channel rdf:about="https://news.example.tw/"><title>新聞視界時報</title>'
        "<link>https://news.example.tw/</link><description>最新報導</description></channel>"
        f"{items}</rdf:RDF>"
    )


def atom10(entries: str) -> str:
    return (
        f'<feed xmlns="{ATOM}" {NS}><title>新聞視界時報</title><id>urn:nv</id>'
        f"<updated>2025-09-16T10:00:00Z</updated>{entries}</feed>"
    )


def atom03(entries: str) -> str:
    return (
        f'<feed version="0.3" xmlns="http://purl.org/atom/ns#" {NS}><title>新聞視界時報</title>'
        f"<modified>2025-09-16T10:00:00Z</modified>{entries}</feed>"
    )


def item(n: int, extra: str = "", *, title: str | None = None, link: bool = True) -> str:
    t = TITLE if title is None else title
    link_el = f"<link>{LINK.format(n=n)}</link>" if link else ""
    return (
        f"<item><title>{t}</title>{link_el}<description>&lt;p&gt;{TEXT}&lt;/p&gt;</description>"
        f"<pubDate>Tue, 16 Sep 2025 18:0{n % 10}:00 +0800</pubDate>{extra}</item>"
    )


def rdf_item(n: int, extra: str = "", *, title: str | None = None) -> str:
    t = TITLE if title is None else title
    url = LINK.format(n=n)
    return (
        f'<item rdf:about="{url}"><title>{t}</title><link>{url}</link>'
        f"<description>{TEXT}</description><dc:date>2025-09-16T10:0{n % 10}:00Z</dc:date>"
        f"{extra}</item>"
    )


def entry(n: int, extra: str = "", *, title: str | None = None, link: str | None = None) -> str:
    t = f"<title>{TITLE}</title>" if title is None else title
    url = LINK.format(n=n)
    link_el = f'<link rel="alternate" type="text/html" href="{url}"/>' if link is None else link
    return (
        f"<entry>{t}<id>urn:nv:{n}</id>{link_el}"
        f"<updated>2025-09-16T10:0{n % 10}:00Z</updated>"
        f'<summary type="html">&lt;p&gt;{TEXT}&lt;/p&gt;</summary>{extra}</entry>'
    )


def entry03(n: int, extra: str = "", *, title: str | None = None) -> str:
    t = f"<title>{TITLE}</title>" if title is None else title
    url = LINK.format(n=n)
    return (
        f'<entry>{t}<id>urn:nv:{n}</id><link rel="alternate" type="text/html" href="{url}"/>'
        f"<issued>2025-09-16T10:0{n % 10}:00Z</issued><modified>2025-09-16T10:0{n % 10}:00Z"
        f'</modified><summary type="text/html" mode="escaped">&lt;p&gt;{TEXT}&lt;/p&gt;'
        f"</summary>{extra}</entry>"
    )


def want(n: int, **kw: object) -> Want:
    fields: dict[str, object] = {"url": LINK.format(n=n), "title": TITLE, "text": TEXT}
    fields.update(kw)
    return Want(**fields)  # type: ignore[arg-type]


XML_DECL = '<?xml version="1.0" encoding="{}"?>\n'


def cases() -> list[Case]:
    out: list[Case] = []

    def add(
        name: str,
        doc: str,
        wants: list[Want],
        *,
        enc: str = "utf-8",
        ctype: str | None = "application/xml",
        decl: bool = True,
    ) -> None:
        text = (XML_DECL.format(enc) if decl else "") + doc
        out.append(Case(name, text.encode(enc), ctype, wants))

    # -- formats, three entries each, with the common modules --------------------------------
    for version in ("0.91", "0.92", "2.0"):
        doc = rss2("".join(item(n) for n in range(1, 4)), version)
        add(f"rss{version.replace('.', '')}-plain", doc, [want(n) for n in range(1, 4)])
    add("rdf-plain", rdf("".join(rdf_item(n) for n in range(1, 4))), [want(n) for n in range(1, 4)])
    add(
        "atom10-plain",
        atom10("".join(entry(n) for n in range(1, 4))),
        [want(n) for n in range(1, 4)],
    )
    add(
        "atom03-plain",
        atom03("".join(entry03(n) for n in range(1, 4))),
        [want(n) for n in range(1, 4)],
    )

    # -- constructs, each in every XML format that can write it --------------------------------
    constructs: list[tuple[str, str, str, str, dict[str, object]]] = [
        # (name, rss extra, atom extra, atom title override, want overrides)
        (
            "dc-creator",
            "<dc:creator>王秉程</dc:creator>",
            "<author><name>王秉程</name></author>",
            "",
            {"author": "王秉程"},
        ),
        (
            "author-email-name",
            "<author>editor@news.example.tw (王秉程)</author>",
            "<author><name>王秉程</name><email>editor@news.example.tw</email></author>",
            "",
            {"author": "王秉程"},
        ),
        (
            "categories",
            "<category>地方</category><category>經濟</category>",
            '<category term="地方"/><category term="經濟"/>',
            "",
            {"categories": ["地方", "經濟"]},
        ),
        (
            "dc-subject",
            "<dc:subject>地方</dc:subject>",
            '<category term="地方"/>',
            "",
            {"categories": ["地方"]},
        ),
        (
            "media-title",
            "<media:title>圖說：簽約儀式</media:title>",
            "<media:title>圖說：簽約儀式</media:title>",
            "",
            {},
        ),
        (
            "media-content",
            '<media:content url="https://img.example.tw/1.jpg" medium="image"/>',
            '<media:content url="https://img.example.tw/1.jpg" medium="image"/>',
            "",
            {},
        ),
        (
            "media-thumbnail",
            '<media:thumbnail url="https://img.example.tw/t.jpg"/>',
            '<media:thumbnail url="https://img.example.tw/t.jpg"/>',
            "",
            {},
        ),
        # feedparser reads itunes:summary as the entry's summary, and so does newsbot.
        (
            "itunes",
            "<itunes:author>王秉程</itunes:author><itunes:summary>節目摘要</itunes:summary>",
            "<itunes:author>王秉程</itunes:author>",
            "",
            {"author": "王秉程"},
        ),
        (
            "foreign-description",
            '<x:description xmlns:x="urn:x">別的描述</x:description>',
            '<x:description xmlns:x="urn:x">別的描述</x:description>',
            "",
            {},
        ),
    ]
    for name, rss_extra, atom_extra, _title, over in constructs:
        rss_over = dict(over, text="節目摘要") if name == "itunes" else over
        add(f"rss20-{name}", rss2(item(1, rss_extra) + item(2)), [want(1, **rss_over), want(2)])
        add(
            f"rss092-{name}",
            rss2(item(1, rss_extra) + item(2), "0.92"),
            [want(1, **rss_over), want(2)],
        )
        add(
            f"rss091-{name}",
            rss2(item(1, rss_extra) + item(2), "0.91"),
            [want(1, **rss_over), want(2)],
        )
        add(
            f"atom03-{name}",
            atom03(entry03(1, atom_extra) + entry03(2)),
            [want(1, **over), want(2)],
        )
        add(f"atom10-{name}", atom10(entry(1, atom_extra) + entry(2)), [want(1, **over), want(2)])
        if name not in ("categories", "author-email-name"):
            add(
                f"rdf-{name}",
                rdf(rdf_item(1, rss_extra) + rdf_item(2)),
                [want(1, **rss_over), want(2)],
            )

    # -- titles ---------------------------------------------------------------------------------
    titles: list[tuple[str, str, str, str]] = [
        # (name, RSS title as written, Atom title element, expected)
        (
            "inline-markup-escaped",
            "高雄 &lt;b&gt;格丁尼亞&lt;/b&gt; 合作",
            '<title type="html">高雄 &lt;b&gt;格丁尼亞&lt;/b&gt; 合作</title>',
            "高雄 格丁尼亞 合作",
        ),
        (
            "inline-markup-cdata",
            "<![CDATA[高雄 <b>格丁尼亞</b> 合作]]>",
            '<title type="html"><![CDATA[高雄 <b>格丁尼亞</b> 合作]]></title>',
            "高雄 格丁尼亞 合作",
        ),
        (
            "ampersand",
            "高雄 &amp; 格丁尼亞",
            "<title>高雄 &amp; 格丁尼亞</title>",
            "高雄 & 格丁尼亞",
        ),
        (
            "angle-text",
            "簽署&lt;經濟合作備忘錄&gt;",
            "<title>簽署&lt;經濟合作備忘錄&gt;</title>",
            "簽署<經濟合作備忘錄>",
        ),
        (
            "script",
            "安全&lt;script&gt;alert(1)&lt;/script&gt;的標題",
            '<title type="html">安全&lt;script&gt;alert(1)&lt;/script&gt;的標題</title>',
            "安全的標題",
        ),
        (
            "comment",
            "<![CDATA[標題<!-- 註解 -->文字]]>",
            '<title type="html"><![CDATA[標題<!-- 註解 -->文字</p>]]></title>',
            "標題文字",
        ),
        (
            "double-encoded",
            "高雄 &amp;amp; 格丁尼亞",
            '<title type="html">高雄 &amp;amp; 格丁尼亞</title>',
            "高雄 & 格丁尼亞",
        ),
        (
            "cp1252-reference",
            "他說&#8217;好&#8217;",
            "<title>他說&#8217;好&#8217;</title>",
            "他說’好’",
        ),
        ("emoji", "🎉 高雄慶典 👨‍👩‍👧", "<title>🎉 高雄慶典 👨‍👩‍👧</title>", "🎉 高雄慶典 👨‍👩‍👧"),
        (
            "whitespace",
            "\n   高雄\n   與格丁尼亞  \n",
            "<title>\n  高雄\n  與格丁尼亞 </title>",
            "高雄 與格丁尼亞",
        ),
    ]
    for name, rss_title, atom_title, expected in titles:
        add(
            f"rss20-title-{name}",
            rss2(item(1, title=rss_title) + item(2)),
            [want(1, title=expected), want(2)],
        )
        add(
            f"atom10-title-{name}",
            atom10(entry(1, title=atom_title) + entry(2)),
            [want(1, title=expected), want(2)],
        )
        add(
            f"rdf-title-{name}",
            rdf(rdf_item(1, title=rss_title) + rdf_item(2)),
            [want(1, title=expected), want(2)],
        )
        add(
            f"rss091-title-{name}",
            rss2(item(1, title=rss_title) + item(2), "0.91"),
            [want(1, title=expected), want(2)],
        )
        add(
            f"atom03-title-{name}",
            atom03(entry03(1, title=atom_title) + entry03(2)),
            [want(1, title=expected), want(2)],
        )
    atom_only = [
        ("text-brackets", "<title>使用 &lt;b&gt; 標籤</title>", "使用 <b> 標籤"),
        ("text-type-explicit", '<title type="text">使用 &lt;b&gt; 標籤</title>', "使用 <b> 標籤"),
        (
            "xhtml",
            '<title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">高雄 '
            "<b>格丁尼亞</b> 合作</div></title>",
            "高雄 格丁尼亞 合作",
        ),
        (
            "base64",
            '<title type="text/plain" mode="base64">'
            + base64.b64encode(TITLE.encode()).decode()
            + "</title>",
            TITLE,
        ),
    ]
    for name, atom_title, expected in atom_only:
        add(
            f"atom10-title-{name}",
            atom10(entry(1, title=atom_title) + entry(2)),
            [want(1, title=expected), want(2)],
        )
        if name != "xhtml":
            add(
                f"atom03-title-{name}",
                atom03(entry03(1, title=atom_title) + entry03(2)),
                [want(1, title=expected), want(2)],
            )
    add(
        "rss20-title-inline-unescaped",
        rss2(
            item(1, title='高雄 <b xmlns="http://www.w3.org/1999/xhtml">格丁尼亞</b> 合作')
            + item(2)
        ),
        [want(1, title="高雄 格丁尼亞 合作"), want(2)],
    )

    # -- links ----------------------------------------------------------------------------------
    u1 = LINK.format(n=1)
    link_cases = [
        (
            "enclosure-only",
            '<link rel="enclosure" type="audio/mpeg" href="https://news.example.tw/a.mp3"/>',
            "",
        ),
        (
            "enclosure-after",
            f'<link rel="alternate" href="{u1}"/><link rel="enclosure" type="image/jpeg" href="https://img.example.tw/1.jpg"/>',
            u1,
        ),
        (
            "enclosure-before",
            f'<link rel="enclosure" type="audio/mpeg" href="https://news.example.tw/a.mp3"/><link rel="alternate" href="{u1}"/>',  # noqa: E501
            u1,
        ),
        (
            "self",
            f'<link rel="self" href="https://news.example.tw/entry/1.atom"/><link href="{u1}"/>',
            u1,
        ),
        ("via-only", '<link rel="via" href="https://other.example.tw/x"/>', ""),
        (
            "related-license",
            f'<link rel="related" href="https://other.example.tw/r"/><link rel="license" href="https://creativecommons.org/"/><link rel="alternate" href="{u1}"/>',  # noqa: E501
            u1,
        ),
        ("relative", '<link href="/article/1"/>', u1),
        ("tracking", f'<link href="{u1}?utm_source=rss&amp;utm_medium=feed"/>', u1),
        ("no-link-url-id", "", ""),
        ("bad-url", '<link href="http://example.c[o.test/"/>', ""),
        ("javascript", '<link href="javascript:alert(1)"/>', ""),
    ]
    for name, links, url in link_cases:
        wants = [want(1, url=url), want(2)] if url else [Want("", TITLE), want(2)]
        add(f"atom10-link-{name}", atom10(entry(1, link=links) + entry(2)), wants)
    id_cases = [
        ("id-url", "<id>https://news.example.tw/article/1</id>", u1),
        ("id-upper-scheme", "<id>HTTPS://news.example.tw/article/1</id>", u1),
        ("id-not-url", "<id>right</id>", ""),
    ]
    for name, ident, url in id_cases:
        body = atom10(entry(1, link="").replace("<id>urn:nv:1</id>", ident) + entry(2))
        wants = [want(1, url=url), want(2)] if url else [Want("", TITLE), want(2)]
        add(f"atom10-{name}", body, wants)
    guid_cases = [
        ("guid-permalink", f"<guid>{u1}</guid>", u1),
        ("guid-permalink-true", f'<guid isPermaLink="true">{u1}</guid>', u1),
        ("guid-not-permalink", f'<guid isPermaLink="false">{u1}</guid>', ""),
        ("guid-not-url", "<guid>newsvision-12345</guid>", ""),
        ("guid-upper-scheme", "<guid>HTTPS://news.example.tw/article/1</guid>", u1),
    ]
    for name, guid, url in guid_cases:
        wants = [want(1, url=url), want(2)] if url else [Want("", TITLE), want(2)]
        add(f"rss20-{name}", rss2(item(1, guid, link=False) + item(2)), wants)
    add(
        "rss20-guid-and-link",
        rss2(item(1, '<guid isPermaLink="false">nv-1</guid>') + item(2)),
        [want(1), want(2)],
    )
    add(
        "rss20-link-bad-url",
        rss2(
            item(1, link=False).replace(
                "<description>", "<link>http://example.c[o.test/</link><description>"
            )
            + item(2)
        ),
        [Want("", TITLE), want(2)],
    )
    add(
        "rss20-link-relative",
        rss2(
            item(1, link=False).replace("<description>", "<link>/article/1</link><description>")
            + item(2)
        ),
        [want(1), want(2)],
    )
    add(
        "rss20-enclosure-mp3",
        rss2(
            item(
                1,
                '<enclosure url="https://news.example.tw/a.mp3" type="audio/mpeg" length="1"/>',
                link=False,
            )
            + item(2)
        ),
        [Want("", TITLE), want(2)],
    )

    # -- summaries ------------------------------------------------------------------------------
    summary_cases = [
        (
            "content-encoded",
            item(1, f"<content:encoded><![CDATA[<p>{TEXT}</p><p>全文。</p>]]></content:encoded>"),
            TEXT + " 全文。",
        ),
        (
            "xhtml-body",
            item(
                1, f'<xhtml:body><p xmlns="http://www.w3.org/1999/xhtml">{TEXT}</p></xhtml:body>'
            ).replace(f"<description>&lt;p&gt;{TEXT}&lt;/p&gt;</description>", ""),
            TEXT,
        ),
        (
            "unescaped-description",
            item(1).replace(
                f"&lt;p&gt;{TEXT}&lt;/p&gt;", f'<p xmlns="http://www.w3.org/1999/xhtml">{TEXT}</p>'
            ),
            TEXT,
        ),
    ]
    for name, first, text in summary_cases:
        add(f"rss20-summary-{name}", rss2(first + item(2)), [want(1, text=text), want(2)])
    atom_summaries = [
        (
            "xhtml-summary",
            f'<summary type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>{TEXT}</p></div></summary>',
            TEXT,
        ),
        (
            "xhtml-content",
            f'<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>{TEXT}</p></div></content>',
            TEXT,
        ),
        (
            "text-content",
            "<content>1 &lt; 2，高雄 &amp; 格丁尼亞</content>",
            "1 < 2，高雄 & 格丁尼亞",
        ),
        ("html-content", f'<content type="html">&lt;p&gt;{TEXT}&lt;/p&gt;</content>', TEXT),
        (
            "base64-content",
            '<content type="text/html" mode="base64">'
            + base64.b64encode(f"<p>{TEXT}</p>".encode()).decode()
            + "</content>",
            TEXT,
        ),
    ]
    for name, element, text in atom_summaries:
        first = entry(1).replace(
            f'<summary type="html">&lt;p&gt;{TEXT}&lt;/p&gt;</summary>', element
        )
        add(f"atom10-summary-{name}", atom10(first + entry(2)), [want(1, text=text), want(2)])

    # -- dates ----------------------------------------------------------------------------------
    date_cases = [
        # Two dates of one kind: feedparser keeps the last, and so does newsbot.
        (
            "two-updated",
            entry(1, "<updated>2025-09-17T10:00:00Z</updated>"),
            "2025-09-17T10:00:00+00:00",
        ),
        (
            "published",
            entry(1, "<published>2025-09-15T08:00:00+08:00</published>"),
            "2025-09-15T00:00:00+00:00",
        ),
        ("bad-date", entry(1).replace("2025-09-16T10:01:00Z", "昨天"), None),
    ]
    for name, first, published in date_cases:
        add(
            f"atom10-date-{name}", atom10(first + entry(2)), [want(1, published=published), want(2)]
        )
    add(
        "atom03-date-created",
        atom03(
            entry03(1).replace(
                "<issued>2025-09-16T10:01:00Z</issued><modified>2025-09-16T10:01:00Z</modified>",
                "<created>2025-09-14T10:00:00Z</created>",
            )
            + entry03(2)
        ),
        [want(1, published="2025-09-14T10:00:00+00:00"), want(2)],
    )
    add(
        "rss20-date-dcterms-created",
        rss2(
            item(1).replace(
                "<pubDate>Tue, 16 Sep 2025 18:01:00 +0800</pubDate>",
                "<dcterms:created>2025-09-14T10:00:00Z</dcterms:created>",
            )
            + item(2)
        ),
        [want(1, published="2025-09-14T10:00:00+00:00"), want(2)],
    )
    add(
        "rss20-date-dc-date",
        rss2(
            item(1).replace(
                "<pubDate>Tue, 16 Sep 2025 18:01:00 +0800</pubDate>",
                "<dc:date>2025-09-14T10:00:00+08:00</dc:date>",
            )
            + item(2)
        ),
        [want(1, published="2025-09-14T02:00:00+00:00"), want(2)],
    )

    # -- xml:base -------------------------------------------------------------------------------
    add(
        "atom10-xml-base",
        atom10(
            entry(1, link='<link href="1"/>').replace(
                "<entry>", '<entry xml:base="https://news.example.tw/article/">'
            )
            + entry(2)
        ),
        [want(1), want(2)],
    )
    add(
        "rss20-xml-base",
        rss2(
            item(1, link=False)
            .replace("<item>", '<item xml:base="https://news.example.tw/article/">')
            .replace("<description>", "<link>1</link><description>")
            + item(2)
        ),
        [want(1), want(2)],
    )

    # -- encodings: every format above again in each encoding ------------------------------------
    plain = {
        "rss091": rss2("".join(item(n) for n in range(1, 3)), "0.91"),
        "rss092": rss2("".join(item(n) for n in range(1, 3)), "0.92"),
        "rss20": rss2("".join(item(n) for n in range(1, 3))),
        "rdf": rdf("".join(rdf_item(n) for n in range(1, 3))),
        "atom10": atom10("".join(entry(n) for n in range(1, 3))),
        "atom03": atom03("".join(entry03(n) for n in range(1, 3))),
    }
    two = [want(1), want(2)]
    for fmt, doc in plain.items():
        for enc in (
            "utf-8",
            "utf-16",
            "utf-16-le",
            "utf-16-be",
            "utf-32",
            "utf-32-le",
            "utf-32-be",
            "big5",
            "cp950",
            "gb18030",
            "euc-tw" if False else "big5hkscs",
        ):
            add(f"{fmt}-enc-{enc}-declared", doc, two, enc=enc)
        for enc in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
            label = enc[:6]
            text = XML_DECL.format(label) + doc
            out.append(Case(f"{fmt}-enc-{enc}-no-bom", text.encode(enc), "application/xml", two))
        out.append(
            Case(
                f"{fmt}-enc-utf8-bom",
                b"\xef\xbb\xbf" + (XML_DECL.format("utf-8") + doc).encode(),
                "application/xml",
                two,
            )
        )
        out.append(
            Case(
                f"{fmt}-enc-http-charset-big5",
                doc.encode("big5"),
                "application/xml; charset=big5",
                two,
            )
        )
        out.append(
            Case(
                f"{fmt}-enc-http-charset-overrides-decl",
                (XML_DECL.format("iso-8859-1") + doc).encode("utf-8"),
                "application/xml; charset=utf-8",
                two,
            )
        )
        out.append(
            Case(
                f"{fmt}-enc-big5-labelled-utf8",
                (XML_DECL.format("utf-8") + doc).encode("big5"),
                "application/xml",
                two,
            )
        )
        out.append(Case(f"{fmt}-enc-undeclared-big5", doc.encode("big5"), "application/xml", two))
        out.append(
            Case(
                f"{fmt}-enc-big5-served-as-utf8", doc.encode("big5"), "text/xml; charset=utf-8", two
            )
        )
        out.append(
            Case(
                f"{fmt}-enc-http-utf16",
                (XML_DECL.format("utf-16") + doc).encode("utf-16"),
                "application/xml; charset=utf-16",
                two,
            )
        )
        bad = (
            (XML_DECL.format("utf-8") + doc)
            .encode("utf-8")
            .replace("最新報導".encode(), "最新報導".encode()[:-1] + b"\xff", 1)
        )
        out.append(Case(f"{fmt}-enc-utf8-one-bad-byte", bad, "application/xml", two))
        out.append(
            Case(f"{fmt}-enc-no-content-type", (XML_DECL.format("utf-8") + doc).encode(), None, two)
        )
        out.append(
            Case(
                f"{fmt}-enc-text-xml",
                (XML_DECL.format("utf-8") + doc).encode(),
                "text/xml; charset=utf-8",
                two,
            )
        )

    # -- JSON Feed ------------------------------------------------------------------------------
    for version in ("1", "1.1"):
        items = [
            {
                "id": "1",
                "url": LINK.format(n=1),
                "title": TITLE,
                "content_html": f"<p>{TEXT}</p>",
                "date_published": "2025-09-16T10:01:00Z",
                **(
                    {"authors": [{"name": "王秉程"}]}
                    if version == "1.1"
                    else {"author": {"name": "王秉程"}}
                ),
            },
            {
                "id": "2",
                "url": LINK.format(n=2),
                "title": TITLE,
                "content_text": TEXT,
                "tags": ["地方", "經濟"],
            },
            {"id": LINK.format(n=3), "title": TITLE, "summary": TEXT},
            {"id": "4", "title": TITLE, "content_text": TEXT},
            {"id": "5", "url": "http://example.c[o.test/", "title": TITLE, "content_text": TEXT},
            {
                "id": "6",
                "url": LINK.format(n=6),
                "title": "使用 <script> 標籤",
                "content_text": TEXT,
            },
        ]
        doc = json.dumps(
            {
                "version": f"https://jsonfeed.org/version/{version}",
                "title": "新聞視界時報",
                "items": items,
            },
            ensure_ascii=False,
        )
        out.append(
            Case(
                f"jsonfeed{version.replace('.', '')}",
                doc.encode(),
                "application/feed+json",
                [
                    want(1, author="王秉程", published="2025-09-16T10:01:00+00:00"),
                    want(2, categories=["地方", "經濟"]),
                    want(3),
                    Want("", TITLE),
                    Want("", TITLE),
                    want(6, title="使用 <script> 標籤"),
                ],
            )
        )
    return out


def main() -> int:
    HERE.mkdir(parents=True, exist_ok=True)
    for old in HERE.iterdir():
        old.unlink()
    expected: dict[str, object] = {}
    for case in cases():
        ext = ".json" if case.content_type and "json" in case.content_type else ".xml"
        (HERE / f"{case.name}{ext}").write_bytes(case.body)
        expected[case.name + ext] = {
            "content_type": case.content_type,
            "entries": [asdict(w) for w in case.want],
        }
    (HERE / "expected.json").write_text(
        json.dumps(expected, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    print(f"{len(expected)} feeds in {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
