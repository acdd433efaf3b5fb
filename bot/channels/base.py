"""What a channel is: a place a post can be sent to, with the platform's length rules.

One required method, :meth:`Channel.send`, and a lifecycle (``async with channel``). A channel
raises :class:`~bot.errors.TransientError` (try later, not before ``retry_after``) or
:class:`~bot.errors.PermanentError` (never); any other exception is a bug in the channel.

A post's life after it is published (corrections, takedowns) uses three optional methods,
:meth:`Channel.edit`, :meth:`Channel.reply` and :meth:`Channel.delete`, with the same error
rules plus :class:`~bot.errors.PostGone` when the published post no longer exists. What a
platform allows is said by ``can_edit`` / ``can_reply`` / ``can_delete`` and the policies a
channel uses when its config names none (``default_corrections``, ``default_takedowns``).
"""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Protocol, Self

from bot.compose.length import LengthRule
from bot.errors import PermanentError
from bot.model import Correction, Post, Published, Receipt, Takedown


class Channel(abc.ABC):
    """A destination for posts. ``rule(has_image)`` is the length rule a post must fit."""

    #: True when the platform itself refuses a second identical post (X does), so a post
    #: whose fate is unknown can be sent again without risk of appearing twice.
    resend_is_safe: bool = False

    #: What the platform lets newsbot do to a post it has published.
    can_edit: bool = False
    can_reply: bool = False
    can_delete: bool = False
    #: False where ``corrections: delete_and_repost`` fails although the platform can delete:
    #: the new post of an already sent delivery cannot go through :meth:`send` there.
    can_repost: bool = True
    #: The policies used when the channel's config sets no ``corrections:`` / ``takedowns:``.
    default_corrections: Correction = Correction.OFF
    default_takedowns: Takedown = Takedown.OFF

    def __init__(self, name: str) -> None:
        self.name = name

    @abc.abstractmethod
    def rule(self, *, has_image: bool) -> LengthRule:
        """The length rule for a post on this channel (a photo caption may have a smaller limit)."""

    @abc.abstractmethod
    async def send(self, post: Post) -> Receipt:
        """Deliver one post; raise TransientError or PermanentError when the platform refuses."""

    async def edit(self, published: Published, post: Post) -> Receipt:
        """Change the published post in place so that it reads ``post``.

        Raise :class:`PostGone` when the post no longer exists, ``PermanentError`` when the
        platform refuses (too old, not modified, not editable) and ``TransientError`` as for
        a send (``maybe_sent`` when the request may have been applied)."""
        raise PermanentError(f"{type(self).__name__} cannot edit a published post")

    async def reply(self, published: Published, post: Post) -> Receipt:
        """Publish ``post`` as a reply to the published post (a correction notice)."""
        raise PermanentError(f"{type(self).__name__} cannot reply to a published post")

    async def delete(self, published: Published) -> None:
        """Take the published post down. Raise :class:`PostGone` when it is already gone
        (the caller counts that as done), ``PermanentError`` when the platform refuses
        (too old to delete, no right to)."""
        raise PermanentError(f"{type(self).__name__} cannot delete a published post")

    async def start(self) -> None:
        """Open connections, check credentials; called once before the first send."""

    async def close(self) -> None:
        """Release connections; called once at the end."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class InFlight(Protocol):
    """Where a channel notes, before the step that publishes, what it has already made on the
    platform for a post (a Threads media container), so that a later attempt, after a crash
    or a lost answer, can look at that instead of making and publishing a second one."""

    async def recall(self, post: Post) -> str | None:
        """The note made for this post's delivery by an earlier attempt, if any."""

    async def remember(self, post: Post, note: str) -> None:
        """Note ``note`` for this post's delivery; must be durable when it returns."""


class MemoryInFlight:
    """Notes kept in memory: for ``check --online`` and tests without a ledger."""

    def __init__(self) -> None:
        self.notes: dict[tuple[str, str, str], str] = {}

    async def recall(self, post: Post) -> str | None:
        return self.notes.get((post.channel, post.source, post.article_key))

    async def remember(self, post: Post, note: str) -> None:
        self.notes[(post.channel, post.source, post.article_key)] = note
