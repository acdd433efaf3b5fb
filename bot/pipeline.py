"""poll → ingest → compose → deliver, knowing no platform.

The pipeline is handed its sources, channels, renderer and ledger (built in ``cli.py`` /
``daemon.py``). Each step records its outcome in the ledger before the next one starts, so a
process that dies anywhere loses nothing: at worst a post in flight becomes ``uncertain``.
A failing source, post or channel is recorded and logged, and the others carry on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from bot.channels.base import Channel
from bot.compose.excerpt import DEFAULT_EXCERPT_LENGTH, one_line, stored_excerpt
from bot.compose.render import ComposedPost, Renderer
from bot.config import Config, XChannelConfig
from bot.errors import PermanentError, SourceError, TemplateError, TransientError
from bot.filters import ArticleFilter
from bot.ledger import Delivery, IngestReport, Ledger, NewArticle, Pace
from bot.links import with_tracking
from bot.model import Article, Post, Receipt
from bot.pacing import Window
from bot.redact import Redactor
from bot.sources.base import Source

log = logging.getLogger("newsbot.pipeline")

PRIORITY_HIGH = 10
SOURCE_ALERT_AFTER = 3  # consecutive failed polls before operations hear of it
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Observer(Protocol):
    """What the pipeline reports as it goes (the daemon's metrics)."""

    def delivered(self, channel: str, state: str, *, delay_seconds: float | None = None) -> None:
        """A delivery ended in ``state``; ``delay_seconds`` from publication when sent."""

    def polled(self, source: str, *, ok: bool, not_modified: bool = False) -> None:
        """A source was polled."""


@dataclass
class PassReport:
    """What one pass over due deliveries did, and when the next one is worth making."""

    sent: int = 0
    failed: int = 0
    retrying: int = 0
    skipped: int = 0
    uncertain: int = 0
    paused_channels: dict[str, datetime] = field(default_factory=dict)
    next_wake: datetime | None = None

    def add(self, other: PassReport) -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.retrying += other.retrying
        self.skipped += other.skipped
        self.uncertain += other.uncertain
        self.paused_channels.update(other.paused_channels)
        self.wake(other.next_wake)

    def wake(self, moment: datetime | None) -> None:
        if moment is not None and (self.next_wake is None or moment < self.next_wake):
            self.next_wake = moment

    def count(self, outcome: str) -> None:
        if outcome == "sent":
            self.sent += 1
        elif outcome == "failed":
            self.failed += 1
        elif outcome == "skipped":
            self.skipped += 1
        elif outcome == "uncertain":
            self.uncertain += 1
        else:
            self.retrying += 1


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
        max_attempts: int | None = None,
        observer: Observer | None = None,
        alert: Callable[[str, str], None] | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.sources = sources
        self.channels = channels
        self.renderer = renderer
        self.holder = holder
        self.clock = clock
        # None: each channel's own max_attempts from the config.
        self.max_attempts = max_attempts
        self.observer = observer
        self.alert = alert
        # Set by the daemon on SIGTERM: no new send starts; claimed ones go back to the queue.
        self.stopping = False
        # A channel that answered "slow down" is left alone until then; the others go on.
        self.paused_until: dict[str, datetime] = {}
        self.filters = {name: ArticleFilter(cfg.filters) for name, cfg in config.sources.items()}
        # Source errors quote URLs, which may carry a key; the ledger keeps them masked.
        self.redactor = redactor or Redactor(config.secrets())

    def reconfigure(
        self,
        config: Config,
        *,
        renderer: Renderer,
        sources: Mapping[str, Source],
        channels: Mapping[str, Channel],
    ) -> None:
        """Swap in a reloaded config; queued posts are rendered with the new templates."""
        self.config = config
        self.renderer = renderer
        self.sources = sources
        self.channels = channels
        self.filters = {name: ArticleFilter(cfg.filters) for name, cfg in config.sources.items()}
        self.redactor.update(config.secrets())

    # -- poll and ingest ---------------------------------------------------------------------

    async def poll(self, name: str) -> PollReport:
        """Poll one source and record what is new. Never raises for a source's fault."""
        # The ledger's work runs in a worker thread: with hundreds of feeds polled at once, a
        # synchronous ingest would hold the event loop while other fetches wait on it.
        source = self.sources[name]
        record = await asyncio.to_thread(self.ledger.source, name)
        try:
            result = await source.poll(record.state)
        except SourceError as exc:
            now = self.clock()
            error = self.redactor.redact(str(exc))
            await asyncio.to_thread(self.ledger.record_poll, name, now=now, error=error)
            log.warning("source %s: %s", name, exc, extra={"source": name})
            if self.observer is not None:
                self.observer.polled(name, ok=False)
            failures = record.consecutive_errors + 1
            if failures == SOURCE_ALERT_AFTER or failures % 20 == 0:
                self._alert(
                    "source failing", f"source {name} failed {failures} times in a row: {exc}"
                )
            return PollReport(name, ok=False, error=str(exc))
        now = self.clock()
        if self.observer is not None:
            self.observer.polled(name, ok=True, not_modified=result.not_modified)
        loud = {*result.rejected, *result.alarms}
        for warning in result.warnings:
            level = logging.WARNING if warning in loud else logging.INFO
            log.log(level, "source %s: %s", name, warning, extra={"source": name})
        # The entries skipped are the source's news for its owner: `status` shows them.
        note = self.redactor.redact(_rejections(result.rejected)) if result.rejected else None
        if result.not_modified:
            # An unchanged feed that was fine last time changes nothing worth a write: on a
            # warm cycle of a thousand feeds these writes were most of the CPU.
            if not (
                record.seen_before
                and not record.consecutive_errors
                and record.state == result.state
            ):
                await asyncio.to_thread(self.ledger.record_poll, name, now=now, state=result.state)
            return PollReport(name, ok=True, not_modified=True)
        report = await asyncio.to_thread(
            self._ingest, name, result.articles, first_sight=not record.seen_before, now=now
        )
        await asyncio.to_thread(
            self.ledger.record_poll, name, now=now, state=result.state, note=note
        )
        return PollReport(name, ok=True, seen=len(result.articles), ingest=report)

    def accept(self, name: str, articles: Sequence[Article]) -> PollReport:
        """Articles pushed to us (a CMS webhook, a WebSub hub): recorded at once, no backlog
        rule, since a push is news by definition. Idempotent like a poll."""
        report = self._ingest(name, articles, first_sight=False, now=self.clock())
        return PollReport(name, ok=True, seen=len(articles), ingest=report)

    def _ingest(
        self, name: str, articles: Sequence[Article], *, first_sight: bool, now: datetime
    ) -> IngestReport:
        # Every source's text passes here: whatever a CMS push or a scraped page sent, a title
        # reaches the ledger on one line, without control or invisible characters.
        articles = [tidy_article(article) for article in articles]
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
            excerpt = stored_excerpt(
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
        return self.compose_post(
            article=article, excerpt=excerpt, source=source, channel=channel
        ).post

    def compose_post(
        self, *, article: Article, excerpt: str, source: str, channel: str
    ) -> ComposedPost:
        """:meth:`compose` with how the excerpt was cut and the budget left (preview --json).
        The source's ``excerpt_length`` bounds the excerpt; a source no longer configured
        (renamed since the article was queued) takes the default bound."""
        settings = self.config.channels[channel]
        target = self.channels[channel]
        source_settings = self.config.sources.get(source)
        bound = source_settings.excerpt_length if source_settings else DEFAULT_EXCERPT_LENGTH
        return self.renderer.compose(
            settings.template,
            article=article,
            excerpt=excerpt,
            source=source,
            channel=channel,
            link=with_tracking(article.url, settings.tracking),
            rule=target.rule(has_image=bool(article.image)),
            max_chars=bound,
        )

    # -- deliver -----------------------------------------------------------------------------

    async def deliver_due(self, *, batch: int = 50) -> PassReport:
        """Send what is due on every channel, channels in parallel, each in order and at its
        pace. The report says when the next delivery can be looked at (``next_wake``)."""
        total = PassReport()
        reports = await asyncio.gather(*(self._drain(name, batch) for name in self.channels))
        for report in reports:
            total.add(report)
        return total

    def pace(self, channel: str) -> Pace | None:
        """The channel's pace from its config, or ``None`` when it may post as fast as it can."""
        settings = self.config.channels[channel]
        rate = settings.effective_rate
        spacing = settings.min_gap
        if rate is not None and settings.burst == 1:
            spacing = max(spacing, rate.period / rate.count)
        if not spacing and rate is None:
            return None
        timeout = getattr(settings, "timeout", timedelta(seconds=20))
        return Pace(
            spacing=spacing,
            burst=settings.burst,
            windows=tuple(Window(r.count, r.period) for r in settings.effective_rates),
            hold=timeout + timedelta(seconds=5),
            priority_bypass=PRIORITY_HIGH,
        )

    async def _drain(self, name: str, batch: int) -> PassReport:
        report = PassReport()
        pace = self.pace(name)
        while not self.stopping:
            now = self.clock()
            paused = self.paused_until.get(name)
            if paused is not None and paused > now:
                report.wake(paused)
                break
            quiet_end = self._quiet_until(name, now)
            if quiet_end is not None:
                self._skip_stale_for_quiet_hours(name, now, quiet_end)
                report.wake(quiet_end)
                break
            if pace is None:
                claimed = self.ledger.claim_due(
                    now, holder=self.holder, limit=batch, channels=[name]
                )
                wait = None
            else:
                result = self.ledger.claim_paced(now, holder=self.holder, channel=name, pace=pace)
                claimed, wait = result.deliveries, result.wait_until
            if not claimed:
                if wait is not None and pace is not None:
                    # Another instance may hold the slot for a send in flight; it frees the
                    # slot sooner than the reservation says, so look again after one spacing.
                    wait = min(wait, now + max(pace.spacing, timedelta(seconds=1)))
                report.wake(wait or self.ledger.next_due([name]))
                break
            for index, delivery in enumerate(claimed):
                paused = self.paused_until.get(name)
                if self.stopping or (paused is not None and paused > self.clock()):
                    for rest in claimed[index:]:
                        self.ledger.release(rest.id, now=self.clock(), holder=self.holder)
                    break
                outcome = await self.deliver_one(delivery)
                report.count(outcome)
                if pace is not None:
                    self.ledger.paced_send_done(
                        name, completed_at=self.clock(), spacing=pace.spacing
                    )
            if pace is None and len(claimed) < batch:
                report.wake(self.ledger.next_due([name]))
                break
        if name in self.paused_until and self.paused_until[name] > self.clock():
            report.paused_channels[name] = self.paused_until[name]
        return report

    def _quiet_until(self, channel: str, now: datetime) -> datetime | None:
        """When the channel's quiet hours end, if it is in them now."""
        window = self.config.channels[channel].quiet_hours
        if window is None:
            return None
        local = now.astimezone(self.config.tz)
        if local.time() not in window:
            return None
        end = local.replace(hour=window.end.hour, minute=window.end.minute, second=0, microsecond=0)
        if end <= local:
            end += timedelta(days=1)
        return end.astimezone(UTC)

    def _skip_stale_for_quiet_hours(self, channel: str, now: datetime, quiet_end: datetime) -> None:
        """Posts that would be older than their source's max_age when quiet hours end are
        skipped now, saying so, rather than posted stale in the morning."""
        stale = []
        for delivery in self.ledger.deliveries(states=["queued"], channel=channel, limit=10_000):
            settings = self.config.sources.get(delivery.source)
            published = delivery.article.published
            if (
                settings
                and settings.max_age
                and published
                and published + settings.max_age < quiet_end
            ):
                stale.append(delivery.id)
        if stale:
            local_end = quiet_end.astimezone(self.config.tz)
            self.ledger.skip_queued(
                stale,
                reason=f"would be older than max_age when the quiet hours of {channel} end "
                f"at {local_end:%H:%M}",
                now=now,
            )
            self._observe_delivery(channel, "skipped", None, count=len(stale))

    async def deliver_one(self, delivery: Delivery) -> str:
        """Compose and send one claimed delivery; record the outcome. Returns the new state."""
        context = {
            "source": delivery.source,
            "article": delivery.article.key,
            "channel": delivery.channel,
            "delivery": delivery.id,
        }
        outcome = await self._deliver(delivery, context)
        if outcome != "retrying":
            delay = None
            if outcome == "sent":
                start = delivery.article.published or delivery.created_at
                delay = max((self.clock() - start).total_seconds(), 0.0)
            self._observe_delivery(delivery.channel, outcome, delay)
        return outcome

    async def _deliver(self, delivery: Delivery, context: Mapping[str, object]) -> str:
        now = self.clock()
        channel = self.channels.get(delivery.channel)
        if channel is None:
            reason = f"channel {delivery.channel!r} is no longer in the config"
            self.ledger.mark_skipped(delivery.id, reason=reason, now=now, holder=self.holder)
            log.warning("skipped: %s", reason, extra=context)
            return "skipped"
        if delivery.source in self.config.sources and self._too_old(
            delivery.article, delivery.source, now
        ):
            reason = self._too_old_reason(delivery.article, delivery.source)
            self.ledger.mark_skipped(delivery.id, reason=reason, now=now, holder=self.holder)
            log.info("skipped: %s", reason, extra=context)
            return "skipped"
        try:
            # In a worker thread: a template using up its render budget (bot.compose.render)
            # must not hold the event loop, the listener and /healthz with it.
            post = await asyncio.to_thread(
                self.compose,
                article=delivery.article,
                excerpt=delivery.excerpt,
                source=delivery.source,
                channel=delivery.channel,
            )
        except (PermanentError, TemplateError) as exc:
            reason = exc.reason if isinstance(exc, PermanentError) else str(exc)
            self.ledger.mark_failed(
                delivery.id, reason=reason, now=self.clock(), holder=self.holder
            )
            log.error("cannot compose the post: %s", reason, extra=context)
            self._alert(
                "delivery failed", f"{delivery.channel}: {delivery.article.title}: {reason}"
            )
            return "failed"

        cost = self._cost(delivery.channel, post)
        over = self._over_budget(delivery.channel, cost, now)
        if over is not None:
            self.ledger.mark_skipped(delivery.id, reason=over, now=now, holder=self.holder)
            log.warning("skipped: %s", over, extra=context)
            self._alert("budget", f"{delivery.channel}: {over}")
            return "skipped"

        try:
            receipt = await channel.send(post)
        except TransientError as exc:
            if exc.maybe_sent and not (
                channel.resend_is_safe or self.config.channels[delivery.channel].resend_uncertain
            ):
                return self._uncertain(delivery, exc, post, context)
            return self._retry_later(delivery, exc, post, context)
        except PermanentError as exc:
            if exc.duplicate and delivery.attempts > 1:
                # An earlier attempt whose answer never came back had in fact been posted.
                note = f"posted by an earlier attempt (the platform refused a resend: {exc.reason})"
                confirmed = Receipt(remote_id="", notes=(note,))
                self.ledger.mark_sent(
                    delivery.id,
                    text=post.text,
                    receipt=confirmed,
                    now=self.clock(),
                    cost=cost,
                    holder=self.holder,
                )
                log.info("sent (confirmed by the platform's duplicate check)", extra=context)
                return "sent"
            self.ledger.mark_failed(
                delivery.id, reason=exc.reason, now=self.clock(), text=post.text, holder=self.holder
            )
            log.error("delivery failed: %s", exc.reason, extra=context)
            self._alert(
                "delivery failed", f"{delivery.channel}: {delivery.article.title}: {exc.reason}"
            )
            return "failed"
        except Exception as exc:
            # A bug in a channel must not stop the others; it is recorded, never retried blindly.
            reason = f"internal error in channel {delivery.channel}: {type(exc).__name__}: {exc}"
            self.ledger.mark_failed(
                delivery.id, reason=reason, now=self.clock(), text=post.text, holder=self.holder
            )
            log.exception("delivery failed: %s", reason, extra=context)
            self._alert("delivery failed", f"{delivery.channel}: {reason}")
            return "failed"
        self.ledger.mark_sent(
            delivery.id,
            text=post.text,
            receipt=receipt,
            now=self.clock(),
            cost=cost,
            holder=self.holder,
        )
        log.info("sent %s", receipt.url or receipt.remote_id, extra=context)
        return "sent"

    def _uncertain(
        self, delivery: Delivery, exc: TransientError, post: Post, context: Mapping[str, object]
    ) -> str:
        reason = (
            f"{exc.reason}. The request was sent but no answer came back, so the post may have "
            "been published: check the channel, then `newsbot retry --uncertain` to send it "
            "again (or set resend_uncertain: true on the channel to always resend)"
        )
        self.ledger.mark_uncertain(
            delivery.id, reason=reason, now=self.clock(), text=post.text, holder=self.holder
        )
        log.error("delivery uncertain: %s", exc.reason, extra=context)
        self._alert("uncertain", f"{delivery.channel}: {delivery.article.title}: {exc.reason}")
        # The platform is not answering: the channel's next post waits like after a failure.
        wait = backoff(delivery.attempts, base=self.config.channels[delivery.channel].retry_backoff)
        self.paused_until[delivery.channel] = self.clock() + wait
        return "uncertain"

    # -- X spend -------------------------------------------------------------------------------

    def _cost(self, channel: str, post: Post) -> float | None:
        settings = self.config.channels[channel]
        if not isinstance(settings, XChannelConfig):
            return None
        has_link = bool(post.link) and post.link in post.text
        return settings.price_per_link_post if has_link else settings.price_per_post

    def month_start(self, now: datetime) -> datetime:
        """The first moment of this calendar month in the configured time zone."""
        local = now.astimezone(self.config.tz)
        return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)

    def _over_budget(self, channel: str, cost: float | None, now: datetime) -> str | None:
        settings = self.config.channels[channel]
        if not isinstance(settings, XChannelConfig) or settings.monthly_budget is None:
            return None
        posts, spent = self.ledger.spend(channel, since=self.month_start(now))
        if spent + (cost or 0.0) <= settings.monthly_budget + 1e-9:
            return None
        return (
            f"the X monthly budget of {settings.monthly_budget:.2f} {settings.currency} is "
            f"reached ({posts} posts, {spent:.2f} {settings.currency} spent this month; "
            f"this post would cost {cost or 0:.2f})"
        )

    # -- retries -------------------------------------------------------------------------------

    def _retry_later(
        self, delivery: Delivery, exc: TransientError, post: Post, context: Mapping[str, object]
    ) -> str:
        now = self.clock()
        max_attempts = self.config.channels[delivery.channel].max_attempts
        if self.max_attempts is not None:
            max_attempts = self.max_attempts
        if delivery.attempts >= max_attempts:
            reason = f"gave up after {delivery.attempts} attempts; last error: {exc.reason}"
            self.ledger.mark_failed(
                delivery.id, reason=reason, now=now, text=post.text, holder=self.holder
            )
            log.error("delivery failed: %s", reason, extra=context)
            self._alert(
                "delivery failed", f"{delivery.channel}: {delivery.article.title}: {reason}"
            )
            return "failed"
        if exc.retry_after is not None:
            # The platform said when: then, never earlier, and not much later either (a
            # little jitter so that several instances do not all come back at once).
            wait = timedelta(seconds=exc.retry_after * random.uniform(1.0, 1.1))
        else:
            wait = backoff(
                delivery.attempts, base=self.config.channels[delivery.channel].retry_backoff
            )
        # The whole channel waits with the post: a platform that is failing or asking us to
        # slow down fails for every post, and the posts after this one must not overtake it.
        self.paused_until[delivery.channel] = now + wait
        self.ledger.pause_channel(delivery.channel, until=now + wait, reason=exc.reason)
        due = now + wait
        self.ledger.requeue(delivery.id, due_at=due, reason=exc.reason, now=now, holder=self.holder)
        log.warning(
            "will retry at %s: %s", due.isoformat(timespec="seconds"), exc.reason, extra=context
        )
        return "retrying"

    # -- observers -------------------------------------------------------------------------------

    def _observe_delivery(
        self, channel: str, state: str, delay: float | None, *, count: int = 1
    ) -> None:
        if self.observer is not None:
            for _ in range(count):
                self.observer.delivered(channel, state, delay_seconds=delay)

    def _alert(self, kind: str, message: str) -> None:
        if self.alert is not None:
            self.alert(kind, message)


MAX_TITLE = 500
_MAX_REJECTIONS_SHOWN = 5


def _rejections(rejected: Sequence[str]) -> str:
    shown = "; ".join(rejected[:_MAX_REJECTIONS_SHOWN])
    more = len(rejected) - _MAX_REJECTIONS_SHOWN
    return f"{shown}; and {more} more" if more > 0 else shown


def tidy_article(article: Article) -> Article:
    """The article as the ledger keeps it: title and author on one tidy line."""
    title = one_line(article.title, MAX_TITLE)
    author = one_line(article.author, 200) or None if article.author else None
    if title == article.title and author == article.author:
        return article
    return dataclasses.replace(article, title=title, author=author)


def backoff(attempts: int, *, base: timedelta = BACKOFF_BASE) -> timedelta:
    """Exponential back-off with jitter: about 30 s, 1 min, 2 min, ... capped at an hour."""
    seconds = base.total_seconds() * 2 ** max(attempts - 1, 0)
    seconds = min(seconds, BACKOFF_CAP.total_seconds())
    return timedelta(seconds=seconds * random.uniform(0.8, 1.2))
