"""3. Delivery throughput: a queue of due deliveries drained through all six kinds of channel,
built by ``bot.wiring`` as `newsbot run` builds them (python-telegram-bot, tweepy, aiohttp on the
Graph API for Threads and Facebook, the atproto SDK, Mastodon.py), to the local fakes of the six
platforms in a separate process.

Nothing paces the sends (``rate: off``; the fakes' own windows are lifted in the server
process). Channels drain in parallel, so the total is bounded by the slowest; each channel's own
rate is its deliveries over the time from the start of the drain to its last ``sent_at``. Side
by side, the ceiling: the same channels' ``send`` called in a loop with ready-made posts, no
ledger and no composing, all six at once.
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

ARTICLES = 1_000  # six deliveries each, one per channel
CEILING_POSTS = 500  # per channel
NETWORKS = ("telegram", "x", "threads", "facebook", "bluesky", "mastodon")
SPEC = ServerSpec(**dict.fromkeys(NETWORKS, True))


def run(*, smoke: bool = False) -> Report:
    report = Report("delivery")
    articles = 10 if smoke else ARTICLES
    ceiling = 10 if smoke else CEILING_POSTS
    with (
        ServerProcess(SPEC) as server,
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
        "pipeline drain (claim, compose, send, record), six channels: deliveries/s",
        rate,
        "/s",
        baseline=result["ceiling_rate"],
        ratio=rate / result["ceiling_rate"],
        goal=">= 200/s",
        met=None if smoke else rate >= 200,
        note=(
            f"{n} deliveries, all six channels in parallel; baseline = the channels' send() "
            f"alone in a loop ({result['ceiling_rate']:.0f}/s)"
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
        server_cpu / max(1, sum(counts[name] for name in NETWORKS)) * 1000,
        "ms",
        note="the fakes' process (not counted above), over drain and ceiling runs",
    )
    for name in NETWORKS:
        per = drained["channels"][name]
        report.add(
            f"{name}: pipeline deliveries/s, beside the other five",
            per["rate"],
            "/s",
            baseline=result[f"ceiling_{name}"]["rate"],
            ratio=per["rate"] / result[f"ceiling_{name}"]["rate"],
            note=f"{per['sent']} sent; baseline = its send() alone, beside the other five",
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
    from bot.channels.base import MemoryInFlight
    from bot.channels.threads import ThreadsChannel
    from bot.wiring import open_runtime

    config = _config(urls, folder)
    items = bench_articles(articles)

    async def main() -> dict[str, Any]:
        async with open_runtime(config) as runtime:
            if runtime.broken_channels:
                raise RuntimeError(f"channels did not start: {runtime.broken_channels}")
            now = datetime.now(UTC)
            runtime.ledger.ingest("bench", items, config.routes("bench"), now=now)
            started = datetime.now(UTC)
            with measured() as span:
                report = await runtime.pipeline.deliver_due(batch=50)
            deliveries = len(items) * len(config.routes("bench"))
            channels = {}
            for name in NETWORKS:
                rows = runtime.ledger.deliveries(channel=name, limit=len(items) + 10)
                sent = [r.sent_at for r in rows if r.sent_at is not None]
                last = max(sent, default=started)
                channels[name] = {
                    "sent": len(sent),
                    "rate": len(sent) / max((last - started).total_seconds(), 1e-6),
                }
            out: dict[str, Any] = {
                "drain": {
                    "wall": span.wall,
                    "cpu": span.cpu,
                    "deliveries": deliveries,
                    "sent": report.sent,
                    "failed": report.failed,
                    "peak_rss_mb": span.peak_rss_mb,
                    "channels": channels,
                }
            }
            # The ceiling: each channel's send() in a loop with ready-made posts, all at once.
            extra = bench_articles(ceiling, start=articles + 10)
            posts = {
                name: [
                    runtime.pipeline.compose(
                        article=item.article, excerpt=item.excerpt, source="bench", channel=name
                    )
                    for item in extra
                ]
                for name in NETWORKS
            }

            async def loop(name: str) -> tuple[int, float]:
                channel = runtime.channels[name]
                if isinstance(channel, ThreadsChannel):
                    # No delivery row is being sent here to keep the container's note on.
                    channel.in_flight = MemoryInFlight()
                start = time.perf_counter()
                for post in posts[name]:
                    await channel.send(post)
                return len(posts[name]), time.perf_counter() - start

            with measured() as both:
                results = await asyncio.gather(*(loop(name) for name in NETWORKS))
            total = sum(sent for sent, _ in results)
            for name, (sent, wall) in zip(NETWORKS, results, strict=True):
                out[f"ceiling_{name}"] = {"rate": sent / wall}
            out["ceiling_rate"] = total / both.wall
            out["ceiling_cpu_ms"] = both.cpu / total * 1000
        return out

    return asyncio.run(main())
