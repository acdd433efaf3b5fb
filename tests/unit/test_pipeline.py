"""The pipeline with in-memory sources and channels: dedupe, backlog, max_age, retries and the
rule that one bad source, post or channel never stops the others."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.compose.length import TELEGRAM_MESSAGE, X_POST
from bot.compose.render import Renderer
from bot.config import Config, load_config
from bot.errors import PermanentError, TransientError
from bot.ledger import Ledger
from bot.model import Article, DeliveryState
from bot.pipeline import Pipeline
from bot.testing.memory import MemoryChannel, MemorySource

REPO = Path(__file__).resolve().parents[2]
START = datetime(2025, 9, 15, 8, 0, tzinfo=UTC)

CONFIG = """\
timezone: Asia/Taipei
database: sqlite:///ledger.db
templates: {templates}
sources:
  newsvision:
    kind: feed
    url: https://news.example.tw/rss.xml
    backlog: {backlog}
    max_age: 24h
    strip: ['新聞視界時報\\s*記者\\s*\\S+\\s*整理報導']
  second:
    kind: feed
    url: https://other.example.tw/rss.xml
    backlog: 10
    channels: [x]
channels:
  telegram:
    kind: console
    template: telegram.html.j2
  x:
    kind: console
    template: x.txt.j2
"""


def article(n: int, *, minutes_ago: int | None = None, title: str | None = None) -> Article:
    return Article(
        key=f"https://news.example.tw/article/{n}",
        url=f"https://news.example.tw/article/{n}",
        title=title or f"高雄與格丁尼亞再升級！簽署合作備忘錄（{n}）",
        summary_html=(
            "<p>新聞視界時報 記者 王秉程 整理報導</p>"
            "<p>高雄與波蘭姊妹市格丁尼亞的交流再度邁向新里程！由高雄市副市長羅達生率領市府團隊，"
            "於波蘭時間9月14日與格丁尼亞市政府正式簽署經濟合作備忘錄。</p>"
        ),
        published=START - timedelta(minutes=n if minutes_ago is None else minutes_ago),
        categories=("地方", "國際交流"),
    )


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class World:
    """A pipeline wired to memory doubles on a real SQLite ledger."""

    def __init__(self, tmp_path: Path, backlog: int = 0) -> None:
        path = tmp_path / "newsbot.yaml"
        path.write_text(
            CONFIG.format(templates=REPO / "templates", backlog=backlog), encoding="utf-8"
        )
        self.config: Config = load_config(path, environ={})
        self.ledger = Ledger.open(self.config.database)
        self.clock = Clock()
        self.source = MemorySource("newsvision")
        self.second = MemorySource("second")
        self.telegram = MemoryChannel("telegram", TELEGRAM_MESSAGE)
        self.x = MemoryChannel("x", X_POST)
        self.pipeline = Pipeline(
            self.config,
            self.ledger,
            {"newsvision": self.source, "second": self.second},
            {"telegram": self.telegram, "x": self.x},
            Renderer(self.config.templates, self.config.tz),
            holder="test:1",
            clock=self.clock,
        )

    async def cycle(self) -> None:
        await self.pipeline.poll_all()
        await self.pipeline.deliver_due()

    def states(self) -> dict[str, int]:
        return self.ledger.counts()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    yield made
    made.ledger.close()


async def test_first_sight_with_backlog_zero_posts_nothing_already_there(world: World) -> None:
    """A new source with backlog 0 marks everything it already has as seen, posting nothing."""
    world.source.articles = [article(1), article(2)]
    await world.cycle()
    assert world.telegram.posts == [] and world.x.posts == []
    assert world.states() == {"skipped": 4}
    assert "backlog" in (world.ledger.deliveries()[0].reason or "")


async def test_new_entry_is_delivered_once_per_channel(world: World) -> None:
    """After first sight, a new entry goes to every routed channel exactly once."""
    world.source.articles = [article(2)]
    await world.cycle()
    world.source.articles = [article(1), article(2)]
    await world.cycle()
    await world.cycle()
    assert [p.article_key for p in world.telegram.posts] == [article(1).key]
    assert [p.article_key for p in world.x.posts] == [article(1).key]


async def test_backlog_posts_only_the_newest(tmp_path: Path) -> None:
    """First sight with backlog N posts the N newest, oldest of them first."""
    world = World(tmp_path, backlog=2)
    world.source.articles = [article(3), article(1), article(2)]
    await world.cycle()
    assert [p.article_key for p in world.x.posts] == [article(2).key, article(1).key]
    world.ledger.close()


async def test_excerpt_has_the_byline_stripped(world: World) -> None:
    """The source's strip patterns remove the byline from what is posted."""
    world.source.articles = [article(2)]
    await world.cycle()
    world.source.articles = [article(1)]
    await world.cycle()
    (post,) = world.x.posts
    assert "記者" not in post.text and "格丁尼亞" in post.text


