"""The outbound-fetch policy against real HTTP on loopback: nothing internal is fetched or posted.

"Internal" is played by a second loopback address, 127.0.0.2, which no source here allows; the
sources' own sites listen on 127.0.0.1 (``allow_private: [127.0.0.1]``). A public-looking name
(news.example.tw) is answered by a fake resolver with loopback addresses only: no test here
sends a packet anywhere but 127.0.0.0/8.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from bot.compose.length import X_POST
from bot.compose.render import Renderer
from bot.config import Config, load_config
from bot.daemon import build_source
from bot.errors import FetchRefused, SourceError
from bot.ledger import Ledger
from bot.pipeline import Pipeline
from bot.sources.base import SourceState
from bot.sources.fetch import Fetcher
from bot.sources.policy import FetchPolicy
from bot.testing.feed_server import FeedItem, FeedServer, rss
from bot.testing.memory import MemoryChannel

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 9, 16, 10, 0, tzinfo=UTC)
SECRET_TEXT = "機密：董事會內部薪資調整草案，請勿外流"
SECRET_PAGE = f"""<!doctype html><html lang="zh-Hant"><head><meta charset="utf-8">
<title>內部文件</title><meta property="og:title" content="內部文件">
<meta property="og:description" content="{SECRET_TEXT}"></head>
<body><article><p>{SECRET_TEXT}</p></article></body></html>"""
ARTICLE_PAGE = """<!doctype html><html lang="zh-Hant"><head><meta charset="utf-8">
<title>高雄與格丁尼亞再升級！</title>
<meta property="og:description"
 content="高雄市與波蘭格丁尼亞市簽署經濟合作備忘錄，雙方將在港灣城市、綠能與觀光深化交流。">
</head><body><article><p>記者林小明／高雄報導</p></article></body></html>"""


class MappedResolver(AbstractResolver):
    """DNS as a test says: each name answers the next address of its list (the last one
    repeats). Counts the questions. Only loopback answers are ever given."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        for addresses in answers.values():
            assert all(a.startswith("127.") for a in addresses), "loopback only in tests"
        self.answers = answers
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        addresses = self.answers.get(host)
        if not addresses:
            raise OSError(f"no such host in the test: {host}")
        address = addresses.pop(0) if len(addresses) > 1 else addresses[0]
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


@pytest.fixture
async def site() -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        yield server


@pytest.fixture
async def internal() -> AsyncIterator[FeedServer]:
    """The page nobody may publish, on a loopback address no source allows."""
    async with FeedServer(host="127.0.0.2") as server:
        server.publish("/secret", SECRET_PAGE, content_type="text/html; charset=utf-8")
        yield server


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with Fetcher(timeout=5.0) as f:
        yield f


def write_config(tmp_path: Path, source: str) -> Config:
    path = tmp_path / "newsbot.yaml"
    path.write_text(
        f"""\
timezone: Asia/Taipei
database: sqlite:///ledger.db
templates: {REPO / "templates"}
sources:
  newsvision:
{source}
    backlog: 20
    max_age: off
channels:
  x:
    kind: console
    template: x.txt.j2
""",
        "utf-8",
    )
    return load_config(path, environ={})


class World:
    """The source as the daemon builds it (build_source), a real ledger, a memory channel."""

    def __init__(self, config: Config, fetcher: Fetcher) -> None:
        self.config = config
        self.ledger = Ledger.open(config.database)
        self.now = NOW
        self.source = build_source(config.sources["newsvision"], fetcher, config)
        self.x = MemoryChannel("x", X_POST)
        self.pipeline = Pipeline(
            config,
            self.ledger,
            {"newsvision": self.source},
            {"x": self.x},
            Renderer(config.templates, config.tz),
            holder="test:policy",
            clock=lambda: self.now,
        )

    async def cycle(self) -> None:
        self.now += timedelta(minutes=2)
        await self.pipeline.poll_all()
        await self.pipeline.deliver_due()

    def posted_text(self) -> str:
        return "\n".join(post.text for post in self.x.posts)


