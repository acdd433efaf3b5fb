"""Revisions in, on real SQLite and PostgreSQL: a changed article polled again is recorded with
the fields it changed, and each of its posts gets the action its channel's policy says; earlier
unapplied actions are superseded; a takedown stops the posts not yet sent; an article
corrected before its first post simply posts the corrected text."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot import revisions
from bot.compose.length import TELEGRAM_MESSAGE, X_POST
from bot.compose.render import Renderer
from bot.config import Config, load_config
from bot.ledger import Ledger, revision_actions
from bot.model import Article, Correction, DeliveryState, Takedown
from bot.pipeline import Pipeline
from bot.testing.memory import MemoryChannel, MemorySource

REPO = Path(__file__).resolve().parents[2]
START = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)

CONFIG = """\
timezone: Asia/Taipei
database: {database}
templates: {templates}
sources:
  newsvision:
    kind: feed
    url: https://news.example.tw/rss.xml
    backlog: 10
    max_age: off
channels:
  telegram: {{kind: console, template: telegram.html.j2}}
  x: {{kind: console, template: x.txt.j2, corrections: reply}}
  archive: {{kind: console, template: x.txt.j2, corrections: "off"}}
"""


class EditableChannel(MemoryChannel):
    """A memory channel whose platform can edit, reply to and delete its posts."""

    can_edit = can_reply = can_delete = True
    default_corrections = Correction.EDIT
    default_takedowns = Takedown.DELETE


def article(n: int, **change: object) -> Article:
    base = Article(
        key=f"nv-{n}",
        url=f"https://news.example.tw/article/{n}",
        title=f"高雄捷運黃線動工！預計 2028 年通車（{n}）",
        summary_html="<p>高雄市長今（2）日出席捷運黃線動工典禮，總經費約 1,500 億元 🚇</p>",
        published=START - timedelta(minutes=n),
        categories=("交通", "地方"),
        image=f"https://news.example.tw/img/{n}.jpg",
    )
    return dataclasses.replace(base, **change)  # type: ignore[arg-type]


class World:
    def __init__(self, tmp_path: Path, database: str) -> None:
        path = tmp_path / "newsbot.yaml"
        path.write_text(
            CONFIG.format(database=database, templates=REPO / "templates"), encoding="utf-8"
        )
        self.config: Config = load_config(path, environ={})
        self.ledger = Ledger.open(database)
        self.now = START
        self.source = MemorySource("newsvision")
        self.channels = {
            "telegram": EditableChannel("telegram", TELEGRAM_MESSAGE),
            "x": EditableChannel("x", X_POST),
            "archive": EditableChannel("archive", X_POST),
        }
        self.pipeline = Pipeline(
            self.config,
            self.ledger,
            {"newsvision": self.source},
            dict(self.channels),
            Renderer(self.config.templates, self.config.tz),
            holder="test:1",
            clock=lambda: self.now,
        )

    async def poll(self, *articles: Article) -> None:
        self.now += timedelta(minutes=1)
        self.source.articles = list(articles)
        await self.pipeline.poll_all()

    async def cycle(self, *articles: Article) -> None:
        await self.poll(*articles)
        await self.pipeline.deliver_due()

    def actions(self) -> list[tuple[int, str, str, str]]:
        with self.ledger.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    revision_actions.c.revision_id,
                    revision_actions.c.channel,
                    revision_actions.c.action,
                    revision_actions.c.state,
                ).order_by(revision_actions.c.id)
            ).all()
        return [(int(r[0]), r[1], r[2], r[3]) for r in rows]


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    made = World(tmp_path, database_url)
    yield made
    made.ledger.close()


async def test_a_changed_title_is_a_revision_with_an_action_per_post(world: World) -> None:
    """A new title on a posted article: one revision (origin feed, changes title), the article
    row updated, and edit / reply / skipped-off actions queued for its three posts."""
    await world.cycle(article(1))
    assert len(world.channels["telegram"].posts) == 1
    await world.poll(article(1, title="高雄捷運黃線動工！預計 2029 年通車（1）"))
    stored = world.ledger.find_articles("nv-1")[0]
    assert stored.article.title == "高雄捷運黃線動工！預計 2029 年通車（1）"
    [revision] = world.ledger.history(stored.id)
    assert (revision.kind, revision.origin, revision.changes) == ("update", "feed", ("title",))
    assert [(a.channel, a.action, a.state) for a in revision.actions] == [
        ("telegram", "edit", "queued"),
        ("x", "reply", "queued"),
        ("archive", "edit", "skipped"),
    ]
    assert revision.actions[2].reason == "corrections are off for channel 'archive'"


async def test_cosmetic_changes_make_no_revision(world: World) -> None:
    """Whitespace, reordered categories and a new published time: no revision, no action."""
    await world.cycle(article(1))
    await world.poll(
        article(
            1,
            title="高雄捷運黃線動工！預計 2028 年通車（1） ",
            summary_html=(
                "<p>\n高雄市長今（2）日出席捷運黃線動工典禮，總經費約  1,500 億元 🚇\n</p>"
            ),
            categories=("地方", "交通"),
            published=START,
        )
    )
    assert world.ledger.history(world.ledger.find_articles("nv-1")[0].id) == []
    assert world.actions() == []


async def test_a_newer_revision_supersedes_queued_actions(world: World) -> None:
    """Two corrections before any is applied: the first's queued actions become superseded."""
    await world.cycle(article(1))
    await world.poll(article(1, title="更正一（1）"))
    await world.poll(article(1, title="更正二（1）"))
    states = [(rev, channel, state) for rev, channel, _, state in world.actions()]
    first, second = sorted({rev for rev, *_ in states})
    assert [s for r, c, s in states if r == first and c != "archive"] == ["superseded"] * 2
    assert [s for r, c, s in states if r == second and c != "archive"] == ["queued"] * 2


