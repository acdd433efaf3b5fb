"""In-memory doubles for unit tests: a channel that records posts and fails on command like a
platform, and a source whose articles the test sets."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime

from bot.channels.base import Channel
from bot.compose.length import X_POST, LengthRule
from bot.errors import DeliveryError, SourceError
from bot.model import Article, Post, Receipt
from bot.sources.base import PollResult, Source, SourceState


class MemoryChannel(Channel):
    """Keeps every accepted post in ``posts``; ``fail_next`` scripts errors in order."""

    def __init__(self, name: str, rule: LengthRule = X_POST) -> None:
        super().__init__(name)
        self._rule = rule
        self.posts: list[Post] = []
        self.attempts = 0
        self._faults: deque[DeliveryError | Exception] = deque()
        self._ids = itertools.count(1)
        self.started = self.closed = False

    def rule(self, *, has_image: bool) -> LengthRule:
        return self._rule

    def fail_next(self, *errors: DeliveryError | Exception) -> None:
        self._faults.extend(errors)

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True

    async def send(self, post: Post) -> Receipt:
        self.attempts += 1
        if self._faults:
            raise self._faults.popleft()
        self.posts.append(post)
        remote_id = str(next(self._ids))
        return Receipt(
            remote_id=remote_id,
            url=f"memory://{self.name}/{remote_id}",
            accepted_at=datetime.now(UTC),
        )


class MemorySource(Source):
    """A source whose articles a test sets directly; ``fail_with`` makes the next poll fail."""

    def __init__(self, name: str, articles: Sequence[Article] = ()) -> None:
        super().__init__(name)
        self.articles: list[Article] = list(articles)
        self.polls = 0
        self._error: SourceError | None = None

    def fail_with(self, reason: str) -> None:
        self._error = SourceError(reason)

    async def poll(self, state: SourceState) -> PollResult:
        self.polls += 1
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return PollResult(articles=tuple(self.articles), state=state)
