"""Never twice, never lost, through SIGKILL: the real ``newsbot run`` is killed at random
moments and restarted, against the local Telegram, X, Threads, Mastodon and feed servers, and the
platforms' own records are compared with the ledger.

A post in flight at a kill may or may not have reached the platform: it must become
``uncertain`` (never be resent blindly), and each kill can leave at most one per channel, since
a channel sends one post at a time per instance, paced (``rate: 1000/s``) or not (``rate:
off``, where a whole batch is claimed at once but only the post being sent is in flight). Each
run has Telegram and X unpaced (their unanswered sends become uncertain, so that is where
"claimed is not in flight" counts) and Threads and Mastodon paced.
Once a person has looked (here: the fakes' records), ``newsbot retry --uncertain --id …``
sends the ones that did not arrive, and every article is then on every channel exactly once.
On Threads every uncertain post is retried, arrived or not: the container id noted before
publishing makes a resend safe.

Random choices come from one seed, printed with the result and in every failure message;
``NEWSBOT_CRASH_SEED=<n>`` replays the same choices (the timing of a kill against a send is
still the machine's).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.testing import mastodon_server, x_server
from bot.testing.faults import Fault as MastodonFault
from bot.testing.feed_server import FeedItem, FeedServer, rss
from bot.testing.graph_server import GraphFault
from bot.testing.mastodon_server import FakeMastodon
from bot.testing.telegram_server import DEFAULT_TOKEN, FakeTelegram, Fault
from bot.testing.threads_server import FakeThreads
from bot.testing.x_server import FakeX, XFault
from tests.conftest import PG_URL, postgres_schema_url

pytestmark = pytest.mark.crash

REPO = Path(__file__).resolve().parents[2]
HOST = socket.gethostname()
DESKS = ("desk-a", "desk-b")
PER_DESK = 60  # 120 articles, 480 deliveries
CHANNELS = ("telegram", "x", "threads", "mastodon")
# Pacing off (a batch claimed at once) on the two channels whose unanswered sends become
# uncertain, so that "claimed is not in flight" is tried where it counts; paced on the two
# whose resends are safe.
UNPACED = ("telegram", "x")
THREADS_TOKEN = "THAA-crash-test-token"
MASTO_TOKEN = "masto-crash-test-token"
KILLS = 12
X_KEYS = {
    "XK": "ck-crash-test",
    "XS": "cs-crash-test-secret",
    "XT": "at-crash-test",
    "XTS": "ats-crash-test-secret",
}
LINK = re.compile(r"https://news\.example\.tw/(desk-[ab])/(\d+)")

CONFIG = """\
timezone: Asia/Taipei
database: "{database}"
templates: {templates}
stop_timeout: 15s
sources:
{sources}
channels:
  telegram:
    kind: telegram
    token: ${{TG_TOKEN}}
    chat: "@newsvision"
    template: telegram.html.j2
    api_url: {tg}
    rate: {rate_telegram}
    min_gap: 0s
  x:
    kind: x
    consumer_key: ${{XK}}
    consumer_secret: ${{XS}}
    access_token: ${{XT}}
    access_token_secret: ${{XTS}}
    template: x.txt.j2
    api_url: {x}
    rate: {rate_x}
    min_gap: 0s
  threads:
    kind: threads
    access_token: ${{THREADS_TOKEN}}
    template: threads.txt.j2
    api_url: {threads}
    rate: {rate_threads}
    min_gap: 0s
  mastodon:
    kind: mastodon
    instance_url: {masto}
    access_token: ${{MT}}
    template: mastodon.txt.j2
    rate: {rate_mastodon}
    min_gap: 0s
"""

SOURCE = """\
  {name}:
    kind: feed
    url: {url}
    allow_private: [127.0.0.1]
    every: 1s
    backlog: 1000
    max_age: off
