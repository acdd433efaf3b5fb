"""The newsroom's rules, under a controllable clock: pacing (min_gap, rate, burst spread),
quiet hours, priority, filters, the X budget and alerts."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.compose.length import TELEGRAM_MESSAGE, X_POST
from bot.compose.render import Renderer
from bot.config import load_config
from bot.errors import PermanentError
from bot.ledger import Ledger
from bot.model import Article
from bot.outcome import month_start
from bot.pipeline import Pipeline
from bot.testing.memory import MemoryChannel, MemorySource

REPO = Path(__file__).resolve().parents[2]
# 02:00 UTC is 10:00 in Taipei.
START = datetime(2025, 9, 15, 2, 0, tzinfo=UTC)

CONFIG = """\
timezone: Asia/Taipei
database: sqlite:///ledger.db
templates: {templates}
sources:
  newsvision:
    kind: feed
    url: https://news.example.tw/rss.xml
    backlog: 100
    max_age: {max_age}
    priority_categories: [快訊]
    filters:
      exclude_categories: [廣編特輯]
      exclude: ['re:業配|置入', '抽獎']
channels:
  telegram:
    kind: console
    template: telegram.html.j2
    min_gap: {min_gap}
    rate: {rate}
    quiet_hours: {quiet}
  x:
    kind: x
    consumer_key: k
    consumer_secret: s
    access_token: t
    access_token_secret: ts
    template: x.txt.j2
    rate: off
    price_per_post: 0.01
    price_per_link_post: 0.20
    monthly_budget: {budget}
