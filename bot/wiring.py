"""The composition root: the one place that builds newsbot's parts from a config.

config → ledger → sources → channels → renderer → pipeline, for ``run``, ``once``,
``preview``, ``check`` and a reload alike. Everything below receives its parts ready-made;
the daemon only schedules and supervises what this module built. :func:`compose` is the one
way a post is made from an article, used at send time, by ``preview``, by ``check`` and when a
reload is validated, so that all four agree on the limit a post must fit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from bot.channels import kinds
from bot.channels.base import Channel
from bot.compose.post import compose
from bot.compose.render import Renderer
from bot.config import (
    BlueskyChannelConfig,
    ChannelConfig,
    Config,
    ConsoleChannelConfig,
    FacebookChannelConfig,
    FeedSourceConfig,
    HtmlSourceConfig,
    MastodonChannelConfig,
    SitemapSourceConfig,
    SourceConfig,
    TelegramChannelConfig,
    ThreadsChannelConfig,
    WebhookSourceConfig,
    XChannelConfig,
)
from bot.errors import ConfigError, DeliveryError, PermanentError
from bot.instances import InstanceKeeper
from bot.ledger import Ledger
from bot.model import Correction, Post
from bot.pipeline import Observer, Pipeline, utc_now
from bot.redact import Redactor
from bot.revisions import policy_refusal
from bot.sources.base import PollResult, Source, SourceState
from bot.sources.enrich import Enricher
from bot.sources.fetch import Fetcher
from bot.sources.policy import FetchPolicy, screened

log = logging.getLogger("newsbot.wiring")


def holder_id() -> str:
    """Who claims deliveries: host and process, so a dead holder can be recognised."""
    return f"{socket.gethostname()}:{os.getpid()}"


def build_channel(config: ChannelConfig, ledger: Ledger | None = None) -> Channel:
    """The adapter for one configured channel. Platform libraries are imported only when a
    channel of their kind is configured, so the console default starts fast. ``ledger`` keeps
    the in-flight notes of channels that publish in two steps (Threads)."""
    if isinstance(config, ConsoleChannelConfig):
        from bot.channels.console import ConsoleChannel

        return ConsoleChannel(config)
    if isinstance(config, TelegramChannelConfig):
        from bot.channels.telegram import TelegramChannel

        return TelegramChannel.from_config(config)
    if isinstance(config, XChannelConfig):
        from bot.channels.x import XChannel

        return XChannel.from_config(config)
    if isinstance(config, ThreadsChannelConfig):
        from bot.channels.threads import ThreadsChannel
        from bot.ledger import LedgerInFlight

        return ThreadsChannel.from_config(config, LedgerInFlight(ledger) if ledger else None)
    if isinstance(config, FacebookChannelConfig):
        from bot.channels.facebook import FacebookChannel

        return FacebookChannel.from_config(config)
    if isinstance(config, BlueskyChannelConfig):
        from bot.channels.bluesky import BlueskyChannel

        return BlueskyChannel.from_config(config)
    if isinstance(config, MastodonChannelConfig):
        from bot.channels.mastodon import MastodonChannel

        return MastodonChannel.from_config(config)
    raise TypeError(f"no adapter for channel kind {type(config).__name__}")


def build_source(config: SourceConfig, fetcher: Fetcher, settings: Config) -> Source:
    """The adapter for one configured source (wrapped to enrich articles when asked), fetching
    under the source's own policy, and whose articles with a link it may not post are dropped."""
    source: Source
    policy = FetchPolicy.for_source(config)
    fetcher = fetcher.scoped(policy)
    if isinstance(config, FeedSourceConfig):
        from bot.sources.feed import FeedSource

        source = FeedSource(config, fetcher)
    elif isinstance(config, HtmlSourceConfig):
        from bot.sources.html import HtmlSource

        source = HtmlSource(config, fetcher, timezone=settings.tz)
    elif isinstance(config, SitemapSourceConfig):
        from bot.sources.sitemap import SitemapSource

        source = SitemapSource(config, fetcher, timezone=settings.tz)
    elif isinstance(config, WebhookSourceConfig):
        source = PushedOnly(config.name)
    else:
        raise TypeError(f"no adapter for source kind {type(config).__name__}")
    if config.enrich and not isinstance(config, WebhookSourceConfig):
        from bot.sources.enrich import enriching

        # Screened before (a page is never fetched for a link that may not be posted) and
        # after (the page may have given a canonical URL or an image that may not be).
        # Article pages come from content: never a file, whatever the source's own url is.
        pages = fetcher.scoped(policy.without_files())
        source = enriching(screened(source, policy), Enricher(pages, timezone=settings.tz))
    return screened(source, policy)


def build_renderer(config: Config) -> Renderer:
    return Renderer(config.templates, config.tz, locale=config.locale, slack=config.excerpt_slack)


