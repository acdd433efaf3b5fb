"""Articles are remembered beyond retention: ``seen`` keeps a digest of every key and URL.

Pruning used to forget an article's key with its deliveries, so a feed that still carried the
item (``retention`` shorter than ``max_age``, or ``max_age: off``) brought it back as new and
it was posted again. ``seen`` holds (source, digest) for the key and the canonical URL of every
article ever ingested; pruning never touches it. Existing articles are copied in.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql, sqlite

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_meta = sa.table("newsbot_meta", sa.column("key", sa.String), sa.column("value", sa.Text))
_articles = sa.table(
    "articles", sa.column("source", sa.String), sa.column("key", sa.Text), sa.column("url", sa.Text)
)
_BATCH = 5000


def _digest(kind: str, value: str) -> str:
    # Frozen here on purpose: bot.ledger.seen_digest may change, this revision's rows may not.
    return hashlib.sha256(f"{kind}\0{value}".encode()).hexdigest()[:32]


def upgrade() -> None:
    seen = op.create_table(
        "seen",
        sa.Column("source", sa.String(200), primary_key=True),
        sa.Column("digest", sa.String(32), primary_key=True),
    )
    conn = op.get_bind()
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(seen)
    rows = conn.execute(sa.select(_articles.c.source, _articles.c.key, _articles.c.url)).all()
    for start in range(0, len(rows), _BATCH):
        values = [
            {"source": source, "digest": _digest(kind, value)}
            for source, key, url in rows[start : start + _BATCH]
            for kind, value in (("key", key), ("url", url))
        ]
        # Two articles of one source with one URL (allowed before 0004): one row is enough.
        conn.execute(insert.on_conflict_do_nothing(), values)
    op.execute(_meta.update().where(_meta.c.key == "schema_version").values(value="4"))


def downgrade() -> None:
    op.execute(_meta.update().where(_meta.c.key == "schema_version").values(value="3"))
    op.drop_table("seen")
