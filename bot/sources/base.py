"""What a source is: something that, polled with its last state, yields articles.

A source never touches the ledger; the pipeline records what it yields. A source that cannot be
read raises :class:`~bot.errors.SourceError` with a reason a person can act on.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Any, Self

from bot.model import Article


@dataclass(frozen=True, slots=True)
class SourceState:
    """What a source remembers between polls (kept in the ledger): HTTP validators for
    conditional GET, so that an unchanged feed costs a 304."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll produced. ``not_modified`` is true when the server answered 304.

    ``warnings`` are everything worth saying about the poll. Of them, ``rejected`` says why each
    entry that could not be posted was skipped (no usable link, a malformed URL...) and
    ``alarms`` what else the source's owner must hear of (an encoding guessed or repaired):
    these are logged as warnings, the rest as information. ``refusals`` are the articles the
    fetch policy left out, each with its reason; the source has logged them as warnings
    already. ``gone`` are the keys of articles whose page, read again, answered 404 or 410,
    each with that reason (the pipeline decides, by ``takedown_on_gone``, whether it is a
    takedown)."""

    articles: tuple[Article, ...] = ()
    state: SourceState = field(default_factory=SourceState)
    not_modified: bool = False
    warnings: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()
    alarms: tuple[str, ...] = ()
    refusals: tuple[str, ...] = ()
    gone: tuple[tuple[str, str], ...] = ()


class Source(abc.ABC):
    """One source of articles. Use as ``async with source: await source.poll(state)``."""

    def __init__(self, name: str) -> None:
        self.name = name

    @abc.abstractmethod
    async def poll(self, state: SourceState) -> PollResult:
        """Fetch and parse; raise :class:`~bot.errors.SourceError` when nothing could be read."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class WrappedSource(Source):
    """A source that changes what another one polled (screening, enrichment): the inner
    source's lifecycle and attributes pass through."""

    def __init__(self, inner: Source) -> None:
        super().__init__(inner.name)
        self.inner = inner

    async def __aenter__(self) -> Self:
        await self.inner.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.inner.__aexit__(exc_type, exc, tb)

    def __getattr__(self, name: str) -> Any:
        # config and the like of the wrapped source, for the daemon's reporting.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


def backoff_interval(
    every: timedelta, consecutive_errors: int, cap: timedelta = timedelta(hours=1)
) -> timedelta:
    """How long to wait before polling a failing source again: ``every`` doubled once per
    consecutive error, never more than ``cap`` (nor less than ``every``, should ``cap`` be
    smaller). No errors, or a negative count, gives ``every``: a healthy source keeps its pace.

    >>> backoff_interval(timedelta(minutes=2), 3)
    datetime.timedelta(seconds=960)
    """
    if consecutive_errors <= 0 or every >= cap:
        return every
    # Compared in seconds first: ``every * 2**n`` for a source failing for weeks would overflow
    # timedelta long before it could be compared with the cap.
    factor = 1 << min(consecutive_errors, 64)
    if every.total_seconds() * factor >= cap.total_seconds():
        return cap
    return every * factor