"""


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def article(
    n: int,
    *,
    categories: tuple[str, ...] = ("地方",),
    title: str | None = None,
    minutes_ago: float = 1,
) -> Article:
    return Article(
        key=f"nv-{n}",
        url=f"https://news.example.tw/article/{n}",
        title=title or f"高雄與格丁尼亞簽署合作備忘錄（第{n}則）",
        summary_html="<p>高雄市副市長羅達生率領市府團隊，與格丁尼亞市政府正式簽署經濟合作備忘錄。</p>",
        published=START - timedelta(minutes=minutes_ago),
        categories=categories,
    )


class World:
    def __init__(self, tmp_path: Path, **settings: str) -> None:
        values = {"min_gap": "0s", "rate": "off", "quiet": "off", "budget": "100", "max_age": "24h"}
        values.update(settings)
        path = tmp_path / "newsbot.yaml"
        path.write_text(CONFIG.format(templates=REPO / "templates", **values), encoding="utf-8")
        self.config = load_config(path, environ={})
        self.ledger = Ledger.open(self.config.database)
        self.clock = Clock()
        self.source = MemorySource("newsvision")
        self.telegram = MemoryChannel("telegram", TELEGRAM_MESSAGE)
        self.x = MemoryChannel("x", X_POST)
        self.alerts: list[tuple[str, str]] = []
        self.pipeline = Pipeline(
            self.config,
            self.ledger,
            {"newsvision": self.source},
            {"telegram": self.telegram, "x": self.x},
            Renderer(self.config.templates, self.config.tz),
            holder="test:1",
            clock=self.clock,
            alert=lambda kind, message: self.alerts.append((kind, message)),
        )

    async def publish(self, *articles: Article) -> None:
        self.source.articles = list(articles)
        await self.pipeline.poll_all()

    def sent_keys(self, channel: MemoryChannel) -> list[str]:
        return [post.article_key for post in channel.posts]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[type[World]]:
    made: list[World] = []

    def build(**settings: str) -> World:
        world = World(tmp_path, **settings)
        made.append(world)
        return world

    yield build  # type: ignore[misc]
    for world in made:
        world.ledger.close()


async def test_min_gap_spreads_a_burst_over_time(make: type[World]) -> None:
    """Thirty articles at once leave one at a time, min_gap apart, in publication order."""
    world = make(min_gap="30s")
    await world.publish(*(article(n, minutes_ago=40 - n) for n in range(30)))
    report = await world.pipeline.deliver_due()
    assert len(world.telegram.posts) == 1 and len(world.x.posts) == 30
    assert report.next_wake == START + timedelta(seconds=30)
    world.clock.advance(seconds=29)
    await world.pipeline.deliver_due()
    assert len(world.telegram.posts) == 1
    for _ in range(29):
        world.clock.advance(seconds=30)
        await world.pipeline.deliver_due()
    assert world.sent_keys(world.telegram) == [f"nv-{n}" for n in range(30)]


async def test_rate_cap_is_never_exceeded(make: type[World]) -> None:
    """With rate 3/min and burst spread, no 60-second window holds more than 3 posts."""
    world = make(rate="3/min")
    await world.publish(*(article(n, minutes_ago=20 - n) for n in range(9)))
    times: list[datetime] = []
    for _ in range(200):
        before = len(world.telegram.posts)
        await world.pipeline.deliver_due()
        times.extend([world.clock.now] * (len(world.telegram.posts) - before))
        world.clock.advance(seconds=1)
    assert len(times) == 9
    for i, moment in enumerate(times):
        assert sum(1 for t in times[i:] if t < moment + timedelta(minutes=1)) <= 3
    assert min(b - a for a, b in itertools.pairwise(times)) >= timedelta(seconds=20)


async def test_priority_category_jumps_the_queue_and_ignores_min_gap(make: type[World]) -> None:
    """Breaking news (a priority category) goes before the queue and does not wait min_gap."""
    world = make(min_gap="10m")
    await world.publish(article(1, minutes_ago=5), article(2, minutes_ago=4))
    await world.pipeline.deliver_due()
    assert world.sent_keys(world.telegram) == ["nv-1"]
    world.clock.advance(seconds=5)
    await world.publish(
        article(1, minutes_ago=5),
        article(2, minutes_ago=4),
        article(3, categories=("快訊",), minutes_ago=0),
    )
    await world.pipeline.deliver_due()
    assert world.sent_keys(world.telegram) == ["nv-1", "nv-3"]
    world.clock.advance(minutes=10)
    await world.pipeline.deliver_due()
    assert world.sent_keys(world.telegram) == ["nv-1", "nv-3", "nv-2"]


async def test_quiet_hours_hold_posts_until_they_end(make: type[World]) -> None:
    """During quiet hours posts wait, and go out when the window ends."""
    world = make(quiet="'09:00-11:30'")  # 10:00 Taipei now
    await world.publish(article(1))
    report = await world.pipeline.deliver_due()
    assert world.telegram.posts == [] and len(world.x.posts) == 1
    assert report.next_wake == datetime(2025, 9, 15, 3, 30, tzinfo=UTC)
    world.clock.now = datetime(2025, 9, 15, 3, 30, tzinfo=UTC)
    await world.pipeline.deliver_due()
    assert world.sent_keys(world.telegram) == ["nv-1"]


async def test_quiet_hours_skip_what_would_be_too_old(make: type[World]) -> None:
    """A post that would pass max_age before quiet hours end is skipped, with that reason."""
    world = make(quiet="'09:00-18:00'", max_age="2h")
    await world.publish(article(1))
    await world.pipeline.deliver_due()
    (skipped,) = world.ledger.deliveries(states=["skipped"], channel="telegram")
    assert "quiet hours" in (skipped.reason or "") and "18:00" in (skipped.reason or "")


async def test_filters_skip_with_the_rule(make: type[World]) -> None:
    """Excluded categories and keyword/regex rules record 'skipped' naming the rule."""
    world = make()
    await world.publish(
        article(1, categories=("廣編特輯",)),
        article(2, title="【業配】高雄好物推薦"),
        article(3, title="留言抽獎送好禮"),
        article(4),
    )
    await world.pipeline.deliver_due()
    assert world.sent_keys(world.x) == ["nv-4"]
    reasons = sorted({d.reason or "" for d in world.ledger.deliveries(states=["skipped"])})
    assert reasons == [
        "filtered: category '廣編特輯' is excluded",
        "filtered: matches exclude rule 're:業配|置入'",
        "filtered: matches exclude rule '抽獎'",
    ]


async def test_x_budget_stops_posting_and_alerts(make: type[World]) -> None:
    """When the next X post would exceed the monthly budget it is skipped and an alert raised."""
    world = make(budget="0.5")
    await world.publish(*(article(n, minutes_ago=10 - n) for n in range(4)))
    await world.pipeline.deliver_due()
    assert len(world.x.posts) == 2 and len(world.telegram.posts) == 4
    posts, spent = world.ledger.spend("x", since=month_start(world.clock.now, world.config.tz))
    assert (posts, round(spent, 2)) == (2, 0.40)
    skipped = world.ledger.deliveries(states=["skipped"], channel="x")
    assert len(skipped) == 2 and "monthly budget of 0.50 USD" in (skipped[0].reason or "")
    assert [kind for kind, _ in world.alerts] == ["budget", "budget"]


async def test_budget_counts_from_the_start_of_the_month(make: type[World]) -> None:
    """A new calendar month (in the configured time zone) starts a fresh budget."""
    world = make(budget="0.2")
    await world.publish(article(1))
    await world.pipeline.deliver_due()
    world.clock.now = datetime(2025, 9, 30, 16, 0, tzinfo=UTC)  # 00:00 on 1 October in Taipei
    await world.publish(article(1), article(2, minutes_ago=-60 * 24 * 15 + 1))
    await world.pipeline.deliver_due()
    assert world.sent_keys(world.x) == ["nv-1", "nv-2"]


async def test_permanent_failure_raises_an_alert(make: type[World]) -> None:
    """A delivery that fails permanently tells operations through the alert hook."""
    world = make()
    world.x.fail_next(PermanentError("Forbidden: duplicate content"))
    await world.publish(article(1))
    await world.pipeline.deliver_due()
    assert world.alerts and world.alerts[0][0] == "delivery failed"
    assert "duplicate content" in world.alerts[0][1]


async def test_source_failing_repeatedly_raises_one_alert(make: type[World]) -> None:
    """Three failed polls in a row raise an alert; the fourth does not repeat it."""
    world = make()
    for _ in range(4):
        world.source.fail_with("HTTP 503 Service Unavailable")
        await world.pipeline.poll_all()
    assert [kind for kind, _ in world.alerts] == ["source failing"]
