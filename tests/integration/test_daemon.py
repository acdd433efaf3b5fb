"""The real ``newsbot run`` process against the local Telegram, X and feed servers: arrival
once and in order at the channel's pace, faults that delay but lose nothing, template reload
while running, health and metrics, and a clean stop that loses nothing."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.testing.feed_server import FeedItem, FeedServer, rss
from bot.testing.telegram_server import DEFAULT_TOKEN, FakeTelegram, Fault
from bot.testing.x_server import FakeX, XFault

REPO = Path(__file__).resolve().parents[2]
X_KEYS = {
    "consumer_key": "ck-daemon-test",
    "consumer_secret": "cs-daemon-test-secret",
    "access_token": "at-daemon-test",
    "access_token_secret": "ats-daemon-test-secret",
}

CONFIG = """\
timezone: Asia/Taipei
database: sqlite:///ledger.db
templates: templates
stop_timeout: 10s
health:
  listen: 127.0.0.1:{port}
sources:
  newsvision:
    kind: feed
    url: {feed}
    allow_private: [127.0.0.1]
    every: 1s
    backlog: 0
    max_age: off
channels:
  telegram:
    kind: telegram
    token: ${{TG_TOKEN}}
    chat: "@newsvision"
    template: telegram.html.j2
    api_url: {tg}
    timeout: 5s
    min_gap: {min_gap}
    rate: {rate}
    retry_backoff: 500ms
  x:
    kind: x
    consumer_key: ${{XK}}
    consumer_secret: ${{XS}}
    access_token: ${{XT}}
    access_token_secret: ${{XTS}}
    template: x.txt.j2
    api_url: {x}
    timeout: 5s
    min_gap: {min_gap}
    rate: {rate}
    retry_backoff: 500ms
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def item(n: int) -> FeedItem:
    return FeedItem(
        guid=f"nv-{n}",
        title=f"高雄 & 格丁尼亞 <合作> 第{n}則：攜手打造新創與智慧城市",
        link=f"https://news.example.tw/article/{n}",
        summary_html=(
            "<p>新聞視界時報 記者 王秉程 整理報導</p>"
            "<p>高雄與波蘭姊妹市格丁尼亞的交流再度邁向新里程！</p>"
        ),
        published=datetime.now(UTC),
        categories=("國際交流",),
    )


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Daemon:
    """One ``newsbot run`` process; its log goes to a file the test can read."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.env = env
        self.log = folder / "newsbot.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", str(self.folder / "newsbot.yaml"), "run"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.folder,
        )

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def terminate(self, timeout: float = 20) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


class World:
    def __init__(self, folder: Path, tg: FakeTelegram, x: FakeX, feed: FeedServer) -> None:
        self.tg, self.x, self.feed = tg, x, feed
        self.port = free_port()
        self.items: list[FeedItem] = [item(0)]
        self.feed_url = feed.publish("/rss.xml", rss(self.items))
        (folder / "templates").mkdir()
        for template in (REPO / "templates").iterdir():
            (folder / "templates" / template.name).write_text(template.read_text("utf-8"), "utf-8")
        self.folder = folder
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSBOT_", "X_"))}
        env |= {
            "PYTHONPATH": str(REPO),
            "TG_TOKEN": DEFAULT_TOKEN,
            "XK": X_KEYS["consumer_key"],
            "XS": X_KEYS["consumer_secret"],
            "XT": X_KEYS["access_token"],
            "XTS": X_KEYS["access_token_secret"],
        }
        self.daemon = Daemon(folder, env)

    def configure(self, min_gap: str = "1s", rate: str = "off") -> None:
        (self.folder / "newsbot.yaml").write_text(
            CONFIG.format(
                port=self.port,
                feed=self.feed_url,
                tg=self.tg.url,
                x=self.x.url,
                min_gap=min_gap,
                rate=rate,
            ),
            encoding="utf-8",
        )

    def publish(self, *numbers: int) -> float:
        self.items.extend(item(n) for n in numbers)
        self.feed.publish("/rss.xml", rss(list(reversed(self.items))))
        return time.time()

    def started(self) -> None:
        wait_for(lambda: "newsbot running" in self.daemon.text(), 20, "the daemon to start")
        wait_for(lambda: len(self.feed.requests) >= 1, 10, "the first poll")
        wait_for(
            lambda: "skipped" in self.daemon.text() or "new article" in self.daemon.text(),
            10,
            "the first poll to be recorded",
        )

    def ledger(self, query: str) -> list[tuple[object, ...]]:
        """A query on the daemon's SQLite ledger from outside (nothing before it exists)."""
        path = self.folder / "ledger.db"
        if not path.exists():
            return []
        with contextlib.closing(sqlite3.connect(path, timeout=5)) as conn:
            try:
                return conn.execute(query).fetchall()
            except sqlite3.OperationalError:
                return []  # the schema not made yet

    def first_sight_recorded(self) -> bool:
        """The first poll's articles are in the ledger (so a later one is new)."""
        rows = self.ledger("SELECT COUNT(*) FROM articles")
        return bool(rows) and int(rows[0][0]) >= 1  # type: ignore[call-overload]

    def settled(self, sent: int) -> bool:
        """``sent`` deliveries recorded sent and none queued or in flight: nothing more is due,
        so a post beyond those would be a resend (waiting for this, not for some seconds)."""
        rows = self.ledger(
            "SELECT SUM(CASE WHEN state = 'sent' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN state IN ('queued', 'sending') THEN 1 ELSE 0 END) FROM deliveries"
        )
        return bool(rows) and rows[0][0] == sent and rows[0][1] == 0

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with FakeTelegram() as tg, FakeX(**X_KEYS) as x, FeedServer() as feed:
        made = World(tmp_path, tg, x, feed)
        try:
            yield made
        finally:
            made.daemon.kill()