@pytest.fixture
def worlds() -> Iterator[list[World]]:
    made: list[World] = []
    yield made
    for world in made:
        world.ledger.close()


def _feed_source(url: str, *, enrich: bool = False) -> str:
    lines = [
        "    kind: feed",
        f"    url: {url}",
        "    allow_private: [127.0.0.1]",
    ]
    if enrich:
        lines.append("    enrich: true")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ enrichment


async def test_feed_linking_to_a_loopback_page_with_enrich_fetches_and_posts_nothing(
    site: FeedServer,
    internal: FeedServer,
    fetcher: Fetcher,
    tmp_path: Path,
    worlds: list[World],
) -> None:
    """enrich: true on a feed whose entry links to an internal page: the page is never
    requested, the entry is not posted, the source's good entry is, and the reason is logged."""
    good = site.publish("/article/20051", ARTICLE_PAGE, content_type="text/html")
    feed = site.publish(
        "/rss.xml",
        rss(
            [
                FeedItem("nv-1", "高雄與格丁尼亞再升級！", good, published=NOW),
                FeedItem("nv-2", "內部文件", internal.url_for("/secret"), published=NOW),
            ]
        ),
    )
    world = World(write_config(tmp_path, _feed_source(feed, enrich=True)), fetcher)
    worlds.append(world)
    result = await world.source.poll(SourceState())
    assert [a.key for a in result.articles] == ["nv-1"]
    assert any("127.0.0.2" in w and "loopback" in w for w in result.refusals)

    await world.cycle()
    assert internal.requests_for("/secret") == []
    assert len(world.x.posts) == 1
    assert "經濟合作備忘錄" in world.posted_text()
    assert SECRET_TEXT not in world.posted_text()
    assert "127.0.0.2" not in world.posted_text()


async def test_sitemap_with_a_file_loc_reads_no_file(
    site: FeedServer, fetcher: Fetcher, tmp_path: Path, worlds: list[World]
) -> None:
    """A sitemap <loc> of file:///… (enrich: true) is neither read nor posted; the reason is
    recorded among the poll's warnings."""
    secret = tmp_path / "secret.html"
    secret.write_text(SECRET_PAGE, "utf-8")
    good = site.publish("/article/20051", ARTICLE_PAGE, content_type="text/html")
    sitemap = site.publish(
        "/news-sitemap.xml",
        f"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>{secret.as_uri()}</loc></url>
  <url><loc>{good}</loc></url>
</urlset>""",
        content_type="application/xml",
    )
    source = "\n".join(
        [
            "    kind: sitemap",
            f"    url: {sitemap}",
            "    allow_private: [127.0.0.1]",
            "    enrich: true",
        ]
    )
    world = World(write_config(tmp_path, source), fetcher)
    worlds.append(world)
    result = await world.source.poll(SourceState())
    assert [a.url for a in result.articles] == [good]
    assert any("file:" in w for w in result.refusals)

    await world.cycle()
    assert len(world.x.posts) == 1
    assert SECRET_TEXT not in world.posted_text()
    assert "file:" not in world.posted_text()


async def test_sitemap_index_naming_a_file_or_an_internal_sitemap_reads_neither(
    site: FeedServer, internal: FeedServer, fetcher: Fetcher, tmp_path: Path
) -> None:
    """A sitemap index whose children are file:///… and an internal address: neither is read,
    and since nothing could be read the poll fails with both reasons."""
    secret = tmp_path / "sitemap.xml"
    secret.write_text("<urlset/>", "utf-8")
    internal.publish("/sitemap.xml", "<urlset/>", content_type="application/xml")
    index = site.publish(
        "/sitemap-index.xml",
        f"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>{secret.as_uri()}</loc></sitemap>
  <sitemap><loc>{internal.url_for("/sitemap.xml")}</loc></sitemap>
</sitemapindex>""",
        content_type="application/xml",
    )
    source = f"    kind: sitemap\n    url: {index}\n    allow_private: [127.0.0.1]"
    config = write_config(tmp_path, source)
    built = build_source(config.sources["newsvision"], fetcher, config)
    with pytest.raises(SourceError) as caught:
        await built.poll(SourceState())
    assert "file" in str(caught.value) and "127.0.0.2" in str(caught.value)
    assert internal.requests_for("/sitemap.xml") == []


