"""Revisions from sitemaps and from article pages read again, against a FeedServer on
127.0.0.1: a new ``lastmod`` re-reads an enriched page (a changed page is a correction, an
unchanged one is nothing), an entry that leaves the sitemap is no takedown by itself, and a
page answering 404 / 410 takes the posts down only with ``takedown_on_gone: true``."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from bot.compose.length import TELEGRAM_MESSAGE
from bot.compose.render import Renderer
from bot.config import FeedSourceConfig, load_config
from bot.ledger import Ledger
from bot.pipeline import Pipeline
from bot.sources.base import SourceState
from bot.sources.enrich import Enricher, enriching
from bot.sources.feed import FeedSource
from bot.sources.fetch import Fetcher
from bot.sources.policy import FetchPolicy
from bot.testing.feed_server import FeedItem, FeedServer, atom
from bot.testing.memory import MemoryChannel
from bot.wiring import build_source
from tests.integration.test_html_sitemap_enrich import (
    HTML,
    XML,
    fetcher,
    server,
    sitemap_source,
)

__all__ = ["fetcher", "server"]  # the fixtures, imported so that they serve here too

REPO = Path(__file__).resolve().parents[2]
WHEN = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def page(description: str) -> str:
    return (
        '<!DOCTYPE html><html lang="zh-Hant-TW"><head><meta charset="utf-8">'
        "<title>高雄港與格丁尼亞港締結姊妹港</title>"
        f'<meta property="og:description" content="{description}">'
        '<meta property="og:image" content="https://news.example.tw/img/port.jpg">'
        "</head><body><article><p>內文</p></article></body></html>"
    )


def urlset(server: FeedServer, entries: dict[str, datetime]) -> str:
    """A news sitemap listing ``/news/<slug>`` for each slug, with its lastmod."""
    rows = "".join(
        f"<url><loc>{server.url}/news/{slug}</loc><lastmod>{lastmod.isoformat()}</lastmod>"
        "<news:news><news:publication><news:name>新聞視界時報</news:name>"
        "<news:language>zh-tw</news:language></news:publication>"
        f"<news:publication_date>{WHEN.isoformat()}</news:publication_date>"
        f"<news:title>港口新聞 {slug}</news:title></news:news></url>"
        for slug, lastmod in entries.items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">'
        f"{rows}</urlset>"
    )


# ----------------------------------------------------------------------------- the source side


async def test_a_new_lastmod_reads_the_page_again(server: FeedServer, fetcher: Fetcher) -> None:
    """An enriched sitemap entry's page is read once while its lastmod stays; a new lastmod
    reads it again, so the page's corrected description reaches the article."""
    server.publish("/news/a", page("締約日期為 11 月 5 日。"), content_type=HTML)
    url = server.publish("/sitemap.xml", urlset(server, {"a": WHEN}), content_type=XML)
    source = enriching(
        sitemap_source(url, fetcher, enrich=True), Enricher(fetcher, per_host_delay=0)
    )
    first = await source.poll(SourceState())
    assert "11 月 5 日" in first.articles[0].summary_html
    server.publish("/news/a", page("締約日期為 12 月 5 日（更正）。"), content_type=HTML)
    server.publish("/sitemap.xml", urlset(server, {"a": WHEN}) + " ", content_type=XML)
    same = await source.poll(first.state)
    assert "11 月 5 日" in same.articles[0].summary_html  # lastmod unchanged: not re-read
    assert len(server.requests_for("/news/a")) == 1
    later = WHEN + timedelta(minutes=20)
    server.publish("/sitemap.xml", urlset(server, {"a": later}), content_type=XML)
    changed = await source.poll(same.state)
    assert "12 月 5 日" in changed.articles[0].summary_html
    assert changed.articles[0].modified == later
    assert len(server.requests_for("/news/a")) == 2