def numbers_in(texts: list[str]) -> list[int]:
    found = []
    for text in texts:
        start = text.index("第") + 1
        found.append(int(text[start : text.index("則", start)]))
    return found


def test_posts_arrive_once_in_order_at_the_channels_pace(world: World) -> None:
    """New articles reach both platforms once each, in order, within `every` + a few seconds,
    never closer than min_gap and never over the rate cap; health and metrics answer."""
    world.configure(min_gap="1s", rate="3/4s")
    world.daemon.start()
    world.started()
    published = world.publish(1, 2, 3)
    wait_for(lambda: len(world.tg.messages) >= 3 and len(world.x.posts) >= 3, 30, "3 posts each")
    first_arrival = min(world.tg.messages[0].received_at, world.x.posts[0].received_at)
    assert first_arrival - published < 1 + 5  # every + a few seconds
    world.publish(4, 5)
    wait_for(lambda: len(world.tg.messages) >= 5 and len(world.x.posts) >= 5, 30, "5 posts each")
    wait_for(lambda: world.settled(10), 30, "the ledger to settle")

    tg_texts = [m.plain for m in world.tg.messages]
    x_texts = [p.text for p in world.x.posts]
    assert numbers_in(tg_texts) == [1, 2, 3, 4, 5] and numbers_in(x_texts) == [1, 2, 3, 4, 5]
    assert "高雄 & 格丁尼亞 <合作>" in tg_texts[0]  # markup characters arrive as text
    for times in (
        [m.received_at for m in world.tg.messages],
        [p.received_at for p in world.x.posts],
    ):
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= 1.0 - 0.02, gaps
        for i, moment in enumerate(times):
            assert sum(1 for t in times[i:] if t < moment + 4) <= 3

    status, body = world.get("/healthz")
    assert (status, body.strip()) == (200, "ok")
    status, metrics = world.get("/metrics")
    assert status == 200 and 'newsbot_posts_total{channel="telegram",state="sent"} 5.0' in metrics
    assert world.daemon.terminate() == 0


def test_faults_delay_posts_but_lose_none(world: World) -> None:
    """A burst of 429s, 5xx answers and dropped connections delay posts but lose none, and the
    channel that is told to wait does not hold up the other."""
    world.configure(min_gap="0s")
    world.tg.fail_next(2, Fault.retry_after(2))
    world.x.fail_next(1, XFault.server_error(503))
    world.x.fail_next(1, XFault.drop())
    world.daemon.start()
    world.started()
    world.publish(1, 2, 3)
    wait_for(lambda: len(world.tg.messages) >= 3 and len(world.x.posts) >= 3, 40, "3 posts each")
    wait_for(lambda: world.settled(6), 30, "the ledger to settle")
    assert numbers_in([m.plain for m in world.tg.messages]) == [1, 2, 3]
    assert numbers_in([p.text for p in world.x.posts]) == [1, 2, 3]
    attempts = [a.at for a in world.tg.attempts if a.method.lower() == "sendmessage"]
    # Two 429s, each asking for 2 s: the retries never came sooner.
    assert attempts[1] - attempts[0] >= 2 - 0.05 and attempts[2] - attempts[1] >= 2 - 0.05
    # X was not held up by Telegram's pause.
    assert world.x.posts[0].received_at < world.tg.messages[0].received_at
    assert world.daemon.terminate() == 0


