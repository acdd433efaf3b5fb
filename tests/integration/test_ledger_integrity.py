"""Nothing posted twice or posted wrong because of the ledger: retention never forgets what
can come back, a ledger replaced, deleted or emptied under a running newsbot stops it from
sending, a ledger that cannot be written fails /healthz, and no secret reaches a ledger row,
``status`` or ``status --json``."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.config import Config, load_config
from bot.daemon import Daemon, Runtime, open_runtime
from bot.errors import LedgerError
from bot.ledger import Ledger, NewArticle
from bot.model import Article
from bot.testing.feed_server import FeedItem, FeedServer, rss
from bot.testing.telegram_server import DEFAULT_TOKEN, FakeTelegram, Fault
from tests.integration.test_daemon import free_port, wait_for

REPO = Path(__file__).resolve().parents[2]

CONFIG = """\
timezone: Asia/Taipei
database: sqlite:///ledger.db
templates: {templates}
retention: {retention}
{health}
sources:
  newsvision:
    kind: feed
    url: {feed}
    allow_private: [127.0.0.1]
    every: {every}
    backlog: 10
    max_age: {max_age}
channels:
  telegram:
    kind: telegram
    token: ${{TG_TOKEN}}
    chat: "@newsvision"
    template: telegram.html.j2
    api_url: {tg}
    timeout: 5s
    rate: "off"
    min_gap: 0s