async def test_html_listing_linking_to_internal_addresses_posts_none_of_them(
    site: FeedServer, internal: FeedServer, fetcher: Fetcher, tmp_path: Path, worlds: list[World]
) -> None:
    """A listing's links to 127.0.0.2 and to the cloud metadata address 169.254.169.254 are
    not posted (nor fetched: the page-less listing has no enrichment); the public one is."""
    listing = site.publish(
        "/category/finance",
        f"""<!doctype html><html><body><ul class="news">
<li><a href="{internal.url_for("/secret")}"><h3>內部文件</h3></a></li>
<li><a href="http://169.254.169.254/latest/meta-data/iam/"><h3>雲端中繼資料</h3></a></li>
<li><a href="https://news.example.tw/article/20051"><h3>高雄與格丁尼亞再升級！</h3></a></li>
</ul></body></html>""",
        content_type="text/html; charset=utf-8",
    )
    source = "\n".join(
        [
            "    kind: html",
            f"    url: {listing}",
            "    allow_private: [127.0.0.1]",
            "    selectors: {item: 'ul.news li', title: h3, link: 'a@href'}",
        ]
    )
    world = World(write_config(tmp_path, source), fetcher)
    worlds.append(world)
    result = await world.source.poll(SourceState())
    assert [a.url for a in result.articles] == ["https://news.example.tw/article/20051"]
    reasons = " ".join(result.refusals)
    assert "127.0.0.2" in reasons and "169.254.169.254" in reasons and "link-local" in reasons

    await world.cycle()
    assert [p.link for p in world.x.posts] == ["https://news.example.tw/article/20051"]
    assert internal.requests_for("/secret") == []


async def test_html_listing_with_enrich_never_requests_the_internal_page(
    site: FeedServer, internal: FeedServer, fetcher: Fetcher, tmp_path: Path
) -> None:
    """With enrich: true, a listing's link to an internal page is refused before any request."""
    listing = site.publish(
        "/list",
        f'<ul class="news"><li><a href="{internal.url_for("/secret")}">x</a></li></ul>',
        content_type="text/html; charset=utf-8",
    )
    source = "\n".join(
        [
            "    kind: html",
            f"    url: {listing}",
            "    allow_private: [127.0.0.1]",
            "    enrich: true",
            "    selectors: {item: 'ul.news li', title: a, link: 'a@href'}",
        ]
    )
    config = write_config(tmp_path, source)
    result = await build_source(config.sources["newsvision"], fetcher, config).poll(SourceState())
    assert result.articles == ()
    assert any("127.0.0.2" in w for w in result.refusals)
    assert internal.requests_for("/secret") == []


# ------------------------------------------------------------------------------- redirects


async def test_redirect_from_an_allowed_address_to_another_loopback_is_refused(
    site: FeedServer, internal: FeedServer, fetcher: Fetcher, tmp_path: Path, worlds: list[World]
) -> None:
    """allow_private: [127.0.0.1] does not open 127.0.0.2: a feed redirecting there fails,
    with the reason recorded against the source, and the internal server sees nothing."""
    internal.publish("/rss.xml", rss([FeedItem("s", "內部", "https://news.example.tw/s")]))
    feed = site.redirect("/rss.xml", internal.url_for("/rss.xml"), status=302)
    world = World(write_config(tmp_path, _feed_source(feed)), fetcher)
    worlds.append(world)
    await world.cycle()
    record = world.ledger.source("newsvision")
    assert record.last_error is not None
    assert "redirect" in record.last_error and "127.0.0.2" in record.last_error
    assert internal.requests == []
    assert world.x.posts == []


