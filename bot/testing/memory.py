"""In-memory doubles for unit tests: a channel that records posts and fails on command like a
platform, and a source whose articles the test sets."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime

from bot.channels.base import Channel
from bot.compose.length import X_POST, LengthRule
from bot.errors import DeliveryError, PermanentError, PostGone, SourceError
from bot.model import Article, Correction, Post, Published, Receipt, Takedown
from bot.sources.base import PollResult, Source, SourceState


class MemoryChannel(Channel):
    """Keeps every accepted post in ``posts`` and what is on the "platform" now in ``live``
    (id → text); edits, replies and deletes are recorded in ``edits``, ``replies`` and
    ``deletes``. ``fail_next`` scripts errors, in order, for the next calls of any kind.

    Like a platform, it refuses an edit or a delete of a post it does not hold
    (:class:`PostGone`) and an edit that changes nothing ("message is not modified")."""

    can_edit = can_reply = can_delete = True
    default_corrections = Correction.EDIT
    default_takedowns = Takedown.DELETE

    def __init__(self, name: str, rule: LengthRule = X_POST) -> None:
        super().__init__(name)
        self._rule = rule
        self.posts: list[Post] = []
        self.live: dict[str, str] = {}
        self.edits: list[tuple[str, Post]] = []
        self.replies: list[tuple[str, Post]] = []
        self.deletes: list[str] = []
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
        self._call()
        self.posts.append(post)
        return self._publish(post)

    async def edit(self, published: Published, post: Post) -> Receipt:
        self._call()
        current = self._held(published)
        if current == post.text:
            raise PermanentError("message is not modified")
        self.live[published.remote_id] = post.text
        self.edits.append((published.remote_id, post))
        return Receipt(remote_id=published.remote_id, url=published.url)

    async def reply(self, published: Published, post: Post) -> Receipt:
        self._call()
        self._held(published)
        self.replies.append((published.remote_id, post))
        return self._publish(post)

    async def delete(self, published: Published) -> None:
        self._call()
        self._held(published)
        del self.live[published.remote_id]
        self.deletes.append(published.remote_id)

    def _call(self) -> None:
        self.attempts += 1
        if self._faults:
            raise self._faults.popleft()

    def _held(self, published: Published) -> str:
        if published.remote_id not in self.live:
            raise PostGone(f"post {published.remote_id} not found")
        return self.live[published.remote_id]

    def _publish(self, post: Post) -> Receipt:
        remote_id = str(next(self._ids))
        self.live[remote_id] = post.text
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