def test_template_edit_while_running(world: World) -> None:
    """Editing a template changes the next post; a broken template is logged and the last good
    one keeps working."""
    world.configure(min_gap="0s")
    world.daemon.start()
    world.started()
    world.publish(1)
    wait_for(lambda: len(world.x.posts) >= 1, 20, "the first post")
    template = world.folder / "templates" / "x.txt.j2"
    template.write_text("🔥速報｜{{ article.title }} {{ link }}", encoding="utf-8")
    wait_for(lambda: "reloaded" in world.daemon.text(), 15, "the reload")
    world.publish(2)
    wait_for(lambda: len(world.x.posts) >= 2, 20, "the second post")
    assert world.x.posts[1].text.startswith("🔥速報｜")
    template.write_text("🔥速報｜{{ article.title }", encoding="utf-8")
    wait_for(lambda: "NOT loaded" in world.daemon.text(), 15, "the refused reload")
    assert "x.txt.j2:1" in world.daemon.text()
    world.publish(3)
    wait_for(lambda: len(world.x.posts) >= 3, 20, "the third post")
    assert world.x.posts[2].text.startswith("🔥速報｜") and "第3則" in world.x.posts[2].text
    assert world.daemon.terminate() == 0


def test_sigterm_during_a_burst_then_restart_loses_nothing(world: World) -> None:
    """SIGTERM mid-burst exits 0 within the stop timeout; a restart finishes the queue with no
    duplicate and no loss."""
    world.configure(min_gap="400ms")
    world.daemon.start()
    world.started()
    world.publish(*range(1, 11))
    wait_for(lambda: len(world.tg.messages) >= 2, 20, "the burst to start")
    began = time.monotonic()
    assert world.daemon.terminate(timeout=15) == 0
    assert time.monotonic() - began < 10
    assert len(world.tg.messages) < 10
    world.daemon.start()
    wait_for(lambda: len(world.tg.messages) >= 10 and len(world.x.posts) >= 10, 40, "the rest")
    wait_for(lambda: world.settled(20), 30, "the ledger to settle")
    assert sorted(numbers_in([m.plain for m in world.tg.messages])) == list(range(1, 11))
    assert sorted(numbers_in([p.text for p in world.x.posts])) == list(range(1, 11))
    assert world.daemon.terminate() == 0


WEBHOOK_SOURCE = """\
  cms:
    kind: webhook
    secret: ${CMS_SECRET}
"""


def test_webhook_push_is_posted_within_a_second(
    world: World, report: Callable[[str], None]
) -> None:
    """A signed CMS webhook to the running daemon reaches both platforms in under a second;
    a badly signed one is refused and records nothing."""
    import json as jsonlib

    from bot.sources.webhook import signed_headers

    world.configure(min_gap="0s")
    config = world.folder / "newsbot.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("channels:\n", WEBHOOK_SOURCE + "channels:\n", 1), "utf-8")
    world.daemon.env["CMS_SECRET"] = "cms-shared-secret-value"
    world.daemon.start()
    world.started()
    body = jsonlib.dumps(
        {
            "url": "https://news.example.tw/article/777",
            "title": "快訊：高雄港灣城市論壇今日登場",
            "summary": "<p>高雄與格丁尼亞共同舉辦港灣城市論壇，聚焦海洋經濟與智慧交通。</p>",
            "categories": ["快訊"],
        },
        ensure_ascii=False,
    ).encode()
    bad = dict(signed_headers("not-the-secret", body))
    refused = urllib.request.Request(
        f"http://127.0.0.1:{world.port}/hooks/cms", data=body, headers=bad, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(refused, timeout=5)
    assert caught.value.code == 401
    request = urllib.request.Request(
        f"http://127.0.0.1:{world.port}/hooks/cms",
        data=body,
        headers=signed_headers("cms-shared-secret-value", body),
        method="POST",
    )
    sent_at = time.time()
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 202
    wait_for(lambda: len(world.tg.messages) >= 1 and len(world.x.posts) >= 1, 10, "the push")
    latest = max(world.tg.messages[0].received_at, world.x.posts[0].received_at)
    report(f"webhook call to acceptance by both platforms: {(latest - sent_at) * 1000:.0f} ms")
    assert latest - sent_at < 1.0
    assert "港灣城市論壇" in world.tg.messages[0].plain
    wait_for(lambda: world.settled(2), 30, "the ledger to settle")
    assert len(world.tg.messages) == 1 and len(world.x.posts) == 1
    assert world.daemon.terminate() == 0


def test_websub_subscription_is_verified_and_a_push_is_posted(world: World) -> None:
    """The running daemon subscribes at the hub its feed names; the hub's verification reaches
    /websub/<source>, and a signed push is posted at once, without waiting for a poll."""
    from bot.testing.websub_hub import FakeHub

    with FakeHub() as hub:
        topic = hub.serve_topic("/nv.xml", rss([item(0)]), link_header=True)
        world.configure(min_gap="0s")
        config = world.folder / "newsbot.yaml"
        text = config.read_text(encoding="utf-8").replace(world.feed_url, topic)
        text = text.replace("    max_age: off\n", "    max_age: off\n    websub: true\n", 1)
        config.write_text(f"public_url: http://127.0.0.1:{world.port}\n{text}", "utf-8")
        world.daemon.start()
        wait_for(lambda: "newsbot running" in world.daemon.text(), 20, "the daemon to start")
        wait_for(lambda: len(hub.subscribers(topic)) == 1, 20, "a verified subscription")
        wait_for(world.first_sight_recorded, 20, "the first poll (first sight) recorded")
        statuses = hub.publish_from_thread(topic, rss([item(1), item(0)]))
        assert statuses == [202] or all(200 <= s < 300 for s in statuses)
        wait_for(lambda: len(world.tg.messages) >= 1 and len(world.x.posts) >= 1, 10, "the push")
        assert "第1則" in world.tg.messages[0].plain
        assert world.daemon.terminate() == 0


def test_reload_checks_a_photo_channel_against_the_caption_limit(world: World) -> None:
    """A reload that makes a Telegram channel `photo: true` validates its template against
    the 1024-character caption limit, as `check` and a send do (not 4096 by file name)."""
    world.configure(min_gap="0s")
    world.daemon.start()
    world.started()
    long = "高雄港與格丁尼亞港簽署合作備忘錄，雙方將在智慧港口與綠色航運上展開合作。" * 40
    (world.folder / "templates" / "long.html.j2").write_text(
        f"<b>{{{{ article.title }}}}</b>\n{long}\n{{{{ link }}}}", encoding="utf-8"
    )
    config = world.folder / "newsbot.yaml"
    text = config.read_text(encoding="utf-8").replace(
        "    template: telegram.html.j2\n", "    template: long.html.j2\n    photo: true\n", 1
    )
    config.write_text(text, encoding="utf-8")
    wait_for(lambda: "NOT loaded" in world.daemon.text(), 15, "the refused reload")
    refused = world.daemon.text().split("NOT loaded", 1)[1].splitlines()[0]
    assert "telegram" in refused and "1024" in refused
    assert "reloaded" not in world.daemon.text()
    check = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(config), "check"],
        capture_output=True,
        text=True,
        env=world.daemon.env,
        cwd=world.folder,
        timeout=60,
        check=False,
    )
    assert check.returncode == 2 and "1024" in check.stderr
    assert world.daemon.terminate() == 0


