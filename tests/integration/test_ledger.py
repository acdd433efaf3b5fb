"""The ledger on real databases: uniqueness by the database, the delivery state machine,
claims, retries and the delivery log."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.errors import LedgerError
from bot.ledger import Ledger, NewArticle, Polled, deliveries
from bot.model import Article, DeliveryState, Receipt
from bot.outcome import Outcome
from bot.sources.base import SourceState

NOW = datetime(2025, 9, 15, 8, 0, tzinfo=UTC)


def article(n: int, **changes: object) -> Article:
    values: dict[str, object] = {
        "key": f"guid-{n}",
        "url": f"https://news.example.tw/article/{n}",
        "title": f"高雄與格丁尼亞簽署合作備忘錄 第{n}則",
        "summary_html": (
            "<p>新聞視界時報 記者 王秉程 整理報導</p>"
            "<p>高雄與波蘭姊妹市格丁尼亞的交流再度邁向新里程！</p>"
        ),
        "published": NOW - timedelta(minutes=n),
        "categories": ("地方", "國際交流"),
    }
    values.update(changes)
    return Article(**values)  # type: ignore[arg-type]


@pytest.fixture
def ledger(database_url: str) -> Ledger:
    opened = Ledger.open(database_url)
    yield opened  # type: ignore[misc]
    opened.close()


def test_ingest_creates_one_delivery_per_route(ledger: Ledger) -> None:
    """Each new article gets one queued delivery per routed channel."""
    report = ledger.ingest("nv", [NewArticle(article(1), "摘要")], ["telegram", "x"], now=NOW)
    assert (report.articles, report.queued) == (1, 2)
    assert sorted(d.channel for d in ledger.deliveries()) == ["telegram", "x"]


def test_ingesting_the_same_article_twice_changes_nothing(ledger: Ledger) -> None:
    """Same key, or same canonical URL under a new key, is the same article."""
    ledger.ingest("nv", [NewArticle(article(1), "")], ["telegram"], now=NOW)
    again = ledger.ingest("nv", [NewArticle(article(1), "")], ["telegram"], now=NOW)
    renamed = ledger.ingest(
        "nv", [NewArticle(article(1, key="new-guid"), "")], ["telegram"], now=NOW
    )
    assert again.articles == renamed.articles == 0
    assert len(ledger.deliveries()) == 1


def test_database_refuses_a_second_delivery_for_the_same_channel(ledger: Ledger) -> None:
    """(article, channel) is unique in the database itself, not only in Python."""
    ledger.ingest("nv", [NewArticle(article(1), "")], ["telegram"], now=NOW)
    row = ledger.deliveries()[0]
    with pytest.raises(sa.exc.IntegrityError), ledger.engine.begin() as conn:
        conn.execute(
            sa.insert(deliveries).values(
                article_id=sa.select(deliveries.c.article_id)
                .where(deliveries.c.id == row.id)
                .scalar_subquery(),
                channel="telegram",
                state="queued",
                due_at=NOW,
                created_at=NOW,
                updated_at=NOW,
            )
        )


def test_skipped_articles_are_recorded_with_their_reason(ledger: Ledger) -> None:
    """An article skipped at ingest ends in 'skipped' with the reason, never silently dropped."""
    ledger.ingest(
        "nv", [NewArticle(article(1), "", skip_reason="older than max_age")], ["x"], now=NOW
    )
    (only,) = ledger.deliveries()
    assert only.state is DeliveryState.SKIPPED and only.reason == "older than max_age"


def test_claim_then_send_records_text_and_receipt(ledger: Ledger) -> None:
    """A claimed delivery is 'sending' and, once sent, keeps the exact text and the receipt."""
    ledger.ingest("nv", [NewArticle(article(1), "")], ["telegram"], now=NOW)
    (claimed,) = ledger.claim_due(NOW, holder="h1")
    assert claimed.state is DeliveryState.SENDING and claimed.attempts == 1
    assert ledger.claim_due(NOW, holder="h2") == []
    receipt = Receipt("42", "https://t.me/newsvision/42", accepted_at=NOW)
    assert ledger.mark_sent(claimed.id, text="<b>高雄</b>", receipt=receipt, now=NOW)
    (sent,) = ledger.deliveries()
    assert (sent.state, sent.text, sent.remote_id, sent.remote_url) == (
        DeliveryState.SENT,
        "<b>高雄</b>",
        "42",
        "https://t.me/newsvision/42",
    )


def test_claim_order_is_priority_then_due_time(ledger: Ledger) -> None:
    """Due deliveries are claimed oldest first, higher priority before all."""
    ledger.ingest("nv", [NewArticle(article(1), ""), NewArticle(article(2), "")], ["x"], now=NOW)
    ledger.ingest(
        "nv", [NewArticle(article(3), "", priority=5)], ["x"], now=NOW + timedelta(seconds=1)
    )
    claimed = ledger.claim_due(NOW + timedelta(seconds=2), holder="h")
    assert [d.article.key for d in claimed] == ["guid-3", "guid-1", "guid-2"]


def test_requeued_delivery_is_not_due_before_its_time(ledger: Ledger) -> None:
    """A transient failure puts the delivery back, not claimable before its due time."""
    ledger.ingest("nv", [NewArticle(article(1), "")], ["x"], now=NOW)
    (claimed,) = ledger.claim_due(NOW, holder="h")
    ledger.requeue(claimed.id, due_at=NOW + timedelta(seconds=30), reason="429", now=NOW)
    assert ledger.claim_due(NOW + timedelta(seconds=29), holder="h") == []
    assert ledger.next_due() == NOW + timedelta(seconds=30)
    (again,) = ledger.claim_due(NOW + timedelta(seconds=30), holder="h")
    assert again.attempts == 2 and again.reason == "429"


def test_finishing_needs_a_claim(ledger: Ledger) -> None:
    """Only a 'sending' delivery can be finished: a stale worker cannot overwrite a result."""
    ledger.ingest("nv", [NewArticle(article(1), "")], ["x"], now=NOW)
    (claimed,) = ledger.claim_due(NOW, holder="h")
    assert ledger.mark_failed(claimed.id, reason="chat not found", now=NOW)
    assert not ledger.mark_sent(claimed.id, text="t", receipt=Receipt("1"), now=NOW)
    assert ledger.deliveries()[0].state is DeliveryState.FAILED


def test_finish_applies_a_retry_and_the_channel_pause_in_one_go(ledger: Ledger) -> None:
    """finish() with a retry outcome requeues the delivery and pauses its channel for every
    claim, paced or not; another holder's finish changes nothing and pauses nothing."""
    ledger.ingest("nv", [NewArticle(article(1), ""), NewArticle(article(2), "")], ["x"], now=NOW)
    (first, _second) = ledger.claim_due(NOW, holder="h1")
    until = NOW + timedelta(minutes=2)
    retry = Outcome(
        DeliveryState.QUEUED, reason="HTTP 429", due_at=until, pause_until=until, pause_reason="429"
    )
    assert not ledger.finish(first.id, retry, now=NOW, holder="someone-else")
    assert ledger.claim(NOW, holder="h2", channel="x", pace=None).wait_until is None
    assert ledger.finish(first.id, retry, now=NOW, holder="h1")
    blocked = ledger.claim(NOW + timedelta(minutes=1), holder="h2", channel="x", pace=None)
    assert (blocked.deliveries, blocked.wait_until) == ([], until)
    (requeued,) = ledger.deliveries(states=[DeliveryState.QUEUED])
    assert (requeued.id, requeued.due_at, requeued.reason) == (first.id, until, "HTTP 429")
    again = ledger.claim(until, holder="h2", channel="x", pace=None)
    assert [d.id for d in again.deliveries] == [first.id]


