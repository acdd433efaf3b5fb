"""The values that flow through newsbot: articles in, posts out, receipts back.

All are immutable; the ledger is the only place where state changes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

#: The longest title kept (in characters), from whichever source: a post has no room for more.
MAX_TITLE = 500


class DeliveryState(enum.StrEnum):
    """Where a delivery stands. ``queued → sending → sent | failed | skipped``; a delivery found
    in ``sending`` after its holder died becomes ``uncertain`` until a person decides."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNCERTAIN = "uncertain"

    @property
    def is_final(self) -> bool:
        return self in (DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.SKIPPED)


class RevisionKind(enum.StrEnum):
    """What a revision of an article is: its content changed, or it was withdrawn."""

    UPDATE = "update"
    DELETE = "delete"


class Correction(enum.StrEnum):
    """A channel's policy for a corrected article (``corrections:`` in the config)."""

    EDIT = "edit"  # re-render with the same template and edit the post in place
    REPLY = "reply"  # post the correction_template as a reply to the original
    DELETE_AND_REPOST = "delete_and_repost"
    OFF = "off"


class Takedown(enum.StrEnum):
    """A channel's policy for a withdrawn article (``takedowns:`` in the config)."""

    DELETE = "delete"
    OFF = "off"


class Action(enum.StrEnum):
    """What one revision does to one published post."""

    EDIT = "edit"
    REPLY = "reply"
    DELETE = "delete"
    DELETE_AND_REPOST = "delete_and_repost"


class ActionState(enum.StrEnum):
    """Where one revision's action on one post stands; like a delivery's, with ``done`` for
    sent and ``superseded`` when a later revision of the same article replaced it unapplied."""

    QUEUED = "queued"
    SENDING = "sending"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNCERTAIN = "uncertain"
    SUPERSEDED = "superseded"


@dataclass(frozen=True, slots=True)
class Article:
    """One article as a source saw it, normalised (NFC text, absolute canonical URL).

    ``key`` is stable across polls: the feed's guid / entry id, else the canonical URL.
    ``summary_html`` is the source's summary or content, still HTML; the excerpt is built from it.
    """

    key: str
    url: str
    title: str
    summary_html: str = ""
    published: datetime | None = None
    author: str | None = None
    categories: tuple[str, ...] = ()
    image: str | None = None
    #: When the source says the article last changed (a sitemap's ``<lastmod>``, a feed entry's
    #: later ``<updated>``): not content (no post shows it, the content digest leaves it out),
    #: a reason to read its page again.
    modified: datetime | None = None

    def __post_init__(self) -> None:
        if self.published is not None and self.published.tzinfo is None:
            raise ValueError("Article.published must be timezone-aware")


@dataclass(frozen=True, slots=True)
class Post:
    """The exact text a channel will send for one delivery.

    ``text`` is what the platform receives (HTML for Telegram, plain text for X); ``length`` is
    its length as the platform counts it and ``limit`` the platform's limit for this post.
    ``title`` and ``summary`` (the whole excerpt) are for a link card a platform builds beside
    the text (Bluesky's ``app.bsky.embed.external``).
    """

    channel: str
    text: str
    length: int
    limit: int
    link: str
    image: str | None = None
    article_key: str = ""
    source: str = ""
    title: str = ""
    summary: str = ""


@dataclass(frozen=True, slots=True)
class Published:
    """A post as the platform holds it, what an edit, a reply or a delete acts on: the
    platform's id and address for it, when it was accepted, and the exact text sent last."""

    channel: str
    remote_id: str
    url: str | None
    sent_at: datetime
    text: str

    def age(self, now: datetime) -> timedelta:
        """How long the post has been up at ``now``; what platforms' time limits on edits and
        deletes are measured against. A naive ``sent_at`` is read as UTC."""
        sent = self.sent_at if self.sent_at.tzinfo else self.sent_at.replace(tzinfo=UTC)
        return now - sent


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the platform answered when it accepted a post."""

    remote_id: str
    url: str | None = None
    accepted_at: datetime | None = None
    notes: tuple[str, ...] = field(default=())
