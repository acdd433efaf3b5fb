"""A claim is a lease, not a send: ``deliveries.in_flight_at`` marks the moment the request
for a claimed delivery is about to be written.

A process that dies holding a batch of claims had sent at most the one marked in flight per
channel; the others never left it. Recovery puts those back in the queue and makes only the
in-flight ones ``uncertain`` (before this column, a kill parked a whole claimed batch).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_meta = sa.table("newsbot_meta", sa.column("key", sa.String), sa.column("value", sa.Text))


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("in_flight_at", sa.DateTime()))
    # A row already 'sending' at the upgrade was claimed the old way: in flight, to be safe.
    op.execute(sa.text("UPDATE deliveries SET in_flight_at = claimed_at WHERE state = 'sending'"))
    op.execute(_meta.update().where(_meta.c.key == "schema_version").values(value="5"))


def downgrade() -> None:
    op.execute(_meta.update().where(_meta.c.key == "schema_version").values(value="4"))
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("in_flight_at")
