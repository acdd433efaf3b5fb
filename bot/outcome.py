"""A delivery's fate, decided once: pure rules from a send attempt to an :class:`Outcome`.

The pipeline composes a post, sends it and hands what happened (a receipt, or the error) to
:func:`judge`, with the channel's :class:`Policy` and the time. Every rule of what happens
next lives here — the platform's ``retry_after``, exponential back-off, ``max_attempts``, a
post whose fate is unknown, the monthly budget — and none of it touches the database: the
ledger applies the resulting value in one transaction (:meth:`bot.ledger.Ledger.finish`),
and the pipeline only logs, alerts and counts what the value says.

A revision's action on a published post (an edit, a reply, a delete, a delete-and-repost) is
decided the same way: :func:`before_action` says whether it should reach the platform at all,
:func:`judge_action` what its result means, into an :class:`ActionOutcome` that
:meth:`bot.ledger.Ledger.finish_action` records.
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from bot.config import ChannelConfig
from bot.errors import PermanentError, PostGone, TransientError
from bot.model import Action, ActionState, DeliveryState, Post, Receipt
from bot.sources.base import backoff_interval

BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)

#: ``uniform(low, high)``: the jitter source, replaceable so the rules test deterministically.
Jitter = Callable[[float, float], float]


@dataclass(frozen=True, slots=True)
class Alert:
    """Something a person should hear of (``kind`` rate-limits it, ``message`` says what)."""

    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class _Verdict:
    """What a delivery's and a revision action's outcomes share: where the row goes
    (``state``), why, what the platform shows and answered, when to retry, how long the whole
    channel waits (``pause_until``: what comes after must not overtake it), whom to tell
    (``alert``) and the log line (``level``, ``note``)."""

    state: enum.StrEnum
    reason: str | None = None
    text: str | None = None
    receipt: Receipt | None = None
    due_at: datetime | None = None
    pause_until: datetime | None = None
    pause_reason: str | None = None
    alert: Alert | None = None
    level: int = logging.INFO
    note: str = ""

    @property
    def retry(self) -> bool:
        """Back to the queue, not before ``due_at`` (deliveries and actions both say
        ``queued``)."""
        return self.state == DeliveryState.QUEUED


@dataclass(frozen=True, slots=True)
class Outcome(_Verdict):
    """What becomes of one claimed delivery: ``state`` is where it goes (``QUEUED`` a retry),
    ``cost`` what the post cost on a paying platform."""

    state: DeliveryState
    cost: float | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """The rules one channel's deliveries live by, taken from its settings and adapter."""

    channel: str
    max_attempts: int = 8
    retry_backoff: timedelta = BACKOFF_BASE
    #: A post whose answer never came may be sent again: the platform refuses a second
    #: identical post itself, or the newsroom said so (``resend_uncertain``).
    resend_uncertain: bool = False

    @classmethod
    def of(cls, settings: ChannelConfig, *, resend_is_safe: bool = False) -> Policy:
        return cls(
            channel=settings.name,
            max_attempts=settings.max_attempts,
            retry_backoff=settings.retry_backoff,
            resend_uncertain=resend_is_safe or settings.resend_uncertain,
        )


def backoff(
    attempts: int, *, base: timedelta = BACKOFF_BASE, jitter: Jitter = random.uniform
) -> timedelta:
    """Exponential back-off with jitter: about ``base``, 2×, 4×, ... capped at an hour (the
    doubling a failing source's polls back off by, give or take a fifth)."""
    wait = backoff_interval(base, attempts - 1, cap=BACKOFF_CAP)
    return wait * jitter(0.8, 1.2)


def month_start(now: datetime, tz: tzinfo) -> datetime:
    """The first moment of ``now``'s calendar month in the newsroom's time zone, in UTC."""
    local = now.astimezone(tz)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def skipped(reason: str, *, alert: Alert | None = None, level: int = logging.INFO) -> Outcome:
    """Not sent, on purpose (too old, channel gone, over budget); nothing to retry."""
    return Outcome(DeliveryState.SKIPPED, reason=reason, alert=alert, level=level, note="skipped")


def not_composed(channel: str, title: str, reason: str) -> Outcome:
    """The template cannot make a post of this article: no send, no retry."""
    return Outcome(
        DeliveryState.FAILED,
        reason=reason,
        alert=Alert("delivery failed", f"{channel}: {title}: {reason}"),
        level=logging.ERROR,
        note="cannot compose the post",
    )


def over_budget(
    *, budget: float | None, currency: str, posts: int, spent: float, cost: float | None
) -> str | None:
    """Why this post would break the monthly budget, or ``None`` when it fits."""
    if budget is None:
        return None
    if spent + (cost or 0.0) <= budget + 1e-9:
        return None
    return (
        f"the X monthly budget of {budget:.2f} {currency} is reached ({posts} posts, "
        f"{spent:.2f} {currency} spent this month; this post would cost {cost or 0:.2f})"
    )


