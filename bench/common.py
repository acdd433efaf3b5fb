"""What every benchmark shares: figures, timing, memory readings and the local servers.

Servers run in a process of their own (:class:`ServerProcess`), so their CPU never counts as the
client's: on 2 cores the client has one to itself. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import resource
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

LOOPBACK = "127.0.0.1"
TG_TOKEN = "123456:BENCH-token-not-real"
TG_CHAT = "@newsvision"
THREADS_TOKEN = "THAAbench-threads-token"
FB_TOKEN = "EAAGbench-page-token"
FB_PAGE = "104000000000001"
BSKY_PASSWORD = "bench-app-password"
MASTO_TOKEN = "bench-mastodon-token"
X_KEYS = {
    "consumer_key": "ck-bench",
    "consumer_secret": "cs-bench-secret",
    "access_token": "1490278571950612480-at-bench",
    "access_token_secret": "ats-bench-secret",
}


# ----------------------------------------------------------------------------------- figures


@dataclass
class Figure:
    """One measured figure: a row of the table and an entry of results.json."""

    bench: str
    name: str
    value: float | None
    unit: str
    baseline: float | None = None
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Report:
    """All figures of one benchmark, plus anything else worth keeping in results.json."""

    bench: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    def add(self, name: str, value: float | None, unit: str, **kw: Any) -> Figure:
        figure = Figure(self.bench, name, value, unit, **kw)
        self.figures.append(figure)
        return figure


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), nearest-rank on sorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ------------------------------------------------------------------------------ CPU, memory


@dataclass
class Span:
    wall: float = 0.0
    cpu: float = 0.0
    peak_rss_mb: float = 0.0
    start_rss_mb: float = 0.0


@contextlib.contextmanager
def measured() -> Iterator[Span]:
    """Wall time, this process's CPU time (all threads) and its peak RSS during the block.

    The peak is the kernel's high-water mark, reset at the start (``/proc/self/clear_refs``)
    so each block reports its own peak.
    """
    span = Span()
    reset_peak_rss()
    span.start_rss_mb = rss_mb()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        yield span
    finally:
        span.wall = time.perf_counter() - wall0
        span.cpu = time.process_time() - cpu0
        span.peak_rss_mb = peak_rss_mb()


def _status_kb(field_name: str, pid: int | str = "self") -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field_name + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb(pid: int | str = "self") -> float:
    kb = _status_kb("VmRSS", pid)
    return (kb or 0.0) / 1024


def peak_rss_mb() -> float:
    kb = _status_kb("VmHWM")
    if kb is None:  # not Linux: the lifetime peak is the best there is
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return kb / 1024


def reset_peak_rss() -> None:
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"cpus": os.cpu_count()}
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    kb = _status_kb("MemTotal", "self")
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="ascii") as handle:
        first = handle.readline().split()
        kb = float(first[1])
    if kb:
        info["memory_gb"] = round(kb / 1024 / 1024, 1)
    return info


def run_in_process(target: Callable[..., Any], *args: Any, timeout: float = 600) -> Any:
    """``target(*args)`` in a fresh (spawned) process; its return value, or its error raised
    here. A fresh process gives each measurement its own memory and CPU accounting."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child_main, args=(child, target, args), daemon=True)
    process.start()
    child.close()
    try:
        if not parent.poll(timeout):
            raise TimeoutError(f"{target.__name__} took longer than {timeout:g} s")
        ok, value = parent.recv()
    finally:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join()
    if not ok:
        raise RuntimeError(f"{target.__name__} failed in its process: {value}")
    return value


