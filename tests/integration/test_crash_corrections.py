"""A revision is applied at most once per post, through SIGKILL: 50 published articles have their
titles corrected at once by an editor, while three real ``newsbot run`` processes share the
ledger and are killed at random moments and restarted. Counted from the local Telegram's own
records: every correction is applied exactly once, or recorded ``uncertain`` (at most one per
kill: an instance has one edit in flight per channel), and none is applied twice.

Random choices come from one seed, printed with the result and in every failure message;
``NEWSBOT_CRASH_SEED=<n>`` replays the same choices (the timing of a kill is the machine's).
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.ledger import Ledger
from bot.model import Action
from bot.testing.feed_server import FeedItem, FeedServer, rss
from bot.testing.revisions import record_revision
from bot.testing.telegram_server import DEFAULT_TOKEN, FakeTelegram, Fault
from tests.integration.test_crash import (
    HOST,
    REPO,
    Instance,
    pg_database,
    process_env,
    read_ledger,
    running,
    seed,
    wait_for,
)

pytestmark = pytest.mark.crash

__all__ = ["pg_database"]  # the fixture, shared with the posts' crash test

CORRECTIONS = 50
KILLS = 8
CHAT = "@newsvision"

CONFIG = """\
timezone: Asia/Taipei
database: "{database}"
templates: {templates}
stop_timeout: 15s
sources:
  desk:
    kind: feed
    url: {feed}
    allow_private: [127.0.0.1]
    every: 1s
    backlog: 1000
    max_age: off
channels:
  telegram:
    kind: telegram
    token: ${{TG_TOKEN}}
    chat: "{chat}"
    template: telegram.html.j2
    api_url: {tg}
    rate: 1000/s
    min_gap: 0s
