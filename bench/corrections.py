"""Correction throughput: a burst of recorded corrections applied to published posts through
the pipeline (claim, compose from the current article, mark in flight, edit, judge, record in
one transaction) on a SQLite ledger, to an in-memory Telegram channel, so the figure is
newsbot's own cost per correction with no network in it.

Side by side, the baseline: the same pipeline posting the same number of articles (claim,
compose, mark in flight, send, record) to the same channel: an edit should cost about a post.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import Report, bench_articles, measured, repo_root

ARTICLES = 1_000


def run(*, smoke: bool = False) -> Report:
    report = Report("corrections")
    articles = 10 if smoke else ARTICLES
    with tempfile.TemporaryDirectory(prefix="newsbot-bench-") as tmp:
        result = asyncio.run(_measure(articles, Path(tmp)))
    report.details.update(result)
    posts, edits = result["posts"], result["edits"]
    post_rate = posts["count"] / posts["wall"]
    edit_rate = edits["count"] / edits["wall"]
    report.add(
        "corrections applied (claim, compose, in flight, edit, record): actions/s",
        edit_rate,
        "/s",
        baseline=post_rate,
        ratio=edit_rate / post_rate,
        note=(
            f"{edits['count']} edits to a memory Telegram channel, SQLite ledger; baseline = "
            f"the same pipeline posting {posts['count']} articles ({post_rate:.0f}/s)"
        ),
    )
    report.add(
        "corrections applied: CPU per action",
        edits["cpu"] / edits["count"] * 1000,
        "ms",
        baseline=posts["cpu"] / posts["count"] * 1000,
        ratio=(edits["cpu"] / edits["count"]) / (posts["cpu"] / posts["count"]),
        note="baseline = CPU per post through the same pipeline",
    )
    if edits["done"] != edits["count"]:
        raise RuntimeError(f"applied {edits['done']} of {edits['count']} corrections")
    return report


async def _measure(count: int, folder: Path) -> dict[str, Any]:
    from bot.compose.length import TELEGRAM_MESSAGE
    from bot.compose.render import Renderer
    from bot.config import Config
    from bot.ledger import Ledger
    from bot.model import Action
    from bot.pipeline import Pipeline
    from bot.testing.memory import MemoryChannel
    from bot.testing.revisions import record_revision

    config = Config.model_validate(
        {
            "path": folder / "newsbot.yaml",
            "database": f"sqlite:///{folder / 'ledger.db'}",
            "templates": Path(repo_root()) / "templates",
            "sources": {
                "bench": {"kind": "feed", "url": f"file://{folder}/none.xml", "max_age": "off"}
            },
            "channels": {"telegram": {"kind": "console", "template": "telegram.html.j2"}},
        }
    )
    ledger = Ledger.open(config.database)
    channel = MemoryChannel("telegram", TELEGRAM_MESSAGE)
    pipeline = Pipeline(
        config,
        ledger,
        {},
        {"telegram": channel},
        Renderer(config.templates, config.tz),
        holder="bench:1",
    )
    try:
        items = bench_articles(count)
        ledger.ingest("bench", items, ["telegram"], now=datetime.now(UTC))
        with measured() as posting:
            sent = await pipeline.deliver_due(batch=50)
        for item in items:
            record_revision(
                ledger,
                key=item.article.key,
                now=datetime.now(UTC),
                actions={"telegram": Action.EDIT},
                title=f"【更正】{item.article.title}",
            )
        with measured() as editing:
            applied = await pipeline.deliver_due(batch=50)
    finally:
        ledger.close()
    return {
        "posts": {"count": sent.sent, "wall": posting.wall, "cpu": posting.cpu},
        "edits": {
            "count": count,
            "done": applied.actions["done"],
            "wall": editing.wall,
            "cpu": editing.cpu,
            "platform_edits": len(channel.edits),
        },
    }
