"""``newsbot run``: scheduling and supervising what :mod:`bot.wiring` built, until told to stop.

The daemon builds nothing itself: the composition root (:mod:`bot.wiring`) makes the parts at
start and again on a reload; the daemon runs the polls, the delivery loop, housekeeping and
the watch for changes, and says through ``/healthz`` whether all of them are alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import signal
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.alerts import Alerter
from bot.channels.base import Channel
from bot.compose.render import Renderer
from bot.config import (
    Config,
    FeedSourceConfig,
    TelegramChannelConfig,
    WebhookSourceConfig,
    XChannelConfig,
    load_config,
)
from bot.errors import BotError, ConfigError, DeliveryError
from bot.instances import HEARTBEAT_EVERY
from bot.ledger import offload
from bot.metrics import Metrics
from bot.model import Article
from bot.outcome import month_start
from bot.redact import Redactor
from bot.sources.base import backoff_interval
from bot.sources.enrich import Enricher
from bot.sources.policy import FetchPolicy, screen
from bot.sources.push import PushReceiver
from bot.wiring import (
    Runtime,
    build_channel,
    build_renderer,
    build_source,
    check_channels,
    open_runtime,
)

if TYPE_CHECKING:
    from bot.listener import Listener
    from bot.sources.websub import WebSubSubscriber

# Seconds between the ledger's checkpoints (SQLite): often enough that the WAL stays small
# and SQLite's own checkpoint, inside a commit, never comes due in normal running.
CHECKPOINT_EVERY = 5.0

log = logging.getLogger("newsbot.daemon")


class Daemon:
    """``newsbot run``: APScheduler jobs in our event loop, until SIGTERM / SIGINT.

    Jobs: one poll per source at its ``every`` (with jitter, one at a time, missed runs
    coalesced); one delivery job, rescheduled to the moment the next delivery can go (woken
    early when something new arrives), never a busy loop; housekeeping (stale claims,
    pruning, metrics); and a watch on the config and templates for reload. The ledger, not
    the scheduler, holds the state: a restart rebuilds the jobs from the config.
    """

    def __init__(
        self,
        config: Config,
        *,
        redactor: Redactor | None = None,
        watch_every: float = 2.0,
        housekeeping_every: float = 30.0,
    ) -> None:
        self.config = config
        self.redactor = redactor or Redactor(config.secrets())
        self.watch_every = watch_every
        self.housekeeping_every = housekeeping_every
        self.stop_event = asyncio.Event()
        self.reload_requested = False
        self.runtime: Runtime | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.metrics = Metrics()
        self.alerter: Alerter | None = None
        self._fingerprint = _fingerprint(config)
        self._delivering: asyncio.Task[None] | None = None
        self._polls: dict[str, asyncio.Task[Any]] = {}
        self.subscribers: dict[str, WebSubSubscriber] = {}
        self.listener: Listener | None = None
        self._wake = asyncio.Event()
        # Why a loop that must run until the stop ended early (health fails with it).
        self.loop_failure: str | None = None
        # The last time the ledger took a write (the heartbeat), and the last refusal.
        self._ledger_ok_at = time.monotonic()
        self._ledger_problem: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, self.stop_event.set)
        with contextlib.suppress(NotImplementedError, AttributeError):
            loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        alerts = self.config.alerts
        self.alerter = Alerter(
            _alerts_channel(self.config),
            min_interval=alerts.min_interval if alerts else timedelta(minutes=5),
            redact=self.redactor.redact,
        )
        if self.alerter.channel is not None:
            await self.alerter.channel.start()
        async with contextlib.AsyncExitStack() as stack:
            runtime = await stack.enter_async_context(
                open_runtime(
                    self.config, observer=self.metrics, alert=self.alerter, redactor=self.redactor
                )
            )
            self.runtime = runtime
            for name, reason in runtime.broken_channels.items():
                self.alerter("credentials", f"channel {name} cannot start: {reason}")
            listener = self._listener(runtime)
            if listener is not None:
                await stack.enter_async_context(listener)
                # Subscribers come and go with reloads: whichever are current at the end close.
                stack.push_async_callback(self._close_subscribers)
                for subscriber in self.subscribers.values():
                    await subscriber.__aenter__()
                    await self._subscribe(subscriber)
            self.scheduler = AsyncIOScheduler(event_loop=loop, timezone=self.config.tz)
            self._schedule_all()
            self.scheduler.start()
            self._delivering = asyncio.create_task(self._delivery_loop(), name="deliveries")
            self._delivering.add_done_callback(self._loop_ended)
            log.info(
                "newsbot running: %d source(s), %d channel(s); stop with Ctrl-C or SIGTERM",
                len(self.config.sources),
                len(runtime.channels),
            )
            await self.stop_event.wait()
            await self._stop()
        if self.alerter.channel is not None:
            await self.alerter.drain()
            await self.alerter.channel.close()
        log.info("newsbot stopped")
        return 0

    async def _stop(self) -> None:
        """Stop taking new work, let a send in flight finish (bounded), keep the queue."""
        log.info("stopping: finishing the post in flight, the rest stays queued")
        assert self.runtime is not None
        self.runtime.pipeline.stop()
        if self.scheduler is not None:
            # Paused, not shut down yet: shutting down cancels the polls in flight, and
            # APScheduler logs each such CancelledError as a job failure with its traceback.
            self.scheduler.pause()
        self._wake.set()
        pending = [t for t in (self._delivering, *self._polls.values()) if t and not t.done()]
        still: set[asyncio.Task[Any]] = set()
        if pending:
            _done, still = await asyncio.wait(
                pending, timeout=self.config.stop_timeout.total_seconds()
            )
            for task in still:
                task.cancel()
            await asyncio.gather(*still, return_exceptions=True)
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            if still:
                log.warning(
                    "stopped before %d task(s) finished; a post cut off in flight will be "
                    "reported as uncertain",
                    len(still),
                )

    def stop(self) -> None:
        self.stop_event.set()

    # -- scheduling --------------------------------------------------------------------------

    def _schedule_all(self) -> None:
        assert self.scheduler is not None
        # Many sources start spread over the first minute (or their interval, if shorter)
        # rather than all at once: the first round is the heaviest, every feed changed.
        names = list(self.config.sources)
        spread = 0.0
        if len(names) > SPREAD_ABOVE:
            spread = min(60.0, *(s.every.total_seconds() for s in self.config.sources.values()))
        start = datetime.now(UTC)
        for index, name in enumerate(names):
            offset = timedelta(seconds=spread * index / len(names))
            self._schedule_poll(name, first=start + offset)
        # The daemon's own jobs: one at a time each, a missed run not made up twice.
        jobs = (
            ("housekeeping", self._housekeeping, self.housekeeping_every),
            ("instances", self._instances, HEARTBEAT_EVERY),
            ("checkpoint", self._checkpoint, CHECKPOINT_EVERY),
            ("websub", self._renew_subscriptions, 60.0),
            ("watch", self._watch, self.watch_every),
        )
        for job_id, job, seconds in jobs:
            self.scheduler.add_job(
                job, IntervalTrigger(seconds=seconds), id=job_id, max_instances=1, coalesce=True
            )

    def _poll_interval(self, name: str, errors: int = 0) -> float:
        """Seconds between polls of a source that failed ``errors`` times in a row."""
        settings = self.config.sources[name]
        every = settings.every
        if isinstance(settings, FeedSourceConfig) and settings.websub:
            every = settings.websub_every
        return backoff_interval(every, errors).total_seconds()

    def _schedule_poll(self, name: str, *, first: datetime | None = None, errors: int = 0) -> None:
        assert self.scheduler is not None
        settings = self.config.sources[name]
        if isinstance(settings, WebhookSourceConfig):
            return  # pushed to us; nothing to poll
        seconds = self._poll_interval(name, errors)
        self.scheduler.add_job(
            self._poll,
            IntervalTrigger(seconds=seconds, jitter=min(seconds * 0.1, 30)),
            args=[name],
            id=f"poll:{name}",
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            next_run_time=first or datetime.now(UTC),
        )

    async def _poll(self, name: str) -> None:
        assert self.runtime is not None
        if name not in self.runtime.pipeline.sources:
            return
        keeper = self.runtime.keeper
        try:
            if keeper is not None and not await offload(keeper.may_poll, name):
                return  # another instance holds this source's lease and polls it
        except BotError as exc:
            log.error("source %s: cannot take its lease: %s", name, exc, extra={"source": name})
            return
        task = asyncio.current_task()
        if task is not None:
            self._polls[name] = task
        try:
            report = await self.runtime.pipeline.poll(name)
        except BotError as exc:
            log.error("source %s: %s", name, exc, extra={"source": name})
            return
        except asyncio.CancelledError:
            if self.runtime.pipeline.stopping:
                # Cut off by the stop (past stop_timeout): the next start polls again.
                log.info("source %s: poll cut off by the stop", name, extra={"source": name})
                return
            raise
        finally:
            self._polls.pop(name, None)
        if (
            (report.ingest is not None and report.ingest.queued)
            or (report.revised is not None and report.revised.queued)
            or report.withdrawn
        ):
            # New posts, or corrections and takedowns of published ones, to make now.
            self.wake()
        # A failing source backs off (doubling up to a cap) and recovers by itself.
        wanted = self._poll_interval(name, report.errors)
        job = self.scheduler.get_job(f"poll:{name}") if self.scheduler else None
        if job is not None and abs(job.trigger.interval.total_seconds() - wanted) > 0.5:
            self._schedule_poll(
                name, first=datetime.now(UTC) + timedelta(seconds=wanted), errors=report.errors
            )

    def wake(self) -> None:
        """Look at the queue now: something new may be due."""
        self._wake.set()

    async def _delivery_loop(self) -> None:
        """Deliver what is due, then sleep until the next delivery can go or we are woken.
        A ledger that refuses a pass is retried at the next; anything else ends the loop,
        and with it the daemon's health (see :meth:`_loop_ended`)."""
        assert self.runtime is not None
        pipeline = self.runtime.pipeline
        while not self.stop_event.is_set():
            self._wake.clear()
            try:
                report = await pipeline.deliver_due()
            except BotError as exc:
                log.error("delivery pass failed: %s", exc)
                report = None
            if self.stop_event.is_set():
                break
            sleep = MAX_DELIVERY_SLEEP
            if report is not None and report.next_wake is not None:
                sleep = min(max((report.next_wake - pipeline.clock()).total_seconds(), 0.0), sleep)
            if sleep <= 0:
                # Let the listener and the polls run between passes that find work at once.
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=sleep)

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        """A loop that must run until the stop has ended: say why, loudly, and fail health."""
        if task.cancelled():
            if not self.stop_event.is_set():
                self.loop_failure = f"the {task.get_name()} loop was cancelled"
            return
        error = task.exception()
        if error is not None:
            self.loop_failure = f"the {task.get_name()} loop died: {type(error).__name__}: {error}"
            log.error("%s", self.loop_failure, exc_info=error)
        elif not self.stop_event.is_set():
            self.loop_failure = f"the {task.get_name()} loop ended before the stop"
            log.error("%s", self.loop_failure)

    async def _instances(self) -> None:
        """Heartbeat; posts that dead instances left in flight become uncertain."""
        assert self.runtime is not None and self.runtime.keeper is not None
        try:
            report = await offload(self.runtime.keeper.tick)
        except BotError as exc:
            self._ledger_problem = f"the ledger does not answer: {exc}"
            log.error("heartbeat failed: %s", exc)
            return
        self._ledger_ok_at, self._ledger_problem = time.monotonic(), None
        if report.moved or report.returned:
            self.wake()
        if report.moved and self.alerter is not None:
            self.alerter(
                "uncertain",
                f"{report.moved} post(s) in flight at a crash of "
                f"{', '.join(report.holders)} are now uncertain (or queued again)",
            )

    async def _checkpoint(self) -> None:
        """The ledger's write-ahead log into its file, here rather than inside a commit."""
        assert self.runtime is not None
        try:
            await offload(self.runtime.ledger.checkpoint)
        except BotError as exc:
            # Not health's business: the heartbeat is the ledger's write probe, and a log not
            # copied now is copied by the next checkpoint (or SQLite's own, at its threshold).
            log.warning("ledger checkpoint failed: %s", exc)

    async def _housekeeping(self) -> None:
        assert self.runtime is not None
        ledger = self.runtime.ledger
        now = datetime.now(UTC)
        release_free_memory()
        if self.config.retention is not None:
            pruned = await offload(ledger.prune, before=now - self.config.retention)
            if pruned:
                log.info("pruned %d deliveries older than %s", pruned, self.config.retention)
        counts = await offload(ledger.queue_depth)
        self.metrics.set_queue_depth({name: counts.get(name, 0) for name in self.config.channels})
        for name, settings in self.config.channels.items():
            if isinstance(settings, XChannelConfig):
                since = month_start(now, self.config.tz)
                posts, spent = await offload(ledger.spend, name, since=since)
                self.metrics.set_x_spend(name, posts=posts, spend=spent)

    # -- health ------------------------------------------------------------------------------

    async def health(self) -> tuple[bool, str]:
        """Alive: the scheduler runs, no loop has died, and the ledger took the last
        heartbeat. It asks nothing of the ledger itself, so it answers at once however slow
        the database is (a ledger silent for three heartbeats fails it)."""
        if self.scheduler is None or not self.scheduler.running:
            return False, "the scheduler is not running"
        if self.loop_failure is not None:
            return False, self.loop_failure
        assert self.runtime is not None
        # The ledger's own verdict names the cause (cannot be written, replaced); the
        # heartbeat's failure is the fallback.
        problem = (
            ledger_health(self.runtime.ledger.health(), self._ledger_ok_at, time.monotonic())
            or self._ledger_problem
        )
        self.metrics.set_health("ledger", ok=problem is None)
        if problem is not None:
            return False, problem
        return True, "ok"

    def _listener(self, runtime: Runtime) -> Listener | None:
        if self.config.health is None:
            return None
        from bot.listener import Listener

        # The listener finds a receiver by its source's name (names are unique across kinds).
        receivers: dict[str, PushReceiver] = {}
        for name, settings in self.config.sources.items():
            if isinstance(settings, WebhookSourceConfig):
                receivers[name] = self._webhook_receiver(settings)
            elif isinstance(settings, FeedSourceConfig) and settings.websub:
                receivers[name] = self._websub_subscriber(settings)
        self.listener = Listener(
            self.config.health, health=self.health, metrics=self.metrics, receivers=receivers
        )
        return self.listener

    def _websub_subscriber(self, settings: FeedSourceConfig) -> WebSubSubscriber:
        from bot.sources.websub import WebSubSubscriber

        assert self.config.public_url is not None
        subscriber = WebSubSubscriber(settings, self._accept, public_url=self.config.public_url)
        self.subscribers[settings.name] = subscriber
        return subscriber

    def _webhook_receiver(self, settings: WebhookSourceConfig) -> PushReceiver:
        from bot.sources.webhook import WebhookReceiver

        assert self.runtime is not None
        # A push's page is fetched under its source's policy (never a file: it came in a push).
        policy = FetchPolicy.for_source(settings).without_files()
        enricher = Enricher(self.runtime.fetcher.scoped(policy), timezone=self.config.tz)
        return WebhookReceiver(
            settings,
            self._accept,
            timezone=self.config.tz,
            enrich=enricher.fill,
            withdraw=self._withdraw,
        )

    async def _withdraw(self, name: str, key: str, reason: str | None) -> bool:
        """A webhook ``delete``: a takedown of the article on every channel; false when the
        ledger keeps no such article of this source."""
        assert self.runtime is not None
        report = await self.runtime.pipeline.withdraw(name, key, reason=reason)
        if report is not None and report.queued:
            self.wake()
        return report is not None

    async def _accept(self, name: str, articles: Sequence[Article]) -> str:
        """A push (webhook, WebSub): recorded at once, and the delivery job woken for it."""
        assert self.runtime is not None
        # Pushed entries (a WebSub hub's) pass the same screen as polled ones.
        policy = FetchPolicy.for_source(self.config.sources[name])
        articles, refused = screen(articles, policy)
        for warning in refused:
            log.warning("source %s: %s", name, warning, extra={"source": name})
        report = await self.runtime.pipeline.accept(name, articles)
        if (report.ingest is not None and report.ingest.queued) or (
            report.revised is not None and report.revised.queued
        ):
            self.wake()
        return articles[0].key if articles else ""

    async def _subscribe(self, subscriber: WebSubSubscriber) -> None:
        try:
            await subscriber.subscribe()
        except BotError as exc:
            # Polling goes on as the safety net; the renewal job tries again.
            log.warning("WebSub subscription failed: %s (polling continues)", exc)

    async def _close_subscribers(self) -> None:
        while self.subscribers:
            _name, subscriber = self.subscribers.popitem()
            await subscriber.aclose()

    async def _renew_subscriptions(self) -> None:
        now = datetime.now(UTC)
        for subscriber in self.subscribers.values():
            if subscriber.renew_due(now):
                try:
                    await subscriber.renew()
                except BotError as exc:
                    log.warning("WebSub renewal failed: %s (polling continues)", exc)

    # -- reload ------------------------------------------------------------------------------

    def request_reload(self) -> None:
        log.info("SIGHUP: reloading the config and templates")
        self.reload_requested = True

    async def _watch(self) -> None:
        current = _fingerprint(self.config)
        if current != self._fingerprint or self.reload_requested:
            self.reload_requested = False
            self._fingerprint = current
            await self.reload()

    async def reload(self) -> bool:
        """Validate the new config and every template completely, as a send would compose
        them (each channel's own limits), then swap them in. An invalid change is logged and
        the running config stays in force."""
        assert self.runtime is not None
        try:
            new = load_config(self.config.path)
            renderer = build_renderer(new)
            fresh = {
                name: build_channel(settings, self.runtime.ledger)
                for name, settings in new.channels.items()
                if self.config.channels.get(name) != settings or name not in self.runtime.channels
            }
            check_channels(new, renderer, {**self.runtime.channels, **fresh})
        except ConfigError as exc:
            log.error(
                "the changed config or template was NOT loaded; still running the previous one: %s",
                exc,
            )
            return False
        await self._swap(new, renderer, fresh)
        log.info(
            "reloaded %s: %d source(s), %d channel(s)",
            new.path,
            len(new.sources),
            len(new.channels),
        )
        return True

    async def _swap(self, new: Config, renderer: Renderer, fresh: dict[str, Channel]) -> None:
        """Put the validated config in force: new and changed channels started, sources and
        push receivers (webhooks, WebSub subscriptions) rebuilt, then the pipeline switched
        over in one step."""
        assert self.runtime is not None and self.scheduler is not None
        runtime, pipeline, old = self.runtime, self.runtime.pipeline, self.config
        self.redactor.update(new.secrets())
        channels = {n: c for n, c in runtime.channels.items() if n in new.channels}
        retired = [c for n, c in runtime.channels.items() if n not in new.channels or n in fresh]
        for name, channel in fresh.items():
            channels.pop(name, None)
            try:
                await channel.start()
            except DeliveryError as exc:
                runtime.broken_channels[name] = exc.reason
                log.error("channel %s cannot start: %s", name, exc.reason, extra={"channel": name})
                continue
            runtime.broken_channels.pop(name, None)
            channels[name] = channel
        sources = {n: src for n, src in pipeline.sources.items() if n in new.sources}
        for name, settings in new.sources.items():
            if old.sources.get(name) != settings or name not in sources:
                sources[name] = build_source(settings, runtime.fetcher, new)
        for name in old.sources:
            if name not in new.sources:
                with contextlib.suppress(JobLookupError):
                    self.scheduler.remove_job(f"poll:{name}")
        pipeline.reconfigure(new, renderer=renderer, sources=sources, channels=channels)
        runtime.channels = channels
        self.config = runtime.config = new
        for channel in retired:
            await channel.close()
        await self._swap_receivers(old, new)
        for name, settings in new.sources.items():
            if old.sources.get(name) != settings:
                self._schedule_poll(name)
        self.wake()

    async def _swap_receivers(self, old: Config, new: Config) -> None:
        """A webhook or WebSub source added, removed or changed takes effect with the reload:
        its receiver is registered anew (a new WebSub subscriber subscribes at its hub)."""
        if self.listener is None:
            return
        for name, settings in old.sources.items():
            if new.sources.get(name) == settings:
                continue
            self.listener.unregister(name)
            subscriber = self.subscribers.pop(name, None)
            if subscriber is not None:
                await subscriber.aclose()
        for name, settings in new.sources.items():
            if old.sources.get(name) == settings:
                continue
            if isinstance(settings, WebhookSourceConfig):
                self.listener.register(self._webhook_receiver(settings))
            elif isinstance(settings, FeedSourceConfig) and settings.websub:
                subscriber = self._websub_subscriber(settings)
                await subscriber.__aenter__()
                self.listener.register(subscriber)
                await self._subscribe(subscriber)


