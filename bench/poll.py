"""1. Poll cycle: many feeds fetched and parsed, cold (every feed changed) and warm (every feed
answers 304), beside the naive baseline of simple feed bots: ``feedparser.parse(url)`` in a
sequential loop (it is the one place outside ``bot/sources`` that uses feedparser directly).

The feed server runs in its own process and waits ``DELAY`` before every answer, as a real site
over a real network does: loopback has no delay, and without one concurrency shows no gain.
Each measurement runs in a fresh process, so its CPU time and peak memory are its own.

Figures: ``sources`` is FeedSource.poll for every feed at once (fetch + parse + normalise, what
the baseline does plus more); ``cycle`` is Pipeline.poll_all with a SQLite ledger (also known-
article lookups, ingest and the per-source bookkeeping), i.e. what `newsbot run` does per round.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import Report, ServerProcess, ServerSpec, measured, repo_root, run_in_process
from bot.sources.fetch import DEFAULT_CONCURRENCY

DELAY = 0.1
SIZES = (100, 1_000, 5_000)
BASELINE_SAMPLE = 100
CYCLE_SIZE = 1_000
CONCURRENCY_PROBE = 200


def run(*, smoke: bool = False) -> Report:
    report = Report("poll")
    sizes = (4,) if smoke else SIZES
    sample = 3 if smoke else BASELINE_SAMPLE
    cycle_size = 8 if smoke else CYCLE_SIZE
    delay = 0.02 if smoke else DELAY
    with ServerProcess(ServerSpec(feeds=max(sizes), delay=delay)) as server:
        urls = [server.feed_url(i) for i in range(max(sizes))]
        base = run_in_process(baseline, urls[:sample])
        report.details["baseline_sample"] = base
        report.details["delay_s"] = delay
        per_cold = base["cold"]["wall"] / sample
        per_warm = base["warm"]["wall"] / sample
        for n in sizes:
            ours = run_in_process(poll_sources, urls[:n], DEFAULT_CONCURRENCY)
            report.details[f"sources_{n}"] = ours
            for phase, per in (("cold", per_cold), ("warm", per_warm)):
                got = ours[phase]
                base_wall = per * n
                extrapolated = n != sample
                ratio = base_wall / got["wall"] if got["wall"] else None
                goal, met = "", None
                if n >= 1000 and not smoke:
                    need = 3 if phase == "cold" else 10
                    ok = bool(ratio and ratio >= need) and not got.get("errors")
                    goal, met = f">= {need}x baseline, no failed poll", ok
                report.add(
                    f"sources {phase} {n} feeds: wall",
                    got["wall"],
                    "s",
                    baseline=base_wall,
                    ratio=ratio,
                    goal=goal,
                    met=met,
                    note=(
                        f"baseline extrapolated from {sample} feeds"
                        if extrapolated
                        else f"baseline measured on {sample} feeds"
                    )
                    + (
                        f"; {got['errors']} of {n} polls FAILED, e.g. {got['first_error']}"
                        if got.get("errors")
                        else ""
                    ),
                )
                cpu_base = base[phase]["cpu"] / sample * n
                report.add(
                    f"sources {phase} {n} feeds: CPU",
                    got["cpu"],
                    "s",
                    baseline=cpu_base,
                    ratio=cpu_base / got["cpu"] if got["cpu"] else None,
                )
                report.add(
                    f"sources {phase} {n} feeds: peak RSS",
                    got["peak_rss_mb"],
                    "MB",
                    baseline=base[phase]["peak_rss_mb"],
                    note="baseline peak is the sample's (sequential: it does not grow with n)",
                )
        # What bounds a warm cycle: 1,000 feeds x DELAY over 50 connections is 2 s at best.
        if not smoke:
            _concurrency_probe(report, urls[:cycle_size])
        with tempfile.TemporaryDirectory(prefix="newsbot-bench-") as tmp:
            cycle = run_in_process(poll_cycle, urls[:cycle_size], tmp)
        report.details[f"cycle_{cycle_size}"] = cycle
        for phase, per in (("cold", per_cold), ("warm", per_warm)):
            got = cycle[phase]
            base_wall = per * cycle_size
            goal, met = "", None
            if phase == "warm" and not smoke:
                goal, met = "< 2 s", got["wall"] < 2.0 and not got.get("errors")
            report.add(
                f"cycle {phase} {cycle_size} feeds (poll_all + SQLite ledger): wall",
                got["wall"],
                "s",
                baseline=base_wall,
                ratio=base_wall / got["wall"] if got["wall"] else None,
                goal=goal,
                met=met,
                note=(f"{cycle['articles']} articles ingested" if phase == "cold" else "")
                + (
                    f"; {got['errors']} of {cycle_size} polls FAILED, e.g. {got['first_error']}"
                    if got.get("errors")
                    else ""
                ),
            )
            report.add(
                f"cycle {phase} {cycle_size} feeds: CPU",
                got["cpu"],
                "s",
            )
            report.add(f"cycle {phase} {cycle_size} feeds: peak RSS", got["peak_rss_mb"], "MB")
        reread = cycle["reread"]
        report.add(
            f"cycle re-read {cycle_size} feeds (200, content unchanged): wall",
            reread["wall"],
            "s",
            note="every entry known: revision detection (digest per entry, one lookup per poll)"
            + (f"; {reread['errors']} polls FAILED" if reread.get("errors") else ""),
        )
        report.add(f"cycle re-read {cycle_size} feeds: CPU", reread["cpu"], "s")
        # The ledger's share of a cycle, as a ratio in this one run (absolute figures move
        # with the machine's load): the cycle against the same feeds polled without a ledger.
        alone = report.details.get(f"sources_{cycle_size}") or run_in_process(
            poll_sources, urls[:cycle_size], DEFAULT_CONCURRENCY
        )
        for phase in ("cold", "warm"):
            poll_wall, cycle_wall = alone[phase]["wall"], cycle[phase]["wall"]
            ratio = cycle_wall / poll_wall if poll_wall else None
            goal, met = "", None
            if phase == "cold" and not smoke:
                goal, met = "<= 1.2x the cold poll alone", bool(ratio and ratio <= 1.2)
            report.add(
                f"cycle {phase} {cycle_size} feeds / poll alone",
                ratio,
                "x",
                goal=goal,
                met=met,
                note=f"cycle {cycle_wall:.2f} s, the same feeds' poll_all without a ledger "
                f"{poll_wall:.2f} s",
            )
    return report


def _concurrency_probe(report: Report, urls: list[str]) -> None:
    n = len(urls)
    wide = run_in_process(poll_sources, urls, CONCURRENCY_PROBE)
    report.details[f"sources_{n}_concurrency_{CONCURRENCY_PROBE}"] = wide
    narrow = report.details.get(f"sources_{n}") or run_in_process(
        poll_sources, urls, DEFAULT_CONCURRENCY
    )
    report.add(
        f"sources warm {n} feeds, {CONCURRENCY_PROBE} connections: wall",
        wide["warm"]["wall"],
        "s",
        baseline=narrow["warm"]["wall"],
        ratio=narrow["warm"]["wall"] / wide["warm"]["wall"] if wide["warm"]["wall"] else None,
        note=f"baseline here = the default {DEFAULT_CONCURRENCY} connections",
    )


def _span(span: Any) -> dict[str, float]:
    return {
        "wall": span.wall,
        "cpu": span.cpu,
        "peak_rss_mb": span.peak_rss_mb,
        "start_rss_mb": span.start_rss_mb,
    }


def baseline(urls: list[str]) -> dict[str, Any]:
    """The naive poller: one ``feedparser.parse(url)`` after another; warm with its ETag."""
    import feedparser

    with measured() as cold:
        parsed = [feedparser.parse(url) for url in urls]
    entries = sum(len(d.entries) for d in parsed)
    with measured() as warm:
        again = [
            feedparser.parse(url, etag=d.get("etag"), modified=d.get("modified"))
            for url, d in zip(urls, parsed, strict=True)
        ]
    not_modified = sum(1 for d in again if d.get("status") == 304)
    if not_modified != len(urls):
        raise RuntimeError(f"baseline warm: {not_modified} of {len(urls)} answered 304")
    return {"cold": _span(cold), "warm": _span(warm), "entries": entries, "feeds": len(urls)}


def _sources(urls: list[str], fetcher: Any) -> list[Any]:
    from bot.config import FeedSourceConfig
    from bot.sources.feed import FeedSource
    from bot.testing import LOCAL_FAKES

    return [
        FeedSource(
            FeedSourceConfig.model_validate({"kind": "feed", "name": f"feed{i}", "url": url}),
            fetcher.scoped(LOCAL_FAKES),
        )
        for i, url in enumerate(urls)
    ]


def poll_sources(urls: list[str], concurrency: int) -> dict[str, Any]:
    """Every feed's FeedSource.poll at once over one Fetcher: cold, then warm."""
    from bot.sources.base import PollResult, SourceState
    from bot.sources.fetch import Fetcher

    async def main() -> dict[str, Any]:
        async with Fetcher(concurrency=concurrency) as fetcher:
            sources = _sources(urls, fetcher)
            with measured() as cold:
                results = await asyncio.gather(
                    *(s.poll(SourceState()) for s in sources), return_exceptions=True
                )
            cold_errors = _errors(results)
            states = [r.state if isinstance(r, PollResult) else SourceState() for r in results]
            articles = sum(len(r.articles) for r in results if isinstance(r, PollResult))
            with measured() as warm:
                again = await asyncio.gather(
                    *(s.poll(st) for s, st in zip(sources, states, strict=True)),
                    return_exceptions=True,
                )
            warm_errors = _errors(again)
            not_modified = sum(1 for r in again if isinstance(r, PollResult) and r.not_modified)
        return {
            "cold": {**_span(cold), **cold_errors},
            "warm": {**_span(warm), **warm_errors, "not_modified": not_modified},
            "articles": articles,
            "feeds": len(urls),
            "concurrency": concurrency,
        }

    return asyncio.run(main())


