"""The revision-action rules as pure functions: an edit, reply, delete or repost judged into an
ActionOutcome, and the checks made before the platform is asked at all; no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.errors import PermanentError, PostGone, TransientError
from bot.model import Action, ActionState, Receipt
from bot.outcome import (
    ActionOutcome,
    Policy,
    action_not_composed,
    before_action,
    judge_action,
)

NOW = datetime(2025, 9, 15, 8, 0, tzinfo=UTC)
TEXT = "<b>【更正】高雄與格丁尼亞簽署經濟合作備忘錄，金額 3.5 億元 📈</b>"
POLICY = Policy("telegram", max_attempts=3, retry_backoff=timedelta(seconds=30))


def fixed(low: float, high: float) -> float:
    """No jitter: the low end of the range."""
    return low


def verdict(
    result: Receipt | BaseException | None, action: Action = Action.EDIT, attempts: int = 1
) -> ActionOutcome:
    return judge_action(
        result,
        action=action,
        attempts=attempts,
        title="高雄與格丁尼亞",
        text=TEXT,
        policy=POLICY,
        now=NOW,
        jitter=fixed,
    )


@pytest.mark.parametrize("action", [Action.EDIT, Action.REPLY, Action.DELETE_AND_REPOST])
def test_a_receipt_is_done_with_the_text_and_the_receipt(action: Action) -> None:
    """An edit, reply or repost the platform accepted is 'done', keeping the text and receipt."""
    receipt = Receipt("77", url="https://t.me/newsvision/77")
    outcome = verdict(receipt, action)
    assert outcome.state is ActionState.DONE
    assert (outcome.text, outcome.receipt) == (TEXT, receipt)
    assert outcome.alert is None and outcome.pause_until is None
    assert "https://t.me/newsvision/77" in outcome.note


def test_a_delete_that_went_through_is_done() -> None:
    """A delete the platform answered without error (no receipt) is 'done'."""
    outcome = verdict(None, Action.DELETE)
    assert outcome.state is ActionState.DONE and outcome.alert is None


def test_post_gone_on_a_delete_is_done_already_gone() -> None:
    """Deleting a post that is already gone reaches the goal: 'done', saying so, no alert."""
    outcome = verdict(PostGone("message to delete not found"), Action.DELETE)
    assert outcome.state is ActionState.DONE
    assert outcome.reason is not None and "already gone from the platform" in outcome.reason
    assert outcome.alert is None


@pytest.mark.parametrize("action", [Action.EDIT, Action.REPLY, Action.DELETE_AND_REPOST])
def test_post_gone_on_anything_but_a_delete_fails_with_the_reason(action: Action) -> None:
    """Editing or replying to a post that is gone fails with the reason and an alert."""
    outcome = verdict(PostGone("message to edit not found"), action)
    assert outcome.state is ActionState.FAILED
    assert outcome.reason is not None and "message to edit not found" in outcome.reason
    assert outcome.alert is not None and outcome.due_at is None


@pytest.mark.parametrize(
    "reason",
    [
        "Bad Request: message is not modified",
        "Bad Request: message can't be edited (older than 48 hours)",
        "Bad Request: message can't be deleted for everyone",
    ],
)
def test_a_permanent_refusal_fails_with_the_platforms_reason_and_an_alert(reason: str) -> None:
    """Too old, not modified, can't be deleted: failed with the platform's words, alerted,
    never retried (no due time, no pause)."""
    outcome = verdict(PermanentError(reason))
    assert outcome.state is ActionState.FAILED and outcome.reason == reason
    assert outcome.alert is not None and reason in outcome.alert.message
    assert outcome.due_at is None and outcome.pause_until is None and not outcome.retry


def test_a_duplicate_refusal_of_an_edit_is_done() -> None:
    """An edit refused as not modified (duplicate): the post already reads so, as after an
    uncertain edit that had arrived and was retried; only an edit counts it done."""
    error = PermanentError("not modified: the message already reads exactly this", duplicate=True)
    outcome = verdict(error, attempts=1)
    assert outcome.state is ActionState.DONE and outcome.alert is None
    assert outcome.reason is not None and "already reads so" in outcome.reason
    assert verdict(error, Action.REPLY).state is ActionState.FAILED


def test_a_transient_error_retries_at_retry_after_and_pauses_the_channel() -> None:
    """'Too Many Requests: retry after 40': queued again no earlier than 40 s, channel paused."""
    outcome = verdict(TransientError("Too Many Requests", retry_after=40))
    assert outcome.state is ActionState.QUEUED and outcome.retry
    assert outcome.due_at == NOW + timedelta(seconds=40)
    assert outcome.pause_until == outcome.due_at


def test_a_transient_error_without_retry_after_backs_off() -> None:
    """Without retry_after the wait is the channel's back-off, doubling with each attempt."""
    first = verdict(TransientError("502 Bad Gateway"), attempts=1)
    second = verdict(TransientError("502 Bad Gateway"), attempts=2)
    assert first.due_at == NOW + timedelta(seconds=24)
    assert second.due_at == NOW + timedelta(seconds=48)


