"""Several rate windows per channel, held by the ledger (so across instances), on a clock the
test moves; and a delivery's in-flight note."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.ledger import Ledger, NewArticle, Pace
from bot.model import Article, DeliveryState, Receipt
from bot.pacing import Window

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
# 3 a minute and 5 an hour: the minute window refuses first, then the hour's.
PACE = Pace(
    spacing=timedelta(0),
    burst=10,
    windows=(Window(3, timedelta(minutes=1)), Window(5, timedelta(hours=1))),
)


def article(n: int) -> Article:
    return Article(
        key=f"guid-{n}",
        url=f"https://news.example.tw/article/{n}",
        title=f"高雄港與格丁尼亞港 第{n}則",
        published=T0,
    )


@pytest.fixture
def ledger(database_url: str) -> Ledger:
    opened = Ledger.open(database_url)
    opened.ingest("nv", [NewArticle(article(n), "摘要") for n in range(8)], ["x"], now=T0)
    yield opened  # type: ignore[misc]
    opened.close()


def send_all(ledger: Ledger, now: datetime, holder: str) -> tuple[int, datetime | None]:
    claim = ledger.claim_paced(now, holder=holder, channel="x", pace=PACE)
    for delivery in claim.deliveries:
        ledger.mark_sent(
            delivery.id, text="t", receipt=Receipt(str(delivery.id)), now=now, holder=holder
        )
    return len(claim.deliveries), claim.wait_until


def test_every_window_holds_across_instances(ledger: Ledger) -> None:
    """3 go at once (the minute's cap), 2 more a minute on (the hour's cap), then nothing until
    the hour after the first ones, whichever instance asks."""
    assert send_all(ledger, T0, "a:1") == (3, None)
    count, wait = send_all(ledger, T0 + timedelta(seconds=30), "b:2")
    assert count == 0 and wait == T0 + timedelta(minutes=1)
    assert send_all(ledger, T0 + timedelta(minutes=1, seconds=1), "b:2") == (2, None)
    count, wait = send_all(ledger, T0 + timedelta(minutes=5), "a:1")
    assert count == 0 and wait == T0 + timedelta(hours=1)
    assert send_all(ledger, T0 + timedelta(hours=1, seconds=1), "a:1")[0] == 3


def test_a_send_in_flight_counts_in_the_windows(ledger: Ledger) -> None:
    """A claim not yet finished uses its place: a second instance gets only the rest."""
    first = ledger.claim_paced(T0, holder="a:1", channel="x", pace=PACE)
    assert len(first.deliveries) == 3
    assert ledger.claim_paced(T0, holder="b:2", channel="x", pace=PACE).deliveries == []


def test_in_flight_note_survives_uncertain_and_retry_until_sent(ledger: Ledger) -> None:
    """The note is kept on the sending delivery, read back after it turns uncertain and is
    retried, and gone once the delivery is sent."""
    (delivery,) = ledger.claim_due(T0, holder="a:1", limit=1, channels=["x"])
    assert ledger.note_in_flight("x", "nv", delivery.article.key, "threads-container:42")
    assert not ledger.note_in_flight("x", "nv", "guid-7", "not sending")
    ledger.mark_uncertain(delivery.id, reason="died", now=T0, holder="a:1")
    ledger.retry(states=["uncertain"], now=T0)
    assert ledger.in_flight_note("x", "nv", delivery.article.key) == "threads-container:42"
    (again,) = ledger.claim_due(T0, holder="b:2", limit=1, channels=["x"])
    assert again.id == delivery.id and again.state is DeliveryState.SENDING
    ledger.mark_sent(again.id, text="t", receipt=Receipt("999"), now=T0, holder="b:2")
    assert ledger.in_flight_note("x", "nv", delivery.article.key) is None
