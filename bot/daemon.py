"""Building the adapters from the config, and running them: once, or until told to stop.

This is the one place (with ``cli.py``) where sources, channels, the fetcher, the renderer and
the ledger are constructed; everything below receives them ready-made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.channels.base import Channel
from bot.compose.render import Renderer
from bot.config import (
    ChannelConfig,
    Config,
    ConsoleChannelConfig,
    FeedSourceConfig,
    TelegramChannelConfig,
    XChannelConfig,
)
from bot.errors import BotError, DeliveryError
from bot.ledger import Ledger
from bot.pipeline import PassReport, Pipeline, utc_now
from bot.sources.base import Source
from bot.sources.fetch import Fetcher

log = logging.getLogger("newsbot.daemon")


def holder_id() -> str:
    """Who claims deliveries: host and process, so a dead holder can be recognised."""
    return f"{socket.gethostname()}:{os.getpid()}"


def build_channel(config: ChannelConfig) -> Channel:
    """The adapter for one configured channel. Platform libraries are imported only when a
    channel of their kind is configured, so the console default starts fast."""
    if isinstance(config, ConsoleChannelConfig):
        from bot.channels.console import ConsoleChannel

        return ConsoleChannel(config)
    if isinstance(config, TelegramChannelConfig):
        from bot.channels.telegram import TelegramChannel

        return TelegramChannel.from_config(config)
    if isinstance(config, XChannelConfig):
        from bot.channels.x import XChannel

        return XChannel.from_config(config)
    raise TypeError(f"no adapter for channel kind {type(config).__name__}")


def build_source(config: FeedSourceConfig, fetcher: Fetcher) -> Source:
    from bot.sources.feed import FeedSource

    return FeedSource(config, fetcher)


def build_renderer(config: Config) -> Renderer:
    return Renderer(config.templates, config.tz)


@dataclass
class Runtime:
    config: Config
    ledger: Ledger
    pipeline: Pipeline
    channels: dict[str, Channel]
    broken_channels: dict[str, str]


@contextlib.asynccontextmanager
async def open_runtime(
    config: Config,
    *,
    channels: dict[str, Channel] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> AsyncIterator[Runtime]:
    """Everything a run needs, started, and closed again on the way out."""
    renderer = build_renderer(config)
    for channel_config in config.channels.values():
        renderer.check(channel_config.template)
    ledger = Ledger.open(config.database)
    built = (
        channels
        if channels is not None
        else {name: build_channel(cfg) for name, cfg in config.channels.items()}
    )
    started: dict[str, Channel] = {}
    broken: dict[str, str] = {}
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(ledger.close)
        fetcher = await stack.enter_async_context(Fetcher())
        sources = {name: build_source(cfg, fetcher) for name, cfg in config.sources.items()}
        for source in sources.values():
            await stack.enter_async_context(source)
        for name, channel in built.items():
            try:
                await stack.enter_async_context(channel)
            except DeliveryError as exc:
                # A channel that cannot start keeps its deliveries queued; the others go on.
                broken[name] = exc.reason
                log.error(
                    "channel %s cannot start: %s (its posts stay queued)",
                    name,
                    exc.reason,
                    extra={"channel": name},
                )
                continue
            started[name] = channel
        holder = holder_id()
        recover_in_flight(ledger, now=datetime.now(UTC))
        pipeline = Pipeline(
            config, ledger, sources, started, renderer, holder=holder, clock=clock or utc_now
        )
        yield Runtime(config, ledger, pipeline, started, broken)


def recover_in_flight(ledger: Ledger, *, now: datetime) -> int:
    """Deliveries left ``sending`` by a process of this host that is gone become ``uncertain``.

    A post that was in flight may have reached the platform: resending it blindly could post
    it twice, so a person decides (``newsbot retry --uncertain``).
    """
    here = socket.gethostname()
    moved = 0
    for holder in ledger.in_flight_holders():
        host, _, pid = holder.rpartition(":")
        if host == here and pid.isdigit() and not _alive(int(pid)):
            moved += ledger.mark_in_flight_uncertain(now=now, holder=holder)
    if moved:
        log.warning(
            "%d post(s) were in flight when newsbot last stopped and are now 'uncertain': "
            "check the channel, then run `newsbot retry --uncertain`",
            moved,
        )
    return moved


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def run_once(runtime: Runtime) -> PassReport:
    """One poll of every source and one pass over due deliveries."""
    await runtime.pipeline.poll_all()
    return await runtime.pipeline.deliver_due()


async def run_forever(runtime: Runtime, stop: asyncio.Event, *, tick: float = 1.0) -> None:
    """Poll each source at its own interval and deliver what falls due, until ``stop``."""
    pipeline = runtime.pipeline
    loop = asyncio.get_running_loop()
    next_poll = dict.fromkeys(runtime.config.sources, loop.time())
    polling: dict[str, asyncio.Task[object]] = {}
    while not stop.is_set():
        now = loop.time()
        for name, due in next_poll.items():
            if due <= now and name not in polling:
                next_poll[name] = now + runtime.config.sources[name].every.total_seconds()
                polling[name] = asyncio.create_task(pipeline.poll(name))
        if polling:
            done = [name for name, task in polling.items() if task.done()]
            for name in done:
                polling.pop(name).result()
        try:
            await pipeline.deliver_due()
        except BotError as exc:
            log.error("delivery pass failed: %s", exc)
        if polling and not stop.is_set():
            await asyncio.wait(list(polling.values()), timeout=tick)
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=tick)
    for task in polling.values():
        task.cancel()
    await asyncio.gather(*polling.values(), return_exceptions=True)


async def run_daemon(config: Config) -> int:
    """``newsbot run``: until SIGTERM or SIGINT, then a clean stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    async with open_runtime(config) as runtime:
        log.info(
            "newsbot running: %d source(s), %d channel(s); stop with Ctrl-C or SIGTERM",
            len(config.sources),
            len(runtime.channels),
        )
        await run_forever(runtime, stop)
    log.info("newsbot stopped")
    return 0