class PushedOnly(Source):
    """A source whose articles only arrive by push (a CMS webhook): polling yields nothing."""

    async def poll(self, state: SourceState) -> PollResult:
        return PollResult(state=state, not_modified=True)


@dataclass
class Runtime:
    config: Config
    ledger: Ledger
    pipeline: Pipeline
    channels: dict[str, Channel]
    broken_channels: dict[str, str]
    fetcher: Fetcher
    keeper: InstanceKeeper | None = None  # heartbeat, source leases, crash recovery


@contextlib.asynccontextmanager
async def open_runtime(
    config: Config,
    *,
    channels: dict[str, Channel] | None = None,
    clock: Callable[[], datetime] | None = None,
    observer: Observer | None = None,
    alert: Callable[[str, str], None] | None = None,
    redactor: Redactor | None = None,
) -> AsyncIterator[Runtime]:
    """Everything a run needs, started, and closed again on the way out. ``redactor`` is
    the log's, so the ledger and the pipeline mask exactly what the log masks."""
    renderer = build_renderer(config)
    for channel_config in config.channels.values():
        renderer.check(channel_config.template)
    redactor = redactor or Redactor(config.secrets())
    ledger = Ledger.open(config.database, redactor=redactor)
    built = (
        channels
        if channels is not None
        else {name: build_channel(cfg, ledger) for name, cfg in config.channels.items()}
    )
    started: dict[str, Channel] = {}
    broken: dict[str, str] = {}
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(ledger.close)
        # A policy the platform cannot follow is the config's mistake: said before any work.
        check_policies(config, renderer, built)
        fetcher = await stack.enter_async_context(Fetcher())
        sources = {name: build_source(cfg, fetcher, config) for name, cfg in config.sources.items()}
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
        pipeline = Pipeline(
            config,
            ledger,
            sources,
            started,
            renderer,
            holder=holder,
            clock=clock or utc_now,
            observer=observer,
            alert=alert,
            redactor=redactor,
        )
        # Posts a dead process left in flight become uncertain before anything is sent.
        keeper = InstanceKeeper(ledger, holder, lambda: pipeline.config)
        keeper.start()
        stack.callback(keeper.stop)
        yield Runtime(config, ledger, pipeline, started, broken, fetcher, keeper)


def sample_post(renderer: Renderer, settings: ChannelConfig, channel: Channel) -> Post:
    """The channel's template compiled and the sample article composed through it exactly as
    a send would (the channel's own limit); raises what a send's composing would."""
    from bot.compose.excerpt import build_excerpt
    from bot.compose.sample import SAMPLE_ARTICLE, SAMPLE_SOURCE

    renderer.check(settings.template)
    return compose(
        renderer,
        settings,
        channel,
        article=SAMPLE_ARTICLE,
        excerpt=build_excerpt(SAMPLE_ARTICLE.summary_html),
        source=SAMPLE_SOURCE,
    )


def check_channels(
    config: Config, renderer: Renderer, channels: Mapping[str, Channel]
) -> dict[str, Post]:
    """:func:`sample_post` for every channel, and :func:`check_policies`; raises ConfigError
    naming the one at fault."""
    posts = {}
    for name, settings in config.channels.items():
        try:
            posts[name] = sample_post(renderer, settings, channels[name])
        except PermanentError as exc:
            raise ConfigError(f"channel {name}: {exc.reason}") from None
    check_policies(config, renderer, channels)
    return posts


def check_policies(config: Config, renderer: Renderer, channels: Mapping[str, Channel]) -> None:
    """Each channel's correction and takedown policies are ones its platform can follow, and a
    correction posted as a reply has a template that renders the sample article within the
    channel's limit; else ConfigError at the key to change."""
    chosen = kinds.policies(config, channels)
    classes = kinds.classes(config, channels)
    for name, settings in config.channels.items():
        cls = classes[name]
        refusal = policy_refusal(
            chosen[name],
            can_edit=cls.can_edit,
            can_reply=cls.can_reply,
            can_delete=cls.can_delete,
            can_repost=cls.can_repost,
            platform=f"channel {name!r} ({getattr(settings, 'kind', '?')})",
        )
        if refusal is not None:
            key, why = refusal
            where = config.where("channels", name, key)
            raise ConfigError(why, where=where, key=f"channels.{name}.{key}")
        wanted = chosen[name].corrections is Correction.REPLY or settings.correction_template
        if not wanted or name not in channels:
            continue
        template = settings.correction_template_name
        reply = settings.model_copy(update={"template": template})
        try:
            sample_post(renderer, reply, channels[name])
        except (PermanentError, ConfigError) as exc:
            why = exc.reason if isinstance(exc, PermanentError) else str(exc)
            raise ConfigError(
                f"the correction template {template} cannot be used: {why}",
                where=config.where("channels", name, "correction_template"),
                key=f"channels.{name}.correction_template",
            ) from None
