"""3. Delivery throughput: a queue of due deliveries drained through the real python-telegram-bot
and tweepy channels (built by ``TelegramChannel.from_config`` / ``XChannel.from_config``, as
`newsbot run` builds them) to the local Telegram and X servers, in a separate process.

Nothing paces the sends (newsbot has no pacing of its own yet; the fake X's 15-minute post window
is lifted in the server process). Side by side, the ceiling: the same channels' ``send`` called
in a loop with ready-made posts, no ledger and no composing.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    Report,
    ServerProcess,
    ServerSpec,
    ServerURLs,
    bench_articles,
    channel_configs,
    measured,
    repo_root,
    run_in_process,
)

ARTICLES = 1_000  # two deliveries each: Telegram and X
CEILING_POSTS = 500  # per channel


def run(*, smoke: bool = False) -> Report:
    report = Report("delivery")
    articles = 10 if smoke else ARTICLES
    ceiling = 10 if smoke else CEILING_POSTS
    with (
        ServerProcess(ServerSpec(telegram=True, x=True)) as server,
        tempfile.TemporaryDirectory(prefix="newsbot-bench-") as tmp,
    ):
        server_cpu0 = server.call("cpu")
        result = run_in_process(drain, server.urls, articles, ceiling, tmp)
        server_cpu = server.call("cpu") - server_cpu0
        counts = server.call("counts")
    report.details.update(result)
    report.details["server_counts"] = counts
    report.details["server_cpu_s"] = server_cpu
    drained = result["drain"]
    n = drained["deliveries"]
    rate = n / drained["wall"]
    report.add(
        "pipeline drain (claim, compose, send, record): deliveries/s",
        rate,
        "/s",
        baseline=result["ceiling_rate"],
        ratio=rate / result["ceiling_rate"],
        goal=">= 200/s",
        met=None if smoke else rate >= 200,
        note=(
            f"{n} deliveries, Telegram + X in parallel; baseline = the channels' send() alone "
            f"in a loop ({result['ceiling_rate']:.0f}/s)"
        ),
    )
    report.add(
        "pipeline drain: client CPU per delivery",
        drained["cpu"] / n * 1000,
        "ms",
        baseline=result["ceiling_cpu_ms"],
        ratio=(drained["cpu"] / n * 1000) / result["ceiling_cpu_ms"],
        note="baseline = CPU per send() alone",
    )
    report.add(
        "pipeline drain: servers' CPU per delivery",
        server_cpu / max(1, counts["telegram"] + counts["x"]) * 1000,
        "ms",
        note="the fakes' process (not counted above), over drain and ceiling runs",
    )
    for name in ("telegram", "x"):
        report.add(
            f"{name} send() alone, beside the other: posts/s",
            result[f"ceiling_{name}"]["rate"],
            "/s",
        )
    if drained["sent"] != n:
        raise RuntimeError(f"drained {drained['sent']} of {n} deliveries as sent")
    return report


def _config(urls: ServerURLs, folder: str) -> Any:
    from bot.config import Config

    return Config.model_validate(
        {
            "path": Path(folder) / "newsbot.yaml",
            "database": f"sqlite:///{Path(folder) / 'ledger.db'}",
            "templates": Path(repo_root()) / "templates",
            "sources": {
                "bench": {"kind": "feed", "url": f"file://{folder}/none.xml", "max_age": "off"}
            },
            "channels": channel_configs(urls),
        }
    )


def drain(urls: ServerURLs, articles: int, ceiling: int, folder: str) -> dict[str, Any]:
    from bot.wiring import open_runtime

    config = _config(urls, folder)
    items = bench_articles(articles)

    async def main() -> dict[str, Any]:
        async with open_runtime(config) as runtime:
            if runtime.broken_channels:
                raise RuntimeError(f"channels did not start: {runtime.broken_channels}")
            now = datetime.now(UTC)
            runtime.ledger.ingest("bench", items, config.routes("bench"), now=now)
            with measured() as span:
                report = await runtime.pipeline.deliver_due(batch=50)
            deliveries = len(items) * len(config.routes("bench"))
            out: dict[str, Any] = {
                "drain": {
                    "wall": span.wall,
                    "cpu": span.cpu,
                    "deliveries": deliveries,
                    "sent": report.sent,
                    "failed": report.failed,
                    "peak_rss_mb": span.peak_rss_mb,
                }
            }
            # The ceiling: each channel's send() in a loop with ready-made posts, both at once.
            extra = bench_articles(ceiling, start=articles + 10)
            posts = {
                name: [
                    runtime.pipeline.compose(
                        article=item.article, excerpt=item.excerpt, source="bench", channel=name
                    )
                    for item in extra
                ]
                for name in ("telegram", "x")
            }

            async def loop(name: str) -> tuple[int, float]:
                channel = runtime.channels[name]
                start = time.perf_counter()
                for post in posts[name]:
                    await channel.send(post)
                return len(posts[name]), time.perf_counter() - start

            with measured() as both:
                results = await asyncio.gather(loop("telegram"), loop("x"))
            total = sum(sent for sent, _ in results)
            for name, (sent, wall) in zip(("telegram", "x"), results, strict=True):
                out[f"ceiling_{name}"] = {"rate": sent / wall}
            out["ceiling_rate"] = total / both.wall
            out["ceiling_cpu_ms"] = both.cpu / total * 1000
        return out

    return asyncio.run(main())
