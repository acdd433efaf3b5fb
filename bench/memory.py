"""6. Memory: the resident size of `newsbot run` (the command itself, in its own process) with
1,000 feed sources and a 1,000,000-delivery SQLite ledger, sampled every ``--sample`` seconds
for ``--duration`` seconds (60 s by default; ``--full`` is the issue's 10 minutes).

The feed, Telegram and X servers run in a separate process; every 10 s a slice of the feeds
gains new entries, so the daemon keeps ingesting and delivering, at the platforms' pace.
The ledger is the one benchmark 5 built when it ran in the same command, else built here.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.common import Report, ServerProcess, ServerSpec, channel_configs, repo_root, rss_mb

SOURCES = 1_000
DELAY = 0.1
REFRESH_EVERY = 10.0
REFRESH_FEEDS = 50


def run(
    *,
    smoke: bool = False,
    duration: float = 60.0,
    sample: float = 5.0,
    ledger_path: str | None = None,
) -> Report:
    report = Report("memory")
    sources = 5 if smoke else SOURCES
    if smoke:
        duration, sample = 4.0, 1.0
    folder = tempfile.mkdtemp(prefix="newsbot-bench-")
    try:
        db = Path(folder) / "ledger.db"
        if ledger_path and Path(ledger_path).exists() and not smoke:
            shutil.copyfile(ledger_path, db)
            wal = Path(ledger_path + "-wal")
            if wal.exists():
                shutil.copyfile(wal, str(db) + "-wal")
            rows = "1,000,000-delivery ledger from benchmark 5"
        else:
            _build_ledger(db, smoke=smoke)
            rows = "ledger built here" + (" (smoke: 2,000 deliveries)" if smoke else "")
        with ServerProcess(ServerSpec(feeds=sources, delay=DELAY, telegram=True, x=True)) as srv:
            config = {
                "timezone": "Asia/Taipei",
                "database": f"sqlite:///{db}",
                "templates": str(Path(repo_root()) / "templates"),
                "sources": {
                    f"feed{i}": {
                        "kind": "feed",
                        "url": srv.feed_url(i),
                        "allow_private": ["127.0.0.1"],
                        "every": "30s",
                        "max_age": "off",
                    }
                    for i in range(sources)
                },
                "channels": channel_configs(srv.urls, pacing=True),
            }
            path = Path(folder) / "newsbot.yaml"
            path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
            samples = _sample_run(path, srv, duration, sample, Path(folder) / "newsbot.log")
            counts = srv.call("counts")
        report.details["samples"] = samples
        report.details["server_counts"] = counts
        report.details["ledger"] = rows
        _figures(report, samples, duration, smoke=smoke, rows=rows, sources=sources)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return report


def _build_ledger(db: Path, *, smoke: bool) -> None:
    from bench.ledger import ARTICLES, QUEUED_ARTICLES, bulk_load
    from bot.ledger import Ledger

    ledger = Ledger.open(f"sqlite:///{db}")
    try:
        bulk_load(ledger, 1_000 if smoke else ARTICLES, 100 if smoke else QUEUED_ARTICLES)
    finally:
        ledger.close()


def _sample_run(
    config: Path, server: ServerProcess, duration: float, every: float, log: Path
) -> list[tuple[float, float]]:
    """Start `newsbot run`, read its RSS every ``every`` s for ``duration`` s, stop it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=repo_root(),
        )
        samples: list[tuple[float, float]] = []
        try:
            start = time.monotonic()
            next_sample = start + every
            next_refresh = start + REFRESH_EVERY
            while (now := time.monotonic()) - start < duration:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"newsbot run exited with {process.returncode}: "
                        + log.read_text(encoding="utf-8")[-2000:]
                    )
                if now >= next_refresh:
                    server.call("refresh", REFRESH_FEEDS)
                    next_refresh += REFRESH_EVERY
                if now >= next_sample:
                    samples.append((round(now - start, 1), rss_mb(process.pid)))
                    next_sample += every
                time.sleep(max(0.05, min(next_sample, next_refresh) - time.monotonic()))
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return samples


def slope_mb_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of RSS over time, in MB per minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_m = sum(m for _, m in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if not var:
        return 0.0
    cov = sum((t - mean_t) * (m - mean_m) for t, m in points)
    return cov / var * 60


def _figures(
    report: Report,
    samples: list[tuple[float, float]],
    duration: float,
    *,
    smoke: bool,
    rows: str,
    sources: int,
) -> None:
    if not samples:
        raise RuntimeError("no RSS sample was taken")
    peak = max(m for _, m in samples)
    # The first half warms up (first sight of every source); the trend is read on the second.
    second_half = [(t, m) for t, m in samples if t >= duration / 2] or samples
    slope = slope_mb_per_min(second_half)
    report.add(
        f"newsbot run, {sources:,} sources: peak RSS over {duration:g} s",
        peak,
        "MB",
        goal="< 150 MB",
        met=None if smoke else peak < 150,
        note=rows,
    )
    report.add(f"RSS at first sample ({samples[0][0]:g} s)", samples[0][1], "MB")
    report.add(f"RSS at last sample ({samples[-1][0]:g} s)", samples[-1][1], "MB")
    report.add(
        "RSS trend over the second half",
        slope,
        "MB/min",
        goal="flat",
        met=None if smoke else abs(slope) < 1.0,
        note="least-squares slope; flat = under 1 MB/min",
    )