def judge(
    result: Receipt | BaseException,
    *,
    attempts: int,
    title: str,
    post: Post,
    policy: Policy,
    now: datetime,
    cost: float | None = None,
    jitter: Jitter = random.uniform,
) -> Outcome:
    """What a send attempt (its receipt, or what it raised) means for the delivery.

    ``attempts`` counts this one. A ``TransientError`` is retried after the platform's
    ``retry_after`` (never earlier) or a back-off, the whole channel paused meanwhile, until
    ``max_attempts``; one that may have reached the platform is ``uncertain`` unless resending
    is safe. A ``PermanentError`` fails, except a duplicate refusal of a resend, which proves
    an earlier attempt was posted. Anything else is a bug in the channel: failed, never
    retried blindly.
    """
    channel = policy.channel
    if isinstance(result, Receipt):
        return Outcome(
            DeliveryState.SENT,
            reason="; ".join(result.notes) or None,
            text=post.text,
            receipt=result,
            cost=cost,
            note=f"sent {result.url or result.remote_id}",
        )
    if isinstance(result, TransientError):
        if result.maybe_sent and not policy.resend_uncertain:
            reason = (
                f"{result.reason}. The request was sent but no answer came back, so the post "
                "may have been published: check the channel, then `newsbot retry --uncertain` "
                "to send it again (or set resend_uncertain: true on the channel to always resend)"
            )
            # The platform is not answering: the channel's next post waits as after a failure.
            wait = backoff(attempts, base=policy.retry_backoff, jitter=jitter)
            return Outcome(
                DeliveryState.UNCERTAIN,
                reason=reason,
                text=post.text,
                pause_until=now + wait,
                pause_reason=result.reason,
                alert=Alert("uncertain", f"{channel}: {title}: {result.reason}"),
                level=logging.ERROR,
                note=f"delivery uncertain: {result.reason}",
            )
        if attempts >= policy.max_attempts:
            reason = f"gave up after {attempts} attempts; last error: {result.reason}"
            return _failed(channel, title, reason, text=post.text)
        due = now + _retry_wait(result, attempts, policy, jitter)
        # The whole channel waits with the post: a platform that is failing or asking us to
        # slow down fails for every post, and the posts after this one must not overtake it.
        return Outcome(
            DeliveryState.QUEUED,
            reason=result.reason,
            due_at=due,
            pause_until=due,
            pause_reason=result.reason,
            level=logging.WARNING,
            note=f"will retry at {due.isoformat(timespec='seconds')}: {result.reason}",
        )
    if isinstance(result, PermanentError):
        if result.duplicate and attempts > 1:
            # An earlier attempt whose answer never came back had in fact been posted.
            note = f"posted by an earlier attempt (the platform refused a resend: {result.reason})"
            return Outcome(
                DeliveryState.SENT,
                reason=note,
                text=post.text,
                receipt=Receipt(remote_id="", notes=(note,)),
                cost=cost,
                note="sent (confirmed by the platform's duplicate check)",
            )
        return _failed(channel, title, result.reason, text=post.text)
    reason = f"internal error in channel {channel}: {type(result).__name__}: {result}"
    return Outcome(
        DeliveryState.FAILED,
        reason=reason,
        text=post.text,
        alert=Alert("delivery failed", f"{channel}: {reason}"),
        level=logging.ERROR,
        note=f"delivery failed: {reason}",
    )


def _failed(channel: str, title: str, reason: str, *, text: str) -> Outcome:
    return Outcome(
        DeliveryState.FAILED,
        reason=reason,
        text=text,
        alert=Alert("delivery failed", f"{channel}: {title}: {reason}"),
        level=logging.ERROR,
        note=f"delivery failed: {reason}",
    )


def _retry_wait(error: TransientError, attempts: int, policy: Policy, jitter: Jitter) -> timedelta:
    if error.retry_after is not None:
        # The platform said when: then, never earlier, and not much later either (a
        # little jitter so that several instances do not all come back at once).
        return timedelta(seconds=error.retry_after * jitter(1.0, 1.1))
    return backoff(attempts, base=policy.retry_backoff, jitter=jitter)


# -- a revision's action on a published post ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActionOutcome(_Verdict):
    """What becomes of one claimed revision action, in the action's states (``DONE`` for
    applied). ``text`` is what the post reads after an edit or a repost, the reply's text
    after a reply; ``receipt`` the platform's answer (a reply's or a repost's new post)."""

    state: ActionState


#: A request whose answer never came may be made again for these actions: a delete that had
#: gone through answers ``PostGone`` the second time, which counts as done. An edit, a reply
#: or a repost made twice may show twice (a second reply, a second repost; a second edit is
#: invisible but is still a second change of the post), so those are ``uncertain`` instead.
RESEND_SAFE_ACTIONS = frozenset({Action.DELETE})

_DID = {
    Action.EDIT: "edited",
    Action.REPLY: "replied to",
    Action.DELETE: "deleted",
    Action.DELETE_AND_REPOST: "deleted and reposted",
}