def _errors(results: list[Any]) -> dict[str, Any]:
    """How many polls failed, and the first reason (a failed poll is a figure, not a crash)."""
    failures = [r for r in results if isinstance(r, BaseException)]
    for failure in failures:
        if not isinstance(failure, Exception):
            raise failure
    return {"errors": len(failures), "first_error": str(failures[0]) if failures else None}


def _failed(errors: list[str | None]) -> dict[str, Any]:
    return {"errors": len(errors), "first_error": errors[0] if errors else None}


def cycle_config(urls: list[str], folder: str, *, every: str = "5m", **extra: Any) -> Any:
    """A Config with one feed source per URL and a console channel, ledger in ``folder``."""
    from bot.config import Config

    raw: dict[str, Any] = {
        "path": Path(folder) / "newsbot.yaml",
        "database": f"sqlite:///{Path(folder) / 'ledger.db'}",
        "templates": Path(repo_root()) / "templates",
        "sources": {
            f"feed{i}": {
                "kind": "feed",
                "url": url,
                "every": every,
                "max_age": "off",
                "allow_private": ["127.0.0.1"],
            }
            for i, url in enumerate(urls)
        },
        "channels": {"console": {"kind": "console", "template": "x.txt.j2"}},
    }
    raw.update(extra)
    return Config.model_validate(raw)