async def test_redirect_from_a_public_looking_name_to_loopback_is_refused(
    site: FeedServer, tmp_path: Path
) -> None:
    """news.example.tw (allowed by name, resolving to 127.0.0.1 in this test) redirects to
    http://127.0.0.1:<port>/secret: an address no entry allows, so it is never requested."""
    site.publish("/secret", SECRET_PAGE, content_type="text/html")
    site.redirect("/rss.xml", site.url_for("/secret"), status=301)
    resolver = MappedResolver({"news.example.tw": ["127.0.0.1"]})
    url = f"http://news.example.tw:{site.url.rsplit(':', 1)[1]}/rss.xml"
    policy = FetchPolicy.allowing(["news.example.tw"])
    async with Fetcher(timeout=5.0, resolver=resolver, policy=policy) as fetcher:
        with pytest.raises(FetchRefused, match=r"redirect to http://127\.0\.0\.1.*loopback"):
            await fetcher.get(url)
    assert len(site.requests_for("/rss.xml")) == 1
    assert site.requests_for("/secret") == []


# ------------------------------------------------------------------------ the address checked


async def test_a_name_resolving_to_a_forbidden_address_is_refused_before_connecting(
    internal: FeedServer,
) -> None:
    """A public-looking name whose DNS answer is internal is refused at resolution, once."""
    resolver = MappedResolver({"news.example.tw": ["127.0.0.2"]})
    url = f"http://news.example.tw:{internal.url.rsplit(':', 1)[1]}/secret"
    async with Fetcher(timeout=5.0, resolver=resolver) as fetcher:
        with pytest.raises(FetchRefused, match=r"news\.example\.tw \(127\.0\.0\.2\).*loopback"):
            await fetcher.get(url)
    assert resolver.asked == ["news.example.tw"]
    assert internal.requests == []


async def test_dns_rebinding_the_connected_address_is_the_checked_one() -> None:
    """A name that answers an allowed address first and an internal one afterwards: the one
    connection is made to the address that was checked. A fetcher that checked with one lookup
    and connected after another would reach the internal server."""
    async with FeedServer() as allowed:
        port = int(allowed.url.rsplit(":", 1)[1])
        async with FeedServer(host="127.0.0.2", port=port) as hidden:
            allowed.publish("/rss.xml", rss([]))
            hidden.publish("/rss.xml", SECRET_PAGE)
            resolver = MappedResolver({"news.example.tw": ["127.0.0.1", "127.0.0.2"]})
            policy = FetchPolicy.allowing(["127.0.0.1"])
            async with Fetcher(timeout=5.0, resolver=resolver, policy=policy) as fetcher:
                result = await fetcher.get(f"http://news.example.tw:{port}/rss.xml")
            assert SECRET_TEXT.encode() not in result.body
            assert len(allowed.requests_for("/rss.xml")) == 1
            assert hidden.requests == []
            assert resolver.asked == ["news.example.tw"]


async def test_rebinding_on_a_new_connection_is_refused() -> None:
    """Once the name has moved to the internal address, a fresh lookup is checked again and
    refused: the answer cached or not, no connection goes to it."""
    async with FeedServer(host="127.0.0.2") as hidden:
        hidden.publish("/rss.xml", SECRET_PAGE)
        port = int(hidden.url.rsplit(":", 1)[1])
        for name in ("one.example.tw", "two.example.tw"):
            resolver = MappedResolver({name: ["127.0.0.2"]})
            async with Fetcher(timeout=5.0, resolver=resolver) as fetcher:
                with pytest.raises(FetchRefused):
                    await fetcher.get(f"http://{name}:{port}/rss.xml")
        assert hidden.requests == []


