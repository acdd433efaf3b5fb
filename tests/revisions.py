"""Recording a revision straight into the ledger, as the revisions-in side does (a changed
feed entry, a webhook delete, ``newsbot correct``): the article brought to its new content,
a ``revisions`` row, and one queued ``revision_actions`` row per post that was sent, sending
or uncertain, older queued ones superseded. Tests of applying revisions start from here."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from bot.compose.length import TELEGRAM_MESSAGE, X_POST
from bot.compose.render import Renderer
from bot.config import Config, load_config
from bot.ledger import (
    ClaimedAction,
    Ledger,
    RecoveryReport,
    articles,
    deliveries,
    revision_actions,
    revisions,
)
from bot.model import Action, ActionState, Article, DeliveryState, RevisionKind
from bot.pipeline import Pipeline
from bot.testing.memory import MemoryChannel, MemorySource
from tests.unit.test_pipeline import START, Clock

DEAD = "host:dead"
PUBLISHED = [str(DeliveryState.SENT), str(DeliveryState.SENDING), str(DeliveryState.UNCERTAIN)]


def record_revision(
    ledger: Ledger,
    *,
    key: str,
    now: datetime,
    actions: Mapping[str, Action],
    title: str | None = None,
    title_override: str | None = None,
    retract: bool = False,
    reason: str | None = None,
) -> list[int]:
    """Revise the article ``key``; ``actions`` names what each channel does to its post (a
    channel left out does nothing). The ids of the actions queued."""
    with ledger.engine.begin() as conn:
        article_id = conn.execute(
            sa.select(articles.c.id).where(articles.c.key == key)
        ).scalar_one()
        changes: dict[str, object] = {}
        if title is not None:
            changes["title"] = title
        if title_override is not None:
            changes["title_override"] = title_override
        if retract:
            changes["retracted_at"] = now
        if changes:
            conn.execute(sa.update(articles).where(articles.c.id == article_id).values(**changes))
        revision_id = conn.execute(
            sa.insert(revisions)
            .values(
                article_id=article_id,
                kind=str(RevisionKind.DELETE if retract else RevisionKind.UPDATE),
                origin="editor",
                changes='["title"]' if title or title_override else "[]",
                reason=reason,
                title=title_override or title,
                created_at=now,
            )
            .returning(revisions.c.id)
        ).scalar_one()
        posts = conn.execute(
            sa.select(deliveries.c.id, deliveries.c.channel).where(
                deliveries.c.article_id == article_id, deliveries.c.state.in_(PUBLISHED)
            )
        ).all()
        ids = []
        for delivery_id, channel in posts:
            if channel not in actions:
                continue
            conn.execute(
                sa.update(revision_actions)
                .where(
                    revision_actions.c.delivery_id == delivery_id,
                    revision_actions.c.state == str(ActionState.QUEUED),
                )
                .values(state=str(ActionState.SUPERSEDED), updated_at=now)
            )
            ids.append(
                conn.execute(
                    sa.insert(revision_actions)
                    .values(
                        revision_id=revision_id,
                        delivery_id=delivery_id,
                        channel=channel,
                        action=str(actions[channel]),
                        state=str(ActionState.QUEUED),
                        due_at=now,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(revision_actions.c.id)
                ).scalar_one()
            )
    return ids


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