def poll_cycle(urls: list[str], folder: str) -> dict[str, Any]:
    """Pipeline.poll_all, as `newsbot run` does it each round: cold (first sight of every feed,
    every article ingested and marked seen) and warm (every feed 304)."""
    from bot.channels.console import ConsoleChannel
    from bot.wiring import open_runtime

    config = cycle_config(urls, folder)

    async def main() -> dict[str, Any]:
        channels = {"console": ConsoleChannel(config.channels["console"], stream=io.StringIO())}
        async with open_runtime(config, channels=channels) as runtime:  # type: ignore[arg-type]
            with measured() as cold:
                reports = await runtime.pipeline.poll_all()
            articles = sum(r.ingest.articles for r in reports if r.ingest)
            cold_failed = [r.error for r in reports if not r.ok]
            with measured() as warm:
                again = await runtime.pipeline.poll_all()
            warm_failed = [r.error for r in again if not r.ok]
            not_modified = sum(1 for r in again if r.not_modified)
            # Re-read: the validators forgotten, every feed answers 200 with what it had, so
            # every entry is known and its content digest checked (revision detection's cost).
            from bot.sources.base import SourceState

            for name in config.sources:
                runtime.ledger.record_poll(name, now=datetime.now(UTC), state=SourceState())
            with measured() as reread:
                third = await runtime.pipeline.poll_all()
            reread_failed = [r.error for r in third if not r.ok]
        return {
            "cold": {**_span(cold), **_failed(cold_failed)},
            "warm": {**_span(warm), **_failed(warm_failed), "not_modified": not_modified},
            "reread": {**_span(reread), **_failed(reread_failed)},
            "articles": articles,
        }

    return asyncio.run(main())