def test_a_reload_that_turns_websub_on_subscribes_at_the_hub(world: World) -> None:
    """A feed switched to `websub: true` by a reload gets its subscriber built, registered
    at /websub/<source> and subscribed at the hub, and a push is then posted."""
    from bot.testing.websub_hub import FakeHub

    with FakeHub() as hub:
        topic = hub.serve_topic("/nv.xml", rss([item(0)]), link_header=True)
        world.configure(min_gap="0s")
        config = world.folder / "newsbot.yaml"
        text = config.read_text(encoding="utf-8").replace(world.feed_url, topic)
        config.write_text(f"public_url: http://127.0.0.1:{world.port}\n{text}", "utf-8")
        world.daemon.start()
        wait_for(lambda: "newsbot running" in world.daemon.text(), 20, "the daemon to start")
        wait_for(world.first_sight_recorded, 20, "the first poll (first sight) recorded")
        assert hub.subscribers(topic) == []
        text = config.read_text(encoding="utf-8")
        text = text.replace("    max_age: off\n", "    max_age: off\n    websub: true\n", 1)
        config.write_text(text, "utf-8")
        wait_for(lambda: "reloaded" in world.daemon.text(), 15, "the reload")
        wait_for(lambda: len(hub.subscribers(topic)) == 1, 20, "a verified subscription")
        statuses = hub.publish_from_thread(topic, rss([item(1), item(0)]))
        assert all(200 <= s < 300 for s in statuses)
        wait_for(lambda: len(world.tg.messages) >= 1, 10, "the push")
        assert "第1則" in world.tg.messages[0].plain
        assert world.daemon.terminate() == 0


def test_the_running_daemon_copies_the_ledgers_log_into_its_file(world: World) -> None:
    """A running daemon checkpoints its SQLite ledger every few seconds: what it wrote reaches
    the database file soon, not only at SQLite's own threshold (inside some commit) or a stop."""
    world.configure()
    world.daemon.start()
    world.started()
    database, log = world.folder / "ledger.db", world.folder / "ledger.db-wal"
    wait_for(lambda: log.exists() and log.stat().st_size > 0, 10, "the first writes")
    # The schema and the first poll: dozens of pages, written to the log first.
    wait_for(lambda: database.stat().st_size >= 32 * 4096, 15, "a checkpoint")
    assert world.daemon.terminate() == 0