"""


def seed() -> int:
    chosen = os.environ.get("NEWSBOT_CRASH_SEED")
    return int(chosen) if chosen else random.SystemRandom().randrange(1 << 32)


def item(desk: str, n: int) -> FeedItem:
    return FeedItem(
        guid=f"{desk}-{n}",
        title=f"{desk} 第{n}則：高雄港與格丁尼亞港簽署合作備忘錄",
        link=f"https://news.example.tw/{desk}/{n}",
        summary_html=(
            "<p>新聞視界時報 記者 王秉程 整理報導</p>"
            f"<p>高雄與波蘭姊妹市格丁尼亞的交流再度邁向新里程！第{n}則報導。</p>"
        ),
        published=datetime.now(UTC),
        categories=("地方", "國際交流"),
    )


def process_env(secrets: dict[str, str]) -> dict[str, str]:
    """The environment of a ``newsbot`` process under test: none of the shell's newsbot or
    platform settings, this checkout on the path, the Telegram fake's token and ``secrets``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NEWSBOT_", "TELEGRAM_", "X_", "PYTEST_"))
    }
    return env | {"TG_TOKEN": DEFAULT_TOKEN, "PYTHONPATH": str(REPO)} | secrets


def read_ledger(database: str, query: str) -> list[sa.Row[tuple[object, ...]]]:
    """A query on the ledger from outside the processes under test."""
    engine = sa.create_engine(database)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(query)).all())
    except sa.exc.ProgrammingError:
        return []  # PostgreSQL before the first instance has created the schema
    except sa.exc.OperationalError:
        return []  # SQLite before the first instance has created the schema
    finally:
        engine.dispose()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