def test_transient_errors_give_up_after_max_attempts() -> None:
    """The third transient failure of a channel with max_attempts 3 fails, with an alert."""
    outcome = verdict(TransientError("502 Bad Gateway"), attempts=3)
    assert outcome.state is ActionState.FAILED
    assert outcome.reason == "gave up after 3 attempts; last error: 502 Bad Gateway"
    assert outcome.alert is not None


@pytest.mark.parametrize("action", [Action.EDIT, Action.REPLY, Action.DELETE_AND_REPOST])
def test_maybe_sent_is_uncertain_and_alerted(action: Action) -> None:
    """An edit, reply or repost whose answer never came may have been applied: 'uncertain',
    alerted, the channel paused, and a person told how to apply it again."""
    outcome = verdict(TransientError("read timeout", maybe_sent=True), action)
    assert outcome.state is ActionState.UNCERTAIN
    assert outcome.reason is not None and "newsbot retry --uncertain" in outcome.reason
    assert outcome.alert is not None and outcome.pause_until is not None


def test_maybe_sent_on_a_delete_is_retried_since_a_second_delete_is_safe() -> None:
    """A delete whose answer never came is simply made again: a post already gone answers
    PostGone, which counts as done."""
    outcome = verdict(TransientError("read timeout", maybe_sent=True), Action.DELETE)
    assert outcome.state is ActionState.QUEUED and outcome.alert is None


def test_a_bug_in_the_channel_fails_never_retried() -> None:
    """Any other exception is an internal error of the channel: failed, alerted, no retry."""
    outcome = verdict(KeyError("message_id"), Action.REPLY)
    assert outcome.state is ActionState.FAILED
    assert outcome.reason is not None and "internal error in channel telegram" in outcome.reason


def test_a_correction_that_would_not_change_the_post_is_skipped() -> None:
    """Re-rendered text equal to what the post reads now: skipped before any platform call."""
    outcome = before_action(Action.EDIT, retracted=False, current_text=TEXT, new_text=TEXT)
    assert outcome is not None and outcome.state is ActionState.SKIPPED
    assert outcome.reason == "the post would not change"


def test_a_changed_text_goes_ahead() -> None:
    """A correction that changes the text reaches the platform."""
    assert before_action(Action.EDIT, retracted=False, current_text="舊", new_text=TEXT) is None
    assert before_action(Action.REPLY, retracted=False, current_text="舊", new_text=TEXT) is None


def test_a_correction_of_a_retracted_article_gives_way_to_its_takedown() -> None:
    """An edit of a withdrawn article is skipped; the takedown's delete still goes."""
    edit = before_action(Action.EDIT, retracted=True, current_text="舊", new_text=TEXT)
    assert edit is not None and edit.state is ActionState.SKIPPED
    assert edit.reason is not None and "retracted" in edit.reason
    assert before_action(Action.DELETE, retracted=True, current_text="舊", new_text=None) is None


def test_a_correction_that_does_not_fit_fails_never_sent() -> None:
    """A correction the channel's limit cannot hold fails with the reason and an alert."""
    outcome = action_not_composed(
        "x", "高雄", Action.REPLY, "the post does not fit in 280 even with an empty excerpt"
    )
    assert outcome.state is ActionState.FAILED and outcome.alert is not None
    assert outcome.reason == "the post does not fit in 280 even with an empty excerpt"
