"""Which :class:`~bot.channels.base.Channel` class serves which kind of channel config.

What a platform can do to a published post (``can_edit``, ``default_corrections``...) is said by
its channel class; commands that only read the ledger (``correct``, ``retract``, ``history``)
need those answers without building a client with secrets. The platform's module is imported
only when a channel of its kind is asked about.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from bot.channels.base import Channel
from bot.config import (
    BlueskyChannelConfig,
    ChannelConfig,
    Config,
    ConsoleChannelConfig,
    FacebookChannelConfig,
    MastodonChannelConfig,
    TelegramChannelConfig,
    ThreadsChannelConfig,
    XChannelConfig,
)
from bot.revisions import Policies, policies_for

_CLASSES: dict[type[ChannelConfig], tuple[str, str]] = {
    ConsoleChannelConfig: ("bot.channels.console", "ConsoleChannel"),
    TelegramChannelConfig: ("bot.channels.telegram", "TelegramChannel"),
    XChannelConfig: ("bot.channels.x", "XChannel"),
    ThreadsChannelConfig: ("bot.channels.threads", "ThreadsChannel"),
    FacebookChannelConfig: ("bot.channels.facebook", "FacebookChannel"),
    BlueskyChannelConfig: ("bot.channels.bluesky", "BlueskyChannel"),
    MastodonChannelConfig: ("bot.channels.mastodon", "MastodonChannel"),
}


def channel_class(config: ChannelConfig) -> type[Channel]:
    """The class :func:`bot.wiring.build_channel` builds for ``config``."""
    try:
        module, name = _CLASSES[type(config)]
    except KeyError:
        raise TypeError(f"no adapter for channel kind {type(config).__name__}") from None
    found: type[Channel] = getattr(importlib.import_module(module), name)
    return found


def classes(
    config: Config, channels: Mapping[str, Channel] | None = None
) -> dict[str, type[Channel]]:
    """Each configured channel's class: that of ``channels[name]`` when given, else its kind's."""
    given = channels or {}
    return {
        name: type(given[name]) if name in given else channel_class(settings)
        for name, settings in config.channels.items()
    }


def policies(config: Config, channels: Mapping[str, Channel] | None = None) -> dict[str, Policies]:
    """Every configured channel's correction and takedown policies: its config's, else what
    its platform's channel class uses by default (the class of ``channels[name]`` when given:
    a test's or a caller's own channel objects)."""
    found = {}
    kinds = classes(config, channels)
    for name, settings in config.channels.items():
        cls = kinds[name]
        found[name] = policies_for(
            settings.corrections,
            settings.takedowns,
            default_corrections=cls.default_corrections,
            default_takedowns=cls.default_takedowns,
        )
    return found