MAX_DELIVERY_SLEEP = 60.0
# No heartbeat through for this long: the ledger hangs (a lock held, a server that does not
# answer) even if no operation has failed yet.
HEARTBEAT_STALE = 3 * HEARTBEAT_EVERY + 5


def ledger_health(problem: str | None, last_heartbeat: float, now: float) -> str | None:
    """The ledger's part of /healthz: its own verdict, else a heartbeat long overdue."""
    if problem is not None:
        return problem
    if now - last_heartbeat > HEARTBEAT_STALE:
        return (
            f"the ledger has taken no heartbeat for {now - last_heartbeat:.0f} s "
            "(it does not answer, or the heartbeat job is stuck)"
        )
    return None


SPREAD_ABOVE = 20  # sources; fewer start at once, so a newcomer sees posts at once


def release_free_memory() -> None:
    """Hand memory freed since the last call back to the OS. CPython keeps freed heap pages
    (a burst of feed parsing leaves hundreds of them) in the process; on glibc malloc_trim
    returns them, keeping a daemon's resident size near what it actually holds."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to trim


def _fingerprint(config: Config) -> tuple[tuple[str, float, int], ...]:
    """What the watch compares: the config file and every template, by mtime and size."""
    paths = [config.path]
    if config.templates.is_dir():
        paths.extend(sorted(p for p in config.templates.iterdir() if p.is_file()))
    found = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        found.append((str(path), stat.st_mtime, stat.st_size))
    return tuple(found)


def _alerts_channel(config: Config) -> Channel | None:
    if config.alerts is None:
        return None
    settings = TelegramChannelConfig.model_validate(
        {
            "kind": "telegram",
            "name": "alerts",
            "template": "-",
            "token": config.alerts.token.get_secret_value(),
            "chat": config.alerts.chat,
            "api_url": config.alerts.api_url,
            "link_preview": "off",
            "timeout": config.alerts.timeout,
        }
    )
    return build_channel(settings)


async def run_daemon(config: Config, *, redactor: Redactor | None = None) -> int:
    """``newsbot run``: until SIGTERM or SIGINT, then a clean stop."""
    return await Daemon(config, redactor=redactor).run()
