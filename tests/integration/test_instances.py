"""Several instances on one ledger: heartbeats, source leases, recovery of what a dead
instance had in flight, and concurrent claims that never hand one delivery out twice."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.config import load_config
from bot.instances import InstanceKeeper
from bot.ledger import Ledger, NewArticle, channel_pacing, deliveries
from bot.model import Article, DeliveryState, Receipt

NOW = datetime(2025, 9, 15, 8, 0, tzinfo=UTC)
TIMEOUT = timedelta(seconds=30)
REPO = Path(__file__).resolve().parents[2]


def article(n: int) -> Article:
    return Article(
        key=f"guid-{n}",
        url=f"https://news.example.tw/article/{n}",
        title=f"高雄港與格丁尼亞港合作 第{n}則",
        published=NOW - timedelta(minutes=n),
    )


@pytest.fixture
def ledger(database_url: str) -> Ledger:
    opened = Ledger.open(database_url)
    yield opened  # type: ignore[misc]
    opened.close()


def queue(ledger: Ledger, n: int, channels: list[str], *, start: int = 0) -> None:
    items = [NewArticle(article(i), "摘要") for i in range(start, start + n)]
    ledger.ingest("nv", items, channels, now=NOW - timedelta(hours=1))


def states(ledger: Ledger) -> dict[tuple[str, str], DeliveryState]:
    return {(d.article.key, d.channel): d.state for d in ledger.deliveries(limit=10_000)}


# -- heartbeats --------------------------------------------------------------------------------


def in_flight(
    ledger: Ledger,
    now: datetime,
    *,
    holder: str,
    limit: int = 20,
    channels: list[str] | None = None,
) -> list[int]:
    """Claim and mark each claimed delivery in flight: its request is being written."""
    ids = [d.id for d in ledger.claim_due(now, holder=holder, limit=limit, channels=channels)]
    for delivery_id in ids:
        assert ledger.mark_in_flight(delivery_id, now=now, holder=holder)
    return ids


def test_heartbeat_registers_and_refreshes_an_instance(ledger: Ledger) -> None:
    """The first heartbeat registers host and pid; later ones move last_seen only, until a
    restart (starting=True) resets started_at."""
    ledger.heartbeat("web-1:4242", NOW, starting=True)
    ledger.heartbeat("web-1:4242", NOW + timedelta(seconds=5))
    (one,) = ledger.instances()
    assert (one.host, one.pid, one.started_at, one.last_seen) == (
        "web-1",
        4242,
        NOW,
        NOW + timedelta(seconds=5),
    )
    ledger.heartbeat("web-1:4242", NOW + timedelta(seconds=60), starting=True)
    assert ledger.instances()[0].started_at == NOW + timedelta(seconds=60)


def test_dead_holders_are_those_not_seen_for_the_timeout(ledger: Ledger) -> None:
    """Dead: a heartbeat older than the timeout, or no heartbeat row and only old claims.
    A fresh heartbeat, or a recent claim without a row, is alive."""
    queue(ledger, 2, ["x"])
    ledger.heartbeat("a:1", NOW - timedelta(seconds=31))
    ledger.heartbeat("b:2", NOW - timedelta(seconds=29))
    ledger.claim_due(NOW - timedelta(seconds=40), holder="gone:3", limit=1)
    ledger.claim_due(NOW - timedelta(seconds=5), holder="new:4", limit=1)
    assert ledger.dead_holders(NOW, TIMEOUT) == ["a:1", "gone:3"]


# -- recovery ------------------------------------------------------------------------------------


def test_posts_in_flight_at_a_dead_instance_become_uncertain(ledger: Ledger) -> None:
    """A dead holder's 'sending' rows become 'uncertain' with a reason naming it; a live
    holder's are untouched; retry --uncertain queues them again."""
    queue(ledger, 2, ["telegram", "x"])
    ledger.heartbeat("dead:1", NOW - timedelta(minutes=5), starting=True)
    ledger.heartbeat("live:2", NOW, starting=True)
    in_flight(ledger, NOW - timedelta(minutes=5), holder="dead:1", limit=2)
    in_flight(ledger, NOW, holder="live:2", limit=2)
    report = ledger.recover_dead(NOW, TIMEOUT)
    assert (report.holders, report.uncertain, report.requeued) == (("dead:1",), 2, 0)
    rows = ledger.deliveries(limit=10)
    uncertain = [d for d in rows if d.state is DeliveryState.UNCERTAIN]
    assert len(uncertain) == 2
    assert all("dead:1" in (d.reason or "") for d in uncertain)
    assert all("retry --uncertain" in (d.reason or "") for d in uncertain)
    assert Counter(d.state for d in rows)[DeliveryState.SENDING] == 2
    assert [i.holder for i in ledger.instances()] == ["live:2"]
    assert ledger.recover_dead(NOW, TIMEOUT).moved == 0
    assert ledger.retry(states=["uncertain"], now=NOW) == 2