async def test_an_address_in_the_url_is_checked_without_dns(internal: FeedServer) -> None:
    """http://127.0.0.2:<port>/ is refused by the address itself: no resolver is asked, no
    request reaches the server."""
    resolver = MappedResolver({})
    async with Fetcher(timeout=5.0, resolver=resolver) as fetcher:
        with pytest.raises(FetchRefused, match="loopback"):
            await fetcher.get(internal.url_for("/secret"))
        for spelled in (
            f"http://[::ffff:127.0.0.2]:{internal.url.rsplit(':', 1)[1]}/secret",
            f"http://0.0.0.0:{internal.url.rsplit(':', 1)[1]}/secret",
            f"http://2130706434:{internal.url.rsplit(':', 1)[1]}/secret",  # 127.0.0.2
        ):
            with pytest.raises(FetchRefused):
                await fetcher.get(spelled)
    assert resolver.asked == []
    assert internal.requests == []


async def test_a_source_allowed_a_private_host_does_not_open_it_for_another(
    internal: FeedServer,
) -> None:
    """Least privilege: one source's allow_private lets that source in, and no other, even
    over the same Fetcher (each policy has its own connections)."""
    async with Fetcher(timeout=5.0) as fetcher:
        cms = fetcher.scoped(FetchPolicy.allowing(["127.0.0.2"]))
        other = fetcher.scoped(FetchPolicy.allowing(["127.0.0.1"]))
        assert SECRET_TEXT.encode() in (await cms.get(internal.url_for("/secret"))).body
        with pytest.raises(FetchRefused):
            await other.get(internal.url_for("/secret"))
        with pytest.raises(FetchRefused):
            await fetcher.get(internal.url_for("/secret"))
    assert len(internal.requests_for("/secret")) == 1


async def test_file_url_is_read_only_as_the_sources_own_url(tmp_path: Path) -> None:
    """A file: URL is read when it is the source's configured url, refused otherwise."""
    own = tmp_path / "feed.xml"
    own.write_text(rss([]), "utf-8")
    other = tmp_path / "secret.html"
    other.write_text(SECRET_PAGE, "utf-8")
    async with Fetcher(timeout=5.0) as fetcher:
        scoped = fetcher.scoped(FetchPolicy(files=frozenset({own.as_uri()})))
        assert (await scoped.get(own.as_uri())).status == 200
        with pytest.raises(FetchRefused, match="own configured url"):
            await scoped.get(other.as_uri())
        with pytest.raises(FetchRefused):
            await fetcher.get(own.as_uri())


# ------------------------------------------------------------------------------------ links


async def test_links_with_credentials_are_never_posted(
    site: FeedServer, fetcher: Fetcher, tmp_path: Path, worlds: list[World]
) -> None:
    """An entry linking to http://admin:hunter2@… is not posted; the reason names the host but
    not the password; the other entries are posted."""
    feed = site.publish(
        "/rss.xml",
        rss(
            [
                FeedItem(
                    "nv-1", "後台預覽", "http://admin:hunter2@news.example.tw/a/1", published=NOW
                ),
                FeedItem("nv-2", "高雄與格丁尼亞再升級！", "https://news.example.tw/a/2"),
            ]
        ),
    )
    world = World(write_config(tmp_path, _feed_source(feed)), fetcher)
    worlds.append(world)
    result = await world.source.poll(SourceState())
    assert [a.key for a in result.articles] == ["nv-2"]
    (warning,) = [w for w in result.refusals if "user name or password" in w]
    assert "news.example.tw" in warning and "hunter2" not in warning
    await world.cycle()
    assert [p.link for p in world.x.posts] == ["https://news.example.tw/a/2"]
    assert "hunter2" not in world.posted_text()


