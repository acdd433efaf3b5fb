"""The ledger: every article seen and the fate of every delivery, in SQL.

SQLAlchemy Core over SQLite by default, PostgreSQL to scale out. The database, not Python,
guarantees the two uniqueness rules newsbot lives by: one article per (source, key) and one
delivery per (article, channel). A delivery moves

    queued ──claim──► sending ──► sent | failed | skipped
       ▲                 │
       └── transient ────┘        (a ``sending`` row whose process died becomes ``uncertain``)

and every row keeps its attempts, the last reason, the due time, the exact text sent and the
platform's receipt. Times are stored in UTC.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from bot.errors import LedgerError
from bot.model import Article, DeliveryState, Receipt
from bot.sources.base import SourceState

SCHEMA_VERSION = 1


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, whatever the database keeps."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the ledger only stores timezone-aware datetimes")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


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
    sa.UniqueConstraint("article_id", "channel", name="uq_deliveries_article_channel"),
    sa.Index("ix_deliveries_state_due", "state", "due_at"),
    sa.Index("ix_deliveries_created", "created_at"),
)


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
        }


@dataclass(frozen=True, slots=True)
class NewArticle:
    """An article to ingest, with its excerpt and the decision for its deliveries.

    ``skip_reason`` set means every delivery is recorded ``skipped`` with that reason at once.
    """

    article: Article
    excerpt: str
    skip_reason: str | None = None
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Pace:
    """How fast one channel may post. ``spacing`` is the least time between two posts (the
    larger of ``min_gap`` and the rate's period / count); at most ``burst`` go at once; at most
    ``rate_count`` in any ``rate_period``; ``hold`` covers a send in flight; deliveries of
    ``priority_bypass`` or more ignore the spacing (never the rate)."""

    spacing: timedelta
    burst: int = 1
    rate_count: int = 0
    rate_period: timedelta = timedelta(0)
    hold: timedelta = timedelta(seconds=30)
    priority_bypass: int = 10


@dataclass(frozen=True, slots=True)
class PacedClaim:
    deliveries: list[Delivery]
    wait_until: datetime | None


@dataclass(frozen=True, slots=True)
class IngestReport:
    articles: int
    queued: int
    skipped: int


class Ledger:
    """The ledger on one database. Construct with :meth:`open`; close with :meth:`close`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._postgres = engine.dialect.name == "postgresql"

    @classmethod
    def open(cls, url: str) -> Ledger:
        """Connect, and create or check the schema."""
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        try:
            engine = sa.create_engine(url, future=True)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise LedgerError(f"cannot use the database {_redact_url(url)}: {exc}") from exc
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            sa.event.listen(engine, "begin", _sqlite_begin_immediate)
        ledger = cls(engine)
        ledger._create_schema()
        return ledger

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise LedgerError(f"the ledger database refused an operation: {exc.orig}") from exc

    def _create_schema(self) -> None:
        with self._tx() as conn:
            metadata.create_all(conn)
            found = conn.execute(
                sa.select(meta.c.value).where(meta.c.key == "schema_version")
            ).scalar()
            if found is None:
                conn.execute(
                    self._insert(meta)
                    .values(key="schema_version", value=str(SCHEMA_VERSION))
                    .on_conflict_do_nothing()
                )
            elif int(found) > SCHEMA_VERSION:
                raise LedgerError(
                    f"the ledger's schema is version {found}, newer than this newsbot "
                    f"understands ({SCHEMA_VERSION}): upgrade newsbot"
                )

    def _insert(self, table: sa.Table) -> Any:
        return (postgresql.insert if self._postgres else sqlite.insert)(table)

    # -- sources -----------------------------------------------------------------------------

    def source(self, name: str) -> SourceRecord:
        with self._tx() as conn:
            row = conn.execute(sa.select(sources).where(sources.c.name == name)).mappings().first()
        if row is None:
            return SourceRecord(name, SourceState(), None, None, None, None, 0)
        return SourceRecord(
            name=name,
            state=SourceState(etag=row["etag"], last_modified=row["last_modified"]),
            first_polled_at=row["first_polled_at"],
            last_polled_at=row["last_polled_at"],
            last_ok_at=row["last_ok_at"],
            last_error=row["last_error"],
            consecutive_errors=row["consecutive_errors"],
        )

    def record_poll(
        self,
        name: str,
        *,
        now: datetime,
        state: SourceState | None = None,
        error: str | None = None,
    ) -> None:
        """A successful poll (with the new validators) or a failed one (with its reason)."""
        values: dict[str, Any] = {"last_polled_at": now}
        if error is None:
            values |= {"last_ok_at": now, "last_error": None, "consecutive_errors": 0}
            if state is not None:
                values |= {"etag": state.etag, "last_modified": state.last_modified}
        else:
            values |= {"last_error": error}
        with self._tx() as conn:
            conn.execute(
                self._insert(sources)
                .values(name=name, first_polled_at=now, consecutive_errors=0)
                .on_conflict_do_nothing()
            )
            update = sa.update(sources).where(sources.c.name == name).values(**values)
            if error is not None:
                update = update.values(consecutive_errors=sources.c.consecutive_errors + 1)
            conn.execute(update)

    def sources(self) -> list[SourceRecord]:
        with self._tx() as conn:
            names = conn.execute(sa.select(sources.c.name).order_by(sources.c.name)).scalars().all()
        return [self.source(name) for name in names]

    # -- ingest ------------------------------------------------------------------------------

    def known(self, source: str, keys: Collection[str], urls: Collection[str]) -> set[str]:
        """Which of these keys or canonical URLs the ledger has seen for this source."""
        if not keys and not urls:
            return set()
        found: set[str] = set()
        with self._tx() as conn:
            for column, values in ((articles.c.key, keys), (articles.c.url, urls)):
                for chunk in _chunks(list(values), 500):
                    found.update(
                        conn.execute(
                            sa.select(column).where(articles.c.source == source, column.in_(chunk))
                        ).scalars()
                    )
        return found

    def ingest(
        self, source: str, items: Sequence[NewArticle], routes: Sequence[str], *, now: datetime
    ) -> IngestReport:
        """Record articles not seen before and one delivery per route for each, in one
        transaction. An article already present (same key, or same canonical URL) is left
        alone, so ingesting the same feed twice changes nothing."""
        report = IngestReport(0, 0, 0)
        if not items:
            return report
        with self._tx() as conn:
            seen_urls = set(
                conn.execute(
                    sa.select(articles.c.url).where(
                        articles.c.source == source,
                        articles.c.url.in_([item.article.url for item in items]),
                    )
                ).scalars()
            )
            inserted_ids: list[tuple[int, NewArticle]] = []
            for item in items:
                article = item.article
                if article.url in seen_urls:
                    continue
                seen_urls.add(article.url)
                result = conn.execute(
                    self._insert(articles)
                    .values(
                        source=source,
                        key=article.key,
                        url=article.url,
                        title=article.title,
                        summary_html=article.summary_html,
                        excerpt=item.excerpt,
                        published_at=article.published,
                        author=article.author,
                        categories=json.dumps(list(article.categories), ensure_ascii=False),
                        image=article.image,
                        seen_at=now,
                    )
                    .on_conflict_do_nothing()
                    .returning(articles.c.id)
                )
                article_id = result.scalar()
                if article_id is not None:
                    inserted_ids.append((article_id, item))
            queued = skipped = 0
            rows = []
            for article_id, item in inserted_ids:
                state = DeliveryState.SKIPPED if item.skip_reason else DeliveryState.QUEUED
                for channel in routes:
                    rows.append(
                        {
                            "article_id": article_id,
                            "channel": channel,
                            "state": str(state),
                            "reason": item.skip_reason,
                            "due_at": now,
                            "priority": item.priority,
                            "attempts": 0,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                    if item.skip_reason:
                        skipped += 1
                    else:
                        queued += 1
            if rows:
                conn.execute(self._insert(deliveries).on_conflict_do_nothing(), rows)
        return IngestReport(len(inserted_ids), queued, skipped)

    # -- delivery ----------------------------------------------------------------------------

    def claim_due(
        self,
        now: datetime,
        *,
        holder: str,
        limit: int = 20,
        channels: Collection[str] | None = None,
    ) -> list[Delivery]:
        """Move up to ``limit`` due ``queued`` deliveries to ``sending`` for this holder.

        Highest priority first, then oldest due. On PostgreSQL rows locked by another instance
        are skipped, so several instances share the queue without waiting on each other.
        """
        query = (
            sa.select(deliveries.c.id)
            .where(deliveries.c.state == str(DeliveryState.QUEUED), deliveries.c.due_at <= now)
            .order_by(deliveries.c.priority.desc(), deliveries.c.due_at, deliveries.c.id)
            .limit(limit)
        )
        if channels is not None:
            query = query.where(deliveries.c.channel.in_(list(channels)))
        if self._postgres:
            query = query.with_for_update(skip_locked=True)
        with self._tx() as conn:
            ids = list(conn.execute(query).scalars())
            if not ids:
                return []
            return self._claim_ids(conn, ids, holder, now)

    def _claim_ids(
        self, conn: Connection, ids: list[int], holder: str, now: datetime
    ) -> list[Delivery]:
        conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.id.in_(ids), deliveries.c.state == str(DeliveryState.QUEUED))
            .values(
                state=str(DeliveryState.SENDING),
                claimed_by=holder,
                claimed_at=now,
                attempts=deliveries.c.attempts + 1,
                updated_at=now,
            )
        )
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
            conn.execute(
                self._insert(channel_pacing).values(channel=channel).on_conflict_do_nothing()
            )
            lock = sa.select(channel_pacing).where(channel_pacing.c.channel == channel)
            if self._postgres:
                lock = lock.with_for_update()
            row = conn.execute(lock).mappings().one()
            if row["paused_until"] is not None and row["paused_until"] > now:
                return PacedClaim([], row["paused_until"])
            gap_open = row["next_at"] is None or row["next_at"] <= now
            allowance = pace.burst
            if pace.rate_count:
                window_start = now - pace.rate_period
                recent = sa.and_(
                    deliveries.c.channel == channel,
                    sa.or_(
                        deliveries.c.state == str(DeliveryState.SENDING),
                        sa.and_(
                            deliveries.c.state.in_(
                                [str(DeliveryState.SENT), str(DeliveryState.FAILED)]
                            ),
                            deliveries.c.updated_at > window_start,
                            deliveries.c.attempts > 0,
                        ),
                        sa.and_(
                            deliveries.c.state == str(DeliveryState.QUEUED),
                            deliveries.c.claimed_at > window_start,
                        ),
                    ),
                )
                used, oldest = conn.execute(
                    sa.select(sa.func.count(), sa.func.min(deliveries.c.updated_at)).where(recent)
                ).one()
                room = pace.rate_count - int(used)
                if room <= 0:
                    oldest = _aware(oldest) or now
                    return PacedClaim([], max(oldest + pace.rate_period, now + _TICK))
                allowance = min(allowance, room)
            query = (
                sa.select(deliveries.c.id)
                .where(
                    deliveries.c.state == str(DeliveryState.QUEUED),
                    deliveries.c.due_at <= now,
                    deliveries.c.channel == channel,
                )
                .order_by(deliveries.c.priority.desc(), deliveries.c.due_at, deliveries.c.id)
                .limit(allowance)
            )
            if not gap_open:
                # Breaking news ignores min_gap (never the rate cap): only it may go now.
                query = query.where(deliveries.c.priority >= pace.priority_bypass)
            if self._postgres:
                query = query.with_for_update(skip_locked=True)
            ids = list(conn.execute(query).scalars())
            if not ids:
                return PacedClaim([], None if gap_open else _aware(row["next_at"]))
            claimed = self._claim_ids(conn, ids, holder, now)
            conn.execute(
                sa.update(channel_pacing)
                .where(channel_pacing.c.channel == channel)
                .values(next_at=now + pace.spacing * len(ids) + pace.hold)
            )
        return PacedClaim(claimed, None)

    def paced_send_done(self, channel: str, *, completed_at: datetime, spacing: timedelta) -> None:
        """After a send on a paced channel: the next may go ``spacing`` after this one ended."""
        with self._tx() as conn:
            conn.execute(
                sa.update(channel_pacing)
                .where(channel_pacing.c.channel == channel)
                .values(next_at=completed_at + spacing)
            )

    def pause_channel(self, channel: str, *, until: datetime, reason: str) -> None:
        """The platform asked us to wait (a 429): nobody posts on this channel until then."""
        with self._tx() as conn:
            conn.execute(
                self._insert(channel_pacing).values(channel=channel).on_conflict_do_nothing()
            )
            conn.execute(
                sa.update(channel_pacing)
                .where(channel_pacing.c.channel == channel)
                .values(paused_until=until, paused_reason=reason)
            )

    def channel_paused_until(self, channel: str, now: datetime) -> datetime | None:
        with self._tx() as conn:
            until = conn.execute(
                sa.select(channel_pacing.c.paused_until).where(channel_pacing.c.channel == channel)
            ).scalar()
        until = _aware(until)
        return until if until is not None and until > now else None

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
                .values(state=str(DeliveryState.SKIPPED), reason=reason, updated_at=now)
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

    def _finish(self, delivery_id: int, now: datetime, **values: Any) -> bool:
        with self._tx() as conn:
            result = conn.execute(
                sa.update(deliveries)
                .where(
                    deliveries.c.id == delivery_id,
                    deliveries.c.state == str(DeliveryState.SENDING),
                )
                .values(updated_at=now, claimed_by=None, **values)
            )
        return bool(result.rowcount)

    def mark_sent(
        self,
        delivery_id: int,
        *,
        text: str,
        receipt: Receipt,
        now: datetime,
        cost: float | None = None,
    ) -> bool:
        # sent_at is our clock at acceptance, not the platform's (Telegram's is whole
        # seconds): rate windows and publish-to-post delays are measured on one clock.
        reason = "; ".join(receipt.notes) or None
        return self._finish(
            delivery_id,
            now,
            state=str(DeliveryState.SENT),
            text=text,
            remote_id=receipt.remote_id,
            remote_url=receipt.url,
            sent_at=now,
            reason=reason,
            cost=cost,
        )

    def mark_failed(
        self, delivery_id: int, *, reason: str, now: datetime, text: str | None = None
    ) -> bool:
        return self._finish(
            delivery_id, now, state=str(DeliveryState.FAILED), reason=reason, text=text
        )

    def mark_skipped(self, delivery_id: int, *, reason: str, now: datetime) -> bool:
        return self._finish(delivery_id, now, state=str(DeliveryState.SKIPPED), reason=reason)

    def requeue(self, delivery_id: int, *, due_at: datetime, reason: str, now: datetime) -> bool:
        """A transient failure: back to ``queued``, not due before ``due_at``."""
        return self._finish(
            delivery_id, now, state=str(DeliveryState.QUEUED), due_at=due_at, reason=reason
        )

    def release(self, delivery_id: int, *, now: datetime) -> bool:
        """Give back a claim that was never sent (e.g. on shutdown): ``queued`` again, and the
        attempt it counted does not count."""
        return self._finish(
            delivery_id,
            now,
            state=str(DeliveryState.QUEUED),
            attempts=sa.func.max(deliveries.c.attempts - 1, 0)
            if not self._postgres
            else sa.func.greatest(deliveries.c.attempts - 1, 0),
        )

    def in_flight_holders(self) -> list[str]:
        """Who holds deliveries in ``sending`` right now."""
        query = (
            sa.select(deliveries.c.claimed_by)
            .where(deliveries.c.state == str(DeliveryState.SENDING))
            .distinct()
        )
        with self._tx() as conn:
            return [holder for holder in conn.execute(query).scalars() if holder]

    def mark_in_flight_uncertain(self, *, now: datetime, holder: str | None = None) -> int:
        """Deliveries left in ``sending`` by a process that died become ``uncertain``: the post
        may or may not have reached the platform, so a person decides (``newsbot retry``)."""
        query = sa.update(deliveries).where(deliveries.c.state == str(DeliveryState.SENDING))
        if holder is not None:
            query = query.where(deliveries.c.claimed_by == holder)
        with self._tx() as conn:
            result = conn.execute(
                query.values(
                    state=str(DeliveryState.UNCERTAIN),
                    updated_at=now,
                    reason="newsbot stopped while this post was being sent: it may or may not "
                    "have been posted. Check the channel, then `newsbot retry --uncertain` to "
                    "send it again",
                )
            )
        return int(result.rowcount)

    # -- reading and retrying ------------------------------------------------------------------

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
            return [_delivery(row) for row in conn.execute(query).mappings()]

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
        articles left with no delivery. Seen articles' keys go too, so keep ``retention``
        longer than any feed keeps an item, or an old item could be posted again."""
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
        query = sa.select(deliveries.c.state, sa.func.count()).group_by(deliveries.c.state)
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
        allowed = {str(DeliveryState.FAILED), str(DeliveryState.UNCERTAIN)}
        chosen = [s for s in states if s in allowed]
        if not chosen:
            return 0
        query = sa.update(deliveries).where(deliveries.c.state.in_(chosen))
        if ids:
            query = query.where(deliveries.c.id.in_(list(ids)))
        if channel:
            query = query.where(deliveries.c.channel == channel)
        with self._tx() as conn:
            result = conn.execute(
                query.values(
                    state=str(DeliveryState.QUEUED),
                    due_at=now,
                    attempts=0,
                    updated_at=now,
                    reason=None,
                )
            )
        return int(result.rowcount)


def _delivery_select() -> sa.Select[Any]:
    return sa.select(
        deliveries,
        articles.c.source,
        articles.c.key.label("article_key"),
        articles.c.url,
        articles.c.title,
        articles.c.summary_html,
        articles.c.excerpt,
        articles.c.published_at,
        articles.c.author,
        articles.c.categories,
        articles.c.image,
    ).join(articles, articles.c.id == deliveries.c.article_id)


def _delivery(row: sa.RowMapping) -> Delivery:
    article = Article(
        key=row["article_key"],
        url=row["url"],
        title=row["title"],
        summary_html=row["summary_html"],
        published=row["published_at"],
        author=row["author"],
        categories=tuple(json.loads(row["categories"] or "[]")),
        image=row["image"],
    )
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
    )


_TICK = timedelta(milliseconds=50)


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


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level lets the "begin" hook below issue BEGIN IMMEDIATE itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin_immediate(conn: Connection) -> None:
    # Take the write lock when the transaction starts, so two processes claiming at once
    # serialise instead of failing on a lock upgrade.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _redact_url(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(unparseable URL)"