class Instance:
    """One slot running ``newsbot run``: each start is a new process (a new holder)."""

    def __init__(self, slot: int, config: Path, env: dict[str, str]) -> None:
        self.slot = slot
        self.config = config
        self.env = env
        self.log = config.parent / f"newsbot-{slot}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.pids: list[int] = []
        self.killed: list[int] = []

    def start(self) -> None:
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot", "--config", str(self.config), "run"],
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.config.parent,
            )
        self.pids.append(self.process.pid)

    @property
    def holder(self) -> str:
        assert self.process is not None
        return f"{HOST}:{self.process.pid}"

    @property
    def holders(self) -> set[str]:
        return {f"{HOST}:{pid}" for pid in self.pids}

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, and reap at once: a zombie would still look alive to the others."""
        assert self.process is not None
        assert self.alive(), f"newsbot exited by itself:\n{self.tail()}"
        self.process.kill()
        self.process.wait(timeout=30)
        self.killed.append(self.process.pid)

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def tail(self) -> str:
        text = self.log.read_text("utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-30:])


@dataclass
class Newsroom:
    """The fakes, the feed being published over time, the ledger seen from outside."""

    folder: Path
    database: str
    tg: FakeTelegram
    x: FakeX
    masto: FakeMastodon
    feed: FeedServer
    threads: FakeThreads
    rng: random.Random
    per_desk: int = PER_DESK
    unpaced: tuple[str, ...] = ()
    published: dict[str, list[FeedItem]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def config(self) -> Path:
        sources = "".join(
            SOURCE.format(name=desk, url=self.feed.url_for(f"/{desk}.xml")) for desk in DESKS
        )
        path = self.folder / "newsbot.yaml"
        path.write_text(
            CONFIG.format(
                database=self.database,
                templates=REPO / "templates",
                sources=sources,
                tg=self.tg.url,
                x=self.x.url,
                threads=self.threads.url,
                masto=self.masto.url,
                **{
                    f"rate_{channel}": "off" if channel in self.unpaced else "1000/s"
                    for channel in CHANNELS
                },
            ),
            encoding="utf-8",
        )
        return path

    def env(self) -> dict[str, str]:
        return process_env(X_KEYS | {"MT": MASTO_TOKEN, "THREADS_TOKEN": THREADS_TOKEN})

    # -- the feed, growing while newsbot is killed and restarted -----------------------------

    def publish_over(self, seconds: float, *, keep: int = 0) -> None:
        """A third of each desk at once, the rest but ``keep`` in small batches over
        ``seconds`` (from a thread)."""
        upto = self.per_desk - keep
        for desk in DESKS:
            self.published[desk] = [item(desk, n) for n in range(self.per_desk // 3)]
            self.feed.publish(f"/{desk}.xml", rss(self.published[desk]))
        batches = 20
        pause = seconds / batches

        def run() -> None:
            for _ in range(batches):
                if self._stop.wait(pause):
                    return
                for desk in DESKS:
                    have = len(self.published[desk])
                    more = min(upto - have, -(-(upto - self.per_desk // 3) // batches))
                    if more > 0:
                        self._publish(desk, have + more)

        self._thread = threading.Thread(target=run, name="publisher", daemon=True)
        self._thread.start()

    def _publish(self, desk: str, upto: int) -> list[str]:
        """Grow the desk's feed to ``upto`` items; the new items' links."""
        have = len(self.published[desk])
        new = [item(desk, n) for n in range(have, min(upto, self.per_desk))]
        self.published[desk] = self.published[desk] + new
        self.feed.publish(f"/{desk}.xml", rss(self.published[desk]))
        return [it.link for it in new]

    def publish_now(self, per_desk: int) -> list[str]:
        """Once the publisher is done: ``per_desk`` more at once; their links."""
        self.finish_publishing(everything=False)
        return [
            link
            for desk in DESKS
            for link in self._publish(desk, len(self.published[desk]) + per_desk)
        ]

    def finish_publishing(self, *, everything: bool = True) -> None:
        assert self._thread is not None
        self._thread.join(timeout=120)
        if everything:
            for desk in DESKS:
                self._publish(desk, self.per_desk)

    def stop(self) -> None:
        self._stop.set()

    # -- the ledger, read from outside -------------------------------------------------------

    def read(self, query: str) -> list[sa.Row[tuple[object, ...]]]:
        return read_ledger(self.database, query)

    def registered(self, holder: str) -> bool:
        return any(row[0] == holder for row in self.read("SELECT holder FROM instances"))

    def drained(self) -> bool:
        """Every article published is in the ledger, and nothing is queued or in flight."""
        total = sum(len(items) for items in self.published.values())
        rows = self.read(
            "SELECT (SELECT COUNT(*) FROM articles), (SELECT COUNT(*) FROM deliveries "
            "WHERE state IN ('queued', 'sending'))"
        )
        return bool(rows) and rows[0][0] == total and rows[0][1] == 0

    def state_line(self) -> str:
        counts = self.read("SELECT state, COUNT(*) FROM deliveries GROUP BY state")
        articles = self.read("SELECT COUNT(*) FROM articles")
        return f"articles={articles[0][0] if articles else '?'} deliveries={dict(counts)}"  # type: ignore[arg-type]

    # -- what the platforms say ---------------------------------------------------------------

    def posted(self) -> dict[str, Counter[str]]:
        """How many times each article URL arrived, per channel, from the fakes' own records."""
        found: dict[str, Counter[str]] = {channel: Counter() for channel in CHANNELS}
        for message in self.tg.messages:
            found["telegram"].update(m.group(0) for m in LINK.finditer(message.text or ""))
        for post in self.x.posts:
            found["x"].update(m.group(0) for m in LINK.finditer(post.text))
        for thread in list(self.threads.posts):
            found["threads"].update({m.group(0) for m in LINK.finditer(thread.text)})
        for status in self.masto.statuses:
            found["mastodon"].update(m.group(0) for m in LINK.finditer(status.text))
        return found

    def deliveries(self) -> list[sa.Row[tuple[object, ...]]]:
        return self.read(
            "SELECT d.id, a.url, d.channel, d.state, d.reason, d.remote_id, d.claimed_by, "
            "d.sent_by FROM deliveries d JOIN articles a ON a.id = d.article_id ORDER BY d.id"
        )


