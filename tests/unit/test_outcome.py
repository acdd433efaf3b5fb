"""The delivery rules as pure functions: a send attempt judged into an Outcome, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.errors import PermanentError, TransientError
from bot.model import DeliveryState, Post, Receipt
from bot.outcome import Policy, backoff, judge, month_start, not_composed, over_budget, skipped

NOW = datetime(2025, 9, 15, 8, 0, tzinfo=UTC)
POST = Post(
    channel="x",
    text="高雄與格丁尼亞再升級！https://news.example.tw/a/1",
    length=40,
    limit=280,
    link="https://news.example.tw/a/1",
)
POLICY = Policy("x", max_attempts=3, retry_backoff=timedelta(seconds=30))


def fixed(low: float, high: float) -> float:
    """No jitter: the low end of the range."""
    return low


def verdict(result: Receipt | BaseException, attempts: int = 1, policy: Policy = POLICY):  # type: ignore[no-untyped-def]
    return judge(
        result,
        attempts=attempts,
        title="高雄",
        post=POST,
        policy=policy,
        now=NOW,
        cost=0.2,
        jitter=fixed,
    )


def test_a_receipt_is_sent_with_its_text_cost_and_notes() -> None:
    """An accepted post is 'sent' with the exact text, its cost and the receipt's notes."""
    outcome = verdict(Receipt("42", url="https://x.com/i/42", notes=("link preview off",)))
    assert outcome.state is DeliveryState.SENT
    assert (outcome.text, outcome.cost, outcome.reason) == (POST.text, 0.2, "link preview off")
    assert outcome.receipt is not None and outcome.receipt.remote_id == "42"
    assert outcome.pause_until is None and outcome.alert is None


def test_retry_after_is_honoured_and_pauses_the_channel_until_then() -> None:
    """A 429 with retry_after: retried no earlier than it says, the whole channel paused."""
    outcome = verdict(TransientError("HTTP 429", retry_after=120))
    assert outcome.state is DeliveryState.QUEUED and outcome.retry
    assert outcome.due_at == NOW + timedelta(seconds=120) == outcome.pause_until
    assert outcome.pause_reason == "HTTP 429"


def test_without_retry_after_the_back_off_doubles_per_attempt() -> None:
    """A transient error without retry_after waits base, 2x base, ... per attempt."""
    first = verdict(TransientError("HTTP 502"), attempts=1)
    second = verdict(TransientError("HTTP 502"), attempts=2)
    assert first.due_at == NOW + timedelta(seconds=24)  # 30 s x 0.8, the low jitter
    assert second.due_at == NOW + timedelta(seconds=48)


def test_back_off_is_capped_at_an_hour() -> None:
    """However many attempts, a back-off never exceeds an hour (plus jitter)."""
    assert backoff(40, jitter=lambda low, high: high) == timedelta(hours=1) * 1.2


def test_max_attempts_turns_a_transient_error_into_failed_with_an_alert() -> None:
    """The last allowed attempt failing transiently ends 'failed', saying so, and alerts."""
    outcome = verdict(TransientError("HTTP 503"), attempts=3)
    assert outcome.state is DeliveryState.FAILED
    assert "gave up after 3 attempts" in (outcome.reason or "") and "HTTP 503" in (
        outcome.reason or ""
    )
    assert outcome.alert is not None and outcome.alert.kind == "delivery failed"


def test_maybe_sent_is_uncertain_pauses_and_alerts() -> None:
    """A request that left with no answer is 'uncertain' (never resent blindly) and the
    channel waits as after a failure."""
    outcome = verdict(TransientError("read timeout", maybe_sent=True))
    assert outcome.state is DeliveryState.UNCERTAIN
    assert "retry --uncertain" in (outcome.reason or "")
    assert outcome.pause_until == NOW + timedelta(seconds=24)
    assert outcome.alert is not None and outcome.alert.kind == "uncertain"


def test_maybe_sent_is_retried_when_resending_is_safe() -> None:
    """On a channel where a resend is safe (resend_uncertain, or X's duplicate check) an
    unanswered request is simply retried."""
    safe = Policy("x", max_attempts=3, resend_uncertain=True)
    assert verdict(TransientError("read timeout", maybe_sent=True), policy=safe).retry


def test_a_duplicate_refusal_of_a_resend_proves_the_earlier_post() -> None:
    """X refusing a resend as a duplicate means an earlier attempt was posted: 'sent'."""
    outcome = verdict(PermanentError("duplicate content", duplicate=True), attempts=2)
    assert outcome.state is DeliveryState.SENT and "earlier attempt" in (outcome.reason or "")
    first = verdict(PermanentError("duplicate content", duplicate=True), attempts=1)
    assert first.state is DeliveryState.FAILED


def test_a_permanent_error_fails_and_a_bug_fails_without_retry() -> None:
    """A refusal fails with its reason; an unexpected exception fails as an internal error."""
    refused = verdict(PermanentError("chat not found"))
    assert (refused.state, refused.reason) == (DeliveryState.FAILED, "chat not found")
    bug = verdict(RuntimeError("boom"))
    assert bug.state is DeliveryState.FAILED and "internal error in channel x" in (bug.reason or "")


def test_skips_and_compose_failures_carry_their_reason() -> None:
    """A skip is final and says why; a post that cannot be composed fails and alerts."""
    assert skipped("too old").state is DeliveryState.SKIPPED
    failed = not_composed("x", "高雄", "template error")
    assert failed.state is DeliveryState.FAILED and failed.alert is not None


def test_over_budget_only_when_the_post_would_exceed_it() -> None:
    """The budget allows posts up to it exactly and refuses the one that would pass it."""
    assert over_budget(budget=None, currency="USD", posts=9, spent=99.0, cost=5.0) is None
    assert over_budget(budget=1.0, currency="USD", posts=4, spent=0.8, cost=0.2) is None
    reason = over_budget(budget=1.0, currency="USD", posts=5, spent=1.0, cost=0.2)
    assert reason is not None and "1.00 USD" in reason and "5 posts" in reason


def test_month_start_is_in_the_newsroom_time_zone() -> None:
    """Taipei's month starts 16:00 UTC the day before: 1 October 00:30 local is October."""
    taipei = ZoneInfo("Asia/Taipei")
    assert month_start(datetime(2025, 9, 30, 16, 30, tzinfo=UTC), taipei) == datetime(
        2025, 9, 30, 16, 0, tzinfo=UTC
    )
    assert month_start(datetime(2025, 9, 30, 15, 30, tzinfo=UTC), taipei) == datetime(
        2025, 8, 31, 16, 0, tzinfo=UTC
    )