"""


async def poll_and_deliver(runtime: Runtime) -> None:
    """One poll of every source and one pass over due deliveries, as `newsbot once` does."""
    await runtime.pipeline.poll_all()
    await runtime.pipeline.deliver_due()


def item(n: int) -> FeedItem:
    return FeedItem(
        guid=f"nv-{n}",
        title=f"高雄與格丁尼亞再升級！第{n}則：攜手打造智慧城市 🚀",
        link=f"https://news.example.tw/article/{n}",
        summary_html=(
            "<p>新聞視界時報 記者 王秉程 整理報導</p><p>兩市簽署合作備忘錄，涵蓋 5 大領域。</p>"
        ),
        published=datetime.now(UTC) - timedelta(hours=n),
        categories=("國際交流",),
    )


class World:
    """A feed, a fake Telegram and a config folder for one newsbot."""

    def __init__(self, folder: Path, feed: FeedServer, tg: FakeTelegram) -> None:
        self.folder, self.feed, self.tg = folder, feed, tg
        self.feed_url = feed.publish("/rss.xml", rss([item(n) for n in (1, 2, 3)]))
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSBOT_", "X_"))}
        self.env |= {"PYTHONPATH": str(REPO), "TG_TOKEN": DEFAULT_TOKEN}
        os.environ["TG_TOKEN"] = DEFAULT_TOKEN

    def config(
        self,
        *,
        retention: str = "1d",
        max_age: str = "off",
        every: str = "1m",
        health: bool = False,
    ) -> Config:
        path = self.folder / "newsbot.yaml"
        path.write_text(
            CONFIG.format(
                templates=REPO / "templates",
                retention=retention,
                health=f"health: {{listen: 127.0.0.1:{self.port}}}" if health else "",
                feed=self.feed_url,
                every=every,
                max_age=max_age,
                tg=self.tg.url,
            ),
            encoding="utf-8",
        )
        return load_config(path)

    @property
    def ledger_file(self) -> Path:
        return self.folder / "ledger.db"

    def posts(self) -> int:
        return len(self.tg.messages_in("@newsvision"))

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""  # not listening yet


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    saved = os.environ.get("TG_TOKEN")
    with FeedServer() as feed, FakeTelegram() as tg:
        yield World(tmp_path, feed, tg)
    if saved is None:
        os.environ.pop("TG_TOKEN", None)
    else:
        os.environ["TG_TOKEN"] = saved


# -- retention ----------------------------------------------------------------------------------


async def test_articles_still_in_the_feed_are_not_posted_again_after_pruning(world: World) -> None:
    """retention shorter than max_age (here max_age: off): once the finished deliveries are
    pruned, the articles still in the feed are known and never posted a second time."""
    config = world.config(retention="1h", max_age="off")
    async with open_runtime(config) as runtime:
        await poll_and_deliver(runtime)
        assert world.posts() == 3
        # What housekeeping does once `retention` has passed for every delivery.
        pruned = runtime.ledger.prune(before=datetime.now(UTC) + timedelta(days=1))
        assert pruned == 3 and runtime.ledger.counts() == {}
        # The feed changes (a new article on top), so it is read again in full.
        world.feed.publish("/rss.xml", rss([item(n) for n in (0, 1, 2, 3)]))
        for _ in range(3):
            await poll_and_deliver(runtime)
    assert world.posts() == 4
    assert [m.plain.count("第0則") for m in world.tg.messages_in("@newsvision")] == [0, 0, 0, 1]


async def test_a_pushed_article_pushed_again_after_pruning_is_known(database_url: str) -> None:
    """A webhook source has no 'last read' to protect its articles: the seen digests do, on
    SQLite and PostgreSQL alike, by key and by canonical URL."""
    ledger = Ledger.open(database_url)
    now = datetime.now(UTC)
    pushed = Article(
        key="cms-20051",
        url="https://news.example.tw/article/20051",
        title="高雄與格丁尼亞再升級！",
        published=now,
    )
    try:
        ledger.ingest("cms", [NewArticle(pushed, "")], ["telegram"], now=now)
        claimed = ledger.claim_due(now, holder="h:1")
        assert ledger.mark_failed(claimed[0].id, reason="x", now=now)
        assert ledger.prune(before=now + timedelta(seconds=1)) == 1
        again = ledger.ingest("cms", [NewArticle(pushed, "")], ["telegram"], now=now)
        renamed = NewArticle(Article(key="cms-new-id", url=pushed.url, title="t"), "")
        moved = ledger.ingest("cms", [renamed], ["telegram"], now=now)
        assert again.articles == moved.articles == 0
        assert ledger.known("cms", ["cms-20051"], []) == {"cms-20051"}
        # Another source may carry the same article: it is its own.
        assert ledger.ingest("other", [NewArticle(pushed, "")], ["telegram"], now=now).articles == 1
    finally:
        ledger.close()


def test_an_existing_ledger_is_upgraded_with_its_articles_remembered(tmp_path: Path) -> None:
    """Revision 0004 copies the digests of the articles a ledger already holds."""
    from alembic import command

    from bot import migrations

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    Ledger.open(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        command.downgrade(migrations.alembic_config(conn), "0003")
        conn.exec_driver_sql(
            "INSERT INTO articles (source, key, url, title, seen_at) VALUES "
            "('nv', 'nv-1', 'https://news.example.tw/article/1', '舊文', '2025-01-01')"
        )
    engine.dispose()
    ledger = Ledger.open(url)
    try:
        assert ledger.known("nv", ["nv-1"], ["https://news.example.tw/article/1"]) == {
            "nv-1",
            "https://news.example.tw/article/1",
        }
    finally:
        ledger.close()


# -- identity -----------------------------------------------------------------------------------


def seeded(url: str) -> Ledger:
    ledger = Ledger.open(url)
    now = datetime.now(UTC)
    article = Article(
        key="nv-1", url="https://news.example.tw/article/1", title="一", published=now
    )
    ledger.ingest("nv", [NewArticle(article, "")], ["telegram"], now=now)
    ledger.heartbeat("h:1", now, starting=True)
    return ledger


def test_a_sqlite_ledger_replaced_under_us_stops_claims_and_fails_health(tmp_path: Path) -> None:
    """Another file moved over the ledger's path: no claim, no ingest, health says why."""
    path = tmp_path / "ledger.db"
    ledger = seeded(f"sqlite:///{path}")
    try:
        Ledger.open(f"sqlite:///{tmp_path / 'other.db'}").close()
        os.replace(tmp_path / "other.db", path)
        assert "file was replaced" in (ledger.health() or "")
        with pytest.raises(LedgerError, match="replaced"):
            ledger.claim_due(datetime.now(UTC), holder="h:1")
        with pytest.raises(LedgerError, match="replaced"):
            ledger.heartbeat("h:1", datetime.now(UTC))
    finally:
        ledger.close()


def test_a_deleted_sqlite_ledger_is_noticed_at_once(tmp_path: Path) -> None:
    """The file unlinked (the daemon's open connections would go on writing to it)."""
    path = tmp_path / "ledger.db"
    ledger = seeded(f"sqlite:///{path}")
    try:
        assert ledger.health() is None
        path.unlink()
        assert "deleted" in (ledger.health() or "")
        with pytest.raises(LedgerError, match="deleted"):
            ledger.claim_due(datetime.now(UTC), holder="h:1")
    finally:
        ledger.close()


