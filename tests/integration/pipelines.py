"""A pipeline over real channels and a real ledger, fed by a memory source: where the
delivery-outcome tests of every platform start."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

from bot.channels.base import Channel
from bot.compose.render import Renderer
from bot.config import Config
from bot.ledger import Ledger
from bot.pipeline import Pipeline
from bot.testing.memory import MemorySource


@contextlib.asynccontextmanager
async def started_pipeline(
    config: Config, ledger: Ledger, channels: Mapping[str, Channel]
) -> AsyncIterator[tuple[MemorySource, Pipeline]]:
    """The channels started, and a pipeline with one memory source named ``newsvision``."""
    source = MemorySource("newsvision")
    async with contextlib.AsyncExitStack() as stack:
        for channel in channels.values():
            await stack.enter_async_context(channel)
        yield (
            source,
            Pipeline(
                config,
                ledger,
                {"newsvision": source},
                dict(channels),
                Renderer(config.templates, config.tz),
                holder="test:1",
            ),
        )