@contextlib.contextmanager
def open_newsroom(
    folder: Path,
    database: str,
    crash_seed: int,
    monkeypatch: pytest.MonkeyPatch,
    *,
    per_desk: int = PER_DESK,
    unpaced: tuple[str, ...] = (),
) -> Iterator[Newsroom]:
    """The fakes in threads of this process, posts delayed a little (so that kills land
    mid-send), X's 200-per-15-minutes and 300-per-3-hours caps lifted (hundreds of posts in a
    minute here)."""
    monkeypatch.setattr(x_server, "POSTS_PER_WINDOW", 1_000_000)
    monkeypatch.setattr(x_server, "POSTS_PER_LONG_WINDOW", 1_000_000)
    monkeypatch.setattr(mastodon_server, "CALLS_PER_WINDOW", 1_000_000)
    rng = random.Random(crash_seed)
    with (
        FakeTelegram(token=DEFAULT_TOKEN) as tg,
        FakeX(
            consumer_key=X_KEYS["XK"],
            consumer_secret=X_KEYS["XS"],
            access_token=X_KEYS["XT"],
            access_token_secret=X_KEYS["XTS"],
        ) as x,
        FakeMastodon(access_token=MASTO_TOKEN) as masto,
        FeedServer() as feed,
        FakeThreads(token=THREADS_TOKEN) as threads,
    ):
        threads.quota_total = 1_000_000
        for _ in range(3000):
            delay = 0.002 if rng.random() < 0.5 else rng.uniform(0.01, 0.08)
            tg.fail_next(1, Fault.slow(delay))
            x.fail_next(1, XFault.slow(delay), path="/2/tweets")
            threads.fail_next(1, GraphFault.slow(delay), path="/threads_publish")
            masto.fail_next(1, MastodonFault.slow(delay), path="/api/v1/statuses")
        room = Newsroom(
            folder, database, tg, x, masto, feed, threads, rng, per_desk=per_desk, unpaced=unpaced
        )
        try:
            yield room
        finally:
            room.stop()


@contextlib.contextmanager
def running(instances: list[Instance]) -> Iterator[list[Instance]]:
    """Never leave a newsbot process behind, whatever happens in the test."""
    try:
        yield instances
    finally:
        for instance in instances:
            if instance.alive():
                instance.kill()


@dataclass
class Outcome:
    posts: int
    duplicates: int
    lost: int
    uncertain: int
    sent_by: Counter[str]


def check(room: Newsroom, instances: list[Instance], kills: int, where: str) -> Outcome:
    """The invariants, from the platforms' records and the ledger; then the person's part:
    ``newsbot retry --uncertain`` for the posts that did not arrive, and every article is on
    every channel exactly once."""
    posted = room.posted()
    rows = room.deliveries()
    urls = {it.link for items in room.published.values() for it in items}
    duplicates = {
        channel: {url: n for url, n in counts.items() if n > 1}
        for channel, counts in posted.items()
    }
    refused_as_duplicate = [a for a in room.x.attempts if a.reason == "duplicate content"]
    assert not any(duplicates.values()), f"{where}: posted twice: {duplicates}"
    assert not refused_as_duplicate, f"{where}: X refused {len(refused_as_duplicate)} resends"

    by_key = {(str(row.url), str(row.channel)): row for row in rows}
    assert len(by_key) == len(rows), f"{where}: two deliveries for one (article, channel)"
    missing = [(url, ch) for url in sorted(urls) for ch in CHANNELS if (url, ch) not in by_key]
    assert not missing, f"{where}: {len(missing)} lost, e.g. {missing[:5]}"
    assert set(by_key) == {(url, ch) for url in urls for ch in CHANNELS}, f"{where}: strays"

    states = Counter(str(row.state) for row in rows)
    assert set(states) <= {"sent", "uncertain", "skipped"}, f"{where}: {states}"
    killed = {f"{HOST}:{pid}" for instance in instances for pid in instance.killed}
    uncertain = []
    for (url, channel), row in by_key.items():
        arrived = posted[channel][url]
        if row.state == "sent":
            assert arrived == 1, f"{where}: {url} on {channel} recorded sent, arrived {arrived}"
            assert row.sent_by, f"{where}: sent without sent_by: {row}"
        elif row.state == "skipped":
            assert row.reason and arrived == 0, f"{where}: {row}"
        else:
            assert arrived <= 1 and row.reason, f"{where}: {row}"
            assert row.claimed_by in killed, f"{where}: uncertain but its holder was not killed"
            uncertain.append((row, arrived))
    # One claim in flight per paced channel: a kill leaves at most that many uncertain.
    assert len(uncertain) <= kills * len(CHANNELS), f"{where}: {len(uncertain)} uncertain"

    # The person's part: what did not arrive is sent again; what did stays as it is.
    resend = [str(row.id) for row, arrived in uncertain if arrived == 0 or row.channel == "threads"]
    config = room.folder / "newsbot.yaml"
    if resend:
        ids = [arg for delivery in resend for arg in ("--id", delivery)]
        done = _newsbot(room, config, "retry", "--uncertain", *ids)
        assert done.returncode == 0 and f"{len(resend)} deliver" in done.stdout, done.stderr
        resolver = Instance(0, config, room.env())
        with running([resolver]):
            resolver.start()
            finish(room, [resolver], where)
    final = room.posted()
    for channel in CHANNELS:
        assert final[channel] == Counter(dict.fromkeys(urls, 1)), f"{where}: {channel} after retry"
    status = _newsbot(room, config, "status", "--state", "uncertain", "--json", "-n", "1000")
    assert status.returncode == 0
    assert status.stdout.count('"state": "uncertain"') == len(uncertain) - len(resend)
    return Outcome(
        posts=sum(len(posted[channel]) for channel in CHANNELS),
        duplicates=0,
        lost=0,
        uncertain=len(uncertain),
        sent_by=Counter(str(row.sent_by) for row in rows if row.state == "sent"),
    )


