"""The ledger: every article seen and the fate of every delivery, in SQL.

SQLAlchemy Core over SQLite by default, PostgreSQL to scale out. The database, not Python,
guarantees the two uniqueness rules newsbot lives by: one article per (source, key) and one
delivery per (article, channel). A delivery moves

    queued ──claim──► sending ──in flight──► sent | failed | skipped
       ▲                 │   │
       └── transient ────┘   └── holder died: back to ``queued`` if never in flight,
                                 ``uncertain`` if its request may have reached the platform

and every row keeps its attempts, the last reason, the due time, the exact text sent and the
platform's receipt. Times are stored in UTC.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import functools
import hashlib
import json
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from bot import migrations, pacing
from bot.errors import LedgerError
from bot.model import (
    Action,
    ActionState,
    Article,
    DeliveryState,
    Post,
    Published,
    Receipt,
    RevisionKind,
)
from bot.outcome import ActionOutcome, Outcome
from bot.pacing import Window
from bot.redact import Redactor, redact_url
from bot.revisions import DeliveryRow, Policies, Revision, plan_actions
from bot.sources.base import SourceState

# The schema's revision number (bot/migrations/versions/000N_*.py); newsbot_meta keeps it too.
SCHEMA_VERSION = 6

log = logging.getLogger("newsbot.ledger")

_P = ParamSpec("_P")
_T = TypeVar("_T")


async def offload(call: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """The one way async code reaches the ledger: ``await offload(ledger.finish, ...)`` runs
    the call in a worker thread, so a slow database (SQLite's busy_timeout under a writer,
    a PostgreSQL lock) stalls that one task, never the event loop with the listener, the
    health check and every other poll and send on it."""
    return await asyncio.to_thread(call, *args, **kwargs)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, whatever the database keeps."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return _utc_naive(value)

    def bind_processor(self, dialect: sa.Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        # Every row of an ingest binds several timestamps: on SQLite, one step straight to the
        # text SQLAlchemy's DATETIME stores ("2026-12-01 09:30:00.000000": the same text, so
        # old and new rows compare alike) instead of this method and then the impl's own
        # formatting, which was a fifth of an ingest's CPU.
        return _sqlite_timestamp

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _utc_naive(value: datetime | None) -> datetime | None:
    """An aware datetime as the naive UTC one the database keeps."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("the ledger only stores timezone-aware datetimes")
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None)


def _sqlite_timestamp(value: datetime | None) -> str | None:
    """A timestamp as SQLite's ledger stores it: UTC, as SQLAlchemy's DATETIME text."""
    naive = _utc_naive(value)
    return None if naive is None else naive.isoformat(" ", "microseconds")


metadata = sa.MetaData()

