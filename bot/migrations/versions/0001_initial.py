"""The ledger as newsbot 0.1 created it: sources, articles, deliveries, channel pacing.

A database made before newsbot used Alembic (``metadata.create_all`` with ``schema_version`` 1
in ``newsbot_meta``) is exactly this revision; :mod:`bot.migrations` stamps it so.

Revision ID: 0001
Revises:
Create Date: 2025-09-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    meta = op.create_table(
        "newsbot_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "sources",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("etag", sa.Text),
        sa.Column("last_modified", sa.Text),
        sa.Column("first_polled_at", sa.DateTime),
        sa.Column("last_polled_at", sa.DateTime),
        sa.Column("last_ok_at", sa.DateTime),
        sa.Column("last_error", sa.Text),
        sa.Column("consecutive_errors", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "articles",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("summary_html", sa.Text, nullable=False, server_default=""),
        sa.Column("excerpt", sa.Text, nullable=False, server_default=""),
        sa.Column("published_at", sa.DateTime),
        sa.Column("author", sa.Text),
        sa.Column("categories", sa.Text, nullable=False, server_default="[]"),
        sa.Column("image", sa.Text),
        sa.Column("seen_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("source", "key", name="uq_articles_source_key"),
    )
    op.create_index("ix_articles_source_url", "articles", ["source", "url"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "article_id",
            sa.Integer,
            sa.ForeignKey("articles.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("channel", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("due_at", sa.DateTime, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("reason", sa.Text),
        sa.Column("text", sa.Text),
        sa.Column("remote_id", sa.Text),
        sa.Column("remote_url", sa.Text),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("sent_at", sa.DateTime),
        sa.Column("claimed_by", sa.String(200)),
        sa.Column("claimed_at", sa.DateTime),
        sa.Column("cost", sa.Float),
        sa.UniqueConstraint("article_id", "channel", name="uq_deliveries_article_channel"),
    )
    op.create_index("ix_deliveries_state_due", "deliveries", ["state", "due_at"])
    op.create_index("ix_deliveries_created", "deliveries", ["created_at"])
    op.create_table(
        "channel_pacing",
        sa.Column("channel", sa.String(200), primary_key=True),
        sa.Column("next_at", sa.DateTime),
        sa.Column("paused_until", sa.DateTime),
        sa.Column("paused_reason", sa.Text),
    )
    # Kept in step with the Alembic revision, so a newsbot from before Alembic refuses a newer
    # ledger instead of using it.
    op.bulk_insert(meta, [{"key": "schema_version", "value": "1"}])


def downgrade() -> None:
    op.drop_table("channel_pacing")
    op.drop_index("ix_deliveries_created", table_name="deliveries")
    op.drop_index("ix_deliveries_state_due", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_index("ix_articles_source_url", table_name="articles")
    op.drop_table("articles")
    op.drop_table("sources")
    op.drop_table("newsbot_meta")
