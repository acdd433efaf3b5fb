"""Indexes for the two queries that must stay fast on a million deliveries (bench/ledger.py).

- ``(state, id)``: ``newsbot status --state X``, newest first; on 1,000,000 rows in SQLite a
  state with no rows took 292 ms without it, 0.1 ms with it.
- ``(state, channel, priority, id)``: claiming the next due deliveries of a channel; its
  select took 7.7 ms without it, under 0.1 ms with it.

Revision ID: 0003
Revises: 0002
Create Date: 2025-09-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_meta = sa.table("newsbot_meta", sa.column("key", sa.String), sa.column("value", sa.Text))


def upgrade() -> None:
    op.create_index("ix_deliveries_state_id", "deliveries", ["state", "id"])
    op.create_index("ix_deliveries_claim", "deliveries", ["state", "channel", "priority", "id"])
    op.execute(_meta.update().where(_meta.c.key == "schema_version").values(value="3"))


def downgrade() -> None:
    op.execute(_meta.update().where(_meta.c.key == "schema_version").values(value="2"))
    op.drop_index("ix_deliveries_claim", table_name="deliveries")
    op.drop_index("ix_deliveries_state_id", table_name="deliveries")
