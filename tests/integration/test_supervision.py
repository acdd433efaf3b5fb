"""The daemon in this process, supervised: a loop that dies fails /healthz, and a ledger
that is slow to answer never holds the event loop (health and pushes still answer)."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.config import load_config
from bot.daemon import Daemon
from bot.ledger import Ledger
from bot.pipeline import Pipeline
from bot.testing.feed_server import FeedItem, FeedServer, rss

REPO = Path(__file__).resolve().parents[2]

CONFIG = """\
timezone: Asia/Taipei
database: sqlite:///ledger.db
templates: {templates}
stop_timeout: 5s
health:
  listen: 127.0.0.1:{port}
sources:
  newsvision:
    kind: feed
    url: {feed}
    every: 1s
    backlog: 5
    max_age: off
channels:
  telegram:
    kind: console
    template: telegram.html.j2
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def feed() -> Iterator[str]:
    with FeedServer() as server:
        yield server.publish(
            "/rss.xml",
            rss(
                [
                    FeedItem(
                        guid="nv-1",
                        title="高雄港與格丁尼亞港簽署合作備忘錄",
                        link="https://news.example.tw/a/1",
                        summary_html="<p>新聞視界時報 記者 王秉程 整理報導</p>",
                    )
                ]
            ),
        )


@asynccontextmanager
async def started(tmp_path: Path, feed: str) -> AsyncIterator[tuple[Daemon, str]]:
    """A daemon on a free port, running in this event loop; stopped cleanly after."""
    port = free_port()
    path = tmp_path / "newsbot.yaml"
    path.write_text(
        CONFIG.format(templates=REPO / "templates", port=port, feed=feed), encoding="utf-8"
    )
    daemon = Daemon(load_config(path, environ={}))
    task = asyncio.create_task(daemon.run())
    try:
        yield daemon, f"http://127.0.0.1:{port}"
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 30)


async def first_answer(base: str, *, status: int | None = None) -> tuple[int, str, float]:
    """/healthz once the listener is up (and, with ``status``, once it says that)."""
    answer: tuple[int, str, float] = (0, "", 0.0)
    for _ in range(200):
        try:
            answer = await healthz(base)
            if status is None or answer[0] == status:
                return answer
        except OSError:
            pass
        await asyncio.sleep(0.05)
    return answer


async def healthz(base: str) -> tuple[int, str, float]:
    """GET /healthz from another thread, as an outside prober would: timed there, so a
    blocked event loop shows as a slow answer."""

    def probe() -> tuple[int, str, float]:
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=10) as answer:
                status, body = answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read().decode()
        return status, body, time.perf_counter() - started

    return await asyncio.to_thread(probe)


@contextmanager
def slow(cls: type, name: str, seconds: float, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    original: Callable[..., Any] = getattr(cls, name)

    def sleepy(*args: Any, **kwargs: Any) -> Any:
        time.sleep(seconds)
        return original(*args, **kwargs)

    monkeypatch.setattr(cls, name, sleepy)
    yield


async def test_health_fails_when_the_delivery_loop_dies(
    tmp_path: Path, feed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception that ends the delivery loop (here: not a BotError) makes /healthz 503
    with the reason, instead of a daemon that looks fine and never posts again."""

    async def broken(self: Pipeline, *, batch: int = 50) -> Any:
        raise RuntimeError("sqlalchemy.exc.InterfaceError: cursor already closed")

    monkeypatch.setattr(Pipeline, "deliver_due", broken)
    async with started(tmp_path, feed) as (daemon, base):
        status, body, _ = await first_answer(base, status=503)
        assert status == 503 and "deliveries loop died" in body and "RuntimeError" in body
        ok, reason = await daemon.health()
        assert not ok and "cursor already closed" in reason


async def test_a_slow_ledger_never_holds_the_event_loop(
    tmp_path: Path, feed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every ledger transaction taking 0.5 s (a SQLite writer holding the lock), the
    polls, heartbeats and deliveries wait in worker threads: /healthz answers within 100 ms
    every time, and still says ok."""
    async with started(tmp_path, feed) as (_daemon, base):
        status, _, _ = await first_answer(base)
        assert status == 200
        with slow(Ledger, "_tx", 0.5, monkeypatch):
            await asyncio.sleep(1.2)  # polls (every 1 s), deliveries and a heartbeat under way
            answers = []
            for _ in range(10):
                answers.append(await healthz(base))
                await asyncio.sleep(0.1)
    assert all(status == 200 for status, _, _ in answers), answers
    slowest = max(seconds for _, _, seconds in answers)
    assert slowest < 0.1, f"/healthz took {slowest * 1000:.0f} ms with a slow ledger"