def test_resend_uncertain_channels_are_queued_again(ledger: Ledger) -> None:
    """On a channel with resend_uncertain the dead holder's post goes back to 'queued' (due
    now, with a reason); the other channel's becomes 'uncertain'."""
    queue(ledger, 1, ["telegram", "x"])
    in_flight(ledger, NOW - timedelta(minutes=5), holder="dead:1", limit=2)
    report = ledger.recover_dead(NOW, TIMEOUT, resend_channels=["x"])
    assert (report.uncertain, report.requeued) == (1, 1)
    assert states(ledger) == {
        ("guid-0", "telegram"): DeliveryState.UNCERTAIN,
        ("guid-0", "x"): DeliveryState.QUEUED,
    }
    (again,) = ledger.claim_due(NOW, holder="live:2", channels=["x"])
    assert "resend_uncertain" in (again.reason or "")


def test_a_holder_known_gone_is_recovered_without_waiting(ledger: Ledger) -> None:
    """``also`` names holders known dead (a process of this host that is gone): their
    claims are recovered at once, however fresh their heartbeat."""
    queue(ledger, 1, ["x"])
    ledger.heartbeat("here:99", NOW, starting=True)
    in_flight(ledger, NOW, holder="here:99")
    assert ledger.recover_dead(NOW, TIMEOUT).moved == 0
    report = ledger.recover_dead(NOW, TIMEOUT, also=["here:99"])
    assert report.uncertain == 1 and ledger.instances() == []


def test_an_instance_that_was_only_stalled_keeps_its_new_claims(ledger: Ledger) -> None:
    """A holder whose heartbeat went stale loses only the claims made before then: what it
    claimed after coming back is left alone."""
    queue(ledger, 2, ["x"])
    in_flight(ledger, NOW - timedelta(minutes=2), holder="slow:1", limit=1)
    ledger.heartbeat("slow:1", NOW - timedelta(minutes=1), starting=True)
    in_flight(ledger, NOW, holder="slow:1", limit=1)
    assert ledger.recover_dead(NOW, TIMEOUT).uncertain == 1
    assert Counter(states(ledger).values()) == {
        DeliveryState.UNCERTAIN: 1,
        DeliveryState.SENDING: 1,
    }


def test_recovery_releases_leases_and_the_pace_a_dead_send_was_holding(ledger: Ledger) -> None:
    """The dead holder's source leases are freed for others, and a paced channel that its
    send was holding closed (next_at in the future) opens again now."""
    queue(ledger, 1, ["x"])
    ledger.heartbeat("dead:1", NOW - timedelta(minutes=5), starting=True)
    assert ledger.try_lease("nv", "dead:1", NOW - timedelta(minutes=5), timedelta(hours=1))
    in_flight(ledger, NOW - timedelta(minutes=5), holder="dead:1")
    with ledger.engine.begin() as conn:
        later = NOW + timedelta(hours=1)
        conn.execute(sa.insert(channel_pacing).values(channel="x", next_at=later))
    assert not ledger.try_lease("nv", "live:2", NOW, TIMEOUT)
    report = ledger.recover_dead(NOW, TIMEOUT)
    assert report.leases_released == 1
    assert ledger.try_lease("nv", "live:2", NOW, TIMEOUT)
    with ledger.engine.connect() as conn:
        next_at = conn.execute(sa.select(channel_pacing.c.next_at)).scalar()
    assert next_at == NOW