meta = sa.Table(
    "newsbot_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

sources = sa.Table(
    "sources",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    sa.Column("first_polled_at", UTCDateTime),
    sa.Column("last_polled_at", UTCDateTime),
    sa.Column("last_ok_at", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("consecutive_errors", sa.Integer, nullable=False, server_default="0"),
)

articles = sa.Table(
    "articles",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("summary_html", sa.Text, nullable=False, server_default=""),
    sa.Column("excerpt", sa.Text, nullable=False, server_default=""),
    sa.Column("published_at", UTCDateTime),
    sa.Column("author", sa.Text),
    sa.Column("categories", sa.Text, nullable=False, server_default="[]"),
    sa.Column("image", sa.Text),
    sa.Column("seen_at", UTCDateTime, nullable=False),
    # Revision 0006: a digest of what the source last said (every field a post is made from),
    # an editor's title that later polls do not undo, and when the article was withdrawn.
    sa.Column("content_digest", sa.String(32)),
    sa.Column("title_override", sa.Text),
    sa.Column("retracted_at", UTCDateTime),
    sa.UniqueConstraint("source", "key", name="uq_articles_source_key"),
    sa.Index("ix_articles_source_url", "source", "url"),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "article_id", sa.Integer, sa.ForeignKey("articles.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("channel", sa.String(200), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("reason", sa.Text),
    sa.Column("text", sa.Text),
    sa.Column("remote_id", sa.Text),
    sa.Column("remote_url", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("claimed_by", sa.String(200)),
    sa.Column("claimed_at", UTCDateTime),
    sa.Column("cost", sa.Float),
    sa.Column("sent_by", sa.String(200)),  # the instance that recorded it sent (revision 0002)
    # When the request for this claim was about to be written (revision 0004); a claim
    # without it never left this process.
    sa.Column("in_flight_at", UTCDateTime),
    sa.UniqueConstraint("article_id", "channel", name="uq_deliveries_article_channel"),
    sa.Index("ix_deliveries_state_due", "state", "due_at"),
    sa.Index("ix_deliveries_created", "created_at"),
    sa.Index("ix_deliveries_state_id", "state", "id"),
    sa.Index("ix_deliveries_claim", "state", "channel", "priority", "id"),
)


# Revision 0006: each change of an article (an update or a withdrawal), and one action per
# (revision, published post), leased, marked in flight and finished like a delivery.
revisions = sa.Table(
    "revisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "article_id", sa.Integer, sa.ForeignKey("articles.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("kind", sa.String(16), nullable=False),  # RevisionKind
    sa.Column("origin", sa.String(32), nullable=False),  # feed, webhook, sitemap, enrich, editor
    sa.Column("changes", sa.Text, nullable=False, server_default="[]"),  # JSON: fields changed
    sa.Column("reason", sa.Text),
    sa.Column("title", sa.Text),  # the title after the revision
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_revisions_article", "article_id", "id"),
)

revision_actions = sa.Table(
    "revision_actions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "revision_id",
        sa.Integer,
        sa.ForeignKey("revisions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column(
        "delivery_id",
        sa.Integer,
        sa.ForeignKey("deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("channel", sa.String(200), nullable=False),
    sa.Column("action", sa.String(24), nullable=False),  # Action
    sa.Column("state", sa.String(16), nullable=False),  # ActionState
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("reason", sa.Text),
    sa.Column("text", sa.Text),
    sa.Column("remote_id", sa.Text),
    sa.Column("remote_url", sa.Text),
    sa.Column("claimed_by", sa.String(200)),
    sa.Column("claimed_at", UTCDateTime),
    sa.Column("in_flight_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("done_at", UTCDateTime),
    sa.UniqueConstraint("revision_id", "delivery_id", name="uq_revision_actions_post"),
    sa.Index("ix_revision_actions_claim", "state", "channel", "due_at"),
    sa.Index("ix_revision_actions_delivery", "delivery_id", "id"),
)


# Revision 0004: every article key and canonical URL ever ingested, as a digest, per source.
# Pruning forgets articles and deliveries, never these rows: an article that a feed still
# carries (or a CMS pushes again) months later is known, so it can never be posted twice.
seen = sa.Table(
    "seen",
    metadata,
    sa.Column("source", sa.String(200), primary_key=True),
    sa.Column("digest", sa.String(32), primary_key=True),
)


# A poll computes each digest twice (known(), then ingest() checks again in its transaction).
@functools.lru_cache(maxsize=8192)
def seen_digest(kind: str, value: str) -> str:
    """The ``seen`` row of an article's key (``kind`` "key") or canonical URL ("url"): 128 bits
    of SHA-256, compact at any length of key and collision-free in practice."""
    return hashlib.sha256(f"{kind}\0{value}".encode()).hexdigest()[:32]


# One row per channel: when it may post next. Claims for a paced channel lock this row, so the
# pace holds across several instances sharing one database.
channel_pacing = sa.Table(
    "channel_pacing",
    metadata,
    sa.Column("channel", sa.String(200), primary_key=True),
    sa.Column("next_at", UTCDateTime),
    sa.Column("paused_until", UTCDateTime),
    sa.Column("paused_reason", sa.Text),
)

# Revision 0002: several instances on one database. Each running newsbot keeps a heartbeat row;
# each source is polled by the instance holding its lease, until the lease expires.
instances = sa.Table(
    "instances",
    metadata,
    sa.Column("holder", sa.String(200), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("last_seen", UTCDateTime, nullable=False),
)

source_leases = sa.Table(
    "source_leases",
    metadata,
    sa.Column("source", sa.String(200), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("acquired_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """What the ledger knows of one source."""

    name: str
    state: SourceState
    first_polled_at: datetime | None
    last_polled_at: datetime | None
    last_ok_at: datetime | None
    last_error: str | None
    consecutive_errors: int

    @property
    def seen_before(self) -> bool:
        return self.last_ok_at is not None


class _TablesGone(LedgerError):
    """The ledger's own tables are missing: dropped, or another database under its name."""


@dataclass(frozen=True, slots=True)
class LedgerIdentity:
    """Which ledger this is: its random id, a SQLite file's (device, inode), and whether it
    has recorded any article (a ledger that had some and has none was emptied)."""

    ledger_id: str | None
    file: tuple[int, int] | None
    has_seen: bool


def identity_problem(expected: LedgerIdentity, found: LedgerIdentity) -> str | None:
    """How the ledger found now differs from the one opened, or ``None`` when it is the same."""
    if expected.file is not None and found.file is None:
        return "the ledger file was deleted under the running newsbot"
    if expected.file is not None and found.file != expected.file:
        return "the ledger file was replaced under the running newsbot"
    if found.ledger_id != expected.ledger_id:
        return (
            "the ledger was replaced under the running newsbot (its id is now "
            f"{found.ledger_id or 'missing'}, it was {expected.ledger_id})"
        )
    if expected.has_seen and not found.has_seen:
        return "the ledger's tables were emptied under the running newsbot"
    return None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One (article, channel) delivery as the ledger holds it."""

    id: int
    source: str
    channel: str
    state: DeliveryState
    article: Article
    excerpt: str
    due_at: datetime
    attempts: int
    reason: str | None
    text: str | None
    remote_id: str | None
    remote_url: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    #: When the article was withdrawn (a takedown); its queued posts must not go out.
    retracted_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """A plain, JSON-ready view for ``newsbot status --json``."""

        def when(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "source": self.source,
            "channel": self.channel,
            "state": str(self.state),
            "article_key": self.article.key,
            "title": self.article.title,
            "url": self.article.url,
            "published": when(self.article.published),
            "due_at": when(self.due_at),
            "attempts": self.attempts,
            "reason": self.reason,
            "text": self.text,
            "remote_id": self.remote_id,
            "remote_url": self.remote_url,
            "created_at": when(self.created_at),
            "updated_at": when(self.updated_at),
            "sent_at": when(self.sent_at),
            "retracted_at": when(self.retracted_at),
            "delay_seconds": self.delay_seconds,
        }

    @property
    def delay_seconds(self) -> float | None:
        """Publish-to-post delay: from the article's publication (or, lacking one, its arrival
        in the ledger) to the platform's acceptance."""
        if self.sent_at is None:
            return None
        start = self.article.published or self.created_at
        return round(max((self.sent_at - start).total_seconds(), 0.0), 3)


@dataclass(frozen=True, slots=True)
class NewArticle:
    """An article to ingest, with its excerpt and the decision for its deliveries.

    ``skip_reason`` set means every delivery is recorded ``skipped`` with that reason at once.
    """

    article: Article
    excerpt: str
    skip_reason: str | None = None
    priority: int = 0
    #: :func:`bot.revisions.content_digest` of the article, kept to notice a later change.
    digest: str | None = None


@dataclass(frozen=True, slots=True)
class Pace:
    """How fast one channel may post. ``spacing`` is the least time between two posts (the
    larger of ``min_gap`` and the rate's period / count); at most ``burst`` go at once; every
    window of ``windows`` holds (:mod:`bot.pacing`); ``hold`` covers a send in flight; deliveries of
    ``priority_bypass`` or more ignore the spacing (never the rate)."""

    spacing: timedelta
    burst: int = 1
    windows: tuple[Window, ...] = ()
    hold: timedelta = timedelta(seconds=30)
    priority_bypass: int = 10


@dataclass(frozen=True, slots=True)
class Finished:
    """What :meth:`Ledger.finish` did: the outcome recorded (false: the claim was no longer
    the holder's), and whether the next delivery was marked in flight with it."""

    recorded: bool
    next_in_flight: bool = False

    def __bool__(self) -> bool:
        return self.recorded


class Mark(enum.Enum):
    """What :meth:`Ledger.mark_in_flight` did. Only ``MARKED`` is true: anything else must not
    be sent. ``LOST``: the holder no longer has the claim; ``RETRACTED``: the holder still has
    it, but the article was withdrawn since the claim (a takedown that landed between the claim
    and the send), so the delivery is to be finished ``skipped`` rather than posted."""

    MARKED = "marked"
    LOST = "lost"
    RETRACTED = "retracted"

    def __bool__(self) -> bool:
        return self is Mark.MARKED


@dataclass(frozen=True, slots=True)
class _Gate:
    """What a paced channel lets through now (:meth:`Ledger._gate`)."""

    closed_until: datetime | None = None
    allowance: int = 0
    next_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PacedClaim:
    deliveries: list[Delivery]
    wait_until: datetime | None


@dataclass(frozen=True, slots=True)
class ClaimedAction:
    """One revision's action on one published post, claimed for its holder: what to do
    (``action``), to which post as the platform holds it (``published``), and the article as
    it reads now (an editor's title in place), to re-render it from."""

    id: int
    revision_id: int
    delivery_id: int
    channel: str
    action: Action
    attempts: int
    kind: RevisionKind
    source: str
    article: Article
    excerpt: str
    retracted: bool
    published: Published


@dataclass(frozen=True, slots=True)
class ActionClaim:
    actions: list[ClaimedAction]
    wait_until: datetime | None


@dataclass(frozen=True, slots=True)
class Polled:
    """A successful poll, recorded by :meth:`Ledger.ingest` in the transaction of its articles
    (as :meth:`Ledger.record_poll` would): the source's new validators, and what it skipped."""

    state: SourceState | None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class IngestReport:
    articles: int
    queued: int
    skipped: int


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the ledger knows of a poll's entries: the keys and URLs ever seen (pruned or not),
    and for each key whose article is still kept, its id and content digest."""

    known: set[str]
    stored: dict[str, tuple[int, str | None]]


@dataclass(frozen=True, slots=True)
class StoredArticle:
    """One article as the ledger keeps it: the source's last content, an editor's title, and
    whether it was withdrawn."""

    id: int
    source: str
    article: Article
    excerpt: str
    digest: str | None
    title_override: str | None
    retracted_at: datetime | None
    seen_at: datetime

    @property
    def shown_title(self) -> str:
        """The title every post shows: the editor's, else the source's."""
        return self.title_override or self.article.title


@dataclass(frozen=True, slots=True)
class RevisionReport:
    """What :meth:`Ledger.revise` recorded."""

    revisions: int = 0
    queued: int = 0
    skipped: int = 0
    superseded: int = 0
    #: Deliveries not yet posted that a takedown stopped.
    stopped: int = 0
    ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One revision's action on one post, as ``history`` shows it."""

    id: int
    delivery_id: int
    channel: str
    action: str
    state: str
    reason: str | None
    text: str | None
    remote_id: str | None
    remote_url: str | None
    attempts: int
    created_at: datetime
    done_at: datetime | None


@dataclass(frozen=True, slots=True)
class RevisionRecord:
    """One recorded revision and what it did to each post."""

    id: int
    kind: str
    origin: str
    changes: tuple[str, ...]
    reason: str | None
    title: str | None
    created_at: datetime
    actions: tuple[ActionRecord, ...]


# A source's record, read at the start of every poll: built once.
_SOURCE = sa.select(sources).where(sources.c.name == sa.bindparam("name"))

# Asked by every ingest, claim and heartbeat (see Ledger._check_identity): built once, the
# ledger's id and whether it has seen anything in one round trip.
_IDENTITY = sa.select(
    sa.select(meta.c.value).where(meta.c.key == "ledger_id").scalar_subquery(),
    sa.exists().where(seen.c.source.is_not(None)),
)


# The delivery path's updates, built once: building one costs more CPU than the database
# spends running it (Ledger.finish and mark_in_flight run once per delivery).
# The retraction is checked in the marking statement itself: a takedown committed before it
# runs stops the post, one committed after finds the delivery sending and queues its delete.
_RETRACTED_ARTICLE = (
    sa.select(articles.c.id)
    .where(articles.c.id == deliveries.c.article_id, articles.c.retracted_at.is_not(None))
    .exists()
)
_MARK_IN_FLIGHT = (
    sa.update(deliveries)
    .where(
        deliveries.c.id == sa.bindparam("b_id"),
        deliveries.c.state == str(DeliveryState.SENDING),
        deliveries.c.claimed_by == sa.bindparam("b_holder"),
        ~_RETRACTED_ARTICLE,
    )
    .values(in_flight_at=sa.bindparam("b_now", type_=UTCDateTime))
)
# A correction (an edit, a reply, a repost) of an article withdrawn since its claim must not
# reach the platform: its takedown decides the post. The takedown's own delete must.
_CORRECTS_RETRACTED = sa.and_(
    revision_actions.c.action != str(Action.DELETE),
    sa.select(deliveries.c.id)
    .join(articles, articles.c.id == deliveries.c.article_id)
    .where(deliveries.c.id == revision_actions.c.delivery_id, articles.c.retracted_at.is_not(None))
    .exists(),
)
_HELD_RETRACTED = sa.select(deliveries.c.id).where(
    deliveries.c.id == sa.bindparam("b_id"),
    deliveries.c.state == str(DeliveryState.SENDING),
    deliveries.c.claimed_by == sa.bindparam("b_holder"),
    _RETRACTED_ARTICLE,
)


def _finish_kind(state: DeliveryState) -> str:
    """Which columns an outcome in ``state`` writes (see :func:`_finish_update`)."""
    if state in (DeliveryState.SENT, DeliveryState.QUEUED, DeliveryState.SKIPPED):
        return str(state)
    return "other"


@functools.cache
def _finish_update(kind: str, *, by_holder: bool) -> Any:
    """The UPDATE that :meth:`Ledger.finish` runs for an outcome of this kind."""
    now = sa.bindparam("b_now", type_=UTCDateTime)
    values: dict[str, Any] = {
        "state": sa.bindparam("b_state", type_=sa.String),
        "reason": sa.bindparam("b_reason", type_=sa.Text),
        "updated_at": now,
        "claimed_by": None,
    }
    if kind == str(DeliveryState.SENT):
        # sent_at is our clock at acceptance, not the platform's (Telegram's is whole
        # seconds): rate windows and publish-to-post delays are measured on one clock.
        values |= {
            "text": sa.bindparam("b_text", type_=sa.Text),
            "remote_id": sa.bindparam("b_remote_id", type_=sa.Text),
            "remote_url": sa.bindparam("b_remote_url", type_=sa.Text),
            "sent_at": now,
            "cost": sa.bindparam("b_cost", type_=sa.Float),
            # SET sees the row as it was: the holder whose claim this was.
            "sent_by": deliveries.c.claimed_by,
        }
    elif kind == str(DeliveryState.QUEUED):
        values["due_at"] = sa.bindparam("b_due_at", type_=UTCDateTime)
    elif kind != str(DeliveryState.SKIPPED):
        values["text"] = sa.bindparam("b_text", type_=sa.Text)
    query = sa.update(deliveries).where(
        deliveries.c.id == sa.bindparam("b_id"),
        deliveries.c.state == str(DeliveryState.SENDING),
    )
    if by_holder:
        query = query.where(deliveries.c.claimed_by == sa.bindparam("b_holder"))
    return query.values(**values)


class _JSONList(sa.types.TypeDecorator[list[Any]]):
    """A Python list bound as one JSON text parameter (SQLite reads it with ``json_each``)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: list[Any] | None, dialect: sa.Dialect) -> str | None:
        return None if value is None else json.dumps(value)


_ARTICLE_COLUMNS = (
    "source",
    "key",
    "url",
    "title",
    "summary_html",
    "excerpt",
    "published_at",
    "author",
    "categories",
    "image",
    "seen_at",
    "content_digest",
)


class _Statements:
    """The ingest's statements, built once per ledger: building and keying a statement cost
    more CPU than running it on a poll of 50 items. A list goes as one parameter, an array on
    PostgreSQL and JSON text on SQLite, never one parameter an item: an IN of hundreds of
    parameters is a new statement to convert and plan each time, and cost PostgreSQL over a
    second for the seen digests of a 1,000-item poll (30 ms as ``= ANY(array)``)."""

    def __init__(self, *, postgres: bool) -> None:
        self.postgres = postgres
        insert: Any = postgresql.insert if postgres else sqlite.insert
        source = sa.bindparam("source", type_=sa.String)
        self.seen_query = sa.select(seen.c.digest).where(
            seen.c.source == source, self._among(seen.c.digest, "digests", sa.String)
        )
        digests = self._listed("digests", sa.String)
        # WHERE: SQLite would read the upsert's ON as a join's without one.
        self.seen_insert = (
            insert(seen)
            .from_select(["source", "digest"], sa.select(source, digests.c.value).where(sa.true()))
            .on_conflict_do_nothing()
        )
        # SQLite's insert of articles goes straight to the driver (Ledger._insert_articles).
        self.articles_insert: Any = None
        if postgres:
            arrays = sa.func.unnest(
                *(
                    sa.bindparam(name, type_=postgresql.ARRAY(articles.c[name].type))
                    for name in _ARTICLE_COLUMNS
                )
            )
            table = arrays.table_valued(*_ARTICLE_COLUMNS).render_derived()
            self.articles_insert = (
                insert(articles)
                .from_select(list(_ARTICLE_COLUMNS), sa.select(*table.c))
                .on_conflict_do_nothing()
                .returning(articles.c.id, articles.c.key)
            )
        routes = self._listed("routes", sa.String)
        now = sa.bindparam("now", type_=UTCDateTime)
        rows = (
            sa.select(
                articles.c.id,
                routes.c.value,
                sa.bindparam("state", type_=sa.String),
                sa.bindparam("reason", type_=sa.Text),
                now,
                sa.bindparam("priority", type_=sa.Integer),
                sa.literal(0),
                now,
                now,
            )
            .select_from(articles.join(routes, sa.true()))
            .where(self._among(articles.c.id, "ids", sa.Integer))
            .order_by(articles.c.id, routes.c.rank)
        )
        columns = ["article_id", "channel", "state", "reason", "due_at", "priority", "attempts"]
        self.deliveries_insert = (
            insert(deliveries)
            .from_select([*columns, "created_at", "updated_at"], rows)
            .on_conflict_do_nothing()
        )

    def _listed(self, name: str, type_: type[sa.types.TypeEngine[Any]]) -> Any:
        """The list parameter ``name`` as a table of (value, rank), in the list's order."""
        if self.postgres:
            array = sa.bindparam(name, type_=postgresql.ARRAY(type_()))
            unnested = sa.func.unnest(array).table_valued("value", with_ordinality="rank")
            return unnested.render_derived()
        table = sa.func.json_each(sa.bindparam(name, type_=_JSONList())).table_valued(
            "value", "key"
        )
        return sa.select(
            sa.cast(table.c.value, type_()).label("value"), table.c.key.label("rank")
        ).subquery()

    def _among(self, column: Any, name: str, type_: type[sa.types.TypeEngine[Any]]) -> Any:
        """``column`` is one of the list parameter ``name``; on PostgreSQL ``= ANY(array)``,
        which the planner turns into index lookups."""
        if self.postgres:
            return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(type_())))
        return column.in_(sa.select(self._listed(name, type_).c.value))


class Ledger:
    """The ledger on one database. Construct with :meth:`open`; close with :meth:`close`."""

    def __init__(self, engine: Engine, *, redactor: Redactor | None = None) -> None:
        self.engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._statements = _Statements(postgres=self._postgres)
        self.schema_change: migrations.SchemaChange | None = None
        # Every reason and error text is masked on its way in and out (see bot.redact).
        self.redactor = redactor or Redactor()
        self._identity: LedgerIdentity | None = None
        # Set once the ledger is found replaced or emptied: from then on it refuses to claim
        # or ingest, and health fails, until a restart starts afresh on what is there now.
        self.lost: str | None = None
        # The last write that failed (heartbeat, claim, record), cleared by a heartbeat that
        # succeeds: the daemon's health while the database cannot be written to.
        self.write_error: str | None = None
        self._lock = threading.Lock()
        # Every SQLite transaction takes the database's write lock at BEGIN (IMMEDIATE), so
        # this process's threads take turns anyway: queued on a lock of our own, the next one
        # goes the moment the last commits, where SQLite's busy handler has each waiting
        # thread sleep and retry (1 ms, 2 ms, 5 ms ... up to 100 ms at a time).
        self._turn: AbstractContextManager[Any] = (
            nullcontext() if self._postgres else threading.RLock()
        )

    @classmethod
    def open(
        cls, url: str, *, upgrade: bool | None = None, redactor: Redactor | None = None
    ) -> Ledger:
        """Connect, and create, upgrade or check the schema (see :mod:`bot.migrations`).

        An empty database gets the newest schema. One at an older revision is upgraded when
        ``upgrade`` is true; left ``None``, that is SQLite's default (a single-instance
        ledger, upgraded in one transaction on open), while PostgreSQL is refused until
        ``newsbot db upgrade`` has run. ``schema_change`` says what happened.
        """
        ledger = cls(cls._engine(url), redactor=redactor)
        try:
            ledger._create_schema(upgrade=upgrade)
        except BaseException:
            ledger.close()
            raise
        return ledger

    @classmethod
    def schema_state(cls, url: str) -> migrations.SchemaState:
        """The database's schema revision and the one this newsbot needs; changes nothing."""
        engine = cls._engine(url)
        try:
            with cls(engine)._tx() as conn:
                return migrations.state(conn)
        finally:
            engine.dispose()

    @staticmethod
    def _engine(url: str) -> Engine:
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        try:
            engine = sa.create_engine(url, future=True)
        except (sa.exc.ArgumentError, ImportError) as exc:
            hint = ""
            if isinstance(exc, ImportError) and "psycopg" in str(exc):
                hint = (
                    "; PostgreSQL needs the postgres extra: pip install 'newsbot[postgres]' "
                    "(from a checkout: pip install '.[postgres]')"
                )
            raise LedgerError(f"cannot use the database {redact_url(url)}: {exc}{hint}") from exc
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            sa.event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine

    def close(self) -> None:
        self.engine.dispose()

    def checkpoint(self) -> int:
        """Copy what SQLite's write-ahead log holds into the database file, without waiting
        for readers or writers (a PASSIVE checkpoint: what a reader still needs stays for the
        next one), so that no commit on the way to a platform has to. How many of the log's
        pages are in the database file now; 0 on PostgreSQL, which checkpoints on its own."""
        if self._postgres:
            return 0
        try:
            with self.engine.connect() as conn:
                # On the driver's connection, outside any transaction: SQLite refuses a
                # checkpoint inside one, and the "begin" hook would open one.
                row = conn.connection.driver_connection.execute(  # type: ignore[union-attr]
                    "PRAGMA wal_checkpoint(PASSIVE)"
                ).fetchone()
        except (sa.exc.DBAPIError, sqlite3.Error) as exc:
            reason = self.redactor.redact(f"the ledger database refused a checkpoint: {exc}")
            raise LedgerError(reason) from exc
        # (busy, frames in the log, frames copied); -1s when the database is not in WAL mode.
        return max(0, int(row[2])) if row is not None else 0

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self._turn, self.engine.begin() as conn:
                yield conn
        except sa.exc.IntegrityError as exc:
            # A constraint refused a write: the ledger's own error, not a database failure.
            raise LedgerError(f"the ledger database refused an operation: {exc.orig}") from exc
        except (sa.exc.OperationalError, sa.exc.DatabaseError) as exc:
            # Disk full, "disk I/O error", a table gone: the database cannot do its job. Kept
            # for health until a heartbeat (a write) succeeds again.
            reason = self.redactor.redact(f"the ledger database refused an operation: {exc.orig}")
            self.write_error = reason
            raise LedgerError(reason) from exc
        except sa.exc.DBAPIError as exc:
            # Any other refusal by the database: callers see one error type, never SQLAlchemy's.
            reason = self.redactor.redact(f"the ledger database refused an operation: {exc.orig}")
            raise LedgerError(reason) from exc

    def _create_schema(self, *, upgrade: bool | None = None) -> None:
        if upgrade is None:
            upgrade = self.engine.dialect.name == "sqlite"
        where = redact_url(self.engine.url.render_as_string(hide_password=False))
        with self._tx() as conn:
            self.schema_change = migrations.ensure(conn, where=where, upgrade=upgrade)
            self._identity = self._read_identity(conn, create=True)
        change = self.schema_change
        if change is not None and change.before is not None:
            log.warning(
                "the ledger at %s was upgraded from schema revision %s to %s",
                where,
                change.before,
                change.after,
            )

    def _insert(self, table: sa.Table) -> Any:
        return (postgresql.insert if self._postgres else sqlite.insert)(table)

    # -- identity: the ledger under us is the one we opened ---------------------------------
    # A SQLite file deleted or replaced under a running daemon, or tables emptied, would let
    # it post its whole backlog again: every article would look new. So the ledger carries
    # an identity (a random id in newsbot_meta, made with the schema, and for SQLite the
    # file's device and inode), checked by every heartbeat, claim and ingest. A mismatch is
    # final for this process: it stops claiming and ingesting and health fails; a restart
    # treats what it finds as it is (an empty ledger: a first sight, with the backlog rule).

    def identity(self) -> LedgerIdentity:
        """What this ledger was when it was opened."""
        if self._identity is None:
            with self._tx() as conn:
                self._identity = self._read_identity(conn, create=True)
        return self._identity

    def check_identity(self) -> None:
        """Raise LedgerError (and remember why) unless the ledger is still the one opened."""
        if self.lost is not None:
            raise LedgerError(self.lost)
        with self._tx() as conn:
            self._check_identity(conn)

    def _check_identity(self, conn: Connection) -> None:
        if self.lost is not None:
            raise LedgerError(self.lost)
        expected = self.identity()
        problem: str | None
        try:
            found = self._read_identity(conn, create=False)
        except _TablesGone as exc:
            problem = str(exc)
        else:
            problem = identity_problem(expected, found)
            if problem is None:
                if found.has_seen and not expected.has_seen:
                    self._identity = found  # from now on, an empty seen set means emptied
                return
        raise LedgerError(self._lose(problem))

    def _lose(self, problem: str) -> str:
        """The ledger is not the one opened: final for this process."""
        with self._lock:
            if self.lost is None:
                self.lost = (
                    f"{problem}: this newsbot stopped claiming and recording posts so as not to "
                    "post its backlog again; restart it once the ledger is as it should be"
                )
                log.error("%s", self.lost)
            return self.lost

    def _read_identity(self, conn: Connection, *, create: bool) -> LedgerIdentity:
        if create:
            conn.execute(
                self._insert(meta)
                .values(key="ledger_id", value=uuid.uuid4().hex)
                .on_conflict_do_nothing()
            )
        try:
            ledger_id, has_seen = conn.execute(_IDENTITY).one()
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
            # Only a missing table is a lost ledger; a disk or network error is not final.
            if isinstance(exc, sa.exc.ProgrammingError) or "no such table" in str(exc.orig):
                raise _TablesGone(f"the ledger's tables are gone ({exc.orig})") from exc
            raise
        return LedgerIdentity(
            ledger_id=ledger_id, file=self._file_identity(), has_seen=bool(has_seen)
        )

    def _file_identity(self) -> tuple[int, int] | None:
        """(device, inode) of a SQLite ledger's file; ``None`` when there is no file (PostgreSQL,
        in-memory) or it is gone."""
        path = self.engine.url.database if self.engine.dialect.name == "sqlite" else None
        if not path or path == ":memory:" or path.startswith("file:"):
            return None
        try:
            stat = os.stat(path)
        except OSError:
            return None
        return stat.st_dev, stat.st_ino

    def health(self) -> str | None:
        """Why the ledger cannot do its job now (``None``: it can): replaced, emptied or gone
        under us, or its last operation failed (a full disk, the server down) with no
        heartbeat through since. Asks the database nothing, so it answers at once even while
        the database hangs: the heartbeat, every few seconds, is what asks."""
        if self.lost is None and self._identity is not None and self._identity.file is not None:
            found = dataclasses.replace(self._identity, file=self._file_identity())
            problem = identity_problem(self._identity, found)
            if problem is not None:
                self._lose(problem)
        if self.lost is not None:
            return self.lost
        if self.write_error is not None:
            return f"the ledger cannot be written to: {self.write_error}"
        return None

    # -- sources -----------------------------------------------------------------------------

    def source(self, name: str) -> SourceRecord:
        with self._tx() as conn:
            row = conn.execute(_SOURCE, {"name": name}).mappings().first()
        if row is None:
            return SourceRecord(name, SourceState(), None, None, None, None, 0)
        return SourceRecord(
            name=name,
            state=SourceState(etag=row["etag"], last_modified=row["last_modified"]),
            first_polled_at=row["first_polled_at"],
            last_polled_at=row["last_polled_at"],
            last_ok_at=row["last_ok_at"],
            last_error=self.redactor.redact_optional(row["last_error"]),
            consecutive_errors=row["consecutive_errors"],
        )

    def record_poll(
        self,
        name: str,
        *,
        now: datetime,
        state: SourceState | None = None,
        error: str | None = None,
        note: str | None = None,
    ) -> None:
        """A successful poll (with the new validators) or a failed one (with its reason).

        ``last_error`` holds the last poll's problem: the reason it failed, or for a poll that
        succeeded, ``note``: the entries it had to skip and why (``status`` shows both)."""
        with self._tx() as conn:
            self._record_poll(conn, name, now=now, state=state, error=error, note=note)

    def _record_poll(
        self,
        conn: Connection,
        name: str,
        *,
        now: datetime,
        state: SourceState | None,
        error: str | None = None,
        note: str | None = None,
    ) -> None:
        values: dict[str, Any] = {"last_polled_at": now}
        if error is None:
            values |= {"last_ok_at": now, "last_error": note, "consecutive_errors": 0}
            if state is not None:
                values |= {"etag": state.etag, "last_modified": state.last_modified}
        else:
            values |= {"last_error": self.redactor.redact(error)}
        conn.execute(
            self._insert(sources)
            .values(name=name, first_polled_at=now, consecutive_errors=0)
            .on_conflict_do_nothing()
        )
        update = sa.update(sources).where(sources.c.name == name).values(**values)
        if error is not None:
            update = update.values(consecutive_errors=sources.c.consecutive_errors + 1)
        conn.execute(update)

    def source_problems(self) -> list[SourceRecord]:
        """The sources whose last poll failed or skipped entries, by name."""
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(sources.c.name)
                .where(sources.c.last_error.is_not(None))
                .order_by(sources.c.name)
            ).all()
        return [self.source(row.name) for row in rows]

    def known(self, source: str, keys: Collection[str], urls: Collection[str]) -> set[str]:
        """Which of these keys or canonical URLs the ledger has ever seen for this source,
        pruned or not (the ``seen`` digests outlive retention)."""
        if not keys and not urls:
            return set()
        wanted = {seen_digest("key", key): key for key in keys}
        wanted |= {seen_digest("url", url): url for url in urls}
        with self._tx() as conn:
            present = self._seen(conn, source, wanted)
        return {wanted[digest] for digest in present}

    def _seen(self, conn: Connection, source: str, digests: Collection[str]) -> set[str]:
        if not digests:
            return set()
        params = {"source": source, "digests": list(digests)}
        return set(conn.execute(self._statements.seen_query, params).scalars())

    def lookup(self, source: str, keys: Collection[str], urls: Collection[str]) -> Lookup:
        """:meth:`known`, and in the same transaction the id and content digest of each known
        key's article still kept: one query more per poll, whatever its number of entries,
        and none when nothing is known (a first sight)."""
        if not keys and not urls:
            return Lookup(set(), {})
        wanted = {seen_digest("key", key): key for key in keys}
        wanted |= {seen_digest("url", url): url for url in urls}
        with self._tx() as conn:
            present = {wanted[digest] for digest in self._seen(conn, source, wanted)}
            known_keys = [key for key in keys if key in present]
            stored: dict[str, tuple[int, str | None]] = {}
            for chunk in _chunks(sorted(set(known_keys)), 500):
                rows = conn.execute(
                    sa.select(articles.c.key, articles.c.id, articles.c.content_digest).where(
                        articles.c.source == source, articles.c.key.in_(chunk)
                    )
                )
                stored.update({row.key: (int(row.id), row.content_digest) for row in rows})
        return Lookup(present, stored)

    def stored_articles(self, ids: Collection[int]) -> dict[int, StoredArticle]:
        """The articles with these ids, as kept."""
        found: dict[int, StoredArticle] = {}
        if not ids:
            return found
        with self._tx() as conn:
            for start in range(0, len(ids), 500):
                chunk = sorted(ids)[start : start + 500]
                rows = conn.execute(sa.select(articles).where(articles.c.id.in_(chunk)))
                found.update({int(row["id"]): _stored(row) for row in rows.mappings()})
        return found

    def find_articles(self, text: str, *, source: str | None = None) -> list[StoredArticle]:
        """The articles ``text`` may name: its key, its canonical URL (in any source), or a
        delivery id; several when a key or URL is in more than one source. With ``source``,
        only that source's article of that key or URL."""
        text = text.strip()
        match = sa.or_(articles.c.key == text, articles.c.url == text)
        if source is not None:
            match = sa.and_(match, articles.c.source == source)
        elif text.isascii() and text.isdigit() and len(text) <= 18:
            by_delivery = sa.select(deliveries.c.article_id).where(deliveries.c.id == int(text))
            match = sa.or_(match, articles.c.id.in_(by_delivery))
        with self._tx() as conn:
            rows = conn.execute(sa.select(articles).where(match).order_by(articles.c.id))
            return [_stored(row) for row in rows.mappings()]

    def revise(
        self,
        revised: Sequence[Revision],
        policies: Mapping[str, Policies],
        *,
        now: datetime,
        digests: Mapping[int, str] | None = None,
    ) -> RevisionReport:
        """Record revisions, in one transaction: each article's row brought to its current
        content (so a delivery still queued posts the corrected text), an editor's title kept,
        a withdrawal's time set; one ``revisions`` row each; and for each delivery of the
        article the action :func:`bot.revisions.plan_actions` decides under ``policies``
        (channel → policies). Queued actions of earlier revisions for the same posts are
        ``superseded`` (a newer one renders from the current content anyway; only a takedown
        supersedes a queued delete). A takedown skips the deliveries not yet posted.
        ``digests``: articles (id → digest) whose content digest is only to be stored, such as
        those kept before revisions were (no digest yet): no revision."""
        report = RevisionReport()
        if not revised and not digests:
            return report
        queued = skipped = superseded = stopped = 0
        ids: list[int] = []
        with self._tx() as conn:
            self._check_identity(conn)
            for article_id, digest in (digests or {}).items():
                conn.execute(
                    sa.update(articles)
                    .where(articles.c.id == article_id)
                    .values(content_digest=digest)
                )
            for revision in revised:
                row = (
                    conn.execute(
                        sa.select(articles.c.source, articles.c.retracted_at).where(
                            articles.c.id == revision.article_id
                        )
                    )
                    .mappings()
                    .first()
                )
                if row is None:
                    continue  # pruned meanwhile: no post is left to act on
                retracted = row["retracted_at"] is not None
                if not self._revise_article(conn, row["source"], revision, now):
                    continue  # another instance recorded this very change first
                revision_id = int(
                    conn.execute(
                        sa.insert(revisions)
                        .values(
                            article_id=revision.article_id,
                            kind=str(revision.kind),
                            origin=revision.origin,
                            changes=json.dumps(list(revision.changes)),
                            reason=self.redactor.redact_optional(revision.reason),
                            title=revision.title,
                            created_at=now,
                        )
                        .returning(revisions.c.id)
                    ).scalar_one()
                )
                ids.append(revision_id)
                found = conn.execute(
                    sa.select(deliveries.c.id, deliveries.c.channel, deliveries.c.state)
                    .where(deliveries.c.article_id == revision.article_id)
                    .order_by(deliveries.c.id)
                ).all()
                rows = [DeliveryRow(int(d.id), d.channel, DeliveryState(d.state)) for d in found]
                plan = plan_actions(
                    revision.kind,
                    rows,
                    policies,
                    reason=revision.reason,
                    retracted=retracted and revision.kind is RevisionKind.UPDATE,
                )
                if rows:
                    earlier = sa.and_(
                        revision_actions.c.delivery_id.in_([d.id for d in rows]),
                        revision_actions.c.state == str(ActionState.QUEUED),
                        revision_actions.c.revision_id < revision_id,
                    )
                    if revision.kind is not RevisionKind.DELETE:
                        earlier = sa.and_(earlier, revision_actions.c.action != "delete")
                    superseded += int(
                        conn.execute(
                            sa.update(revision_actions)
                            .where(earlier)
                            .values(
                                state=str(ActionState.SUPERSEDED),
                                reason=f"superseded by revision {revision_id}",
                                updated_at=now,
                                done_at=now,
                            )
                        ).rowcount
                    )
                values = [
                    {
                        "revision_id": revision_id,
                        "delivery_id": action.delivery_id,
                        "channel": action.channel,
                        "action": str(action.action),
                        "state": str(ActionState.QUEUED if action.queued else ActionState.SKIPPED),
                        "reason": action.reason,
                        "due_at": now,
                        "attempts": 0,
                        "created_at": now,
                        "updated_at": now,
                        "done_at": None if action.queued else now,
                    }
                    for action in plan.actions
                ]
                if values:
                    conn.execute(sa.insert(revision_actions), values)
                queued += sum(1 for a in plan.actions if a.queued)
                skipped += sum(1 for a in plan.actions if not a.queued)
                if plan.skip:
                    stopped += int(
                        conn.execute(
                            sa.update(deliveries)
                            .where(
                                deliveries.c.id.in_(list(plan.skip)),
                                deliveries.c.state == str(DeliveryState.QUEUED),
                            )
                            .values(
                                state=str(DeliveryState.SKIPPED),
                                reason=self.redactor.redact_optional(plan.skip_reason),
                                updated_at=now,
                            )
                        ).rowcount
                    )
        return RevisionReport(len(ids), queued, skipped, superseded, stopped, tuple(ids))

    def _revise_article(
        self, conn: Connection, source: str, revision: Revision, now: datetime
    ) -> bool:
        """The article row brought to the revision; false when a source's revision was
        already recorded (the row has its digest: two pollers, or a push and a poll, saw the
        same change; the row lock makes the second one find that out)."""
        values: dict[str, Any] = {}
        new = revision.article
        if new is not None:
            values |= {
                "url": new.url,
                "title": new.title,
                "summary_html": new.summary_html,
                "author": new.author,
                "categories": json.dumps(list(new.categories), ensure_ascii=False),
                "image": new.image,
            }
            if revision.excerpt is not None:
                values["excerpt"] = revision.excerpt
            # The article's new address is known too: pushed or polled under it, it is this one.
            conn.execute(
                self._insert(seen)
                .values(source=source, digest=seen_digest("url", new.url))
                .on_conflict_do_nothing()
            )
        if revision.digest is not None:
            values["content_digest"] = revision.digest
        if revision.title_override is not None:
            values["title_override"] = revision.title_override
        if revision.kind is RevisionKind.DELETE:
            values["retracted_at"] = sa.func.coalesce(articles.c.retracted_at, now)
        if not values:
            return True
        update = sa.update(articles).where(articles.c.id == revision.article_id)
        if revision.digest is not None:
            update = update.where(articles.c.content_digest.is_distinct_from(revision.digest))
        return bool(conn.execute(update.values(**values)).rowcount)

    def history(self, article_id: int) -> list[RevisionRecord]:
        """Every revision of an article, oldest first, each with what it did to each post."""
        with self._tx() as conn:
            revs = (
                conn.execute(
                    sa.select(revisions)
                    .where(revisions.c.article_id == article_id)
                    .order_by(revisions.c.id)
                )
                .mappings()
                .all()
            )
            acts = (
                conn.execute(
                    sa.select(revision_actions)
                    .join(revisions, revisions.c.id == revision_actions.c.revision_id)
                    .where(revisions.c.article_id == article_id)
                    .order_by(revision_actions.c.id)
                )
                .mappings()
                .all()
            )
        by_revision: dict[int, list[ActionRecord]] = {}
        for act in acts:
            by_revision.setdefault(int(act["revision_id"]), []).append(
                ActionRecord(
                    id=int(act["id"]),
                    delivery_id=int(act["delivery_id"]),
                    channel=act["channel"],
                    action=act["action"],
                    state=act["state"],
                    reason=self.redactor.redact_optional(act["reason"]),
                    text=act["text"],
                    remote_id=act["remote_id"],
                    remote_url=act["remote_url"],
                    attempts=int(act["attempts"]),
                    created_at=act["created_at"],
                    done_at=act["done_at"],
                )
            )
        return [
            RevisionRecord(
                id=int(rev["id"]),
                kind=rev["kind"],
                origin=rev["origin"],
                changes=tuple(json.loads(rev["changes"] or "[]")),
                reason=self.redactor.redact_optional(rev["reason"]),
                title=rev["title"],
                created_at=rev["created_at"],
                actions=tuple(by_revision.get(int(rev["id"]), ())),
            )
            for rev in revs
        ]

    def article_deliveries(self, article_id: int) -> list[Delivery]:
        """Every delivery of one article, by id."""
        query = _delivery_select().where(deliveries.c.article_id == article_id)
        with self._tx() as conn:
            rows = conn.execute(query.order_by(deliveries.c.id)).mappings()
            return [_delivery(row) for row in rows]

    def revision_marks(self, delivery_ids: Collection[int]) -> dict[int, str]:
        """``corrected`` / ``retracted`` for the deliveries whose article was, for ``status``."""
        if not delivery_ids:
            return {}
        corrected = (
            sa.select(revisions.c.id)
            .where(
                revisions.c.article_id == articles.c.id,
                revisions.c.kind == str(RevisionKind.UPDATE),
            )
            .exists()
        )
        query = (
            sa.select(deliveries.c.id, articles.c.retracted_at, corrected.label("corrected"))
            .join(articles, articles.c.id == deliveries.c.article_id)
            .where(deliveries.c.id.in_(sorted(delivery_ids)))
        )
        marks: dict[int, str] = {}
        with self._tx() as conn:
            for row in conn.execute(query):
                if row.retracted_at is not None:
                    marks[int(row.id)] = "retracted"
                elif row.corrected:
                    marks[int(row.id)] = "corrected"
        return marks

    def ingest(
        self,
        source: str,
        items: Sequence[NewArticle],
        routes: Sequence[str],
        *,
        now: datetime,
        polled: Polled | None = None,
    ) -> IngestReport:
        """Record articles not seen before and one delivery per route for each, in one
        transaction. An article already present (same key, or same canonical URL) is left
        alone, so ingesting the same feed twice changes nothing. ``polled``: the poll that
        read them, recorded in the same transaction (one commit a poll, not two)."""
        if polled is None:
            return self._ingest(source, items, routes, now=now)
        with self._tx() as conn:
            report = self._ingest(source, items, routes, now=now, within=conn)
            self._record_poll(conn, source, now=now, state=polled.state, note=polled.note)
        return report

    def _ingest(
        self,
        source: str,
        items: Sequence[NewArticle],
        routes: Sequence[str],
        *,
        now: datetime,
        within: Connection | None = None,
    ) -> IngestReport:
        """:meth:`ingest`, in the transaction ``within`` or in one of its own."""
        report = IngestReport(0, 0, 0)
        if not items:
            return report
        digests = [
            (seen_digest("key", item.article.key), seen_digest("url", item.article.url))
            for item in items
        ]
        with nullcontext(within) if within is not None else self._tx() as conn:
            self._check_identity(conn)
            # Known by key or by URL, even when pruned long ago: never recorded as new again.
            known = self._seen(conn, source, {d for pair in digests for d in pair})
            by_key: dict[str, tuple[NewArticle, str, str]] = {}
            rows = []
            # Rows as tuples in _ARTICLE_COLUMNS' order; SQLite's timestamps as the stored text.
            stamp: Callable[[datetime | None], Any] = (
                (lambda value: value) if self._postgres else _sqlite_timestamp
            )
            seen_at = stamp(now)
            for item, (key_digest, url_digest) in zip(items, digests, strict=True):
                article = item.article
                if key_digest in known or url_digest in known or article.key in by_key:
                    continue
                known.update((key_digest, url_digest))
                by_key[article.key] = (item, key_digest, url_digest)
                rows.append(
                    (
                        source,
                        article.key,
                        article.url,
                        article.title,
                        article.summary_html,
                        item.excerpt,
                        stamp(article.published),
                        article.author,
                        _categories_json(article.categories),
                        article.image,
                        seen_at,
                        item.digest,
                    )
                )
            if not rows:
                return report
            # One multi-row INSERT for the lot; a key another instance recorded meanwhile is
            # left alone (and returns no id). Ids grow in insertion order, so sorting by id
            # keeps the deliveries in publication order.
            returned = self._insert_articles(conn, rows)
            inserted_ids = sorted((int(row[0]), by_key[row[1]][0]) for row in returned)
            new_seen = [digest for row in returned for digest in by_key[row[1]][1:]]
            if new_seen:
                conn.execute(self._statements.seen_insert, {"source": source, "digests": new_seen})
            # One INSERT ... SELECT per decision (usually one or two a poll: queued, or
            # skipped for the backlog), crossing its articles with the routes in SQL: no
            # parameters per delivery to bind, the timestamps bound once. Ids follow the
            # articles' order, then the routes', so a channel's posts leave in that order.
            groups: dict[tuple[str | None, int], list[int]] = {}
            for article_id, item in inserted_ids:
                groups.setdefault((item.skip_reason, item.priority), []).append(article_id)
            queued = skipped = 0
            for (skip_reason, priority), ids in groups.items():
                if not routes:
                    break
                state = DeliveryState.SKIPPED if skip_reason else DeliveryState.QUEUED
                conn.execute(
                    self._statements.deliveries_insert,
                    {
                        "ids": ids,
                        "routes": list(routes),
                        "state": str(state),
                        "reason": self.redactor.redact_optional(skip_reason),
                        "priority": priority,
                        "now": now,
                    },
                )
                if skip_reason:
                    skipped += len(ids) * len(routes)
                else:
                    queued += len(ids) * len(routes)
        return IngestReport(len(inserted_ids), queued, skipped)

    def _insert_articles(self, conn: Connection, rows: list[tuple[Any, ...]]) -> list[Any]:
        """Insert these article rows (tuples in ``_ARTICLE_COLUMNS``' order, timestamps already
        as SQLite stores them there), skipping a (source, key) already there; (id, key) of each
        inserted."""
        if self._postgres:
            # One array per column, not a multi-row VALUES of 11 parameters a row: a statement
            # of thousands of parameters that psycopg re-parses and the server re-plans on
            # every poll.
            columns = dict(zip(_ARTICLE_COLUMNS, map(list, zip(*rows, strict=True)), strict=True))
            return list(conn.execute(self._statements.articles_insert, columns).all())
        # SQLite: straight to the driver. SQLAlchemy's multi-row insert built and bound 12,000
        # parameters for 1,000 articles one by one in Python (a third of an ingest's CPU);
        # here the tuples go as they are, the SQL text is the same statement, kept per size.
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        returned: list[Any] = []
        try:
            for start in range(0, len(rows), _SQLITE_ROWS):
                chunk = rows[start : start + _SQLITE_ROWS]
                statement = _sqlite_articles_insert(len(chunk))
                try:
                    cursor.execute(statement, [value for row in chunk for value in row])
                    returned.extend(cursor.fetchall())
                except self.engine.dialect.loaded_dbapi.Error as exc:
                    # As SQLAlchemy would raise it, so _tx translates it like any other.
                    raise sa.exc.DBAPIError.instance(
                        statement, None, exc, self.engine.dialect.loaded_dbapi.Error
                    ) from exc
        finally:
            cursor.close()
        return returned

    # -- delivery ----------------------------------------------------------------------------

    def claim(
        self, now: datetime, *, holder: str, channel: str, pace: Pace | None, limit: int = 50
    ) -> PacedClaim:
        """What one channel may send now, claimed for ``holder``; or, when nothing may go,
        when to look again (the end of the channel's pause, its pace, or the next due post).
        One transaction either way. An unpaced channel takes up to ``limit`` at once."""
        if pace is not None:
            return self.claim_paced(now, holder=holder, channel=channel, pace=pace)
        with self._tx() as conn:
            paused = conn.execute(
                sa.select(channel_pacing.c.paused_until).where(
                    channel_pacing.c.channel == channel, channel_pacing.c.paused_until > now
                )
            ).scalar()
            if paused is not None:
                return PacedClaim([], paused)
            ids = list(conn.execute(self._due(now, limit, [channel])).scalars())
            if ids:
                return PacedClaim(self._claim_ids(conn, ids, holder, now), None)
            later = conn.execute(
                sa.select(sa.func.min(deliveries.c.due_at)).where(
                    deliveries.c.state == str(DeliveryState.QUEUED),
                    deliveries.c.channel == channel,
                )
            ).scalar()
            return PacedClaim([], _aware(later))

    def claim_due(
        self,
        now: datetime,
        *,
        holder: str,
        limit: int = 20,
        channels: Collection[str] | None = None,
    ) -> list[Delivery]:
        """Move up to ``limit`` due ``queued`` deliveries to ``sending`` for this holder.

        Highest priority first, then in the order they were queued (a retried post keeps its
        place, so a channel's posts stay in publication order). On PostgreSQL, rows locked by
        another instance are skipped, so instances share the queue without waiting.
        """
        query = self._due(now, limit, channels)
        with self._tx() as conn:
            self._check_identity(conn)
            ids = list(conn.execute(query).scalars())
            if not ids:
                return []
            return self._claim_ids(conn, ids, holder, now)

    def _due(self, now: datetime, limit: int, channels: Collection[str] | None) -> Any:
        """The ids of the next due queued deliveries, in claim order, locked on PostgreSQL
        (skipping rows another instance is claiming)."""
        query = (
            sa.select(deliveries.c.id)
            .where(deliveries.c.state == str(DeliveryState.QUEUED), deliveries.c.due_at <= now)
            .order_by(deliveries.c.priority.desc(), deliveries.c.id)
            .limit(limit)
        )
        if channels is not None:
            query = query.where(deliveries.c.channel.in_(list(channels)))
        if self._postgres:
            query = query.with_for_update(skip_locked=True)
        return query

    def _claim_ids(
        self, conn: Connection, ids: list[int], holder: str, now: datetime
    ) -> list[Delivery]:
        conn.execute(_lease(deliveries, ids, holder, now))
        rows = conn.execute(
            _delivery_select().where(deliveries.c.id.in_(ids), deliveries.c.claimed_by == holder)
        ).mappings()
        claimed = [_delivery(row) for row in rows]
        order = {delivery_id: i for i, delivery_id in enumerate(ids)}
        return sorted(claimed, key=lambda d: order[d.id])

    # -- pacing ------------------------------------------------------------------------------
    # A paced channel's row in channel_pacing is locked while a claim for it is made, so the
    # pace holds across every instance sharing this database. ``next_at`` is the earliest
    # moment the next post may be claimed: set far enough ahead at claim time to cover the
    # send, then to completion + spacing once the send is done, so that two posts reach the
    # platform at least ``spacing`` apart whatever the network did in between.

    def claim_paced(self, now: datetime, *, holder: str, channel: str, pace: Pace) -> PacedClaim:
        """Claim what this channel may send now under its pace, or say when to look again."""
        with self._tx() as conn:
            self._check_identity(conn)
            gate = self._gate(conn, channel, pace, now)
            if gate.closed_until is not None:
                return PacedClaim([], gate.closed_until)
            query = self._due(now, gate.allowance, [channel])
            if gate.next_at is not None:
                # Breaking news ignores min_gap (never the rate cap): only it may go now.
                query = query.where(deliveries.c.priority >= pace.priority_bypass)
            ids = list(conn.execute(query).scalars())
            if not ids:
                return PacedClaim([], gate.next_at)
            claimed = self._claim_ids(conn, ids, holder, now)
            self._reserve(conn, channel, pace, len(ids), now)
        return PacedClaim(claimed, None)

    def _gate(self, conn: Connection, channel: str, pace: Pace, now: datetime) -> _Gate:
        """Lock the channel's pacing row (made if missing) and say what it lets through now:
        nothing until a pause ends or a rate window opens, or up to ``allowance`` claims, and
        whether the spacing since the last one has run (``next_at`` set: not yet)."""
        conn.execute(self._insert(channel_pacing).values(channel=channel).on_conflict_do_nothing())
        lock = sa.select(channel_pacing).where(channel_pacing.c.channel == channel)
        if self._postgres:
            lock = lock.with_for_update()
        row = conn.execute(lock).mappings().one()
        if row["paused_until"] is not None and row["paused_until"] > now:
            return _Gate(closed_until=row["paused_until"])
        next_at = (
            None if row["next_at"] is None or row["next_at"] <= now else _aware(row["next_at"])
        )
        allowance = pace.burst
        if pace.windows:
            left = self._window_room(conn, channel, pace.windows, now)
            if left.posts is not None and left.posts <= 0:
                opens = left.opens_at or now
                return _Gate(closed_until=max(opens, now + _TICK))
            if left.posts is not None:
                allowance = min(allowance, left.posts)
        return _Gate(allowance=allowance, next_at=next_at)

    def _reserve(
        self, conn: Connection, channel: str, pace: Pace, claimed: int, now: datetime
    ) -> None:
        """Hold the channel's next slot for the ``claimed`` sends (or actions) now leaving."""
        conn.execute(
            sa.update(channel_pacing)
            .where(channel_pacing.c.channel == channel)
            .values(next_at=now + pace.spacing * claimed + pace.hold)
        )

    def _window_room(
        self, conn: Connection, channel: str, windows: Sequence[Window], now: datetime
    ) -> pacing.Room:
        """The values :func:`bot.pacing.room` weighs: posts in flight, and when the newest
        recent ones started (a send's end for those done, the claim for one released)."""
        window_start = now - max(w.period for w in windows)
        in_flight = 0
        started: list[datetime] = []
        # A revision's action (an edit, a reply) spends the channel's rate like a post.
        for table, done in (
            (deliveries, str(DeliveryState.SENT)),
            (revision_actions, str(ActionState.DONE)),
        ):
            in_flight += conn.execute(
                sa.select(sa.func.count()).where(
                    table.c.channel == channel, table.c.state == str(DeliveryState.SENDING)
                )
            ).scalar_one()
            started_at = sa.case(
                (table.c.state == str(DeliveryState.QUEUED), table.c.claimed_at),
                else_=table.c.updated_at,
            )
            recent = sa.and_(
                table.c.channel == channel,
                sa.or_(
                    sa.and_(
                        table.c.state.in_([done, str(DeliveryState.FAILED)]),
                        table.c.updated_at > window_start,
                        table.c.attempts > 0,
                    ),
                    sa.and_(
                        table.c.state == str(DeliveryState.QUEUED),
                        table.c.claimed_at > window_start,
                    ),
                ),
            )
            rows = conn.execute(
                sa.select(started_at)
                .where(recent)
                .order_by(started_at.desc())
                .limit(pacing.newest_needed(windows))
            ).scalars()
            started.extend(t for t in (_aware(row) for row in rows) if t is not None)
        started.sort(reverse=True)
        return pacing.room(windows, now=now, started=started, in_flight=int(in_flight))

    def skip_queued(self, ids: Collection[int], *, reason: str, now: datetime) -> int:
        """Queued deliveries that can no longer go out in time are skipped, saying why."""
        if not ids:
            return 0
        with self._tx() as conn:
            result = conn.execute(
                sa.update(deliveries)
                .where(
                    deliveries.c.id.in_(list(ids)),
                    deliveries.c.state == str(DeliveryState.QUEUED),
                )
                .values(
                    state=str(DeliveryState.SKIPPED),
                    reason=self.redactor.redact(reason),
                    updated_at=now,
                )
            )
        return int(result.rowcount)

    def spend(self, channel: str, *, since: datetime) -> tuple[int, float]:
        """Posts sent on a channel since a moment, and what they cost."""
        query = sa.select(
            sa.func.count(), sa.func.coalesce(sa.func.sum(deliveries.c.cost), 0)
        ).where(
            deliveries.c.channel == channel,
            deliveries.c.state == str(DeliveryState.SENT),
            deliveries.c.sent_at >= since,
        )
        with self._tx() as conn:
            count, total = conn.execute(query).one()
        return int(count), float(total)

    def next_due(self, channels: Collection[str] | None = None) -> datetime | None:
        """When the earliest queued delivery falls due (``None`` when the queue is empty)."""
        query = sa.select(sa.func.min(deliveries.c.due_at)).where(
            deliveries.c.state == str(DeliveryState.QUEUED)
        )
        if channels is not None:
            query = query.where(deliveries.c.channel.in_(list(channels)))
        with self._tx() as conn:
            value = conn.execute(query).scalar()
        return _aware(value)

    def mark_in_flight(self, delivery_id: int, *, now: datetime, holder: str) -> Mark:
        """The request for this claimed delivery is about to be written: from now on its fate
        may be unknown if the holder dies. Refused (a false :class:`Mark`) when the holder no
        longer has the claim (recovery gave it away while this instance was stalled), or when
        the article was retracted since it was claimed, checked in the same statement: then
        it must not be sent."""
        with self._tx() as conn:
            return self._mark_in_flight(conn, delivery_id, now=now, holder=holder)

    def _mark_in_flight(
        self,
        conn: Connection,
        row_id: int,
        *,
        now: datetime,
        holder: str,
        table: sa.Table = deliveries,
    ) -> Mark:
        if table is deliveries:
            params = {"b_id": row_id, "b_holder": holder, "b_now": now}
            if conn.execute(_MARK_IN_FLIGHT, params).rowcount:
                return Mark.MARKED
            held = conn.execute(_HELD_RETRACTED, {"b_id": row_id, "b_holder": holder}).first()
            return Mark.RETRACTED if held is not None else Mark.LOST
        holding = _held(table, row_id, holder)
        result = conn.execute(
            sa.update(table).where(holding, ~_CORRECTS_RETRACTED).values(in_flight_at=now)
        )
        if result.rowcount:
            return Mark.MARKED
        still_held = conn.execute(sa.select(table.c.id).where(holding)).first()
        return Mark.RETRACTED if still_held is not None else Mark.LOST

    def finish(
        self,
        delivery_id: int,
        outcome: Outcome,
        *,
        now: datetime,
        holder: str | None = None,
        spacing: timedelta | None = None,
        then_in_flight: int | None = None,
    ) -> Finished:
        """Apply a judged outcome to a claimed delivery, in one transaction: its new state
        and what goes with it, the channel's pause when the outcome asks for one, and on a
        paced channel the moment the next post may go (``spacing`` after this one).

        With ``holder``, only that holder's claim is touched: an instance that stalled and lost
        its claim to recovery cannot overwrite what followed (and then pauses nothing).

        ``then_in_flight``: the holder's next claimed delivery on this channel, marked in
        flight in the same transaction (see :meth:`mark_in_flight`) unless the outcome pauses
        the channel — one round trip per delivery on the way to the platform."""
        params: dict[str, Any] = {
            "b_id": delivery_id,
            "b_holder": holder,
            "b_now": now,
            "b_state": str(outcome.state),
            "b_reason": self.redactor.redact_optional(outcome.reason),
            "b_text": outcome.text,
        }
        if outcome.state is DeliveryState.SENT:
            receipt = outcome.receipt or Receipt(remote_id="")
            params |= {"b_remote_id": receipt.remote_id, "b_remote_url": receipt.url}
            params["b_cost"] = outcome.cost
        elif outcome.state is DeliveryState.QUEUED:
            params["b_due_at"] = outcome.due_at or now
        query = _finish_update(_finish_kind(outcome.state), by_holder=holder is not None)
        with self._tx() as conn:
            result = conn.execute(query, params)
            if not result.rowcount:
                return Finished(False)
            marked = False
            if then_in_flight is not None and holder is not None and outcome.pause_until is None:
                marked = bool(self._mark_in_flight(conn, then_in_flight, now=now, holder=holder))
            if outcome.pause_until is not None or spacing is not None:
                # The channel as a subquery: no round trip on the way to the platform.
                self._hold_channel(
                    conn,
                    sa.select(deliveries.c.channel)
                    .where(deliveries.c.id == delivery_id)
                    .scalar_subquery(),
                    pause_until=outcome.pause_until,
                    pause_reason=outcome.pause_reason,
                    next_at=now + spacing if spacing is not None else None,
                )
        return Finished(True, marked)

    def _hold_channel(
        self,
        conn: Connection,
        channel: str | sa.ScalarSelect[str],
        *,
        pause_until: datetime | None,
        pause_reason: str | None,
        next_at: datetime | None,
    ) -> None:
        """A channel's pause (an outcome asked for one) and, on a paced channel, when its next
        post or action may go; its pacing row is made when it has none."""
        changes: dict[str, Any] = {}
        if pause_until is not None:
            changes |= {"paused_until": pause_until, "paused_reason": pause_reason}
        if next_at is not None:
            changes["next_at"] = next_at
        if not changes:
            return
        conn.execute(self._insert(channel_pacing).values(channel=channel).on_conflict_do_nothing())
        conn.execute(
            sa.update(channel_pacing).where(channel_pacing.c.channel == channel).values(**changes)
        )

    # The mark_* calls are finish() for one fixed outcome each, for callers that have no
    # judged Outcome in hand (the CLI's tools, tests of the ledger alone).

    # -- a delivery's in-flight note -----------------------------------------------------------
    # While a delivery is being sent, its ``remote_id`` may hold what the channel already made on
    # the platform (a Threads container id), written before the step that publishes; it stays
    # through ``uncertain``, ``failed`` and ``retry``, and a receipt's id replaces it once sent.

    def note_in_flight(self, channel: str, source: str, article_key: str, note: str) -> bool:
        """Record ``note`` on the delivery being sent; False when no such delivery is sending."""
        article = sa.select(articles.c.id).where(
            articles.c.source == source, articles.c.key == article_key
        )
        with self._tx() as conn:
            result = conn.execute(
                sa.update(deliveries)
                .where(
                    deliveries.c.channel == channel,
                    deliveries.c.article_id == article.scalar_subquery(),
                    deliveries.c.state == str(DeliveryState.SENDING),
                )
                .values(remote_id=note)
            )
        return bool(result.rowcount)

    def in_flight_note(self, channel: str, source: str, article_key: str) -> str | None:
        """The note an earlier attempt left on this delivery (None once it is sent)."""
        query = (
            sa.select(deliveries.c.remote_id, deliveries.c.state)
            .join(articles, articles.c.id == deliveries.c.article_id)
            .where(
                deliveries.c.channel == channel,
                articles.c.source == source,
                articles.c.key == article_key,
            )
        )
        with self._tx() as conn:
            row = conn.execute(query).first()
        if row is None or row.state == str(DeliveryState.SENT):
            return None
        return str(row.remote_id) if row.remote_id else None

    def mark_sent(
        self,
        delivery_id: int,
        *,
        text: str,
        receipt: Receipt,
        now: datetime,
        cost: float | None = None,
        holder: str | None = None,
    ) -> bool:
        outcome = Outcome(
            DeliveryState.SENT,
            reason="; ".join(receipt.notes) or None,
            text=text,
            receipt=receipt,
            cost=cost,
        )
        return bool(self.finish(delivery_id, outcome, now=now, holder=holder))

    def mark_failed(
        self,
        delivery_id: int,
        *,
        reason: str,
        now: datetime,
        text: str | None = None,
        holder: str | None = None,
    ) -> bool:
        outcome = Outcome(DeliveryState.FAILED, reason=reason, text=text)
        return bool(self.finish(delivery_id, outcome, now=now, holder=holder))

    def mark_uncertain(
        self,
        delivery_id: int,
        *,
        reason: str,
        now: datetime,
        text: str | None = None,
        holder: str | None = None,
    ) -> bool:
        """Sent, but the answer never came: a person decides (``newsbot retry --uncertain``)."""
        outcome = Outcome(DeliveryState.UNCERTAIN, reason=reason, text=text)
        return bool(self.finish(delivery_id, outcome, now=now, holder=holder))

    def requeue(
        self,
        delivery_id: int,
        *,
        due_at: datetime,
        reason: str,
        now: datetime,
        holder: str | None = None,
    ) -> bool:
        """A transient failure: back to ``queued``, not due before ``due_at``."""
        outcome = Outcome(DeliveryState.QUEUED, reason=reason, due_at=due_at)
        return bool(self.finish(delivery_id, outcome, now=now, holder=holder))

    def release(self, delivery_id: int, *, now: datetime, holder: str | None = None) -> bool:
        """Give back a claim that was never sent (e.g. on shutdown): ``queued`` again, and the
        attempt it counted does not count."""
        query = sa.update(deliveries).where(
            deliveries.c.id == delivery_id,
            deliveries.c.state == str(DeliveryState.SENDING),
        )
        if holder is not None:
            query = query.where(deliveries.c.claimed_by == holder)
        with self._tx() as conn:
            result = conn.execute(
                query.values(
                    state=str(DeliveryState.QUEUED),
                    updated_at=now,
                    claimed_by=None,
                    in_flight_at=None,
                    attempts=self._one_less(),
                )
            )
        return bool(result.rowcount)

    def _one_less(self, table: sa.Table = deliveries) -> Any:
        greatest = sa.func.greatest if self._postgres else sa.func.max
        return greatest(table.c.attempts - 1, 0)

    def in_flight_holders(self) -> list[str]:
        """Who holds deliveries or revision actions in ``sending`` right now."""
        query = sa.union(
            *(
                sa.select(table.c.claimed_by).where(table.c.state == str(DeliveryState.SENDING))
                for table in (deliveries, revision_actions)
            )
        )
        with self._tx() as conn:
            return sorted({holder for holder in conn.execute(query).scalars() if holder})

    def deliveries(
        self,
        *,
        states: Collection[str] | None = None,
        source: str | None = None,
        channel: str | None = None,
        limit: int = 50,
    ) -> list[Delivery]:
        """The delivery log, newest first."""
        query = _delivery_select().order_by(deliveries.c.id.desc()).limit(limit)
        if states:
            query = query.where(deliveries.c.state.in_(list(states)))
        if source:
            query = query.where(articles.c.source == source)
        if channel:
            query = query.where(deliveries.c.channel == channel)
        with self._tx() as conn:
            rows = [_delivery(row) for row in conn.execute(query).mappings()]
        # Rows written before reasons were masked on the way in are masked on the way out.
        return [
            dataclasses.replace(d, reason=self.redactor.redact(d.reason)) if d.reason else d
            for d in rows
        ]

    def ping(self) -> None:
        """Raise LedgerError unless the database answers."""
        with self._tx() as conn:
            conn.execute(sa.select(1))

    def queue_depth(self) -> dict[str, int]:
        """Queued deliveries per channel."""
        query = (
            sa.select(deliveries.c.channel, sa.func.count())
            .where(deliveries.c.state == str(DeliveryState.QUEUED))
            .group_by(deliveries.c.channel)
        )
        with self._tx() as conn:
            return {channel: int(n) for channel, n in conn.execute(query)}

    def prune(self, *, before: datetime) -> int:
        """Forget finished deliveries (sent, failed, skipped) last changed before a moment, and
        articles left with no delivery. The ``seen`` digest of each article's key and URL
        stays: an article still in its feed (or pushed again) is known and never posted twice,
        whatever ``retention``, ``max_age`` or how long a feed keeps its items."""
        finished = [str(DeliveryState.SENT), str(DeliveryState.FAILED), str(DeliveryState.SKIPPED)]
        with self._tx() as conn:
            result = conn.execute(
                sa.delete(deliveries).where(
                    deliveries.c.state.in_(finished), deliveries.c.updated_at < before
                )
            )
            conn.execute(
                sa.delete(articles).where(
                    articles.c.seen_at < before,
                    ~sa.exists().where(deliveries.c.article_id == articles.c.id),
                )
            )
        return int(result.rowcount)

    def counts(self) -> dict[str, int]:
        """How many deliveries are in each state."""
        return self._state_counts(deliveries)

    def _state_counts(self, table: sa.Table) -> dict[str, int]:
        query = sa.select(table.c.state, sa.func.count()).group_by(table.c.state)
        with self._tx() as conn:
            return {state: int(n) for state, n in conn.execute(query)}

    def retry(
        self,
        *,
        states: Collection[str],
        now: datetime,
        ids: Collection[int] | None = None,
        channel: str | None = None,
    ) -> int:
        """Put failed or uncertain deliveries back in the queue, due now, attempts reset."""
        return self._requeue(
            deliveries, deliveries.c.id, states=states, now=now, ids=ids, channel=channel
        )

    def _requeue(
        self,
        table: sa.Table,
        by: sa.Column[Any],
        *,
        states: Collection[str],
        now: datetime,
        ids: Collection[int] | None,
        channel: str | None,
        **also: Any,
    ) -> int:
        # Delivery and action states share their names: queued, failed, uncertain.
        allowed = {str(DeliveryState.FAILED), str(DeliveryState.UNCERTAIN)}
        chosen = [s for s in states if s in allowed]
        if not chosen:
            return 0
        query = sa.update(table).where(table.c.state.in_(chosen))
        if ids:
            query = query.where(by.in_(list(ids)))
        if channel:
            query = query.where(table.c.channel == channel)
        with self._tx() as conn:
            result = conn.execute(
                query.values(
                    state=str(DeliveryState.QUEUED),
                    due_at=now,
                    attempts=0,
                    updated_at=now,
                    reason=None,
                    **also,
                )
            )
        return int(result.rowcount)

    # == revisions out: a published post's edit, reply, delete or repost =======================
    # A revision action is leased, marked in flight and finished like a delivery, by the same
    # holder, in the same states (``done`` for sent). One post has at most one action leased
    # at a time, the oldest first, so two corrections of one article reach it in order and a
    # repost's new id is known before the next edit. Only actions whose delivery is ``sent``
    # with the platform's id are claimed; one whose delivery ended otherwise is skipped.

    def claim_actions(
        self,
        now: datetime,
        *,
        holder: str,
        channel: str,
        pace: Pace | None,
        limit: int = 50,
        kinds: Collection[Action] | None = None,
    ) -> ActionClaim:
        """What revision actions this channel may apply now, claimed for ``holder``; or when to
        look again (the end of the channel's pause, its pace, the next due action). A paced
        channel's actions spend its pace like posts; ``kinds`` limits the claim to those
        actions (quiet hours let only silent ones through). One transaction."""
        with self._tx() as conn:
            self._check_identity(conn)
            self._skip_unpublished(conn, channel, now)
            allowance = limit
            if pace is not None:
                gate = self._gate(conn, channel, pace, now)
                if gate.closed_until is not None or gate.next_at is not None:
                    return ActionClaim([], gate.closed_until or gate.next_at)
                allowance = gate.allowance
            else:
                paused = conn.execute(
                    sa.select(channel_pacing.c.paused_until).where(
                        channel_pacing.c.channel == channel, channel_pacing.c.paused_until > now
                    )
                ).scalar()
                if paused is not None:
                    return ActionClaim([], paused)
            eligible = self._claimable_actions(channel, kinds)
            query = (
                sa.select(revision_actions.c.id)
                .where(eligible, revision_actions.c.due_at <= now)
                .order_by(revision_actions.c.id)
                .limit(allowance)
            )
            if self._postgres:
                query = query.with_for_update(of=revision_actions, skip_locked=True)
            ids = list(conn.execute(query).scalars())
            if not ids:
                later = conn.execute(
                    sa.select(sa.func.min(revision_actions.c.due_at)).where(eligible)
                ).scalar()
                return ActionClaim([], _aware(later))
            conn.execute(_lease(revision_actions, ids, holder, now))
            rows = conn.execute(
                _action_select().where(
                    revision_actions.c.id.in_(ids), revision_actions.c.claimed_by == holder
                )
            ).mappings()
            claimed = sorted((_claimed_action(row) for row in rows), key=lambda a: a.id)
            if pace is not None and claimed:
                self._reserve(conn, channel, pace, len(claimed), now)
        return ActionClaim(claimed, None)

    @staticmethod
    def _claimable_actions(channel: str, kinds: Collection[Action] | None) -> Any:
        """Queued actions of ``channel`` on a post that is published with the platform's id,
        each the oldest unfinished one of its post, none of whose post is being acted on."""
        other = revision_actions.alias("other_action")
        published = sa.select(deliveries.c.id).where(
            deliveries.c.id == revision_actions.c.delivery_id,
            deliveries.c.state == str(DeliveryState.SENT),
            deliveries.c.remote_id.is_not(None),
            deliveries.c.remote_id != "",
        )
        ahead = sa.select(other.c.id).where(
            other.c.delivery_id == revision_actions.c.delivery_id,
            sa.or_(
                other.c.state == str(ActionState.SENDING),
                sa.and_(
                    other.c.state == str(ActionState.QUEUED),
                    other.c.id < revision_actions.c.id,
                ),
            ),
        )
        clause = sa.and_(
            revision_actions.c.state == str(ActionState.QUEUED),
            revision_actions.c.channel == channel,
            published.exists(),
            ~ahead.exists(),
        )
        if kinds is not None:
            clause = sa.and_(clause, revision_actions.c.action.in_([str(k) for k in kinds]))
        return clause

    def _skip_unpublished(self, conn: Connection, channel: str, now: datetime) -> None:
        """Queued actions on a post that never made it (its delivery failed or was skipped,
        or was sent without the platform's id) can never be applied: skipped, saying why."""
        ended = {
            str(DeliveryState.FAILED): "the post was never published (its delivery failed)",
            str(DeliveryState.SKIPPED): "the post was never published (its delivery was skipped)",
        }
        for state, reason in ended.items():
            self._skip_actions_on(conn, channel, now, reason, deliveries.c.state == state)
        self._skip_actions_on(
            conn,
            channel,
            now,
            "the platform gave no id for this post when it was sent, so newsbot cannot change "
            "it: edit or delete it by hand",
            sa.and_(
                deliveries.c.state == str(DeliveryState.SENT),
                sa.or_(deliveries.c.remote_id.is_(None), deliveries.c.remote_id == ""),
            ),
        )

    def _skip_actions_on(
        self, conn: Connection, channel: str, now: datetime, reason: str, where: Any
    ) -> None:
        conn.execute(
            sa.update(revision_actions)
            .where(
                revision_actions.c.channel == channel,
                revision_actions.c.state == str(ActionState.QUEUED),
                revision_actions.c.delivery_id.in_(sa.select(deliveries.c.id).where(where)),
            )
            .values(state=str(ActionState.SKIPPED), reason=reason, updated_at=now, done_at=now)
        )

    def mark_action_in_flight(self, action_id: int, *, now: datetime, holder: str) -> Mark:
        """The request for this claimed action is about to be written (see
        :meth:`mark_in_flight`). Refused when ``holder`` lost the claim, and for a correction
        (not a delete) of an article retracted since the claim, checked in the same statement:
        either way it must not go."""
        with self._tx() as conn:
            return self._mark_in_flight(
                conn, action_id, now=now, holder=holder, table=revision_actions
            )

    def finish_action(
        self,
        action_id: int,
        outcome: ActionOutcome,
        *,
        now: datetime,
        holder: str,
        spacing: timedelta | None = None,
        then_in_flight: int | None = None,
    ) -> Finished:
        """Apply a judged outcome to a claimed action, in one transaction: the action's row;
        the post as the platform now holds it (an edit's text; a repost's id, address, text
        and time); the channel's pause; on a paced channel when its next post may go. Only
        the claim's holder can finish it (false, nothing changed, when it lost the claim).
        ``then_in_flight``: the holder's next claimed action, marked in flight in the same
        transaction unless the outcome pauses the channel (as :meth:`finish` does)."""
        values: dict[str, Any] = {
            "state": str(outcome.state),
            "reason": self.redactor.redact_optional(outcome.reason),
            "updated_at": now,
            "claimed_by": None,
        }
        if outcome.state is ActionState.QUEUED:
            values["due_at"] = outcome.due_at or now
        else:
            values["done_at"] = now if outcome.state is not ActionState.UNCERTAIN else None
            if outcome.text is not None:
                values["text"] = outcome.text
        if outcome.receipt is not None:
            values |= {"remote_id": outcome.receipt.remote_id, "remote_url": outcome.receipt.url}
        with self._tx() as conn:
            row = conn.execute(
                sa.update(revision_actions)
                .where(_held(revision_actions, action_id, holder))
                .values(**values)
                .returning(
                    revision_actions.c.delivery_id,
                    revision_actions.c.channel,
                    revision_actions.c.action,
                )
            ).first()
            if row is None:
                return Finished(False)
            marked = False
            if then_in_flight is not None and outcome.pause_until is None:
                marked = bool(
                    self._mark_in_flight(
                        conn, then_in_flight, now=now, holder=holder, table=revision_actions
                    )
                )
            post: dict[str, Any] = {}
            if outcome.state is ActionState.DONE and outcome.text is not None:
                if row.action == str(Action.EDIT):
                    post = {"text": outcome.text}
                    if outcome.receipt is not None and outcome.receipt.remote_id:
                        # An edit on X is a new post id, and only the latest version may be
                        # edited (or replied to) again: the next action must name it. The
                        # sent time stays the original's, which X's edit window counts from.
                        post["remote_id"] = outcome.receipt.remote_id
                        if outcome.receipt.url:
                            post["remote_url"] = outcome.receipt.url
                elif row.action == str(Action.DELETE_AND_REPOST) and outcome.receipt is not None:
                    post = {
                        "text": outcome.text,
                        "remote_id": outcome.receipt.remote_id,
                        "remote_url": outcome.receipt.url,
                        "sent_at": now,
                    }
            if post:
                conn.execute(
                    sa.update(deliveries)
                    .where(deliveries.c.id == row.delivery_id)
                    .values(updated_at=now, **post)
                )
            self._hold_channel(
                conn,
                row.channel,
                pause_until=outcome.pause_until,
                pause_reason=outcome.pause_reason,
                next_at=now + spacing if spacing is not None else None,
            )
        return Finished(True, marked)

    def release_action(self, action_id: int, *, now: datetime, holder: str) -> bool:
        """Give back a claimed action never applied (a stop, a pause): ``queued`` again, and
        the attempt it counted does not count."""
        with self._tx() as conn:
            result = conn.execute(
                sa.update(revision_actions)
                .where(_held(revision_actions, action_id, holder))
                .values(
                    state=str(ActionState.QUEUED),
                    updated_at=now,
                    claimed_by=None,
                    in_flight_at=None,
                    attempts=self._one_less(revision_actions),
                )
            )
        return bool(result.rowcount)

    def action_counts(self) -> dict[str, int]:
        """How many revision actions are in each state (``status`` shows the uncertain)."""
        return self._state_counts(revision_actions)

    def retry_actions(
        self,
        *,
        states: Collection[str],
        now: datetime,
        delivery_ids: Collection[int] | None = None,
        channel: str | None = None,
    ) -> int:
        """Put failed or uncertain revision actions back in the queue, due now, attempts
        reset (``newsbot retry``; ``delivery_ids`` picks the posts they act on)."""
        return self._requeue(
            revision_actions,
            revision_actions.c.delivery_id,
            states=states,
            now=now,
            ids=delivery_ids,
            channel=channel,
            done_at=None,
        )

    # == several instances: heartbeats, source leases, crash recovery =========================
    # Every running newsbot is a holder ("host:pid"). It heartbeats in ``instances``; one not
    # seen for ``timeout`` is dead, and the posts it had in flight become ``uncertain`` (or
    # ``queued`` again on channels with ``resend_uncertain``), since they may or may not have
    # reached the platform. A source is polled by the holder of its row in ``source_leases``.
    # These rows share the work out; the unique constraints on articles and deliveries stay
    # the final guard against a double post. Times come from the callers' clocks: hosts
    # sharing a database must agree on the time to well within ``timeout`` (NTP).

    def heartbeat(self, holder: str, now: datetime, *, starting: bool = False) -> None:
        """``holder`` is alive at ``now``. ``starting``: a new process (``started_at`` too)."""
        host, pid = _holder_parts(holder)
        insert = self._insert(instances).values(
            holder=holder, host=host, pid=pid, started_at=now, last_seen=now
        )
        changes: dict[str, Any] = {"last_seen": insert.excluded.last_seen}
        if starting:
            changes |= {
                "started_at": insert.excluded.started_at,
                "host": insert.excluded.host,
                "pid": insert.excluded.pid,
            }
        with self._tx() as conn:
            self._check_identity(conn)
            conn.execute(
                insert.on_conflict_do_update(index_elements=[instances.c.holder], set_=changes)
            )
        # The heartbeat is the ledger's write probe: it went through, so the disk takes writes.
        self.write_error = None

    def instances(self) -> list[InstanceRecord]:
        """The instances that have a heartbeat row, most recently seen first."""
        query = sa.select(instances).order_by(instances.c.last_seen.desc(), instances.c.holder)
        with self._tx() as conn:
            return [
                InstanceRecord(
                    holder=row["holder"],
                    host=row["host"],
                    pid=row["pid"],
                    started_at=row["started_at"],
                    last_seen=row["last_seen"],
                )
                for row in conn.execute(query).mappings()
            ]

    def leave(self, holder: str) -> None:
        """A clean stop: forget the holder's heartbeat and give its source leases up."""
        with self._tx() as conn:
            conn.execute(sa.delete(source_leases).where(source_leases.c.holder == holder))
            conn.execute(sa.delete(instances).where(instances.c.holder == holder))

    def dead_holders(self, now: datetime, timeout: timedelta) -> list[str]:
        """Holders not seen for ``timeout``: a heartbeat older than that, or no heartbeat row
        at all and only claims older than that."""
        with self._tx() as conn:
            return sorted(self._dead(conn, now - timeout))

    def _dead(self, conn: Connection, cutoff: datetime) -> dict[str, datetime | None]:
        """Dead holders and when they were last seen (``None``: never heartbeated)."""
        stale = conn.execute(
            sa.select(instances.c.holder, instances.c.last_seen).where(
                instances.c.last_seen < cutoff
            )
        ).all()
        found: dict[str, datetime | None] = {str(h): _aware(seen) for h, seen in stale}
        for table in (deliveries, revision_actions):
            orphans = conn.execute(
                sa.select(table.c.claimed_by)
                .where(
                    table.c.state == str(DeliveryState.SENDING),
                    table.c.claimed_by.is_not(None),
                    ~sa.exists().where(instances.c.holder == table.c.claimed_by),
                )
                .group_by(table.c.claimed_by)
                .having(sa.func.max(table.c.claimed_at) < cutoff)
            ).scalars()
            for holder in orphans:
                found.setdefault(holder, None)
        return found

    def try_lease(self, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the lease on source ``name`` until ``now + ttl``. True when
        ``holder`` has it: it was free, expired, or already its own. One atomic upsert, so
        two instances asking at once cannot both win."""
        insert = self._insert(source_leases).values(
            source=name, holder=holder, acquired_at=now, expires_at=now + ttl
        )
        upsert = insert.on_conflict_do_update(
            index_elements=[source_leases.c.source],
            set_={
                "holder": insert.excluded.holder,
                "expires_at": insert.excluded.expires_at,
                "acquired_at": sa.case(
                    (source_leases.c.holder == insert.excluded.holder, source_leases.c.acquired_at),
                    else_=insert.excluded.acquired_at,
                ),
            },
            where=sa.or_(source_leases.c.holder == holder, source_leases.c.expires_at <= now),
        ).returning(source_leases.c.holder)
        with self._tx() as conn:
            return conn.execute(upsert).first() is not None

    def release_lease(self, name: str, holder: str) -> bool:
        """Give the lease on source ``name`` up, if ``holder`` has it."""
        with self._tx() as conn:
            result = conn.execute(
                sa.delete(source_leases).where(
                    source_leases.c.source == name, source_leases.c.holder == holder
                )
            )
        return bool(result.rowcount)

    def lease_holder(self, name: str, now: datetime) -> str | None:
        """Who holds an unexpired lease on source ``name``."""
        with self._tx() as conn:
            return conn.execute(
                sa.select(source_leases.c.holder).where(
                    source_leases.c.source == name, source_leases.c.expires_at > now
                )
            ).scalar()

    def recover_dead(
        self,
        now: datetime,
        timeout: timedelta,
        resend_channels: Collection[str] = (),
        *,
        also: Collection[str] = (),
    ) -> RecoveryReport:
        """Deliveries in flight (``sending``, request marked about to be written) whose holder
        is dead become ``uncertain``, with a reason naming the holder; on ``resend_channels``
        (``resend_uncertain: true``) they are ``queued`` again instead. Those it had claimed
        but not yet sent go back to the queue as they were. The dead holders' leases and
        heartbeat rows go.

        Dead: see :meth:`dead_holders`; ``also`` adds holders known dead otherwise (a process
        of this host that is gone). Only claims made before the heartbeat went stale are
        touched for a holder dead by its heartbeat, so an instance that was merely stalled
        and is back keeps what it claimed since. A paced channel that a dead send was holding
        (``channel_pacing.next_at``) is opened again at once.
        """
        cutoff = now - timeout
        resend = list(resend_channels)
        with self._tx() as conn:
            dead = self._dead(conn, cutoff)
            known_gone = [holder for holder in also if holder not in dead]
            if known_gone:
                seen = conn.execute(
                    sa.select(instances.c.holder, instances.c.last_seen).where(
                        instances.c.holder.in_(known_gone)
                    )
                ).all()
                last = {str(h): _aware(when) for h, when in seen}
                for holder in known_gone:
                    dead[holder] = last.get(holder)
            if not dead:
                return RecoveryReport()
            uncertain = requeued = returned = actions_uncertain = actions_returned = 0
            channels: set[str] = set()
            for holder, last_seen in sorted(dead.items()):
                gone = holder in also
                why = (
                    "its process is gone"
                    if gone
                    else f"no heartbeat since {last_seen:%Y-%m-%d %H:%M:%S} UTC"
                    if last_seen is not None
                    else f"no heartbeat, no claim since {cutoff:%Y-%m-%d %H:%M:%S} UTC"
                )
                rows = sa.and_(
                    deliveries.c.state == str(DeliveryState.SENDING),
                    deliveries.c.claimed_by == holder,
                )
                if not gone:
                    rows = sa.and_(rows, deliveries.c.claimed_at < cutoff)
                # Claimed but never sent: back to the queue as if never claimed.
                released = conn.execute(
                    sa.update(deliveries)
                    .where(rows, deliveries.c.in_flight_at.is_(None))
                    .values(
                        state=str(DeliveryState.QUEUED),
                        updated_at=now,
                        claimed_by=None,
                        attempts=self._one_less(),
                    )
                    .returning(deliveries.c.channel)
                ).scalars()
                for channel in released:
                    returned += 1
                    channels.add(channel)
                rows = sa.and_(rows, deliveries.c.in_flight_at.is_not(None))
                if resend:
                    moved = conn.execute(
                        sa.update(deliveries)
                        .where(rows, deliveries.c.channel.in_(resend))
                        .values(
                            state=str(DeliveryState.QUEUED),
                            due_at=now,
                            updated_at=now,
                            claimed_by=None,
                            reason=f"queued again after newsbot instance {holder} stopped "
                            f"({why}) while sending it; resend_uncertain is on for this "
                            "channel, so it may appear there twice",
                        )
                        .returning(deliveries.c.channel)
                    ).scalars()
                    for channel in moved:
                        requeued += 1
                        channels.add(channel)
                marked = conn.execute(
                    sa.update(deliveries)
                    .where(rows)
                    .values(
                        state=str(DeliveryState.UNCERTAIN),
                        updated_at=now,
                        reason=f"newsbot instance {holder} stopped ({why}) while this post "
                        "was being sent: it may or may not have been posted. Check the "
                        "channel, then `newsbot retry --uncertain` to send it again",
                    )
                    .returning(deliveries.c.channel)
                ).scalars()
                for channel in marked:
                    uncertain += 1
                    channels.add(channel)
                acted = self._recover_actions(conn, holder, why, gone=gone, cutoff=cutoff, now=now)
                actions_uncertain += acted[0]
                actions_returned += acted[1]
                channels.update(acted[2])
            holders = sorted(dead)
            if channels:
                conn.execute(
                    sa.update(channel_pacing)
                    .where(
                        channel_pacing.c.channel.in_(sorted(channels)),
                        channel_pacing.c.next_at > now,
                    )
                    .values(next_at=now)
                )
            leases = conn.execute(
                sa.delete(source_leases).where(source_leases.c.holder.in_(holders))
            ).rowcount
            conn.execute(
                sa.delete(instances).where(
                    instances.c.holder.in_(holders),
                    sa.or_(instances.c.holder.in_(list(also)), instances.c.last_seen < cutoff),
                )
            )
        return RecoveryReport(
            tuple(holders),
            uncertain,
            requeued,
            int(leases),
            returned,
            actions_uncertain=actions_uncertain,
            actions_returned=actions_returned,
        )

    def _recover_actions(
        self,
        conn: Connection,
        holder: str,
        why: str,
        *,
        gone: bool,
        cutoff: datetime,
        now: datetime,
    ) -> tuple[int, int, set[str]]:
        """A dead holder's revision actions: claimed but never in flight back to the queue;
        in flight ``uncertain``, except a delete, which is safe to make again (a post already
        gone answers ``PostGone``, counted done). How many were marked uncertain, how many
        went back, and their channels."""
        rows = sa.and_(
            revision_actions.c.state == str(ActionState.SENDING),
            revision_actions.c.claimed_by == holder,
        )
        if not gone:
            rows = sa.and_(rows, revision_actions.c.claimed_at < cutoff)
        channels: set[str] = set()
        back = sa.or_(
            revision_actions.c.in_flight_at.is_(None),
            revision_actions.c.action == str(Action.DELETE),
        )
        returned = list(
            conn.execute(
                sa.update(revision_actions)
                .where(rows, back)
                .values(
                    state=str(ActionState.QUEUED),
                    due_at=now,
                    updated_at=now,
                    claimed_by=None,
                    in_flight_at=None,
                    attempts=self._one_less(revision_actions),
                )
                .returning(revision_actions.c.channel)
            ).scalars()
        )
        uncertain = list(
            conn.execute(
                sa.update(revision_actions)
                .where(rows, revision_actions.c.in_flight_at.is_not(None))
                .values(
                    state=str(ActionState.UNCERTAIN),
                    updated_at=now,
                    reason=f"newsbot instance {holder} stopped ({why}) while this change was "
                    "being made to the post: it may or may not have been applied. Check the "
                    "post, then `newsbot retry --uncertain` to apply it again",
                )
                .returning(revision_actions.c.channel)
            ).scalars()
        )
        channels.update(returned, uncertain)
        return len(uncertain), len(returned), channels


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """One running (or lately running) newsbot, as its heartbeat row has it."""

    holder: str
    host: str
    pid: int | None
    started_at: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What :meth:`Ledger.recover_dead` did."""

    holders: tuple[str, ...] = ()
    uncertain: int = 0
    requeued: int = 0
    leases_released: int = 0
    #: Claimed but never in flight: back in the queue, nothing to decide.
    returned: int = 0
    #: Revision actions (edits, replies, reposts) in flight: now ``uncertain``.
    actions_uncertain: int = 0
    #: Revision actions back in the queue (never in flight, or a delete: safe to resend).
    actions_returned: int = 0

    @property
    def moved(self) -> int:
        return self.uncertain + self.requeued


def _holder_parts(holder: str) -> tuple[str, int | None]:
    """``"host:pid"`` → (host, pid); any other form is all host."""
    host, _, pid = holder.rpartition(":")
    if host and pid.isdigit():
        return host, int(pid)
    return holder, None


def _article_columns() -> tuple[Any, ...]:
    return (
        articles.c.source,
        articles.c.key.label("article_key"),
        articles.c.url,
        # An editor's title (`newsbot correct --title`) wins over the source's in every post.
        sa.func.coalesce(articles.c.title_override, articles.c.title).label("title"),
        articles.c.summary_html,
        articles.c.excerpt,
        articles.c.published_at,
        articles.c.author,
        articles.c.categories,
        articles.c.image,
        articles.c.retracted_at,
    )


def _delivery_select() -> sa.Select[Any]:
    return sa.select(deliveries, *_article_columns()).join(
        articles, articles.c.id == deliveries.c.article_id
    )


def _lease(table: sa.Table, ids: list[int], holder: str, now: datetime) -> Any:
    """The UPDATE that claims the queued rows ``ids`` of ``table`` (deliveries, revision
    actions: both keep one lease's columns) for ``holder``: one more attempt, not in flight."""
    return (
        sa.update(table)
        .where(table.c.id.in_(ids), table.c.state == str(DeliveryState.QUEUED))
        .values(
            state=str(DeliveryState.SENDING),
            claimed_by=holder,
            claimed_at=now,
            in_flight_at=None,
            attempts=table.c.attempts + 1,
            updated_at=now,
        )
    )


def _held(table: sa.Table, row_id: int, holder: str) -> sa.ColumnElement[bool]:
    """The row ``row_id`` of ``table`` (a delivery, a revision action) while ``holder``'s
    claim on it stands."""
    return sa.and_(
        table.c.id == row_id,
        table.c.state == str(DeliveryState.SENDING),
        table.c.claimed_by == holder,
    )


def _action_select() -> sa.Select[Any]:
    return (
        sa.select(
            revision_actions,
            revisions.c.kind,
            deliveries.c.remote_id.label("post_id"),
            deliveries.c.remote_url.label("post_url"),
            deliveries.c.sent_at.label("post_sent_at"),
            deliveries.c.text.label("post_text"),
            *_article_columns(),
        )
        .join(revisions, revisions.c.id == revision_actions.c.revision_id)
        .join(deliveries, deliveries.c.id == revision_actions.c.delivery_id)
        .join(articles, articles.c.id == deliveries.c.article_id)
    )


def _claimed_action(row: sa.RowMapping) -> ClaimedAction:
    return ClaimedAction(
        id=row["id"],
        revision_id=row["revision_id"],
        delivery_id=row["delivery_id"],
        channel=row["channel"],
        action=Action(row["action"]),
        attempts=row["attempts"],
        kind=RevisionKind(row["kind"]),
        source=row["source"],
        article=_article(row, key="article_key"),
        excerpt=row["excerpt"],
        retracted=row["retracted_at"] is not None,
        published=Published(
            channel=row["channel"],
            remote_id=row["post_id"],
            url=row["post_url"],
            # A post recorded sent has its time; the fallback only keeps the type honest.
            sent_at=row["post_sent_at"] or row["updated_at"],
            text=row["post_text"] or "",
        ),
    )


def _article(row: sa.RowMapping, *, key: str = "key") -> Article:
    """The article of an ``articles`` row (its key under the column name ``key``)."""
    return Article(
        key=row[key],
        url=row["url"],
        title=row["title"],
        summary_html=row["summary_html"],
        published=row["published_at"],
        author=row["author"],
        categories=tuple(json.loads(row["categories"] or "[]")),
        image=row["image"],
    )


def _stored(row: sa.RowMapping) -> StoredArticle:
    return StoredArticle(
        id=int(row["id"]),
        source=row["source"],
        article=_article(row),
        excerpt=row["excerpt"],
        digest=row["content_digest"],
        title_override=row["title_override"],
        retracted_at=row["retracted_at"],
        seen_at=row["seen_at"],
    )


def _delivery(row: sa.RowMapping) -> Delivery:
    article = _article(row, key="article_key")
    return Delivery(
        id=row["id"],
        source=row["source"],
        channel=row["channel"],
        state=DeliveryState(row["state"]),
        article=article,
        excerpt=row["excerpt"],
        due_at=row["due_at"],
        attempts=row["attempts"],
        reason=row["reason"],
        text=row["text"],
        remote_id=row["remote_id"],
        remote_url=row["remote_url"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        sent_at=row["sent_at"],
        retracted_at=row["retracted_at"],
    )


_TICK = timedelta(milliseconds=50)


# json.dumps with an option builds an encoder per call; an article's categories need one.
_json_list = json.JSONEncoder(ensure_ascii=False).encode


@functools.lru_cache(maxsize=1024)
def _categories_json(categories: tuple[str, ...]) -> str:
    """An article's categories as stored; a feed's articles mostly share a few sets."""
    return _json_list(list(categories))


# Rows per INSERT on SQLite: 12 parameters a row stays under its limit of 32,766 a statement.
_SQLITE_ROWS = 1_000


@functools.lru_cache(maxsize=64)
def _sqlite_articles_insert(rows: int) -> str:
    """INSERT of ``rows`` articles that leaves a (source, key) already recorded alone and
    returns (id, key) of each row it inserted."""
    columns = ", ".join(f'"{name}"' for name in _ARTICLE_COLUMNS)
    row = "(" + ", ".join("?" for _ in _ARTICLE_COLUMNS) + ")"
    return (
        f"INSERT INTO articles ({columns}) VALUES {', '.join([row] * rows)}"
        " ON CONFLICT DO NOTHING RETURNING id, key"
    )


def _aware(value: datetime | str | None) -> datetime | None:
    """Aggregates (MIN over a datetime column) come back raw: text on SQLite, naive or aware."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _chunks(values: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


# SQLite's automatic checkpoint threshold, in pages of 4 kB: about 40 MB of WAL.
WAL_AUTOCHECKPOINT_PAGES = 10_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level lets the "begin" hook below issue BEGIN IMMEDIATE itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    # In WAL mode NORMAL syncs at checkpoints, not at every commit: a committed transaction
    # (a send recorded) survives the process being killed at any point, which is the promise
    # the ledger makes (docs/architecture.md, "Never lost"); only a power cut or a kernel
    # crash may take back the last commits before a checkpoint. FULL would sync every
    # delivery's commit, a disk flush per post.
    cursor.execute("PRAGMA synchronous=NORMAL")
    # The WAL is copied into the database file by Ledger.checkpoint, off the write path (the
    # daemon runs it every few seconds); SQLite's own checkpoint at 1,000 pages ran inside
    # the commit that crossed them, nearly every ingest of a busy poll, and made that commit
    # wait for the copy and its disk flush (a fifth of an ingest of 1,000 articles). The
    # larger threshold stays as the backstop when nothing checkpoints (`newsbot once`).
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    cursor.close()


def _sqlite_begin_immediate(conn: Connection) -> None:
    # Take the write lock when the transaction starts, so two processes claiming at once
    # serialise instead of failing on a lock upgrade.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


class LedgerInFlight:
    """A channel's in-flight notes (:class:`bot.channels.base.InFlight`) kept on the delivery's
    row, so they survive a crash and are seen by every instance."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def recall(self, post: Post) -> str | None:
        return await asyncio.to_thread(
            self.ledger.in_flight_note, post.channel, post.source, post.article_key
        )

    async def remember(self, post: Post, note: str) -> None:
        noted = await asyncio.to_thread(
            self.ledger.note_in_flight, post.channel, post.source, post.article_key, note
        )
        if not noted:
            raise LedgerError(
                f"no delivery of {post.article_key!r} to {post.channel!r} is being sent, so "
                "its in-flight note could not be kept"
            )