async def test_too_old_articles_are_skipped_with_reason(world: World) -> None:
    """An article older than max_age is recorded skipped, saying so."""
    world.source.articles = [article(2)]
    await world.cycle()
    world.source.articles = [article(1, minutes_ago=60 * 30)]
    await world.cycle()
    assert world.x.posts == []
    reasons = [d.reason for d in world.ledger.deliveries(states=["skipped"])]
    assert any("max_age" in (r or "") for r in reasons)


async def test_transient_error_retries_later_not_before_retry_after(world: World) -> None:
    """A 429 requeues the post, not due before retry_after; it is sent once it is due."""
    world.source.articles = [article(2)]
    await world.cycle()
    world.x.fail_next(TransientError("Too Many Requests", retry_after=120))
    world.source.articles = [article(1)]
    await world.cycle()
    assert world.x.posts == [] and len(world.telegram.posts) == 1
    (queued,) = world.ledger.deliveries(states=["queued"])
    assert START + timedelta(seconds=120) <= queued.due_at <= START + timedelta(seconds=132)
    world.clock.advance(seconds=119)
    await world.pipeline.deliver_due()
    assert world.x.posts == []
    world.clock.now = queued.due_at
    await world.pipeline.deliver_due()
    assert len(world.x.posts) == 1


async def test_permanent_error_fails_with_reason_and_others_go_on(world: World) -> None:
    """A permanent error records 'failed' with the platform's reason; other channels still post."""
    world.source.articles = [article(3)]
    await world.cycle()
    world.telegram.fail_next(PermanentError("Forbidden: bot was kicked from the channel chat"))
    world.source.articles = [article(1), article(2)]
    await world.cycle()
    failed = world.ledger.deliveries(states=["failed"])
    assert [d.reason for d in failed] == ["Forbidden: bot was kicked from the channel chat"]
    assert len(world.telegram.posts) == 1 and len(world.x.posts) == 2


async def test_a_bug_in_a_channel_is_recorded_not_raised(world: World) -> None:
    """An unexpected exception in a channel fails that delivery only."""
    world.source.articles = [article(2)]
    await world.cycle()
    world.x.fail_next(RuntimeError("boom"))
    world.source.articles = [article(1)]
    await world.cycle()
    (failed,) = world.ledger.deliveries(states=["failed"])
    assert "internal error" in (failed.reason or "") and len(world.telegram.posts) == 1


async def test_gives_up_after_max_attempts(world: World) -> None:
    """A delivery that keeps failing transiently ends 'failed' with its last reason."""
    x = world.config.channels["x"].model_copy(update={"max_attempts": 2})
    world.pipeline.config = world.config.model_copy(
        update={"channels": {**world.config.channels, "x": x}}
    )
    world.source.articles = [article(2)]
    await world.cycle()
    world.x.fail_next(TransientError("HTTP 502"), TransientError("HTTP 503"))
    world.source.articles = [article(1)]
    await world.cycle()
    world.clock.advance(hours=2)
    await world.pipeline.deliver_due()
    (failed,) = world.ledger.deliveries(states=["failed"], channel="x")
    assert "2 attempts" in (failed.reason or "") and "HTTP 503" in (failed.reason or "")


async def test_a_failing_source_does_not_stop_the_others(world: World) -> None:
    """One source's error is recorded against it while another source's articles are posted."""
    world.second.articles = [article(10)]
    world.source.fail_with("HTTP 503 Service Unavailable from https://news.example.tw/rss.xml")
    reports = await world.pipeline.poll_all()
    await world.pipeline.deliver_due()
    assert [r.ok for r in reports] == [False, True]
    assert world.ledger.source("newsvision").last_error.startswith("HTTP 503")  # type: ignore[union-attr]
    assert len(world.x.posts) == 1


async def test_sent_rows_keep_the_exact_text(world: World) -> None:
    """The ledger stores exactly the text the channel received."""
    world.source.articles = [article(2)]
    await world.cycle()
    world.source.articles = [article(1)]
    await world.cycle()
    sent = {d.channel: d for d in world.ledger.deliveries(states=["sent"])}
    assert sent["x"].text == world.x.posts[0].text
    assert sent["telegram"].state is DeliveryState.SENT and sent["telegram"].remote_id == "1"


async def test_every_sources_titles_are_tidied_on_the_way_in(world: World) -> None:
    """A pushed or scraped title with control, bidi and zero-width characters and line breaks
    reaches the ledger and the post on one clean line."""
    world.source.articles = [article(2)]
    await world.cycle()
    dirty = "高雄\u200b與格丁尼亞\u202e簽署\n合作\x07備忘錄"
    world.source.articles = [article(1, title=dirty)]
    await world.cycle()
    (row,) = [d for d in world.ledger.deliveries(channel="x") if d.article.key.endswith("/1")]
    assert row.article.title == "高雄與格丁尼亞簽署 合作備忘錄"
    assert "\u202e" not in world.x.posts[0].text
