"""poll → ingest → compose → deliver, knowing no platform.

The pipeline is handed its sources, channels, renderer and ledger (built in ``cli.py`` /
``daemon.py``). Each step records its outcome in the ledger before the next one starts, so a
process that dies anywhere loses nothing: at worst a post in flight becomes ``uncertain``.
A failing source, post or channel is recorded and logged, and the others carry on.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.channels.base import Channel
from bot.compose.excerpt import build_excerpt
from bot.compose.render import Renderer
from bot.config import Config
from bot.filters import ArticleFilter
from bot.errors import PermanentError, SourceError, TemplateError, TransientError
from bot.ledger import Delivery, IngestReport, Ledger, NewArticle
from bot.links import with_tracking
from bot.model import Article, Post
from bot.sources.base import Source

log = logging.getLogger("newsbot.pipeline")

DEFAULT_MAX_ATTEMPTS = 8
PRIORITY_HIGH = 10
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class PassReport:
    """What one pass over due deliveries did."""

    sent: int = 0
    failed: int = 0
    retrying: int = 0
    skipped: int = 0
    paused_channels: dict[str, datetime] = field(default_factory=dict)

    def add(self, other: PassReport) -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.retrying += other.retrying
        self.skipped += other.skipped
        self.paused_channels.update(other.paused_channels)


@dataclass(frozen=True, slots=True)
class PollReport:
    source: str
    ok: bool
    not_modified: bool = False
    seen: int = 0
    ingest: IngestReport | None = None
    error: str | None = None


class Pipeline:
    """The flow of DESIGN.md for one configuration."""

    def __init__(
        self,
        config: Config,
        ledger: Ledger,
        sources: Mapping[str, Source],
        channels: Mapping[str, Channel],
        renderer: Renderer,
        *,
        holder: str,
        clock: Callable[[], datetime] = utc_now,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.sources = sources
        self.channels = channels
        self.renderer = renderer
        self.holder = holder
        self.clock = clock
        self.max_attempts = max_attempts
        # A channel that answered "slow down" is left alone until then; the others go on.
        self.paused_until: dict[str, datetime] = {}
        self.filters = {name: ArticleFilter(cfg.filters) for name, cfg in config.sources.items()}

    # -- poll and ingest ---------------------------------------------------------------------

    async def poll(self, name: str) -> PollReport:
        """Poll one source and record what is new. Never raises for a source's fault."""
        source = self.sources[name]
        record = self.ledger.source(name)
        try:
            result = await source.poll(record.state)
        except SourceError as exc:
            now = self.clock()
            self.ledger.record_poll(name, now=now, error=str(exc))
            log.warning("source %s: %s", name, exc, extra={"source": name})
            return PollReport(name, ok=False, error=str(exc))
        now = self.clock()
        for warning in result.warnings:
            log.info("source %s: %s", name, warning, extra={"source": name})
        if result.not_modified:
            self.ledger.record_poll(name, now=now, state=result.state)
            return PollReport(name, ok=True, not_modified=True)
        report = self._ingest(name, result.articles, first_sight=not record.seen_before, now=now)
        self.ledger.record_poll(name, now=now, state=result.state)
        return PollReport(name, ok=True, seen=len(result.articles), ingest=report)

    def accept(self, name: str, articles: Sequence[Article]) -> PollReport:
        """Articles pushed to us (a CMS webhook, a WebSub hub): recorded at once, no backlog
        rule, since a push is news by definition. Idempotent like a poll."""
        report = self._ingest(name, articles, first_sight=False, now=self.clock())
        return PollReport(name, ok=True, seen=len(articles), ingest=report)

    def _ingest(
        self, name: str, articles: Sequence[Article], *, first_sight: bool, now: datetime
    ) -> IngestReport:
        known = self.ledger.known(name, [a.key for a in articles], [a.url for a in articles])
        fresh = [a for a in articles if a.key not in known and a.url not in known]
        items = self._decide(name, fresh, first_sight=first_sight, now=now)
        report = self.ledger.ingest(name, items, self.config.routes(name), now=now)
        if report.articles:
            log.info(
                "source %s: %d new article(s), %d deliveries queued, %d skipped",
                name,
                report.articles,
                report.queued,
                report.skipped,
                extra={"source": name},
            )
        return report

    def _decide(
        self, name: str, fresh: Sequence[Article], *, first_sight: bool, now: datetime
    ) -> list[NewArticle]:
        settings = self.config.sources[name]
        newest_first = sorted(fresh, key=lambda a: a.published or now, reverse=True)
        items = []
        for rank, article in enumerate(newest_first):
            reason = None
            if first_sight and rank >= settings.backlog:
                reason = (
                    f"already published when newsbot first read source {name!r} "
                    f"(backlog: {settings.backlog} newest are posted, the rest are marked seen)"
                )
            elif self._too_old(article, name, now):
                reason = self._too_old_reason(article, name)
            else:
                reason = self.filters[name].reason(article)
            excerpt = build_excerpt(
                article.summary_html, strip=settings.strip, length=settings.excerpt_length
            )
            items.append(
                NewArticle(
                    article=article,
                    excerpt=excerpt,
                    skip_reason=reason,
                    priority=self._priority(name, article),
                )
            )
        # Oldest first into the ledger, so deliveries of one poll leave in publication order.
        items.reverse()
        return items

    def _priority(self, source: str, article: Article) -> int:
        """Breaking news jumps the queue: a high-priority source, or a priority category."""
        settings = self.config.sources[source]
        if settings.priority == "high":
            return PRIORITY_HIGH
        wanted = {c.casefold() for c in settings.priority_categories}
        if wanted and wanted & {c.casefold() for c in article.categories}:
            return PRIORITY_HIGH
        return 0

    def _too_old(self, article: Article, source: str, now: datetime) -> bool:
        max_age = self.config.sources[source].max_age
        return bool(max_age and article.published and article.published < now - max_age)

    def _too_old_reason(self, article: Article, source: str) -> str:
        max_age = self.config.sources[source].max_age
        published = article.published.astimezone(self.config.tz) if article.published else None
        when = f"{published:%Y-%m-%d %H:%M %Z}" if published else "unknown"
        return f"older than max_age {max_age} of source {source!r} (published {when})"

    async def poll_all(self) -> list[PollReport]:
        """Poll every source at once; one source's failure never stops another."""
        return list(await asyncio.gather(*(self.poll(name) for name in self.sources)))

    # -- compose -----------------------------------------------------------------------------

    def compose(self, *, article: Article, excerpt: str, source: str, channel: str) -> Post:
        """The post one channel would get for one article, fitted to the channel's limit."""
        settings = self.config.channels[channel]
        target = self.channels[channel]
        return self.renderer.render(
            settings.template,
            article=article,
            excerpt=excerpt,
            source=source,
            channel=channel,
            link=with_tracking(article.url, settings.tracking),
            rule=target.rule(has_image=bool(article.image)),
        )

    # -- deliver -----------------------------------------------------------------------------

    async def deliver_due(self, *, batch: int = 50) -> PassReport:
        """Claim what is due and send it, channel by channel in parallel, in order within each."""
        total = PassReport()
        while True:
            now = self.clock()
            active = [name for name in self.channels if self.paused_until.get(name, now) <= now]
            if not active:
                break
            claimed = self.ledger.claim_due(now, holder=self.holder, limit=batch, channels=active)
            if not claimed:
                break
            by_channel: dict[str, list[Delivery]] = {}
            for delivery in claimed:
                by_channel.setdefault(delivery.channel, []).append(delivery)
            reports = await asyncio.gather(
                *(self._deliver_channel(name, items) for name, items in by_channel.items())
            )
            for report in reports:
                total.add(report)
            if len(claimed) < batch:
                break
        return total

    async def _deliver_channel(self, name: str, items: list[Delivery]) -> PassReport:
        report = PassReport()
        for index, delivery in enumerate(items):
            paused = self.paused_until.get(name)
            if paused and paused > self.clock():
                for rest in items[index:]:
                    self.ledger.requeue(
                        rest.id, due_at=paused, reason=f"channel {name} paused", now=self.clock()
                    )
                break
            outcome = await self.deliver_one(delivery)
            if outcome == "sent":
                report.sent += 1
            elif outcome == "failed":
                report.failed += 1
            elif outcome == "skipped":
                report.skipped += 1
            else:
                report.retrying += 1
        if name in self.paused_until:
            report.paused_channels[name] = self.paused_until[name]
        return report

    async def deliver_one(self, delivery: Delivery) -> str:
        """Compose and send one claimed delivery; record the outcome. Returns the new state."""
        context = {
            "source": delivery.source,
            "article": delivery.article.key,
            "channel": delivery.channel,
            "delivery": delivery.id,
        }
        now = self.clock()
        channel = self.channels.get(delivery.channel)
        if channel is None:
            reason = f"channel {delivery.channel!r} is no longer in the config"
            self.ledger.mark_skipped(delivery.id, reason=reason, now=now)
            log.warning("skipped: %s", reason, extra=context)
            return "skipped"
        if delivery.source in self.config.sources and self._too_old(
            delivery.article, delivery.source, now
        ):
            reason = self._too_old_reason(delivery.article, delivery.source)
            self.ledger.mark_skipped(delivery.id, reason=reason, now=now)
            log.info("skipped: %s", reason, extra=context)
            return "skipped"
        try:
            post = self.compose(
                article=delivery.article,
                excerpt=delivery.excerpt,
                source=delivery.source,
                channel=delivery.channel,
            )
        except (PermanentError, TemplateError) as exc:
            reason = exc.reason if isinstance(exc, PermanentError) else str(exc)
            self.ledger.mark_failed(delivery.id, reason=reason, now=self.clock())
            log.error("cannot compose the post: %s", reason, extra=context)
            return "failed"

        try:
            receipt = await channel.send(post)
        except TransientError as exc:
            return self._retry_later(delivery, exc, post, context)
        except PermanentError as exc:
            self.ledger.mark_failed(
                delivery.id, reason=exc.reason, now=self.clock(), text=post.text
            )
            log.error("delivery failed: %s", exc.reason, extra=context)
            return "failed"
        except Exception as exc:
            # A bug in a channel must not stop the others; it is recorded, never retried blindly.
            reason = f"internal error in channel {delivery.channel}: {type(exc).__name__}: {exc}"
            self.ledger.mark_failed(delivery.id, reason=reason, now=self.clock(), text=post.text)
            log.exception("delivery failed: %s", reason, extra=context)
            return "failed"
        self.ledger.mark_sent(delivery.id, text=post.text, receipt=receipt, now=self.clock())
        log.info("sent %s", receipt.url or receipt.remote_id, extra=context)
        return "sent"

    def _retry_later(
        self, delivery: Delivery, exc: TransientError, post: Post, context: Mapping[str, object]
    ) -> str:
        now = self.clock()
        if delivery.attempts >= self.max_attempts:
            reason = f"gave up after {delivery.attempts} attempts; last error: {exc.reason}"
            self.ledger.mark_failed(delivery.id, reason=reason, now=now, text=post.text)
            log.error("delivery failed: %s", reason, extra=context)
            return "failed"
        wait = backoff(delivery.attempts)
        if exc.retry_after is not None:
            # The platform said when: never earlier, and the whole channel waits with it.
            platform_wait = timedelta(seconds=exc.retry_after)
            wait = max(wait, platform_wait)
            self.paused_until[delivery.channel] = now + platform_wait
        due = now + wait
        self.ledger.requeue(delivery.id, due_at=due, reason=exc.reason, now=now)
        log.warning(
            "will retry at %s: %s", due.isoformat(timespec="seconds"), exc.reason, extra=context
        )
        return "retrying"


def backoff(attempts: int) -> timedelta:
    """Exponential back-off with jitter: about 30 s, 1 min, 2 min, ... capped at an hour."""
    seconds = BACKOFF_BASE.total_seconds() * 2 ** max(attempts - 1, 0)
    seconds = min(seconds, BACKOFF_CAP.total_seconds())
    return timedelta(seconds=seconds * random.uniform(0.8, 1.2))