async def test_a_new_atom_updated_reads_an_enriched_feed_entrys_page_again(
    server: FeedServer, fetcher: Fetcher
) -> None:
    """A title-only feed entry's page is read once while its <updated> stays; a later
    <updated> (same title) reads it again, so the page's correction reaches the article."""
    server.publish("/news/a", page("締約日期為 11 月 5 日。"), content_type=HTML)

    def feed(updated: datetime) -> str:
        item = FeedItem("nv-a", "高雄港與格丁尼亞港締結姊妹港", f"{server.url}/news/a",
                        published=WHEN, updated=updated)  # fmt: skip
        return atom([item])

    url = server.publish("/atom.xml", feed(WHEN), content_type=XML)
    config = FeedSourceConfig.model_validate(
        {"kind": "feed", "name": "newsvision", "url": url, "enrich": True,
         "allow_private": ["127.0.0.1"]}
    )  # fmt: skip
    feed_source = FeedSource(config, fetcher.scoped(FetchPolicy.for_source(config)))
    source = enriching(feed_source, Enricher(fetcher, per_host_delay=0))
    first = await source.poll(SourceState())
    assert "11 月 5 日" in first.articles[0].summary_html
    server.publish("/news/a", page("締約日期為 12 月 5 日（更正）。"), content_type=HTML)
    server.publish("/atom.xml", feed(WHEN) + " ", content_type=XML)
    same = await source.poll(first.state)
    assert "11 月 5 日" in same.articles[0].summary_html  # <updated> unchanged: not re-read
    later = WHEN + timedelta(minutes=20)
    server.publish("/atom.xml", feed(later), content_type=XML)
    changed = await source.poll(same.state)
    assert "12 月 5 日" in changed.articles[0].summary_html
    assert changed.articles[0].modified == later
    assert len(server.requests_for("/news/a")) == 2


async def test_an_entry_leaving_the_sitemap_is_checked_only_with_takedown_on_gone(
    server: FeedServer, fetcher: Fetcher
) -> None:
    """Sitemaps drop entries all the time: without takedown_on_gone nothing is fetched for
    one that left; with it, its page is asked, and a 410 (not a 200) is reported gone."""
    for slug in ("a", "b", "c"):
        server.publish(f"/news/{slug}", page(slug), content_type=HTML)
    server.set_fault("/news/b", "410")
    for takedown in (False, True):
        url = server.publish(
            "/sitemap.xml", urlset(server, dict.fromkeys("abc", WHEN)), content_type=XML
        )
        source = sitemap_source(url, fetcher, takedown_on_gone=takedown)
        first = await source.poll(SourceState())
        assert first.gone == ()
        server.clear_requests()
        server.publish("/sitemap.xml", urlset(server, {"a": WHEN}), content_type=XML)
        result = await source.poll(first.state)
        asked = {path for path in ("/news/b", "/news/c") if server.requests_for(path)}
        if not takedown:
            assert (result.gone, asked) == ((), set())
        else:
            [(key, why)] = result.gone
            assert key == f"{server.url}/news/b" and "HTTP 410" in why
            assert asked == {"/news/b", "/news/c"}


async def test_an_enriched_page_answering_404_is_reported_gone(
    server: FeedServer, fetcher: Fetcher
) -> None:
    """A page read again (new lastmod) that answers 404 is reported gone, and the entry is
    still passed on, unenriched."""
    server.publish("/news/a", page("原文"), content_type=HTML)
    url = server.publish("/sitemap.xml", urlset(server, {"a": WHEN}), content_type=XML)
    source = enriching(
        sitemap_source(url, fetcher, enrich=True), Enricher(fetcher, per_host_delay=0)
    )
    first = await source.poll(SourceState())
    assert first.gone == ()
    server.set_fault("/news/a", "404")
    server.publish(
        "/sitemap.xml", urlset(server, {"a": WHEN + timedelta(minutes=5)}), content_type=XML
    )
    result = await source.poll(first.state)
    [(key, why)] = result.gone
    assert key == f"{server.url}/news/a" and "HTTP 404" in why
    assert [a.key for a in result.articles] == [key]


# --------------------------------------------------------------------- through the pipeline


@dataclass
class World:
    server: FeedServer
    ledger: Ledger
    telegram: MemoryChannel
    pipeline: Pipeline

    def sitemap(self, entries: dict[str, datetime]) -> None:
        self.server.publish("/sitemap.xml", urlset(self.server, entries), content_type=XML)

    async def cycle(self) -> None:
        report = await self.pipeline.poll("newsvision")
        assert report.ok, report.error
        await self.pipeline.deliver_due()


