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
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from bot import outcome as outcome_rules
from bot import revisions
from bot.channels import kinds
from bot.channels.base import Channel
from bot.compose.excerpt import DEFAULT_EXCERPT_LENGTH, one_line, stored_excerpt
from bot.compose.post import compose_post
from bot.compose.render import ComposedPost, Renderer
from bot.config import (
    ChannelConfig,
    Config,
    SitemapSourceConfig,
    WebhookSourceConfig,
    XChannelConfig,
)
from bot.errors import BotError, PermanentError, SourceError, TemplateError
from bot.filters import ArticleFilter
from bot.ledger import (
    Delivery,
    IngestReport,
    Ledger,
    Lookup,
    Mark,
    NewArticle,
    Pace,
    Polled,
    RevisionReport,
    StoredArticle,
    offload,
)
from bot.model import MAX_TITLE, Article, DeliveryState, Post, Receipt, RevisionKind
from bot.outcome import ActionOutcome, Outcome
from bot.pacing import Window
from bot.redact import Redactor
from bot.revising import Reviser
from bot.sources.base import Source

log = logging.getLogger("newsbot.pipeline")

PRIORITY_HIGH = 10
SOURCE_ALERT_AFTER = 3  # consecutive failed polls before operations hear of it


def utc_now() -> datetime:
    return datetime.now(UTC)


class Observer(Protocol):
    """What the pipeline reports as it goes (the daemon's metrics)."""

    def delivered(self, channel: str, state: str, *, delay_seconds: float | None = None) -> None:
        """A delivery ended in ``state``; ``delay_seconds`` from publication when sent."""

    def polled(self, source: str, *, ok: bool, not_modified: bool = False) -> None:
        """A source was polled."""

    def revised(self, channel: str, action: str, state: str) -> None:
        """A revision's action on a published post ended in ``state`` (an ``ActionState``)."""


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
    #: Revision actions (edits, replies, deletes, reposts) by the state they ended in.
    actions: Counter[str] = field(default_factory=Counter)

    def add(self, other: PassReport) -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.retrying += other.retrying
        self.skipped += other.skipped
        self.uncertain += other.uncertain
        self.paused_channels.update(other.paused_channels)
        self.actions.update(other.actions)
        self.wake(other.next_wake)

    def wake(self, moment: datetime | None) -> None:
        if moment is not None and (self.next_wake is None or moment < self.next_wake):
            self.next_wake = moment

    def count(self, state: DeliveryState) -> None:
        """One delivery's outcome; ``QUEUED`` is a retry."""
        if state is DeliveryState.SENT:
            self.sent += 1
        elif state is DeliveryState.FAILED:
            self.failed += 1
        elif state is DeliveryState.SKIPPED:
            self.skipped += 1
        elif state is DeliveryState.UNCERTAIN:
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
    revised: RevisionReport | None = None
    error: str | None = None
    #: Failed polls in a row, this one included (0 after a good poll): the back-off's input.
    errors: int = 0
    #: Deletes queued for articles whose page was found gone (``takedown_on_gone``).
    withdrawn: int = 0


