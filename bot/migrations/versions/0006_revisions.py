"""An article's life after it is published: revisions, and what each did to each post.

``articles`` learns what its source last said (``content_digest``: a digest of every field a
post is made from, so a cosmetic change is no change), an editor's title (``title_override``,
which a later poll does not undo) and when it was withdrawn (``retracted_at``). ``revisions``
records each change of an article (an update or a delete, from which origin, which fields);
``revision_actions`` is one row per (revision, published post): the edit, reply, delete or
delete-and-repost it asks of that post's channel, leased and finished like a delivery, so it
is applied at most once across restarts, crashes and instances.

Existing articles get no digest: the first poll after the upgrade records one and corrects
nothing.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

_meta = sa.table("newsbot_meta", sa.column("key", sa.String), sa.column("value", sa.Text))


def upgrade() -> None:
    with op.batch_alter_table("articles") as batch:
        batch.add_column(sa.Column("content_digest", sa.String(32)))
        batch.add_column(sa.Column("title_override", sa.Text()))
        batch.add_column(sa.Column("retracted_at", sa.DateTime()))
    op.create_table(
        "revisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "article_id",
            sa.Integer,
            sa.ForeignKey("articles.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("origin", sa.String(32), nullable=False),
        sa.Column("changes", sa.Text, nullable=False, server_default="[]"),
        sa.Column("reason", sa.Text),
        sa.Column("title", sa.Text),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_revisions_article", "revisions", ["article_id", "id"])
    op.create_table(
        "revision_actions",
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
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("reason", sa.Text),
        sa.Column("text", sa.Text),
        sa.Column("remote_id", sa.Text),
        sa.Column("remote_url", sa.Text),
        sa.Column("claimed_by", sa.String(200)),
        sa.Column("claimed_at", sa.DateTime()),
        sa.Column("in_flight_at", sa.DateTime()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("done_at", sa.DateTime()),
        sa.UniqueConstraint("revision_id", "delivery_id", name="uq_revision_actions_post"),
    )
    op.create_index(
        "ix_revision_actions_claim", "revision_actions", ["state", "channel", "due_at"]
    )
    op.create_index("ix_revision_actions_delivery", "revision_actions", ["delivery_id", "id"])
    op.execute(_meta.update().where(_meta.c.key == "schema_version").values(value="6"))


def downgrade() -> None:
    op.execute(_meta.update().where(_meta.c.key == "schema_version").values(value="5"))
    op.drop_index("ix_revision_actions_delivery", "revision_actions")
    op.drop_index("ix_revision_actions_claim", "revision_actions")
    op.drop_table("revision_actions")
    op.drop_index("ix_revisions_article", "revisions")
    op.drop_table("revisions")
    with op.batch_alter_table("articles") as batch:
        batch.drop_column("retracted_at")
        batch.drop_column("title_override")
        batch.drop_column("content_digest")