def _newsbot(room: Newsroom, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=room.env(),
        cwd=config.parent,
        check=False,
    )


def kill_later(room: Newsroom, instance: Instance, rng: random.Random) -> None:
    """Kill ``instance`` at a random moment: mostly while it runs (after it registered in the
    ledger), sometimes while it is still starting (opening the ledger, recovering)."""
    if rng.random() < 0.2:
        time.sleep(rng.uniform(0.2, 1.5))
    else:
        wait_for(lambda: room.registered(instance.holder) or not instance.alive(), 60, "start")
        assert instance.alive(), f"newsbot exited by itself:\n{instance.tail()}"
        time.sleep(rng.uniform(0.05, 1.2))
    instance.kill()


def finish(room: Newsroom, instances: list[Instance], where: str) -> None:
    room.finish_publishing()
    try:
        wait_for(room.drained, 120, f"the queue to drain ({where})")
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}: {room.state_line()}\n" + "\n".join(i.tail() for i in instances)
        ) from None
    for instance in instances:
        # Started means registered: its signal handlers are in place, so SIGTERM is a clean
        # stop (rather than the default death of a process still importing).
        try:
            wait_for(lambda i=instance: room.registered(i.holder), 60, f"slot {instance.slot} up")
        except AssertionError as exc:
            raise AssertionError(f"{exc}:\n{instance.tail()}") from None
        assert instance.terminate() == 0, instance.tail()


@pytest.fixture
def crash_seed() -> int:
    """The seed of this run's random choices (NEWSBOT_CRASH_SEED replays one)."""
    return seed()


def pacing(unpaced: tuple[str, ...]) -> str:
    """Which channels run unpaced and which paced, for the measured line and messages."""
    paced = [channel for channel in CHANNELS if channel not in unpaced]
    return f"rate off: {', '.join(unpaced)}; rate 1000/s: {', '.join(paced)}"