class Pipeline:
    """The flow of docs/architecture.md for one configuration."""

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
        self.observer = observer
        self.alert = alert
        # Set by the daemon on SIGTERM: no new send starts; claimed ones go back to the queue.
        self.stopping = False
        self.filters = {name: ArticleFilter(cfg.filters) for name, cfg in config.sources.items()}
        # What a correction and a takedown do on each channel (its config, else its platform's).
        self.policies = kinds.policies(config, channels)
        # Source errors quote URLs, which may carry a key; the ledger keeps them masked.
        self.redactor = redactor or Redactor(config.secrets())
        self.reviser = Reviser(self)

    def stop(self) -> None:
        """No new send starts from now on; claimed ones go back to the queue."""
        self.stopping = True

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
        self.policies = kinds.policies(config, channels)
        self.redactor.update(config.secrets())

    # -- poll and ingest ---------------------------------------------------------------------

    async def poll(self, name: str) -> PollReport:
        """Poll one source and record what is new. Never raises for a source's fault."""
        # The ledger's work runs in a worker thread: with hundreds of feeds polled at once, a
        # synchronous ingest would hold the event loop while other fetches wait on it.
        source = self.sources[name]
        record = await offload(self.ledger.source, name)
        try:
            result = await source.poll(record.state)
        except SourceError as exc:
            now = self.clock()
            error = self.redactor.redact(str(exc))
            await offload(self.ledger.record_poll, name, now=now, error=error)
            log.warning("source %s: %s", name, exc, extra={"source": name})
            if self.observer is not None:
                self.observer.polled(name, ok=False)
            failures = record.consecutive_errors + 1
            if failures == SOURCE_ALERT_AFTER or failures % 20 == 0:
                self._alert(
                    "source failing", f"source {name} failed {failures} times in a row: {exc}"
                )
            return PollReport(name, ok=False, error=str(exc), errors=failures)
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
                await offload(self.ledger.record_poll, name, now=now, state=result.state)
            return PollReport(name, ok=True, not_modified=True)
        report, revised = await offload(
            self._ingest,
            name,
            result.articles,
            first_sight=not record.seen_before,
            now=now,
            # Pages found gone are handled after the ingest: the poll is recorded only then,
            # so that a failure there is not hidden behind a 304 on the next poll.
            polled=None if result.gone else Polled(result.state, note),
        )
        withdrawn = 0
        if result.gone:
            withdrawn = await offload(self._gone, name, result.gone)
            await offload(self.ledger.record_poll, name, now=now, state=result.state, note=note)
        return PollReport(
            name,
            ok=True,
            seen=len(result.articles),
            ingest=report,
            revised=revised,
            withdrawn=withdrawn,
        )

    async def accept(self, name: str, articles: Sequence[Article]) -> PollReport:
        """Articles pushed to us (a CMS webhook, a WebSub hub): recorded at once, no backlog
        rule, since a push is news by definition. Idempotent like a poll."""
        report, revised = await offload(
            self._ingest, name, articles, first_sight=False, now=self.clock()
        )
        return PollReport(name, ok=True, seen=len(articles), ingest=report, revised=revised)

    async def withdraw(
        self, name: str, key: str, *, reason: str | None = None, origin: str = "webhook"
    ) -> RevisionReport | None:
        """A source says an article is withdrawn (a webhook ``delete``): a takedown on every
        channel. ``key`` is the article's key or canonical URL; ``None`` when the ledger keeps
        no such article of this source."""
        return await offload(self._withdraw, name, key, reason=reason, origin=origin)

    def _withdraw(
        self,
        name: str,
        key: str,
        *,
        reason: str | None,
        origin: str,
        found: Sequence[StoredArticle] | None = None,
    ) -> RevisionReport | None:
        """Take down the articles ``found`` under ``key`` (looked up when not given)."""
        if found is None:
            found = self.ledger.find_articles(key, source=name)
        if not found:
            return None
        takedowns = [
            revisions.Revision(
                article_id=stored.id,
                kind=RevisionKind.DELETE,
                origin=origin,
                title=stored.shown_title,
                reason=reason or f"withdrawn by source {name}",
            )
            for stored in found
        ]
        report = self.ledger.revise(takedowns, self.policies, now=self.clock())
        log.info(
            "source %s: %s withdrawn: %d takedown(s) queued, %d skipped, %d unsent post(s) stopped",
            name,
            key,
            report.queued,
            report.skipped,
            report.stopped,
            extra={"source": name, "article": key},
        )
        return report

    def _gone(self, name: str, gone: Sequence[tuple[str, str]]) -> int:
        """Articles whose page, read again, answered 404 or 410: a takedown of each one the
        ledger keeps and has not withdrawn yet, when the source says so
        (``takedown_on_gone``); otherwise only logged. How many deletes were queued."""
        settings = self.config.sources.get(name)
        queued = 0
        for key, why in gone:
            stored = [s for s in self.ledger.find_articles(key, source=name) if not s.retracted_at]
            if not stored:
                continue
            if settings is None or not settings.takedown_on_gone:
                log.info(
                    "source %s: the page of article %s is gone (%s); its posts stay "
                    "up (takedown_on_gone is off)",
                    name,
                    key,
                    why,
                    extra={"source": name, "article": key},
                )
                continue
            origin = "sitemap" if isinstance(settings, SitemapSourceConfig) else "enrich"
            report = self._withdraw(
                name,
                key,
                reason=f"the article's page is gone: {why}",
                origin=origin,
                found=stored,
            )
            queued += report.queued if report is not None else 0
        return queued

    def _ingest(
        self,
        name: str,
        articles: Sequence[Article],
        *,
        first_sight: bool,
        now: datetime,
        polled: Polled | None = None,
    ) -> tuple[IngestReport, RevisionReport | None]:
        """Record what is new and what changed; then ``polled``, the poll that read them, so
        its validators are kept only once everything the poll found is in the ledger."""
        # Every source's text passes here: whatever a CMS push or a scraped page sent, a title
        # reaches the ledger on one line, without control or invisible characters.
        articles = [tidy_article(article) for article in articles]
        lookup = self.ledger.lookup(name, [a.key for a in articles], [a.url for a in articles])
        known = lookup.known
        fresh = [a for a in articles if a.key not in known and a.url not in known]
        items = self._decide(name, fresh, first_sight=first_sight, now=now)
        routes = self.config.routes(name)
        if not lookup.stored:
            # Nothing known to revise (a first sight, a poll of new items only): the poll is
            # recorded in the ingest's transaction, one commit fewer per poll.
            report = self.ledger.ingest(name, items, routes, now=now, polled=polled)
            revised = None
        else:
            report = self.ledger.ingest(name, items, routes, now=now)
            revised = self._revise(name, articles, lookup, now=now)
            if polled is not None:
                self.ledger.record_poll(name, now=now, state=polled.state, note=polled.note)
        if report.articles:
            log.info(
                "source %s: %d new article(s), %d deliveries queued, %d skipped",
                name,
                report.articles,
                report.queued,
                report.skipped,
                extra={"source": name},
            )
        return report, revised

    def _revise(
        self, name: str, articles: Sequence[Article], lookup: Lookup, *, now: datetime
    ) -> RevisionReport | None:
        """Known articles whose content a post would show differently are revisions: each
        article's row is brought up to date and each of its posts gets its channel's action.
        An article kept with no digest yet (from before revisions) only has its digest stored."""
        changed: dict[int, tuple[Article, str]] = {}
        digests: dict[int, str] = {}
        for article in articles:
            entry = lookup.stored.get(article.key)
            if entry is None:
                continue
            article_id, stored = entry
            digest = revisions.content_digest(article)
            if stored is None:
                digests.setdefault(article_id, digest)
            elif digest != stored:
                changed.setdefault(article_id, (article, digest))
        if not changed and not digests:
            return None
        decided = []
        settings = self.config.sources[name]
        origin = _origin(settings)
        for article_id, stored_article in self.ledger.stored_articles(changed).items():
            article, digest = changed[article_id]
            excerpt = stored_excerpt(
                article.summary_html, strip=settings.strip, length=settings.excerpt_length
            )
            revision = revisions.source_revision(
                article_id,
                before=stored_article.article,
                after=article,
                origin=origin,
                excerpt=excerpt,
                digest=digest,
                title_override=stored_article.title_override,
                enriched=settings.enrich,
            )
            if revision is None:
                digests[article_id] = digest
            else:
                decided.append(revision)
        report = self.ledger.revise(decided, self.policies, now=now, digests=digests)
        if report.revisions:
            log.info(
                "source %s: %d article(s) revised, %d correction(s) queued, %d skipped",
                name,
                report.revisions,
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
            # An article skipped now is never composed: its excerpt (the costliest step of
            # ingest, most of a cold first sight) would never be read.
            excerpt = (
                stored_excerpt(
                    article.summary_html, strip=settings.strip, length=settings.excerpt_length
                )
                if reason is None
                else ""
            )
            items.append(
                NewArticle(
                    article=article,
                    excerpt=excerpt,
                    skip_reason=reason,
                    priority=self._priority(name, article),
                    digest=revisions.content_digest(article),
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
        self,
        *,
        article: Article,
        excerpt: str,
        source: str,
        channel: str,
        template: str | None = None,
    ) -> ComposedPost:
        """:meth:`compose` with how the excerpt was cut and the budget left (preview --json).
        The source's ``excerpt_length`` bounds the excerpt; a source no longer configured
        (renamed since the article was queued) takes the default bound. ``template``: another
        of the channel's templates (a correction notice's)."""
        settings = self.config.channels[channel]
        target = self.channels[channel]
        source_settings = self.config.sources.get(source)
        bound = source_settings.excerpt_length if source_settings else DEFAULT_EXCERPT_LENGTH
        return compose_post(
            self.renderer,
            settings,
            target,
            article=article,
            excerpt=excerpt,
            source=source,
            max_chars=bound,
            template=template,
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
        """One channel's due posts, then its due revision actions (:mod:`bot.revising`), both
        at the channel's one pace."""
        report = PassReport()
        pace = self.pace(name)
        await self._drain_posts(name, batch, pace, report)
        quiet = self._quiet_until(name, self.clock()) is not None
        await self.reviser.drain(name, batch, pace, report, quiet=quiet)
        return report

    async def _drain_posts(
        self, name: str, batch: int, pace: Pace | None, report: PassReport
    ) -> None:
        while not self.stopping:
            now = self.clock()
            quiet_end = self._quiet_until(name, now)
            if quiet_end is not None:
                await self._skip_stale_for_quiet_hours(name, now, quiet_end)
                report.wake(quiet_end)
                break
            claim = await offload(
                self.ledger.claim, now, holder=self.holder, channel=name, pace=pace, limit=batch
            )
            claimed, wait = claim.deliveries, claim.wait_until
            if not claimed:
                if wait is not None and pace is not None and wait > now:
                    # Another instance may hold the slot for a send in flight; it frees the
                    # slot sooner than the reservation says, so look again after one spacing.
                    wait = min(wait, now + max(pace.spacing, timedelta(seconds=1)))
                report.wake(wait)
                break
            paused_until: datetime | None = None
            in_flight = False
            for index, delivery in enumerate(claimed):
                if self.stopping or paused_until is not None:
                    # Not sent: back to the queue as they were (a shutdown, or the channel
                    # was paused by the outcome before).
                    for rest in claimed[index:]:
                        await offload(
                            self.ledger.release, rest.id, now=self.clock(), holder=self.holder
                        )
                    break
                following = claimed[index + 1].id if index + 1 < len(claimed) else None
                done = await self.deliver_one(
                    delivery,
                    spacing=pace.spacing if pace else None,
                    in_flight=in_flight,
                    then=following,
                )
                outcome, in_flight = done if done is not None else (None, False)
                if outcome is None:
                    continue
                report.count(outcome.state)
                if outcome.pause_until is not None and outcome.pause_until > self.clock():
                    paused_until = outcome.pause_until
            if paused_until is not None:
                report.paused_channels[name] = paused_until
                report.wake(paused_until)
                break
            if pace is None and len(claimed) < batch:
                # Nothing more was due: this pass is done, and what an outcome made due again
                # (a retry without delay) waits for the next pass rather than going at once.
                report.wake(await offload(self.ledger.next_due, [name]))
                break

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

    async def _skip_stale_for_quiet_hours(
        self, channel: str, now: datetime, quiet_end: datetime
    ) -> None:
        """Posts that would be older than their source's max_age when quiet hours end are
        skipped now, saying so, rather than posted stale in the morning."""
        stale = []
        queued = await offload(
            self.ledger.deliveries, states=[DeliveryState.QUEUED], channel=channel, limit=10_000
        )
        for delivery in queued:
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
            await offload(
                self.ledger.skip_queued,
                stale,
                reason=f"would be older than max_age when the quiet hours of {channel} end "
                f"at {local_end:%H:%M}",
                now=now,
            )
            self._observe_delivery(channel, DeliveryState.SKIPPED, None, count=len(stale))

    async def deliver_one(
        self,
        delivery: Delivery,
        *,
        spacing: timedelta | None = None,
        in_flight: bool = False,
        then: int | None = None,
    ) -> tuple[Outcome, bool] | None:
        """Compose, send, judge, record, observe: one claimed delivery's whole path, with one
        ledger write for its outcome. ``spacing``: the channel is paced, and its next post may
        go that long after this one ends. ``in_flight``: already marked so (with the previous
        outcome); ``then``: the next claimed delivery, marked in flight with this outcome.
        The outcome and whether ``then`` was marked; ``None`` when the claim was lost."""
        outcome, error = await self._attempt(delivery, in_flight=in_flight)
        now = self.clock()
        context = {
            "source": delivery.source,
            "article": delivery.article.key,
            "channel": delivery.channel,
            "delivery": delivery.id,
        }
        if outcome is None:
            log.warning("claim lost before the send; not sent", extra=context)
            return None
        finished = await offload(
            self.ledger.finish,
            delivery.id,
            outcome,
            now=now,
            holder=self.holder,
            spacing=spacing,
            then_in_flight=then,
        )
        if not finished:
            # Recovery gave the claim away while this instance was stalled; what the ledger
            # holds now is someone else's to decide.
            log.warning(
                "claim lost before its outcome was recorded: %s", outcome.state, extra=context
            )
            return None
        self.announce(outcome, context, error)
        if not outcome.retry:
            delay = None
            if outcome.state is DeliveryState.SENT:
                start = delivery.article.published or delivery.created_at
                delay = max((now - start).total_seconds(), 0.0)
            self._observe_delivery(delivery.channel, outcome.state, delay)
        return outcome, finished.next_in_flight

    async def _attempt(
        self, delivery: Delivery, *, in_flight: bool = False
    ) -> tuple[Outcome | None, BaseException | None]:
        """The outcome of trying to send one delivery now, and the error it raised, if any;
        no outcome when the claim was lost before the send."""
        now = self.clock()
        channel = self.channels.get(delivery.channel)
        settings = self.config.channels.get(delivery.channel)
        if channel is None or settings is None:
            reason = f"channel {delivery.channel!r} is no longer in the config"
            return outcome_rules.skipped(reason, level=logging.WARNING), None
        if delivery.retracted_at is not None:
            return outcome_rules.skipped(
                "retracted: the article was withdrawn before this post went out"
            ), None
        if delivery.source in self.config.sources and self._too_old(
            delivery.article, delivery.source, now
        ):
            return outcome_rules.skipped(
                self._too_old_reason(delivery.article, delivery.source)
            ), None
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
            return outcome_rules.not_composed(
                delivery.channel, delivery.article.title, reason
            ), None
        cost = settings.post_cost(post)
        over = await self._over_budget(settings, cost, now)
        if over is not None:
            alert = outcome_rules.Alert("budget", f"{delivery.channel}: {over}")
            return outcome_rules.skipped(over, alert=alert, level=logging.WARNING), None
        if not in_flight:
            mark = await offload(
                self.ledger.mark_in_flight, delivery.id, now=self.clock(), holder=self.holder
            )
            if mark is Mark.RETRACTED:
                # A takedown landed between the claim and now: the claim is still ours.
                return outcome_rules.skipped(
                    "retracted: the article was withdrawn after this post was claimed, "
                    "before it was sent"
                ), None
            if not mark:
                return None, None
        result: Receipt | BaseException
        try:
            result = await channel.send(post)
        except Exception as exc:
            # A bug in a channel must not stop the others; judge() records it, never retried.
            result = exc
        policy = outcome_rules.Policy.of(settings, resend_is_safe=channel.resend_is_safe)
        outcome = outcome_rules.judge(
            result,
            attempts=delivery.attempts,
            title=delivery.article.title,
            post=post,
            policy=policy,
            now=self.clock(),
            cost=cost,
        )
        return outcome, result if isinstance(result, BaseException) else None

    async def _over_budget(
        self, settings: ChannelConfig, cost: float | None, now: datetime
    ) -> str | None:
        if not isinstance(settings, XChannelConfig) or settings.monthly_budget is None:
            return None
        posts, spent = await offload(
            self.ledger.spend, settings.name, since=outcome_rules.month_start(now, self.config.tz)
        )
        return outcome_rules.over_budget(
            budget=settings.monthly_budget,
            currency=settings.currency,
            posts=posts,
            spent=spent,
            cost=cost,
        )

    # -- observers -------------------------------------------------------------------------------

    def _observe_delivery(
        self, channel: str, state: DeliveryState, delay: float | None, *, count: int = 1
    ) -> None:
        if self.observer is not None:
            for _ in range(count):
                self.observer.delivered(channel, state, delay_seconds=delay)

    def announce(
        self,
        outcome: Outcome | ActionOutcome,
        context: Mapping[str, object],
        error: BaseException | None,
    ) -> None:
        """Log a recorded outcome's line (with the traceback of a bug in a channel) and raise
        its alert."""
        log.log(
            outcome.level,
            "%s",
            outcome.note or outcome.state,
            extra=context,
            exc_info=error if error is not None and not isinstance(error, BotError) else None,
        )
        if outcome.alert is not None:
            self._alert(outcome.alert.kind, outcome.alert.message)

    def _alert(self, kind: str, message: str) -> None:
        if self.alert is not None:
            self.alert(kind, message)


_MAX_REJECTIONS_SHOWN = 5


def _rejections(rejected: Sequence[str]) -> str:
    shown = "; ".join(rejected[:_MAX_REJECTIONS_SHOWN])
    more = len(rejected) - _MAX_REJECTIONS_SHOWN
    return f"{shown}; and {more} more" if more > 0 else shown


def _origin(settings: object) -> str:
    """A revision's origin (``revisions.origin``) for what a source of this kind said."""
    if isinstance(settings, WebhookSourceConfig):
        return "webhook"
    if isinstance(settings, SitemapSourceConfig):
        return "sitemap"
    return "feed"


def tidy_article(article: Article) -> Article:
    """The article as the ledger keeps it: title and author on one tidy line."""
    title = one_line(article.title, MAX_TITLE)
    author = one_line(article.author, 200) or None if article.author else None
    if title == article.title and author == article.author:
        return article
    return dataclasses.replace(article, title=title, author=author)