def action_skipped(reason: str, *, level: int = logging.INFO) -> ActionOutcome:
    """Not applied, on purpose: nothing to do on the platform, nothing to retry."""
    return ActionOutcome(ActionState.SKIPPED, reason=reason, level=level, note=f"skipped: {reason}")


def action_not_composed(channel: str, title: str, action: Action, reason: str) -> ActionOutcome:
    """The correction cannot be made into a post for this channel (a broken template, a text
    that does not fit its limit): never sent, never retried."""
    return _action_failed(channel, title, action, reason)


def before_action(
    action: Action, *, retracted: bool, current_text: str | None, new_text: str | None
) -> ActionOutcome | None:
    """Whether an action must stop before it reaches the platform (``None``: go ahead).

    A correction of an article since withdrawn gives way to its takedown; a correction whose
    re-rendered post reads exactly as the published one (``current_text``) would change
    nothing, so the platform is not asked (Telegram would refuse it as "not modified")."""
    if retracted and action is not Action.DELETE:
        return action_skipped(
            "the article was retracted: its takedown, not this correction, decides the post"
        )
    if action is not Action.DELETE and new_text is not None and new_text == current_text:
        return action_skipped("the post would not change")
    return None


def judge_action(
    result: Receipt | BaseException | None,
    *,
    action: Action,
    attempts: int,
    title: str,
    text: str | None,
    policy: Policy,
    now: datetime,
    jitter: Jitter = random.uniform,
) -> ActionOutcome:
    """What applying ``action`` to a published post (its receipt; ``None`` for a delete that
    went through; or what it raised) means for the action.

    ``PostGone`` is the goal reached for a delete, a refusal for anything else. A
    ``PermanentError`` (too old, not modified, not allowed) fails with the platform's reason
    and an alert, never retried, except a duplicate refusal of an edit ("not modified": the
    post already reads so, as after an uncertain edit that had arrived), which is done. A
    ``TransientError`` is retried like a post's, the channel paused meanwhile; one that may
    have been applied is ``uncertain`` unless the action is safe to resend
    (:data:`RESEND_SAFE_ACTIONS`).
    """
    channel = policy.channel
    if result is None or isinstance(result, Receipt):
        where = result.url or result.remote_id if isinstance(result, Receipt) else ""
        return ActionOutcome(
            ActionState.DONE,
            reason="; ".join(result.notes) or None if isinstance(result, Receipt) else None,
            text=text,
            receipt=result,
            note=f"{_DID[action]} {where}".rstrip(),
        )
    if isinstance(result, PostGone):
        if action is Action.DELETE:
            reason = f"already gone from the platform ({result.reason})"
            return ActionOutcome(ActionState.DONE, reason=reason, note=f"deleted: {reason}")
        reason = f"the post is no longer on the platform: {result.reason}"
        return _action_failed(channel, title, action, reason, text=text)
    if isinstance(result, TransientError):
        if result.maybe_sent and action not in RESEND_SAFE_ACTIONS:
            reason = (
                f"{result.reason}. The request was sent but no answer came back, so the "
                f"{action} may have been applied: check the post, then `newsbot retry "
                "--uncertain` to apply it again"
            )
            wait = backoff(attempts, base=policy.retry_backoff, jitter=jitter)
            return ActionOutcome(
                ActionState.UNCERTAIN,
                reason=reason,
                text=text,
                pause_until=now + wait,
                pause_reason=result.reason,
                alert=Alert("uncertain", f"{channel}: {action} of {title}: {result.reason}"),
                level=logging.ERROR,
                note=f"{action} uncertain: {result.reason}",
            )
        if attempts >= policy.max_attempts:
            reason = f"gave up after {attempts} attempts; last error: {result.reason}"
            return _action_failed(channel, title, action, reason, text=text)
        due = now + _retry_wait(result, attempts, policy, jitter)
        return ActionOutcome(
            ActionState.QUEUED,
            reason=result.reason,
            due_at=due,
            pause_until=due,
            pause_reason=result.reason,
            level=logging.WARNING,
            note=f"{action} will retry at {due.isoformat(timespec='seconds')}: {result.reason}",
        )
    if isinstance(result, PermanentError):
        if result.duplicate and action is Action.EDIT:
            # "Not modified": the post already reads this text, so the goal is reached; it
            # happens when an edit whose answer was lost (uncertain, then retried) had arrived.
            reason = f"the post already reads so (the platform says: {result.reason})"
            return ActionOutcome(
                ActionState.DONE, reason=reason, text=text, note=f"edited: {reason}"
            )
        return _action_failed(channel, title, action, result.reason, text=text)
    reason = f"internal error in channel {channel}: {type(result).__name__}: {result}"
    return _action_failed(channel, title, action, reason, text=text)


def _action_failed(
    channel: str, title: str, action: Action, reason: str, *, text: str | None = None
) -> ActionOutcome:
    return ActionOutcome(
        ActionState.FAILED,
        reason=reason,
        text=text,
        alert=Alert("correction failed", f"{channel}: {action} of {title}: {reason}"),
        level=logging.ERROR,
        note=f"{action} failed: {reason}",
    )