async def test_a_session_parameter_that_changes_every_poll_posts_once(
    site: FeedServer, fetcher: Fetcher, tmp_path: Path, worlds: list[World]
) -> None:
    """A listing whose links carry a new ?session= (and ;jsessionid=) on every poll: each
    article is posted once, with the link without it."""
    source = "\n".join(
        [
            "    kind: html",
            f"    url: {site.url_for('/list')}",
            "    allow_private: [127.0.0.1]",
            "    selectors: {item: 'ul.news li', title: a, link: 'a@href'}",
        ]
    )
    world = World(write_config(tmp_path, source), fetcher)
    worlds.append(world)
    for poll in range(3):
        site.publish(
            "/list",
            f"""<ul class="news">
<li><a href="https://news.example.tw/article/20051?session=s{poll}a&amp;page=1">高雄與格丁尼亞再升級！</a></li>
<li><a href="https://news.example.tw/article/20052;jsessionid=J{poll}?PHPSESSID=p{poll}">臺南燈會</a></li>
</ul>""",
            content_type="text/html; charset=utf-8",
        )
        await world.cycle()
    assert sorted(p.link for p in world.x.posts) == [
        "https://news.example.tw/article/20051?page=1",
        "https://news.example.tw/article/20052",
    ]


async def test_enrichment_never_fetches_a_link_with_credentials_nor_keeps_an_internal_image(
    site: FeedServer, fetcher: Fetcher, tmp_path: Path
) -> None:
    """With enrich: true, a credentialed link is dropped before its page is requested; a page
    whose og:image is the metadata address gives its article no image."""
    site.publish("/a/1", ARTICLE_PAGE, content_type="text/html")
    site.publish(
        "/a/2",
        ARTICLE_PAGE.replace(
            "</head>",
            '<meta property="og:image" content="http://169.254.169.254/latest/x.png"></head>',
        ),
        content_type="text/html",
    )
    host = site.url.removeprefix("http://")
    feed = site.publish(
        "/rss.xml",
        rss(
            [
                FeedItem("nv-1", "後台預覽", f"http://admin:hunter2@{host}/a/1", published=NOW),
                FeedItem("nv-2", "高雄與格丁尼亞再升級！", site.url_for("/a/2"), published=NOW),
            ]
        ),
    )
    config = write_config(tmp_path, _feed_source(feed, enrich=True))
    result = await build_source(config.sources["newsvision"], fetcher, config).poll(SourceState())
    assert [(a.key, a.image) for a in result.articles] == [("nv-2", None)]
    assert "經濟合作備忘錄" in result.articles[0].summary_html
    assert site.requests_for("/a/1") == []
    assert any("169.254.169.254" in w and "posted without it" in w for w in result.refusals)


async def test_an_index_child_that_may_not_be_fetched_is_a_refusal_beside_the_good_ones(
    site: FeedServer, internal: FeedServer, fetcher: Fetcher, tmp_path: Path
) -> None:
    """An index naming a good sitemap and an internal one: the good one is read, the internal
    one is never requested and is listed among the poll's refusals with the reason."""
    site.publish(
        "/news.xml",
        """<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
 xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
<url><loc>https://news.example.tw/article/20051</loc><news:news>
<news:publication_date>2025-09-16T09:00:00+08:00</news:publication_date>
<news:title>高雄與格丁尼亞再升級！</news:title></news:news></url></urlset>""",
        content_type="application/xml",
    )
    index = site.publish(
        "/index.xml",
        f"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>{site.url_for("/news.xml")}</loc></sitemap>
  <sitemap><loc>{internal.url_for("/sitemap.xml")}</loc></sitemap>
</sitemapindex>""",
        content_type="application/xml",
    )
    source = f"    kind: sitemap\n    url: {index}\n    allow_private: [127.0.0.1]"
    config = write_config(tmp_path, source)
    result = await build_source(config.sources["newsvision"], fetcher, config).poll(SourceState())
    assert [a.url for a in result.articles] == ["https://news.example.tw/article/20051"]
    assert any("127.0.0.2" in r and "loopback" in r for r in result.refusals)
    assert internal.requests == []