def test_sigkill_and_restart_never_posts_twice_nor_loses_one_sqlite(
    crash_seed: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    report: Callable[[str], None],
) -> None:
    """One instance on SQLite, 120 articles, SIGKILLed 12 times at random moments and
    restarted, Telegram and X with pacing off (``rate: off``: a batch claimed at once),
    Threads and Mastodon paced: no article is posted twice on any channel, none is lost, each
    post in flight at a kill is 'uncertain' (at most one per channel per kill: claimed is not
    in flight, the rest of a killed batch goes back to the queue), and after retrying the
    uncertain ones that did not arrive every article is on every channel exactly once."""
    started = time.monotonic()
    where = f"sqlite, {pacing(UNPACED)}, seed {crash_seed}"
    rng = random.Random(crash_seed + 1)
    database = f"sqlite:///{tmp_path / 'ledger.db'}"
    with open_newsroom(tmp_path, database, crash_seed, monkeypatch, unpaced=UNPACED) as room:
        instance = Instance(1, room.config(), room.env())
        with running([instance]):
            room.publish_over(seconds=20)
            for _ in range(KILLS):
                instance.start()
                kill_later(room, instance, rng)
            instance.start()
            finish(room, [instance], where)
        outcome = check(room, [instance], KILLS, where)
    line = (
        f"crash test (sqlite, {pacing(UNPACED)}): kills={KILLS} posts={outcome.posts} "
        f"duplicates=0 lost=0 uncertain={outcome.uncertain} "
        f"seconds={time.monotonic() - started:.0f} seed={crash_seed}"
    )
    report(line)


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL schema (skipped without NEWSBOT_TEST_DATABASE_URL)."""
    if not PG_URL:
        pytest.skip("set NEWSBOT_TEST_DATABASE_URL to run the PostgreSQL tests")
    yield from postgres_schema_url()


def take_over(room: Newsroom, instances: list[Instance], survivor: Instance, where: str) -> int:
    """Kill every instance but ``survivor``, then publish a few articles: it alone must find
    the others dead, take their sources' leases over, and post all of them. Returns the kills."""
    wait_for(lambda: room.registered(survivor.holder), 60, f"slot {survivor.slot} up")
    others = [instance for instance in instances if instance is not survivor]
    for other in others:
        other.kill()
    links = set(room.publish_now(per_desk=5))

    def rows() -> list[sa.Row[tuple[object, ...]]]:
        return [row for row in room.deliveries() if row.url in links]

    def done() -> bool:
        found = rows()
        return len(found) == len(links) * len(CHANNELS) and all(
            row.state not in ("queued", "sending") for row in found
        )

    wait_for(done, 90, f"slot {survivor.slot} to take the work over ({where})")
    strays = [row for row in rows() if (row.state, row.sent_by) != ("sent", survivor.holder)]
    assert not strays, f"{where}: not sent by the survivor {survivor.holder}: {strays}"
    for other in others:
        other.start()
    return len(others)


@pytest.mark.postgres
def test_three_instances_on_postgres_killed_at_random_share_the_work_safely(
    crash_seed: int,
    pg_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    report: Callable[[str], None],
) -> None:
    """Three instances on one PostgreSQL ledger, started together on an empty schema, 120
    articles, Telegram and X with pacing off (``rate: off``), Threads and Mastodon paced; one
    instance, chosen at random, is SIGKILLed and restarted 6 times, then each in turn is left
    alone (the other two killed: 12 kills in all) and must take the sources and the posting
    over. No duplicate, no loss, at most one uncertain post per channel per kill (a killed
    batch's unsent claims go back to the queue), every instance sent posts (``sent_by`` in
    the ledger), and everything but the uncertain posted without a person's help."""
    started = time.monotonic()
    where = f"postgres, {pacing(UNPACED)}, seed {crash_seed}"
    rng = random.Random(crash_seed + 2)
    with open_newsroom(tmp_path, pg_database, crash_seed, monkeypatch, unpaced=UNPACED) as room:
        config, env = room.config(), room.env()
        instances = [Instance(slot, config, env) for slot in (1, 2, 3)]
        killed = 0
        with running(instances):
            room.publish_over(seconds=15, keep=5 * len(instances))
            for instance in instances:
                instance.start()
            # Random kills, then the take-overs' 2 per instance make KILLS in all.
            for _ in range(KILLS - 2 * len(instances)):
                # The others keep working (and recover the victim's posts) meanwhile.
                time.sleep(rng.uniform(0.2, 1.0))
                wait_for(lambda: any(room.registered(i.holder) for i in instances), 60, "one up")
                up = [i for i in instances if room.registered(i.holder)]
                victim = rng.choice(up if rng.random() < 0.8 else instances)
                victim.kill()
                victim.start()
                killed += 1
            for survivor in rng.sample(instances, len(instances)):
                killed += take_over(room, instances, survivor, where)
            finish(room, instances, where)
        outcome = check(room, instances, killed, where)
    per_slot = {
        instance.slot: sum(outcome.sent_by[h] for h in instance.holders) for instance in instances
    }
    assert killed >= KILLS, f"{where}: {killed} kills"
    assert all(per_slot.values()), f"{where}: an instance sent nothing: {per_slot}"
    assert sum(per_slot.values()) == sum(outcome.sent_by.values()), f"{where}: {outcome.sent_by}"
    line = (
        f"crash test (postgres, 3 instances, {pacing(UNPACED)}): kills={killed} "
        f"posts={outcome.posts} duplicates=0 lost=0 uncertain={outcome.uncertain} "
        f"sent_by_instance={per_slot} seconds={time.monotonic() - started:.0f} seed={crash_seed}"
    )
    report(line)
