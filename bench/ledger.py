"""5. The ledger at scale: 1,000,000 deliveries (500,000 articles x Telegram and X) in SQLite and
in PostgreSQL, bulk-loaded with one ``INSERT ... SELECT`` each (a recursive CTE on SQLite,
``generate_series`` on PostgreSQL), never through ingest(). Then, through the Ledger API:

- ingest of 1,000 new articles (2,000 deliveries) in one call, as a poll with 1,000 new items;
- ``newsbot status`` = ``deliveries(states=[...], limit=50)`` (newest 50 in a state) and
  ``counts()`` (the per-state totals it prints first);
- claim-next-due = ``claim_due(limit=50)`` from a queue of 10,000 due deliveries;
- the database's size on disk.

The mix of states: the newest 5,000 articles' deliveries are queued, every 200th older one
failed, every 50th skipped, the rest sent, each sent row with the text that was posted.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import Report, bench_articles, median, percentile

ARTICLES = 500_000
QUEUED_ARTICLES = 5_000
REPEAT = 20
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
SUMMARY = (
    "<p>新聞視界時報 記者 王秉程 整理報導</p><p>高雄與波蘭姊妹市 格丁尼亞 的交流再度邁向新里程！"
    "由高雄市副市長 羅達生 率領市府團隊，"
    "於波蘭時間 9 月 14 日與格丁尼亞市政府正式簽署經濟合作備忘錄。</p>"
)
TITLE = "高雄 × 格丁尼亞再升級！簽署合作備忘錄，攜手打造新創與智慧城市新典範"
TEXT = (
    "【高雄 × 格丁尼亞再升級！簽署合作備忘錄，攜手打造新創與智慧城市新典範】高雄與波蘭姊妹市 "
    "格丁尼亞 的交流再度邁向新里程！由高雄市副市長 羅達生 率領市府團隊… "
    "https://news.example.tw/article/"
)


def run(
    *, smoke: bool = False, postgres_url: str | None = PG_URL, keep: str | None = None
) -> Report:
    """Both databases; ``keep`` is a folder where the SQLite ledger is left for benchmark 6."""
    report = Report("ledger")
    articles = 1_000 if smoke else ARTICLES
    queued = 100 if smoke else QUEUED_ARTICLES
    folder = keep or tempfile.mkdtemp(prefix="newsbot-bench-")
    sqlite_path = Path(folder) / "ledger-1m.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{sqlite_path}{suffix}").unlink(missing_ok=True)
    targets: list[tuple[str, str, Callable[[], None]]] = [
        ("SQLite", f"sqlite:///{sqlite_path}", lambda: None)
    ]
    if postgres_url:
        try:
            url, drop = _pg_schema(postgres_url)
            targets.append(("PostgreSQL", url, drop))
        except Exception as exc:  # no PostgreSQL here: say so, measure SQLite
            report.details["postgres_error"] = f"{type(exc).__name__}: {exc}"
            report.add("PostgreSQL", None, "", note=f"not measured: {exc}")
    try:
        for label, url, _ in targets:
            report.details[label] = measure(report, label, url, articles, queued, smoke=smoke)
    finally:
        for _, _, drop in targets:
            drop()
        if keep is None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{sqlite_path}{suffix}").unlink(missing_ok=True)
            os.rmdir(folder)
    report.details["sqlite_path"] = str(sqlite_path) if keep else None
    return report


def _pg_schema(base_url: str) -> tuple[str, Callable[[], None]]:
    schema = f"bench_{os.getpid()}"
    engine = sa.create_engine(base_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base_url else "?"

    def drop() -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        engine.dispose()

    return f"{base_url}{sep}options=-csearch_path%3D{schema}", drop


def bulk_load(ledger: Any, articles: int, queued: int) -> None:
    """``articles`` articles and two deliveries each, in two INSERT ... SELECT statements."""
    postgres = ledger.engine.dialect.name == "postgresql"
    first_queued = articles - queued
    if postgres:
        series = f"generate_series(1, {articles}) AS n(i)"
        at = "(timestamp '2025-01-01 00:00:00' + n.i * interval '1 minute')"
        text_of = "n.i::text"
    else:
        series = (
            f"(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {articles})"
            " SELECT i FROM s) AS n"
        )
        at = "strftime('%Y-%m-%d %H:%M:%f000', '2025-01-01', '+' || n.i || ' minutes')"
        text_of = "CAST(n.i AS TEXT)"
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO articles (id, source, key, url, title, summary_html, excerpt,"
                " published_at, author, categories, seen_at)"
                f" SELECT n.i, 'feed' || (n.i % 1000), 'bench-' || {text_of},"
                f" 'https://news.example.tw/article/' || {text_of}, :title || {text_of},"
                f" :summary, :excerpt, {at}, '王秉程', '[\"地方\"]', {at} FROM {series}"
            ),
            {"title": TITLE, "summary": SUMMARY, "excerpt": SUMMARY[20:120]},
        )
        state = (
            f"CASE WHEN n.i > {first_queued} THEN 'queued'"
            " WHEN n.i % 200 = 0 THEN 'failed' WHEN n.i % 50 = 0 THEN 'skipped' ELSE 'sent' END"
        )
        for offset, channel in ((0, "telegram"), (1, "x")):
            conn.execute(
                sa.text(
                    "INSERT INTO deliveries (id, article_id, channel, state, due_at, priority,"
                    " attempts, reason, text, remote_id, created_at, updated_at, sent_at)"
                    f" SELECT 2 * n.i - 1 + {offset}, n.i, :channel, {state}, {at}, 0,"
                    f" CASE WHEN n.i > {first_queued} THEN 0 ELSE 1 END,"
                    f" CASE WHEN n.i % 200 = 0 THEN 'Bad Request: chat not found' END,"
                    f" CASE WHEN n.i <= {first_queued} THEN :text || {text_of} END,"
                    f" CASE WHEN n.i <= {first_queued} THEN {text_of} END, {at}, {at},"
                    f" CASE WHEN n.i <= {first_queued} THEN {at} END FROM {series}"
                ),
                {"channel": channel, "text": TEXT},
            )
        if postgres:
            for table in ("articles", "deliveries"):
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                    f" (SELECT max(id) FROM {table}))"
                )
            conn.exec_driver_sql("ANALYZE articles")
            conn.exec_driver_sql("ANALYZE deliveries")
        else:
            conn.exec_driver_sql("ANALYZE")


def _timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def size_mb(ledger: Any, url: str, *, checkpoint: bool = False) -> float:
    """The database on disk: SQLite's file (after folding the WAL in), PostgreSQL's tables with
    their indexes and TOAST in this schema."""
    if ledger.engine.dialect.name == "sqlite":
        path = url[len("sqlite:///") :]
        if checkpoint:
            ledger.engine.dispose()
            raw = sqlite3.connect(path)
            try:
                raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                raw.close()
        return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p)) / 1e6
    with ledger.engine.begin() as conn:
        total = conn.exec_driver_sql(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c"
            " JOIN pg_namespace ns ON ns.oid = c.relnamespace"
            " WHERE ns.nspname = current_schema() AND c.relkind = 'r'"
        ).scalar()
    return float(total or 0) / 1e6


def measure(
    report: Report, label: str, url: str, articles: int, queued: int, *, smoke: bool
) -> dict[str, Any]:
    from bot.ledger import Ledger

    repeat = 3 if smoke else REPEAT
    details: dict[str, Any] = {}
    ledger = Ledger.open(url)
    try:
        start = time.perf_counter()
        bulk_load(ledger, articles, queued)
        details["bulk_load_s"] = time.perf_counter() - start
        details["deliveries"] = ledger.counts()
        total = sum(details["deliveries"].values())
        report.add(
            f"{label}: bulk load of {total:,} deliveries",
            details["bulk_load_s"],
            "s",
            note="INSERT ... SELECT, not ingest(); not a goal",
        )

        now = datetime.now(UTC)
        ingest_ms = []
        batch = 20 if smoke else 1_000
        for round_ in range(3):
            items = bench_articles(batch, start=1_000_000 + round_ * batch)
            start = time.perf_counter()
            ledger.ingest("ingest-bench", items, ("telegram", "x"), now=now)
            ingest_ms.append((time.perf_counter() - start) * 1000)
        report.add(
            f"{label}: ingest {batch:,} new articles ({2 * batch:,} deliveries)",
            median(ingest_ms),
            "ms",
            note="median of 3, each one ingest() call",
        )

        goals: dict[str, list[float]] = {}
        for name, fn in (
            ("status --state failed (newest 50)", lambda: ledger.deliveries(states=["failed"])),
            ("status --state sent (newest 50)", lambda: ledger.deliveries(states=["sent"])),
            (
                "status --state uncertain (none there)",
                lambda: ledger.deliveries(states=["uncertain"]),
            ),
            ("status, any state (newest 50)", ledger.deliveries),
            ("status --source feed7 (newest 50)", lambda: ledger.deliveries(source="feed7")),
            ("status counts() per state", ledger.counts),
        ):
            goals[name] = _timed(fn, repeat)
        holder = f"bench:{os.getpid()}"
        claim_at = EPOCH + timedelta(days=3650)  # everything queued is due
        claimed: list[int] = []

        def claim() -> None:
            got = ledger.claim_due(claim_at, holder=holder, limit=50, channels=["telegram"])
            claimed.extend(d.id for d in got)

        goals["claim_due(limit=50)"] = _timed(claim, repeat)
        if not claimed:
            raise RuntimeError("claim_due claimed nothing")
        for name, times in goals.items():
            p50 = percentile(times, 50)
            is_goal = name.startswith(("status --state failed", "claim_due"))
            report.add(
                f"{label}: {name}",
                p50,
                "ms",
                goal="< 50 ms" if is_goal else "",
                met=(p50 < 50) if is_goal and not smoke else None,
                note=f"p50 of {repeat}; p95 {percentile(times, 95):.1f} ms",
            )
        details["timings_ms"] = goals
        details["ingest_ms"] = ingest_ms
        details["size_mb"] = size_mb(ledger, url, checkpoint=True)
        report.add(
            f"{label}: database size",
            details["size_mb"],
            "MB",
            note=f"{total:,} deliveries, {articles:,} articles",
        )
    finally:
        ledger.close()
    return details
