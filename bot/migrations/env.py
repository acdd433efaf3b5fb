"""Alembic's environment for the ledger: run by :mod:`bot.migrations`, never by hand.

newsbot passes an open connection, already inside the transaction (and, on PostgreSQL, under
the advisory lock) in which the upgrade must happen, as ``config.attributes["connection"]``.
Without one (a developer running ``alembic`` against this folder) the URL comes from the
``sqlalchemy.url`` option.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from bot.ledger import metadata

config = context.config
connection = config.attributes.get("connection")

if connection is None:
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "sqlite://")
    with engine.begin() as own:
        context.configure(connection=own, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
