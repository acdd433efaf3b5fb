"""How many posts a channel's rate windows allow now: a pure function over values.

A channel may keep to several windows at once (X: 200 per 15 minutes *and* 300 per 3 hours).
Each window counts the posts whose send started inside it, plus those in flight; the channel may
post as many as the fullest window leaves room for. When a window is full, a place opens when
its ``count``-th newest post leaves it, and the channel may post again once every full window
has opened one. The ledger supplies the values (``Ledger.claim_paced``); nothing here reads a
clock or a database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Window:
    """At most ``count`` posts in any ``period``."""

    count: int
    period: timedelta


@dataclass(frozen=True, slots=True)
class Room:
    """``posts`` may start now (``None``: no window limits them); when that is 0,
    ``opens_at`` is the earliest moment one more may."""

    posts: int | None
    opens_at: datetime | None = None


def newest_needed(windows: Sequence[Window]) -> int:
    """How many of the newest send times :func:`room` needs to see: the largest count."""
    return max((w.count for w in windows), default=0)


def room(
    windows: Sequence[Window],
    *,
    now: datetime,
    started: Sequence[datetime],
    in_flight: int = 0,
) -> Room:
    """The room left under every window. ``started`` are the times recent posts began, newest
    first, at least the :func:`newest_needed` newest of them; ``in_flight`` posts are being sent
    now (they count in every window, as if started now)."""
    if not windows:
        return Room(None)
    # Newest first: the in-flight posts, then the recorded ones.
    times = [now] * in_flight + sorted(started, reverse=True)
    free: int | None = None
    opens: datetime | None = None
    for window in windows:
        start = now - window.period
        used = sum(1 for t in times if t > start)
        left = window.count - used
        free = left if free is None else min(free, left)
        if left <= 0:
            # The count-th newest leaving the window makes one place.
            leaves = times[window.count - 1] + window.period
            opens = leaves if opens is None else max(opens, leaves)
    assert free is not None
    if free > 0:
        return Room(free)
    return Room(0, opens)