def test_in_flight_becomes_uncertain_and_retry_requeues(ledger: Ledger) -> None:
    """A dead holder's 'sending' rows become 'uncertain'; retry --uncertain queues them again."""
    ledger.ingest("nv", [NewArticle(article(1), "")], ["x", "telegram"], now=NOW)
    (claimed,) = ledger.claim_due(NOW, holder="host:1", limit=1)
    assert ledger.mark_in_flight(claimed.id, now=NOW, holder="host:1")
    assert ledger.in_flight_holders() == ["host:1"]
    report = ledger.recover_dead(NOW, timedelta(seconds=30), also=["host:1"])
    assert (report.holders, report.uncertain) == (("host:1",), 1)
    assert ledger.counts() == {"uncertain": 1, "queued": 1}
    assert ledger.retry(states=["failed"], now=NOW) == 0
    assert ledger.retry(states=["uncertain"], now=NOW) == 1
    assert ledger.counts() == {"queued": 2}


def test_status_filters_and_order(ledger: Ledger) -> None:
    """The log is newest first and filters by state, source and channel."""
    ledger.ingest("nv", [NewArticle(article(1), "")], ["x", "telegram"], now=NOW)
    ledger.ingest("other", [NewArticle(article(2), "")], ["x"], now=NOW)
    assert [d.source for d in ledger.deliveries()] == ["other", "nv", "nv"]
    assert len(ledger.deliveries(source="nv", channel="x")) == 1
    assert ledger.deliveries(states=["sent"]) == []


def test_source_state_keeps_validators_and_error_count(ledger: Ledger) -> None:
    """ETag and Last-Modified survive between polls; errors are counted until a success."""
    assert not ledger.source("nv").seen_before
    ledger.record_poll(
        "nv", now=NOW, state=SourceState(etag='"v1"', last_modified="Mon, 15 Sep 2025 08:00:00 GMT")
    )
    ledger.record_poll("nv", now=NOW, error="HTTP 503")
    record = ledger.source("nv")
    assert record.state.etag == '"v1"' and record.consecutive_errors == 1 and record.seen_before
    ledger.record_poll("nv", now=NOW, state=record.state)
    assert ledger.source("nv").consecutive_errors == 0