@contextlib.asynccontextmanager
async def world(
    tmp_path: Path, server: FeedServer, *, takedown_on_gone: bool
) -> AsyncIterator[World]:
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    raw = {
        "timezone": "Asia/Taipei",
        "database": f"sqlite:///{tmp_path / 'ledger.db'}",
        "templates": str(templates),
        "sources": {
            "newsvision": {
                "kind": "sitemap",
                "url": server.url_for("/sitemap.xml"),
                "enrich": True,
                "takedown_on_gone": takedown_on_gone,
                "backlog": 10,
                "allow_private": ["127.0.0.1"],
            }
        },
        "channels": {"telegram": {"kind": "console", "template": "telegram.html.j2"}},
    }
    path = tmp_path / "newsbot.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    config = load_config(path, environ={})
    ledger = Ledger.open(config.database)
    telegram = MemoryChannel("telegram", TELEGRAM_MESSAGE)
    try:
        async with Fetcher(timeout=5.0, max_bytes=1024 * 1024) as fetcher:
            source = build_source(config.sources["newsvision"], fetcher, config)
            async with source:
                pipeline = Pipeline(
                    config,
                    ledger,
                    {"newsvision": source},
                    {"telegram": telegram},
                    Renderer(config.templates, config.tz),
                    holder="test:1",
                )
                yield World(server, ledger, telegram, pipeline)
    finally:
        ledger.close()


async def test_a_corrected_page_edits_the_post(tmp_path: Path, server: FeedServer) -> None:
    """Enrichment finds a changed page (a new lastmod): the post is edited to the new text,
    recorded as a revision of the summary; a new lastmod over an unchanged page edits nothing."""
    server.publish("/news/a", page("締約日期為 11 月 5 日。"), content_type=HTML)
    async with world(tmp_path, server, takedown_on_gone=False) as w:
        w.sitemap({"a": WHEN})
        await w.cycle()
        [posted] = w.telegram.posts
        assert "11 月 5 日" in posted.text
        w.sitemap({"a": WHEN + timedelta(minutes=10)})
        await w.cycle()
        assert w.telegram.edits == []  # re-read, same content: no revision
        server.publish("/news/a", page("締約日期為 12 月 5 日（更正）。"), content_type=HTML)
        w.sitemap({"a": WHEN + timedelta(minutes=20)})
        await w.cycle()
        [(_, edited)] = w.telegram.edits
        assert "12 月 5 日" in edited.text
        [stored] = w.ledger.find_articles(server.url_for("/news/a"))
        [revision] = w.ledger.history(stored.id)
        assert (revision.origin, revision.changes) == ("sitemap", ("summary",))


@pytest.mark.parametrize("takedown_on_gone", [False, True], ids=["off", "on"])
async def test_a_withdrawn_page_takes_the_post_down_only_when_asked(
    tmp_path: Path, server: FeedServer, takedown_on_gone: bool
) -> None:
    """An entry leaves the sitemap and its page answers 410: with takedown_on_gone the post
    is deleted (a takedown recorded with the page's answer); without it the post stays up
    and nothing is recorded. An entry that merely left the sitemap (page still up) stays."""
    for slug in ("a", "b"):
        server.publish(f"/news/{slug}", page(f"報導 {slug}"), content_type=HTML)
    async with world(tmp_path, server, takedown_on_gone=takedown_on_gone) as w:
        w.sitemap({"a": WHEN, "b": WHEN})
        await w.cycle()
        assert len(w.telegram.posts) == 2
        server.set_fault("/news/b", "410")
        w.sitemap({})
        report = await w.pipeline.poll("newsvision")
        assert report.withdrawn == (1 if takedown_on_gone else 0)  # the daemon wakes for it
        await w.pipeline.deliver_due()
        await w.cycle()  # and again: a page still gone is no second takedown
        [a, b] = (w.ledger.find_articles(server.url_for(f"/news/{s}"))[0] for s in "ab")
        assert w.ledger.history(a.id) == []
        history = w.ledger.history(b.id)
        if not takedown_on_gone:
            assert history == [] and w.telegram.deletes == []
            return
        [takedown] = history
        assert takedown.kind == "delete" and "HTTP 410" in (takedown.reason or "")
        assert len(w.telegram.deletes) == 1
        assert len(w.telegram.live) == 1  # a's post, its page still up, stays
