"""Several instances on one database: who is alive, who polls which source, who sent what.

- ``instances``: one row per running newsbot (its heartbeat), so a dead one is recognised
  from any host and its posts in flight become ``uncertain``.
- ``source_leases``: one row per source, held by the instance that polls it, until it expires.
- ``deliveries.sent_by``: the instance that recorded a delivery ``sent``.

Revision ID: 0002
Revises: 0001
Create Date: 2025-09-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_meta = sa.table("newsbot_meta", sa.column("key", sa.String), sa.column("value", sa.Text))


def upgrade() -> None:
    op.create_table(
        "instances",
        sa.Column("holder", sa.String(200), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("last_seen", sa.DateTime, nullable=False),
    )
    op.create_table(
        "source_leases",
        sa.Column("source", sa.String(200), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("acquired_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )
    op.add_column("deliveries", sa.Column("sent_by", sa.String(200)))
    op.execute(_meta.update().where(_meta.c.key == "schema_version").values(value="2"))


def downgrade() -> None:
    op.execute(_meta.update().where(_meta.c.key == "schema_version").values(value="1"))
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("sent_by")
    op.drop_table("source_leases")
    op.drop_table("instances")