def test_a_dead_instances_claims_never_sent_go_back_to_the_queue(ledger: Ledger) -> None:
    """Claimed is not in flight: of a dead holder's batch of claims only the one whose
    request was being written becomes 'uncertain'; the others are queued again, their
    attempt uncounted, and the next claim takes them in their order."""
    queue(ledger, 5, ["x"])
    ledger.heartbeat("dead:1", NOW - timedelta(minutes=5), starting=True)
    batch = ledger.claim_due(NOW - timedelta(minutes=5), holder="dead:1", limit=5)
    assert ledger.mark_in_flight(batch[0].id, now=NOW - timedelta(minutes=5), holder="dead:1")
    report = ledger.recover_dead(NOW, TIMEOUT)
    assert (report.uncertain, report.returned, report.moved) == (1, 4, 1)
    rows = {d.id: d for d in ledger.deliveries(limit=10)}
    assert rows[batch[0].id].state is DeliveryState.UNCERTAIN
    assert all(rows[d.id].state is DeliveryState.QUEUED for d in batch[1:])
    again = ledger.claim_due(NOW, holder="live:2", limit=10)
    assert [d.id for d in again] == [d.id for d in batch[1:]]
    assert all(d.attempts == 1 for d in again)


def test_a_claim_lost_to_recovery_cannot_be_marked_in_flight(ledger: Ledger) -> None:
    """A stalled instance whose claim went back to the queue may not send it: marking it in
    flight fails, so it is never sent by two instances."""
    queue(ledger, 1, ["x"])
    ledger.heartbeat("slow:1", NOW - timedelta(minutes=5), starting=True)
    (claimed,) = ledger.claim_due(NOW - timedelta(minutes=5), holder="slow:1")
    assert ledger.recover_dead(NOW, TIMEOUT).returned == 1
    assert not ledger.mark_in_flight(claimed.id, now=NOW, holder="slow:1")


# -- leases --------------------------------------------------------------------------------------


def test_a_source_lease_has_one_holder_until_it_expires(ledger: Ledger) -> None:
    """The first asker gets the lease; others are refused until it expires, when one takes
    it over; the holder renews it; release gives it up at once."""
    ttl = timedelta(seconds=10)
    assert ledger.try_lease("nv", "a:1", NOW, ttl)
    assert not ledger.try_lease("nv", "b:2", NOW + timedelta(seconds=9), ttl)
    assert ledger.try_lease("nv", "a:1", NOW + timedelta(seconds=9), ttl)  # renewed to 19 s
    assert not ledger.try_lease("nv", "b:2", NOW + timedelta(seconds=18), ttl)
    assert ledger.try_lease("nv", "b:2", NOW + timedelta(seconds=19), ttl)  # expired: taken
    assert ledger.lease_holder("nv", NOW + timedelta(seconds=20)) == "b:2"
    assert not ledger.release_lease("nv", "a:1")
    assert ledger.release_lease("nv", "b:2")
    assert ledger.lease_holder("nv", NOW + timedelta(seconds=20)) is None
    assert ledger.try_lease("nv", "a:1", NOW + timedelta(seconds=20), ttl)
    assert ledger.try_lease("other", "b:2", NOW + timedelta(seconds=20), ttl)


def test_leaving_removes_the_heartbeat_and_the_leases(ledger: Ledger) -> None:
    """A clean stop leaves nothing behind for the others to wait for."""
    ledger.heartbeat("a:1", NOW, starting=True)
    ledger.try_lease("nv", "a:1", NOW, TIMEOUT)
    ledger.leave("a:1")
    assert ledger.instances() == [] and ledger.lease_holder("nv", NOW) is None


# -- concurrency (real connections, real transactions) -------------------------------------------