async def test_a_takedown_supersedes_corrections_and_stops_queued_posts(world: World) -> None:
    """A withdrawal: delete actions for the sent posts (queued corrections superseded), and a
    delivery not yet sent is skipped as retracted."""
    await world.cycle(article(1))
    await world.poll(article(1, title="更正（1）"))
    await world.poll(article(2))  # queued, not yet delivered
    report = await world.pipeline.withdraw("newsvision", "nv-1", reason="當事人要求撤下")
    assert report is not None and report.queued == 3 and report.superseded == 2
    assert [a[2:] for a in world.actions()][-3:] == [("delete", "queued")] * 3
    withdrawn = await world.pipeline.withdraw(
        "newsvision", "https://news.example.tw/article/2", reason="撤稿"
    )
    assert withdrawn is not None and withdrawn.stopped == 3
    queued = world.ledger.article_deliveries(world.ledger.find_articles("nv-2")[0].id)
    assert {d.state for d in queued} == {DeliveryState.SKIPPED}
    assert queued[0].reason == "retracted: 撤稿"
    assert await world.pipeline.withdraw("newsvision", "nv-404", reason=None) is None


async def test_a_correction_before_the_first_post_posts_the_corrected_text(world: World) -> None:
    """An article corrected while its deliveries are still queued: no action, and the post that
    goes out carries the corrected title and summary."""
    await world.poll(article(1))
    await world.cycle(
        article(
            1, title="高雄捷運黃線動工！更正：2029 年通車（1）", summary_html="<p>更正後內文</p>"
        )
    )
    assert world.actions() == []
    [post] = world.channels["telegram"].posts
    assert "更正：2029 年通車" in post.text and "更正後內文" in post.text


async def test_an_article_from_before_revisions_only_gets_its_digest(world: World) -> None:
    """An article kept with no digest (ingested before migration 0006): the next poll stores
    one and corrects nothing, even when its text differs."""
    await world.cycle(article(1))
    with world.ledger.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE articles SET content_digest = NULL")
    await world.poll(article(1, title="不同的標題（1）"))
    stored = world.ledger.find_articles("nv-1")[0]
    assert stored.digest is not None and world.ledger.history(stored.id) == []
    await world.poll(article(1, title="再改一次（1）"))
    assert len(world.ledger.history(stored.id)) == 1


async def test_the_same_change_seen_twice_is_one_revision(world: World) -> None:
    """Two pollers (or a push and a poll) that saw the same change: the second record of it
    finds the digest already there and adds no revision and no action."""
    await world.cycle(article(1))
    stored = world.ledger.find_articles("nv-1")[0]
    changed = article(1, title="高雄捷運黃線動工！更正（1）")
    revision = revisions.source_revision(
        stored.id,
        before=stored.article,
        after=changed,
        origin="feed",
        excerpt="",
        digest=revisions.content_digest(changed),
        title_override=None,
    )
    assert revision is not None
    first = world.ledger.revise([revision], world.pipeline.policies, now=world.now)
    second = world.ledger.revise([revision], world.pipeline.policies, now=world.now)
    assert (first.revisions, second.revisions) == (1, 0)
    assert len(world.actions()) == 3