def test_emptied_tables_or_a_new_ledger_id_are_detected(database_url: str) -> None:
    """Tables emptied behind our back (SQLite or PostgreSQL), or the meta row gone."""
    ledger = seeded(database_url)
    try:
        ledger.heartbeat("h:1", datetime.now(UTC))
        with ledger.engine.begin() as conn:
            for table in ("deliveries", "articles", "seen", "sources"):
                conn.exec_driver_sql(f"DELETE FROM {table}")
        with pytest.raises(LedgerError, match="emptied"):
            ledger.heartbeat("h:1", datetime.now(UTC))
        assert "emptied" in (ledger.health() or "")
        now = datetime.now(UTC)
        article = Article(key="nv-1", url="https://news.example.tw/article/1", title="一")
        with pytest.raises(LedgerError):
            ledger.ingest("nv", [NewArticle(article, "")], ["telegram"], now=now)
    finally:
        ledger.close()
    other = seeded(database_url)
    try:
        with other.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM newsbot_meta WHERE key = 'ledger_id'")
        with pytest.raises(LedgerError, match="its id is now missing"):
            other.claim_due(datetime.now(UTC), holder="h:1")
    finally:
        other.close()


# -- a running daemon ---------------------------------------------------------------------------


def test_ledger_deleted_under_newsbot_run_fails_health_and_posts_nothing(world: World) -> None:
    """`newsbot run`: the ledger file deleted while it runs makes /healthz 503 with the reason
    within seconds, and the articles it then finds again are not posted."""
    world.config(every="1s", health=True, max_age="off")
    log = (world.folder / "newsbot.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(world.folder / "newsbot.yaml"), "run"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=world.env,
        cwd=world.folder,
    )
    try:
        wait_for(lambda: world.posts() == 3, 30, "the first three posts")
        wait_for(lambda: world.get("/healthz")[0] == 200, 10, "/healthz ok")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{world.ledger_file}{suffix}").unlink(missing_ok=True)
        wait_for(lambda: world.get("/healthz")[0] == 503, 5, "/healthz 503")
        _, body = world.get("/healthz")
        assert "ledger file was deleted" in body
        _, metrics = world.get("/metrics")
        assert 'newsbot_health{check="ledger"} 0.0' in metrics
        polls = len(world.feed.requests)
        world.feed.publish("/rss.xml", rss([item(n) for n in (0, 1, 2, 3)]))
        # Several polls of the new feed answered (at `every: 1s`), however slow the machine.
        wait_for(lambda: len(world.feed.requests) >= polls + 3, 30, "three more polls")
        assert world.posts() == 3
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


async def test_an_unwritable_ledger_fails_healthz_within_seconds(world: World) -> None:
    """SQLite refusing every write (as on a full disk) under a running daemon: /healthz 503
    with SQLite's reason within a few seconds, and 200 again once writes go through."""
    config = world.config(health=True, every="1h")
    daemon = Daemon(config, housekeeping_every=3600)
    running = asyncio.create_task(daemon.run())

    async def healthz() -> tuple[int, str]:
        return await asyncio.to_thread(world.get, "/healthz")

    async def until(status: int, within: float) -> str:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            code, body = await healthz()
            if code == status:
                return body
            await asyncio.sleep(0.2)
        raise AssertionError(f"/healthz never answered {status} within {within}s")

    def read_only(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.execute("PRAGMA query_only = ON")

    try:
        await until(200, 20)
        assert daemon.runtime is not None
        engine = daemon.runtime.ledger.engine
        sa.event.listen(engine, "connect", read_only)
        engine.dispose()  # every connection from now on refuses writes
        began = time.monotonic()
        body = await until(503, 12)
        assert time.monotonic() - began < 12
        assert "cannot be written" in body and "readonly" in body
        _, metrics = await asyncio.to_thread(world.get, "/metrics")
        assert 'newsbot_health{check="ledger"} 0.0' in metrics
        sa.event.remove(engine, "connect", read_only)
        engine.dispose()
        await until(200, 12)
    finally:
        daemon.stop()
        await asyncio.wait_for(running, 30)


# -- secrets ------------------------------------------------------------------------------------


def test_a_token_echoed_by_the_api_never_reaches_the_ledger_or_status(world: World) -> None:
    """An API error quoting /bot<token>/ is recorded, and shown by status and status --json,
    with the token masked exactly as the log masks it."""
    world.config()
    world.tg.fail_next(3, Fault.echo_path())

    def newsbot(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", "--config", str(world.folder / "newsbot.yaml"), *args],
            capture_output=True,
            text=True,
            env=world.env,
            cwd=world.folder,
            timeout=60,
            check=False,
        )

    once = newsbot("once")
    assert once.returncode == 1, once.stderr
    table, as_json = newsbot("status"), newsbot("status", "--json")
    reasons = [d["reason"] for d in json.loads(as_json.stdout)["deliveries"]]
    assert len(reasons) == 3 and all("/bot[REDACTED]/sendMessage" in r for r in reasons)
    with sqlite3.connect(world.ledger_file) as conn:
        stored = " ".join(str(row) for row in conn.execute("SELECT * FROM deliveries"))
    assert "no route for POST" in stored
    for text in (once.stderr, table.stdout, as_json.stdout, stored):
        assert DEFAULT_TOKEN not in text
