"""2. Pipeline delay: from the moment a feed fetch returns to the moment the platform accepted
the post (the channel's send returned with the platform's receipt), per delivery, for
``ARTICLES`` articles arriving one per poll, each to Telegram and X, pacing off.

The rounds drive the public pipeline exactly as the daemon's loop does after a poll: poll the
source, then deliver what is due. The fetch's return is timed by wrapping ``Fetcher.get`` in
this benchmark's own process. The feed, Telegram and X servers run in a separate process.

The webhook figure: ``ARTICLES`` signed CMS webhook calls, one after another, to the real
listener and webhook receiver in this process, which record the article and wake delivery as
the daemon does; from the moment the POST starts until both platforms accepted the post.
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
WEBHOOK_SECRET = "bench-webhook-secret"


def run(*, smoke: bool = False) -> Report:
    report = Report("delay")
    articles = 5 if smoke else ARTICLES
    with (
        ServerProcess(ServerSpec(feeds=1, telegram=True, x=True)) as server,
        tempfile.TemporaryDirectory(prefix="newsbot-bench-") as tmp,
    ):
        assert server.urls.feed
        result = rounds(server, articles, tmp)
        pushed = webhook_rounds(server, articles, tmp)
    delays = result["delays_ms"]
    report.details.update({k: v for k, v in result.items() if k != "delays_ms"})
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
    pushed_p95 = percentile(pushed, 95)
    for p in (50, 95, 99):
        report.add(
            f"webhook call -> both platforms accepted, p{p}",
            percentile(pushed, p),
            "ms",
            goal="< 1 s" if p == 95 else "",
            met=(pushed_p95 < 1000) if p == 95 and not smoke else None,
            note=f"{len(pushed)} signed calls, each posted to Telegram and X" if p == 50 else "",
        )
    return report


def webhook_rounds(server: ServerProcess, articles: int, folder: str) -> list[float]:
    """``articles`` signed webhook calls; per call, ms from the POST to both acceptances."""
    import json

    import aiohttp

    from bot.config import Config, WebhookSourceConfig
    from bot.listener import Listener
    from bot.metrics import Metrics
    from bot.model import Article
    from bot.sources.webhook import WebhookReceiver, signed_headers
    from bot.wiring import open_runtime

    config = Config.model_validate(
        {
            "path": Path(folder) / "webhook.yaml",
            "database": f"sqlite:///{Path(folder) / 'webhook.db'}",
            "templates": Path(repo_root()) / "templates",
            "health": {"listen": "127.0.0.1:0"},
            "sources": {
                "cms": {
                    "kind": "webhook",
                    "name": "cms",
                    "secret": WEBHOOK_SECRET,
                    "max_age": "off",
                }
            },
            "channels": channel_configs(server.urls),
        }
    )
    source, listen = config.sources["cms"], config.health
    assert isinstance(source, WebhookSourceConfig) and listen is not None
    delays: list[float] = []

    async def main() -> None:
        async with open_runtime(config) as runtime:
            pipeline = runtime.pipeline
            accepted: list[float] = []
            both = asyncio.Event()
            for channel in runtime.channels.values():
                _time_sends(channel, accepted, both, expect=2)
            deliveries: set[asyncio.Task[Any]] = set()

            async def accept(name: str, pushed: Any) -> str:
                # What the daemon does: record at once, wake the delivery loop.
                articles_: list[Article] = list(pushed)
                await pipeline.accept(name, articles_)
                task = asyncio.create_task(pipeline.deliver_due())
                deliveries.add(task)
                task.add_done_callback(deliveries.discard)
                return articles_[0].key

            async def healthy() -> tuple[bool, str]:
                return True, "ok"

            receiver = WebhookReceiver(source, accept, timezone=config.tz)
            async with (
                Listener(
                    listen, health=healthy, metrics=Metrics(), receivers={"cms": receiver}
                ) as listener,
                aiohttp.ClientSession() as http,
            ):
                for n in range(articles):
                    body = json.dumps(
                        {
                            "id": f"cms-{n}",
                            "url": f"https://news.example.tw/article/{900_000 + n}",
                            "title": f"快訊：高雄港灣城市論壇今日登場（第{n}則）",
                            "summary": "<p>高雄與格丁尼亞共同舉辦港灣城市論壇，聚焦海洋經濟。</p>",
                            "categories": ["快訊"],
                        },
                        ensure_ascii=False,
                    ).encode()
                    accepted.clear()
                    both.clear()
                    started = time.perf_counter()
                    async with http.post(
                        f"{listener.url}/hooks/cms",
                        data=body,
                        headers=signed_headers(WEBHOOK_SECRET, body),
                    ) as answer:
                        if answer.status != 202:
                            raise RuntimeError(f"webhook {n}: HTTP {answer.status}")
                    async with asyncio.timeout(10):
                        await both.wait()
                    delays.append((max(accepted) - started) * 1000)
            await asyncio.gather(*deliveries)

    asyncio.run(main())
    return delays


def _feed(generation: int) -> str:
    """The feed after ``generation`` new articles: one new entry at the top each time."""
    from datetime import datetime

    from bot.testing.feed_server import TAIPEI, rss, sample_items

    newest = datetime(2025, 9, 16, 18, 0, tzinfo=TAIPEI) + timedelta(minutes=20 * generation)
    return rss(sample_items(ENTRIES, newest=newest, start_id=300_000 + generation))


def rounds(server: ServerProcess, articles: int, folder: str) -> dict[str, Any]:
    """``articles`` rounds of: publish one new entry, poll, deliver; the delays in ms."""
    from bot.config import Config
    from bot.sources import fetch
    from bot.wiring import open_runtime

    assert server.urls.feed
    feed_url = server.urls.feed + "/delay.xml"
    server.call("publish", "/delay.xml", _feed(0))
    config = Config.model_validate(
        {
            "path": Path(folder) / "newsbot.yaml",
            "database": f"sqlite:///{Path(folder) / 'ledger.db'}",
            "templates": Path(repo_root()) / "templates",
            "sources": {
                "news": {
                    "kind": "feed",
                    "url": feed_url,
                    "max_age": "off",
                    "backlog": 0,
                    "allow_private": ["127.0.0.1"],
                }
            },
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


def _time_sends(
    channel: Any, accepted: list[float], done: asyncio.Event | None = None, expect: int = 0
) -> None:
    """Record when each send returns (the platform's acceptance, as the client learns it);
    ``done`` is set once ``expect`` sends have returned."""
    send = channel.send

    async def timed(post: Any) -> Any:
        receipt = await send(post)
        accepted.append(time.perf_counter())
        if done is not None and len(accepted) >= expect:
            done.set()
        return receipt

    channel.send = timed