"""


def item(n: int, *, corrected: bool = False) -> FeedItem:
    title = f"颱風海葵第{n}報：高雄市明（4）日停止上班上課"
    return FeedItem(
        guid=f"desk-{n}",
        title=f"【更正】{title}，澎湖照常" if corrected else title,
        link=f"https://news.example.tw/desk/{n}",
        summary_html=f"<p>中央氣象署發布海上陸上颱風警報，第{n}報：暴風圈半徑 250 公里 🌀</p>",
        published=datetime(2026, 12, 1, 8, 0, tzinfo=UTC),
        categories=("颱風", "地方"),
    )


@dataclasses.dataclass
class Desk:
    """The local Telegram, the feed, the ledger seen from outside."""

    tg: FakeTelegram
    feed: FeedServer
    database: str
    folder: Path

    def config(self) -> Path:
        path = self.folder / "newsbot.yaml"
        path.write_text(
            CONFIG.format(
                database=self.database,
                templates=REPO / "templates",
                feed=self.feed.url_for("/desk.xml"),
                chat=CHAT,
                tg=self.tg.url,
            ),
            encoding="utf-8",
        )
        return path

    def env(self) -> dict[str, str]:
        return process_env({})

    def read(self, query: str) -> list[sa.Row[tuple[object, ...]]]:
        return read_ledger(self.database, query)

    def registered(self, holder: str) -> bool:
        return any(row[0] == holder for row in self.read("SELECT holder FROM instances"))

    def sent(self) -> int:
        rows = self.read("SELECT COUNT(*) FROM deliveries WHERE state = 'sent'")
        return int(rows[0][0]) if rows else 0  # type: ignore[call-overload]

    def settled(self) -> bool:
        """One action per corrected post recorded, none queued or in flight."""
        rows = self.read(
            "SELECT COUNT(*), SUM(CASE WHEN state IN ('queued', 'sending') THEN 1 ELSE 0 END) "
            "FROM revision_actions"
        )
        return bool(rows) and rows[0][0] == CORRECTIONS and not rows[0][1]

    def actions(self) -> list[sa.Row[tuple[object, ...]]]:
        return self.read(
            "SELECT ra.id, ra.state, ra.reason, ra.claimed_by, d.remote_id FROM revision_actions "
            "ra JOIN deliveries d ON d.id = ra.delivery_id ORDER BY ra.id"
        )


def correct_all(database: str) -> None:
    """An editor's title for every article at once (``newsbot correct --title``, which later
    polls of the feed do not undo): one revision each, an edit of its Telegram post queued."""
    ledger = Ledger.open(database)
    try:
        for n in range(CORRECTIONS):
            record_revision(
                ledger,
                key=f"desk-{n}",
                now=datetime.now(UTC),
                actions={"telegram": Action.EDIT},
                title_override=item(n, corrected=True).title,
                reason="颱風假資訊更正",
            )
    finally:
        ledger.close()


def corrections_under_kills(
    crash_seed: int, database: str, tmp_path: Path, report: Callable[[str], None], where: str
) -> None:
    started = time.monotonic()
    rng = random.Random(crash_seed + 14)
    with FakeTelegram(token=DEFAULT_TOKEN) as tg, FeedServer() as feed:
        feed.publish("/desk.xml", rss([item(n) for n in range(CORRECTIONS)]))
        desk = Desk(tg, feed, database, tmp_path)
        config, env = desk.config(), desk.env()
        instances = [Instance(slot, config, env) for slot in (1, 2, 3)]
        with running(instances):
            for instance in instances:
                instance.start()
            wait_for(lambda: desk.sent() == CORRECTIONS, 120, f"the posts to go out ({where})")
            # Edits take a little while at the platform, so that kills land mid-edit.
            for _ in range(CORRECTIONS * 4):
                tg.fail_next(1, Fault.slow(rng.uniform(0.1, 0.4)))
            correct_all(database)
            wait_for(lambda: bool(tg.edits), 60, f"the first edit ({where})")
            kills = 0
            while kills < KILLS and not desk.settled():
                time.sleep(rng.uniform(0.2, 0.6))
                # Mostly an instance that is running (likely mid-edit), now and then any.
                up = [i for i in instances if desk.registered(i.holder)]
                victim = rng.choice(up if up and rng.random() < 0.8 else instances)
                victim.kill()
                victim.start()
                kills += 1
            try:
                wait_for(desk.settled, 120, f"every correction to be settled ({where})")
            except AssertionError as exc:
                tails = "\n".join(i.tail() for i in instances)
                raise AssertionError(f"{exc}: {desk.actions()}\n{tails}") from None
            for instance in instances:
                wait_for(lambda i=instance: desk.registered(i.holder), 60, "up before the stop")
                assert instance.terminate() == 0, instance.tail()
        edits = Counter(str(edit.message_id) for edit in tg.edits)
        rows = desk.actions()
    killed = {f"{HOST}:{pid}" for instance in instances for pid in instance.killed}
    twice = {mid: n for mid, n in edits.items() if n > 1}
    assert not twice, f"{where}: edited twice: {twice}"
    assert len(rows) == CORRECTIONS, f"{where}: {len(rows)} actions for {CORRECTIONS} posts"
    states = Counter(str(row.state) for row in rows)
    uncertain = 0
    for row in rows:
        applied = edits[str(row.remote_id)]
        if row.state == "done":
            assert applied == 1, f"{where}: recorded done, applied {applied}: {row}"
        else:
            assert row.state == "uncertain", f"{where}: {row}"
            assert applied <= 1 and row.reason, f"{where}: {row}"
            assert row.claimed_by in killed, f"{where}: uncertain, holder not killed: {row}"
            uncertain += 1
    assert uncertain <= kills, f"{where}: {uncertain} uncertain after {kills} kills"
    for message in tg.messages:
        now = tg.current(message.chat_id, message.message_id)
        assert now is not None
        if edits[str(message.message_id)]:
            assert "【更正】" in (now.text or ""), f"{where}: {now}"
    report(
        f"corrections crash test ({where}, 3 instances): kills={kills} corrections={CORRECTIONS} "
        f"applied_once={states['done']} uncertain={uncertain} twice=0 "
        f"seconds={time.monotonic() - started:.0f} seed={crash_seed}"
    )


@pytest.fixture
def crash_seed() -> int:
    """The seed of this run's random choices (NEWSBOT_CRASH_SEED replays one)."""
    return seed()


def test_a_burst_of_corrections_survives_sigkills_on_sqlite(
    crash_seed: int, tmp_path: Path, report: Callable[[str], None]
) -> None:
    """Three instances on one SQLite ledger, 50 corrections, up to 8 SIGKILLs while the edits
    go out: each correction applied exactly once or uncertain (at most one per kill), none
    twice."""
    database = f"sqlite:///{tmp_path / 'ledger.db'}"
    corrections_under_kills(crash_seed, database, tmp_path, report, f"sqlite, seed {crash_seed}")


@pytest.mark.postgres
def test_a_burst_of_corrections_survives_sigkills_on_postgres(
    crash_seed: int, pg_database: str, tmp_path: Path, report: Callable[[str], None]
) -> None:
    """The same on PostgreSQL."""
    corrections_under_kills(
        crash_seed, pg_database, tmp_path, report, f"postgres, seed {crash_seed}"
    )
