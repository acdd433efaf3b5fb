"""Where the tests of applying revisions start: a pipeline with memory channels on a real
ledger (:class:`World`), revisions recorded by :func:`bot.testing.revisions.record_revision`,
and the rows to check."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from bot.compose.length import TELEGRAM_MESSAGE, X_POST
from bot.compose.render import Renderer
from bot.config import Config, load_config
from bot.ledger import (
    ClaimedAction,
    Ledger,
    RecoveryReport,
    deliveries,
    revision_actions,
)
from bot.model import Action, Article
from bot.pipeline import Pipeline
from bot.testing.memory import MemoryChannel, MemorySource
from bot.testing.revisions import record_revision
from tests.unit.test_pipeline import START, Clock

DEAD = "host:dead"


def action_rows(ledger: Ledger) -> list[sa.RowMapping]:
    """Every revision action, oldest first."""
    with ledger.engine.begin() as conn:
        return list(
            conn.execute(sa.select(revision_actions).order_by(revision_actions.c.id)).mappings()
        )


def delivery_row(ledger: Ledger, delivery_id: int) -> sa.RowMapping:
    with ledger.engine.begin() as conn:
        return (
            conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id))
            .mappings()
            .one()
        )


REPO = Path(__file__).resolve().parents[1]
DEAD = "host:dead"

CONFIG = """\
timezone: Asia/Taipei
database: "{database}"
templates: {templates}
sources:
  newsvision:
    kind: feed
    url: https://news.example.tw/rss.xml
    backlog: 100
channels:
  telegram:
    kind: console
    template: telegram.html.j2
    min_gap: {gap}
  x:
    kind: console
    template: x.txt.j2
    quiet_hours: {quiet}
    corrections: reply
    correction_template: x.correction.txt.j2
"""


def article(n: int, title: str | None = None) -> Article:
    return Article(
        key=f"https://news.example.tw/article/{n}",
        url=f"https://news.example.tw/article/{n}",
        title=title or f"立法院三讀通過《數位中介法》修正草案（{n}）",
        summary_html="<p>立法院今（15）日三讀通過修正草案，罰鍰上限提高至新臺幣 2,000 萬元。</p>",
        published=START - timedelta(minutes=n),
        categories=("政治",),
    )


class World:
    """Two memory channels, one memory source, a ledger (SQLite unless ``database`` names
    another), and ways to revise."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        gap: str = "0s",
        quiet: str = "off",
        holder: str = "test:1",
        database: str | None = None,
        telegram: MemoryChannel | None = None,
    ) -> None:
        templates = tmp_path / "templates"
        if not templates.exists():
            shutil.copytree(REPO / "templates", templates)
            (templates / "x.correction.txt.j2").write_text(
                "【更正】{{ article.title }} {{ link }}\n", encoding="utf-8"
            )
        path = tmp_path / "newsbot.yaml"
        path.write_text(
            CONFIG.format(
                database=database or f"sqlite:///{tmp_path / 'ledger.db'}",
                templates=templates,
                gap=gap,
                quiet=quiet,
            ),
            encoding="utf-8",
        )
        self.config: Config = load_config(path, environ={})
        self.ledger = Ledger.open(self.config.database)
        self.clock = Clock()
        self.source = MemorySource("newsvision")
        self.telegram = telegram or MemoryChannel("telegram", TELEGRAM_MESSAGE)
        self.x = MemoryChannel("x", X_POST)
        self.alerts: list[tuple[str, str]] = []
        self.pipeline = self.with_holder(holder)
        self.recovery = RecoveryReport()

    def with_holder(self, holder: str) -> Pipeline:
        """A pipeline of another instance (or a restarted one) on the same ledger and channels."""
        return Pipeline(
            self.config,
            self.ledger,
            {"newsvision": self.source},
            {"telegram": self.telegram, "x": self.x},
            Renderer(self.config.templates, self.config.tz),
            holder=holder,
            clock=self.clock,
            alert=lambda kind, message: self.alerts.append((kind, message)),
        )

    async def publish(self, *articles: Article) -> None:
        self.source.articles = list(articles)
        await self.pipeline.poll_all()
        await self.pipeline.deliver_due()

    def revise(
        self,
        n: int,
        actions: dict[str, Action],
        *,
        title: str | None = None,
        title_override: str | None = None,
        retract: bool = False,
    ) -> list[int]:
        self.clock.advance(minutes=1)
        return record_revision(
            self.ledger,
            key=article(n).key,
            now=self.clock(),
            actions=actions,
            title=title,
            title_override=title_override,
            retract=retract,
        )

    def claimed_by_the_dead(self, *, in_flight: bool) -> ClaimedAction:
        """Telegram's one due action, claimed (and marked in flight) by an instance that then
        died; recovery has run."""
        [action] = self.ledger.claim_actions(
            self.clock(), holder=DEAD, channel="telegram", pace=None
        ).actions
        if in_flight:
            assert self.ledger.mark_action_in_flight(action.id, now=self.clock(), holder=DEAD)
        self.recovery = self.ledger.recover_dead(self.clock(), timedelta(seconds=30), also=[DEAD])
        return action

    def states(self) -> list[tuple[str, str, str]]:
        return [(r["channel"], r["action"], r["state"]) for r in action_rows(self.ledger)]

    def reason(self, channel: str) -> str:
        return str(next(r["reason"] for r in action_rows(self.ledger) if r["channel"] == channel))