def _child_main(conn: Any, target: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        value = target(*args)
    except BaseException as exc:
        import traceback

        conn.send((False, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    else:
        conn.send((True, value))
    conn.close()


# ------------------------------------------------------------------------- server process


@dataclass
class ServerSpec:
    """What the server process serves."""

    feeds: int = 0  # /feed/<i>.xml, 50 Traditional Chinese entries each
    entries: int = 50
    delay: float = 0.0  # seconds before every feed answer
    telegram: bool = False
    x: bool = False
    threads: bool = False
    facebook: bool = False
    bluesky: bool = False
    mastodon: bool = False


@dataclass
class ServerURLs:
    feed: str | None = None
    telegram: str | None = None
    x: str | None = None
    threads: str | None = None
    facebook: str | None = None
    bluesky: str | None = None
    mastodon: str | None = None


def feed_document(index: int, entries: int, *, generation: int = 0) -> str:
    """Feed ``index`` as RSS: distinct articles per feed, newer ones in later generations."""
    from bot.testing.feed_server import TAIPEI, rss, sample_items

    newest = datetime(2025, 9, 16, 18, 0, tzinfo=TAIPEI) + timedelta(minutes=20 * generation)
    items = sample_items(entries, newest=newest, start_id=100_000 + index * 10_000 + generation)
    return rss(items, title=f"新聞視界時報 {index}")


class ServerProcess:
    """The local feed server and platform fakes in a separate process, driven over a pipe."""

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(spec, child), daemon=True)
        self._process.start()
        child.close()
        if not self._conn.poll(180):
            self.close()
            raise RuntimeError("the server process did not start within 180 s")
        ok, value = self._conn.recv()
        if not ok:
            self.close()
            raise RuntimeError(f"the server process failed: {value}")
        self.urls: ServerURLs = value

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def call(self, command: str, *args: Any, timeout: float = 120) -> Any:
        self._conn.send((command, args))
        if not self._conn.poll(timeout):
            raise TimeoutError(f"server command {command} took longer than {timeout:g} s")
        ok, value = self._conn.recv()
        if not ok:
            raise RuntimeError(f"server command {command} failed: {value}")
        return value

    def feed_url(self, index: int) -> str:
        assert self.urls.feed
        return f"{self.urls.feed}/feed/{index}.xml"

    def close(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(OSError, EOFError, BrokenPipeError):
                self._conn.send(("stop", ()))
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._conn.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve(spec: ServerSpec, conn: multiprocessing.connection.Connection) -> None:
    try:
        asyncio.run(_serve_async(spec, conn))
    except BaseException as exc:
        with contextlib.suppress(OSError, BrokenPipeError):
            conn.send((False, f"{type(exc).__name__}: {exc}"))


async def _serve_async(spec: ServerSpec, conn: multiprocessing.connection.Connection) -> None:
    from bot.testing.feed_server import FeedServer

    urls = ServerURLs()
    async with contextlib.AsyncExitStack() as stack:
        feeds = None
        if spec.feeds:
            feeds = await stack.enter_async_context(FeedServer())
            feeds.set_delay(spec.delay)
            for i in range(spec.feeds):
                feeds.publish(f"/feed/{i}.xml", feed_document(i, spec.entries))
            urls.feed = feeds.url
        platforms = await _platforms(spec, stack)
        for name, fake in platforms.items():
            setattr(urls, name, fake.url)
        conn.send((True, urls))
        loop = asyncio.get_running_loop()
        generation = 0
        while True:
            command, args = await loop.run_in_executor(None, conn.recv)
            if command == "stop":
                return
            try:
                if command == "publish" and feeds is not None:
                    path, body = args
                    feeds.publish(path, body)
                    result: Any = None
                elif command == "refresh" and feeds is not None:
                    # A new generation of the first `count` feeds: each gains new entries.
                    (count,) = args
                    generation += 1
                    for i in range(min(count, spec.feeds)):
                        feeds.publish(
                            f"/feed/{i}.xml",
                            feed_document(i, spec.entries, generation=generation),
                        )
                    result = generation
                elif command == "counts":
                    result = {"feed_requests": len(feeds.requests) if feeds else 0}
                    result.update({name: len(_published(fake)) for name, fake in platforms.items()})
                    result.setdefault("telegram", 0)
                    result.setdefault("x", 0)
                    if feeds is not None:
                        feeds.clear_requests()
                elif command == "clear":
                    for fake in platforms.values():
                        _published(fake).clear()
                        fake.attempts.clear()
                    if feeds is not None:
                        feeds.clear_requests()
                    result = None
                elif command == "cpu":
                    result = time.process_time()
                else:
                    raise ValueError(f"unknown command {command!r}")
            except Exception as exc:
                conn.send((False, f"{type(exc).__name__}: {exc}"))
            else:
                conn.send((True, result))


def _published(fake: Any) -> list[Any]:
    """What a fake published: Telegram's messages, the others' posts."""
    return fake.messages if hasattr(fake, "messages") else fake.posts


async def _platforms(spec: ServerSpec, stack: contextlib.AsyncExitStack) -> dict[str, Any]:
    """The platform fakes the spec asks for, started, with their own pacing lifted: their
    windows (X's 100 posts per 15 minutes, Threads' 250 a day, Bluesky's write points,
    Mastodon's 300 calls per 5 minutes) would stop a throughput run."""
    from bot.testing import bluesky_server, mastodon_server, x_server
    from bot.testing.bluesky_server import FakeBluesky
    from bot.testing.facebook_server import FakeFacebook
    from bot.testing.mastodon_server import FakeMastodon
    from bot.testing.telegram_server import FakeTelegram
    from bot.testing.threads_server import FakeThreads
    from bot.testing.x_server import FakeX

    x_server.POSTS_PER_WINDOW = 10**9
    x_server.POSTS_PER_LONG_WINDOW = 10**9
    bluesky_server.POINTS_PER_HOUR = 10**9
    mastodon_server.CALLS_PER_WINDOW = 10**9
    fakes: dict[str, Any] = {}
    if spec.telegram:
        fakes["telegram"] = FakeTelegram(token=TG_TOKEN, chats=[TG_CHAT])
    if spec.x:
        fakes["x"] = FakeX(
            consumer_key=X_KEYS["consumer_key"],
            consumer_secret=X_KEYS["consumer_secret"],
            access_token=X_KEYS["access_token"],
            access_token_secret=X_KEYS["access_token_secret"],
        )
    if spec.threads:
        threads = FakeThreads(token=THREADS_TOKEN)
        threads.quota_total = threads.hourly_budget = 10**9
        fakes["threads"] = threads
    if spec.facebook:
        facebook = FakeFacebook(token=FB_TOKEN, page_id=FB_PAGE)
        facebook.hourly_budget = 10**9
        fakes["facebook"] = facebook
    if spec.bluesky:
        fakes["bluesky"] = FakeBluesky(app_password=BSKY_PASSWORD)
    if spec.mastodon:
        fakes["mastodon"] = FakeMastodon(access_token=MASTO_TOKEN)
    for fake in fakes.values():
        await stack.enter_async_context(fake)
    return fakes


# ------------------------------------------------------------------------------- configs


def channel_configs(urls: ServerURLs, *, pacing: bool = False) -> dict[str, dict[str, Any]]:
    """Raw config of a channel for each local fake that runs; without ``pacing`` they post as
    fast as they can (``rate: off``), else at the platforms' documented pace. Nothing a channel
    fetches itself (a thumbnail, an image) is turned on: it would leave the loopback."""
    pace: dict[str, Any] = {} if pacing else {"rate": "off"}
    # kind: (the fake's URL, the setting it goes in, credentials and options, template)
    wanted: dict[str, tuple[str | None, str, dict[str, Any], str]] = {
        "telegram": (urls.telegram, "api_url", {"token": TG_TOKEN, "chat": TG_CHAT}, "html"),
        "x": (urls.x, "api_url", X_KEYS, "txt"),
        "threads": (urls.threads, "api_url", {"access_token": THREADS_TOKEN}, "txt"),
        "facebook": (
            urls.facebook,
            "api_url",
            {"page_id": FB_PAGE, "access_token": FB_TOKEN},
            "txt",
        ),
        "bluesky": (
            urls.bluesky,
            "pds_url",
            {
                "handle": "newsvision.bsky.social",
                "app_password": BSKY_PASSWORD,
                "thumbnail": False,
            },
            "txt",
        ),
        "mastodon": (urls.mastodon, "instance_url", {"access_token": MASTO_TOKEN}, "txt"),
    }
    # load_config names each channel after its key; a Config built directly does not, and a
    # post's channel is what Threads' in-flight note is filed under.
    return {
        kind: {
            "kind": kind,
            "name": kind,
            **fields,
            "template": f"{kind}.{suffix}.j2",
            where: url,
            "timeout": "10s",
            **pace,
        }
        for kind, (url, where, fields, suffix) in wanted.items()
        if url
    }


def repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------------------- articles


def bench_articles(count: int, *, start: int = 0) -> list[Any]:
    """``count`` distinct long Traditional Chinese articles (the seed article, renumbered), with
    their excerpts, as :class:`bot.ledger.NewArticle` values ready to ingest."""
    from dataclasses import replace

    from bot.compose.excerpt import build_excerpt
    from bot.compose.sample import SAMPLE_ARTICLE
    from bot.ledger import NewArticle

    items = []
    now = datetime.now(tz=SAMPLE_ARTICLE.published.tzinfo if SAMPLE_ARTICLE.published else None)
    for i in range(start, start + count):
        number = 200_000 + i
        article = replace(
            SAMPLE_ARTICLE,
            key=f"bench-{number}",
            url=f"https://news.example.tw/article/{number}",
            title=f"{SAMPLE_ARTICLE.title}（{number}）",
            summary_html=SAMPLE_ARTICLE.summary_html.replace("高雄", f"高雄{number}", 1),
            published=now - timedelta(seconds=i),
        )
        excerpt = build_excerpt(article.summary_html, strip=[BYLINE])
        items.append(NewArticle(article=article, excerpt=excerpt))
    return items


BYLINE = r"新聞視界時報\s*記者\s*\S+\s*整理報導"
