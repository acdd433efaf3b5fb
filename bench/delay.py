"""2. Pipeline delay: from the moment a feed fetch returns to the moment the platform accepted
the post (the channel's send returned with the platform's receipt), per delivery, for
``ARTICLES`` articles arriving one per poll, each to Telegram and X, pacing off.

The rounds drive the public pipeline exactly as the daemon's loop does after a poll: poll the
source, then deliver what is due. The fetch's return is timed by wrapping ``Fetcher.get`` in
this benchmark's own process. The feed, Telegram and X servers run in a separate process.

Webhooks (issue 6) are not measured yet: results hold a marked slot for them.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    Report,
    ServerProcess,
    ServerSpec,
    channel_configs,
    percentile,
    repo_root,
)

ARTICLES = 500
ENTRIES = 50
WEBHOOK_PENDING = "webhook: pending issue 6"


def run(*, smoke: bool = False) -> Report:
    report = Report("delay")
    articles = 5 if smoke else ARTICLES
    with (
        ServerProcess(ServerSpec(feeds=1, telegram=True, x=True)) as server,
        tempfile.TemporaryDirectory(prefix="newsbot-bench-") as tmp,
    ):
        assert server.urls.feed
        result = rounds(server, articles, tmp)
    delays = result["delays_ms"]
    report.details.update({k: v for k, v in result.items() if k != "delays_ms"})
    report.details["webhook"] = WEBHOOK_PENDING
    p95 = percentile(delays, 95)
    for p in (50, 95, 99):
        value = percentile(delays, p)
        report.add(
            f"feed fetch returned -> platform accepted, p{p}",
            value,
            "ms",
            goal="< 100 ms" if p == 95 else "",
            met=(p95 < 100) if p == 95 and not smoke else None,
            note=f"{len(delays)} deliveries ({articles} articles x Telegram + X)"
            if p == 50
            else "",
        )
    report.add(
        "webhook call -> platform accepted, p95",
        None,
        "ms",
        goal="< 1 s",
        note=WEBHOOK_PENDING,
    )
    return report


def _feed(generation: int) -> str:
    """The feed after ``generation`` new articles: one new entry at the top each time."""
    from datetime import datetime

    from bot.testing.feed_server import TAIPEI, rss, sample_items

    newest = datetime(2025, 9, 16, 18, 0, tzinfo=TAIPEI) + timedelta(minutes=20 * generation)
    return rss(sample_items(ENTRIES, newest=newest, start_id=300_000 + generation))


def rounds(server: ServerProcess, articles: int, folder: str) -> dict[str, Any]:
    """``articles`` rounds of: publish one new entry, poll, deliver; the delays in ms."""
    from bot.config import Config
    from bot.daemon import open_runtime
    from bot.sources import fetch

    assert server.urls.feed
    feed_url = server.urls.feed + "/delay.xml"
    server.call("publish", "/delay.xml", _feed(0))
    config = Config.model_validate(
        {
            "path": Path(folder) / "newsbot.yaml",
            "database": f"sqlite:///{Path(folder) / 'ledger.db'}",
            "templates": Path(repo_root()) / "templates",
            "sources": {"news": {"kind": "feed", "url": feed_url, "max_age": "off", "backlog": 0}},
            "channels": channel_configs(server.urls),
        }
    )
    returned: list[float] = []
    original = fetch.Fetcher.get

    async def timed_get(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = await original(self, *args, **kwargs)
        returned.append(time.perf_counter())
        return result

    delays: list[float] = []
    poll_ms: list[float] = []

    async def main() -> None:
        async with open_runtime(config) as runtime:
            if runtime.broken_channels:
                raise RuntimeError(f"channels did not start: {runtime.broken_channels}")
            pipeline = runtime.pipeline
            accepted: list[float] = []
            for channel in runtime.channels.values():
                _time_sends(channel, accepted)
            await pipeline.poll("news")  # first sight: everything there is marked seen
            await pipeline.deliver_due()
            for generation in range(1, articles + 1):
                server.call("publish", "/delay.xml", _feed(generation))
                returned.clear()
                accepted.clear()
                await pipeline.poll("news")
                polled = time.perf_counter()
                report = await pipeline.deliver_due()
                if report.sent != 2 or len(returned) != 1:
                    raise RuntimeError(
                        f"round {generation}: sent {report.sent} posts, fetched {len(returned)}"
                    )
                poll_ms.append((polled - returned[0]) * 1000)
                delays.extend((moment - returned[0]) * 1000 for moment in accepted)

    fetch.Fetcher.get = timed_get  # type: ignore[method-assign]
    try:
        asyncio.run(main())
    finally:
        fetch.Fetcher.get = original  # type: ignore[method-assign]
    return {
        "delays_ms": delays,
        "parse_and_ingest_ms_p50": percentile(poll_ms, 50),
        "parse_and_ingest_ms_p95": percentile(poll_ms, 95),
    }


def _time_sends(channel: Any, accepted: list[float]) -> None:
    """Record when each send returns (the platform's acceptance, as the client learns it)."""
    send = channel.send

    async def timed(post: Any) -> Any:
        receipt = await send(post)
        accepted.append(time.perf_counter())
        return receipt

    channel.send = timed