def test_concurrent_claims_never_hand_a_delivery_out_twice(database_url: str) -> None:
    """Three instances (own engines, own connections) claim and finish a queue of 300
    deliveries at once: each delivery is claimed exactly once, sent_by names its claimer,
    and on PostgreSQL (SKIP LOCKED) every instance gets a share."""
    setup = Ledger.open(database_url)
    queue(setup, 150, ["telegram", "x"])
    setup.close()
    barrier = threading.Barrier(3)
    claimed: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def work(holder: str) -> None:
        ledger = Ledger.open(database_url)
        mine: list[int] = []
        try:
            barrier.wait()
            while batch := ledger.claim_due(NOW, holder=holder, limit=3):
                for delivery in batch:
                    mine.append(delivery.id)
                    ledger.mark_sent(
                        delivery.id, text="t", receipt=Receipt(str(delivery.id)), now=NOW
                    )
        except BaseException as exc:
            errors.append(exc)
        finally:
            claimed[holder] = mine
            ledger.close()

    threads = [threading.Thread(target=work, args=(f"host:{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    every = [i for ids in claimed.values() for i in ids]
    assert len(every) == len(set(every)) == 300
    if database_url.startswith("postgresql"):
        # SKIP LOCKED shares the queue out; SQLite takes turns on one write lock, and a busy
        # waiter may well find the work done by the time it gets the lock.
        assert all(claimed[h] for h in claimed), {h: len(ids) for h, ids in claimed.items()}
    check = Ledger.open(database_url)
    with check.engine.connect() as conn:
        sent_by = Counter(conn.execute(sa.select(deliveries.c.sent_by)).scalars())
    check.close()
    assert sent_by == Counter({h: len(ids) for h, ids in claimed.items()})


def _ask(
    ledger: Ledger, holder: str, source: str, barrier: threading.Barrier, wins: list[str]
) -> None:
    barrier.wait()
    if ledger.try_lease(source, holder, NOW, TIMEOUT):
        wins.append(holder)


def test_concurrent_lease_requests_have_one_winner(database_url: str) -> None:
    """Three instances asking for the same free source lease at the same moment, twenty
    rounds over: exactly one wins each round."""
    ledgers = [Ledger.open(database_url) for _ in range(3)]
    try:
        for round_ in range(20):
            barrier = threading.Barrier(3)
            wins: list[str] = []
            threads = [
                threading.Thread(
                    target=_ask, args=(ledger, f"h:{i}", f"src-{round_}", barrier, wins)
                )
                for i, ledger in enumerate(ledgers)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
            assert len(wins) == 1, (round_, wins)
    finally:
        for ledger in ledgers:
            ledger.close()


# -- the daemon's keeper -------------------------------------------------------------------------


def _config(tmp_path: Path, url: str, *, resend: bool = False) -> Path:
    feed = tmp_path / "feed.xml"
    feed.write_text('<?xml version="1.0"?><rss version="2.0"><channel/></rss>', "utf-8")
    config = tmp_path / "newsbot.yaml"
    config.write_text(
        f"database: {url}\n"
        f"templates: {REPO / 'templates'}\n"
        "sources:\n  nv: {kind: feed, url: feed.xml, every: 1m}\n"
        "channels:\n"
        "  telegram: {kind: console, template: telegram.html.j2}\n"
        f"  x: {{kind: console, template: x.txt.j2, resend_uncertain: {str(resend).lower()}}}\n",
        encoding="utf-8",
    )
    return config


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_keeper_recovers_a_gone_process_of_this_host_at_once(
    database_url: str, tmp_path: Path
) -> None:
    """A process of this host that is gone loses its claims at the next check, without
    waiting for its heartbeat to age; a live one's stay; with resend_uncertain they are
    queued again."""
    config = load_config(_config(tmp_path, database_url, resend=True))
    ledger = Ledger.open(database_url)
    queue(ledger, 2, ["telegram", "x"])
    host = socket.gethostname()
    gone, alive = f"{host}:{_dead_pid()}", f"{host}:{os.getppid()}"
    ledger.heartbeat(gone, datetime.now(UTC), starting=True)
    ledger.heartbeat(alive, datetime.now(UTC), starting=True)
    in_flight(ledger, NOW, holder=gone, limit=2)
    in_flight(ledger, NOW, holder=alive, limit=2)
    keeper = InstanceKeeper(ledger, f"{host}:{os.getpid()}", lambda: config)
    report = keeper.tick()
    assert report.holders == (gone,) and report.moved == 2
    assert Counter(states(ledger).values()) == {
        DeliveryState.SENDING: 2,
        DeliveryState.UNCERTAIN: 1,
        DeliveryState.QUEUED: 1,
    }
    assert sorted(i.holder for i in ledger.instances()) == sorted([keeper.holder, alive])
    ledger.close()


def test_keeper_treats_its_own_holder_as_an_earlier_life_only_at_start(
    database_url: str, tmp_path: Path
) -> None:
    """Claims under this process's own holder are an earlier process's (same pid, same host
    name) at start, and recovered; while running they are its own sends, and left alone."""
    config = load_config(_config(tmp_path, database_url))
    ledger = Ledger.open(database_url)
    queue(ledger, 2, ["x"])
    keeper = InstanceKeeper(ledger, f"{socket.gethostname()}:{os.getpid()}", lambda: config)
    in_flight(ledger, NOW, holder=keeper.holder, limit=1)
    assert keeper.start().uncertain == 1
    in_flight(ledger, NOW, holder=keeper.holder, limit=1)
    assert keeper.tick().moved == 0
    assert keeper.may_poll("nv")
    keeper.stop()
    assert ledger.instances() == [] and ledger.lease_holder("nv", datetime.now(UTC)) is None
    ledger.close()