def test_a_poll_is_recorded_with_its_ingest(ledger: Ledger) -> None:
    """``ingest(polled=...)`` keeps the poll's validators and note with its articles, also
    when nothing in it is new; a timestamp in another zone is stored as the same instant."""
    taipei = timezone(timedelta(hours=8))
    state = SourceState(etag='"v2"', last_modified="Mon, 15 Sep 2025 08:00:00 GMT")
    items = [NewArticle(article(1, published=NOW.astimezone(taipei)), "摘要")]
    report = ledger.ingest("nv", items, ["x"], now=NOW, polled=Polled(state, "entry 3 has no link"))
    record = ledger.source("nv")
    assert report.articles == 1 and record.state == state and record.last_polled_at == NOW
    assert record.last_error == "entry 3 has no link"
    assert ledger.find_articles("guid-1")[0].article.published == NOW
    ledger.ingest("nv", items, ["x"], now=NOW + timedelta(minutes=5), polled=Polled(state))
    record = ledger.source("nv")
    assert record.last_polled_at == NOW + timedelta(minutes=5) and record.last_error is None


def test_a_poll_is_not_recorded_when_its_ingest_fails(ledger: Ledger) -> None:
    """The poll and its articles commit together: an ingest the database refuses (here a
    title it cannot store) raises LedgerError and leaves neither, so the next poll reads the
    feed again instead of answering 304 on validators whose articles were never kept."""
    broken = NewArticle(article(1, title=None), "")
    with pytest.raises(LedgerError, match="refused"):
        ledger.ingest("nv", [broken], ["x"], now=NOW, polled=Polled(SourceState(etag='"v1"')))
    assert not ledger.source("nv").seen_before
    assert ledger.deliveries() == [] and ledger.known("nv", ["guid-1"], []) == set()


def test_source_problems_are_failing_polls_and_skipped_entries(ledger: Ledger) -> None:
    """A failed poll's reason, or a good poll's skipped entries, is the source's last problem
    (what `status` lists); a clean poll clears it."""
    ledger.record_poll("nv", now=NOW, error="HTTP 503")
    ledger.record_poll("other", now=NOW, state=SourceState(), note="entry 2 (壞) has no link")
    ledger.record_poll("clean", now=NOW, state=SourceState())
    problems = {r.name: (r.last_error, r.consecutive_errors) for r in ledger.source_problems()}
    assert problems == {"nv": ("HTTP 503", 1), "other": ("entry 2 (壞) has no link", 0)}
    ledger.record_poll("other", now=NOW, state=SourceState())
    assert [r.name for r in ledger.source_problems()] == ["nv"]


def test_times_come_back_timezone_aware(ledger: Ledger) -> None:
    """Stored times return as aware UTC datetimes, the same instant as written."""
    taipei = NOW.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Taipei"))
    ledger.ingest("nv", [NewArticle(article(1, published=taipei), "")], ["x"], now=NOW)
    (row,) = ledger.deliveries()
    assert row.article.published == taipei and row.article.published.tzinfo is not None


def _long_article(n: int) -> Article:
    """An article the size of a real one (a long Chinese summary), so an ingest of hundreds
    writes thousands of database pages."""
    paragraph = "<p>高雄與波蘭姊妹市格丁尼亞的交流再度邁向新里程，雙方簽署備忘錄，共 12 項。</p>"
    return article(n, summary_html=paragraph * 40)


def test_an_ingest_leaves_its_pages_in_the_log_until_the_checkpoint(tmp_path: Path) -> None:
    """A big ingest on SQLite does not copy the write-ahead log into the database file inside
    its commit (SQLite's default threshold would); checkpoint() does, off the write path."""
    path = f"{tmp_path}/ledger.db"
    ledger = Ledger.open(f"sqlite:///{path}")
    try:
        ledger.checkpoint()
        before = os.path.getsize(path)
        items = [NewArticle(_long_article(n), "摘要" * 50) for n in range(800)]
        assert ledger.ingest("nv", items, ["telegram", "x"], now=NOW).articles == 800
        assert os.path.getsize(f"{path}-wal") > 4096 * 1000  # past SQLite's default threshold
        assert os.path.getsize(path) == before
        assert ledger.checkpoint() > 1000
        assert os.path.getsize(path) > before
        assert len(ledger.deliveries(limit=2000)) == 1600
    finally:
        ledger.close()


def test_a_checkpoint_on_postgresql_does_nothing(ledger: Ledger) -> None:
    """checkpoint() is SQLite's: on PostgreSQL it asks the server nothing and says 0."""
    if ledger.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    assert ledger.checkpoint() == 0
