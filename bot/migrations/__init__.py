"""The ledger's schema, revision by revision (Alembic), and the rules for applying it.

The revisions live in ``versions/`` next to this file and are run from here, in the caller's
transaction, never from a command-line ``alembic.ini``. Alembic's ``alembic_version`` table
holds the revision; ``newsbot_meta.schema_version`` is kept equal to its number, so that a
newsbot from before Alembic refuses a newer ledger instead of using it.

What :func:`ensure` does with the database it is given:

- empty: the whole schema is created at the newest revision (every revision, one transaction);
- made before Alembic (the tables plus ``schema_version`` 1): stamped ``0001``, then as below;
- at an older revision: upgraded when ``upgrade`` is true (``newsbot db upgrade``, and every
  open of a SQLite ledger: one newsroom, one process, nothing to coordinate, and the upgrade
  is a single transaction that a crash rolls back); otherwise refused with a
  :class:`~bot.errors.LedgerError` that says to run ``newsbot db upgrade`` (PostgreSQL, where
  several instances, perhaps of two versions during a deploy, share the database);
- at a revision this newsbot does not know (a newer newsbot's): refused.

On PostgreSQL the work happens under a transaction-scoped advisory lock, so several instances
starting at once on an empty database create the schema once.

To change the schema: change ``bot.ledger.metadata``, add ``versions/000N_what.py`` by hand
(``script.py.mako`` is the shape; ``alembic revision --autogenerate`` against a scratch database
with ``script_location`` set to this folder gives a first draft), set ``schema_version`` to N in
it, and run ``tests/integration/test_migrations.py``: it fails while the revisions and the
metadata disagree.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.errors import LedgerError

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPT_LOCATION = Path(__file__).resolve().parent
LEGACY_REVISION = "0001"
# The newsbot tables of revision 0001: one of them present without Alembic's table means a
# ledger made before Alembic.
_LEGACY_TABLES = ("newsbot_meta", "sources", "articles", "deliveries", "channel_pacing")
# pg_advisory_xact_lock(key, hashtext(current_schema())): one migration at a time per schema.
_LOCK_KEY = 0x6E627331
# Revisions are files named after their id, one after the other: 0001_initial.py, 0002_....
# Reading the names is enough to know the head, so a ledger that is current is opened without
# importing Alembic at all (it costs a noticeable part of a second at every start).
_REVISION_FILE = re.compile(r"^(\d{4})_\w+\.py$")

# Alembic announces its plugins and its dialect at INFO; newsbot logs what it changed instead.
logging.getLogger("alembic").setLevel(logging.WARNING)


@dataclass(frozen=True, slots=True)
class SchemaState:
    """Where a database stands: ``current`` is ``None`` for an empty database."""

    current: str | None
    head: str
    legacy: bool = False

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    @property
    def known(self) -> bool:
        """Whether this newsbot knows the database's revision (it is not a newer one's)."""
        return self.current is None or is_known(self.current)


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """What :func:`ensure` did: from ``before`` (``None``: empty) to ``after``."""

    before: str | None
    after: str


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the packaged revisions, bound to ``connection`` when given."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def revisions() -> list[str]:
    """Every revision this newsbot knows, oldest first."""
    found = (_REVISION_FILE.match(path.name) for path in (SCRIPT_LOCATION / "versions").iterdir())
    return sorted(match.group(1) for match in found if match)


def head() -> str:
    """The newest revision this newsbot knows."""
    return revisions()[-1]


def is_known(revision: str) -> bool:
    return revision in revisions()


def state(conn: Connection) -> SchemaState:
    """The revision the database is at, without changing anything."""
    inspector = sa.inspect(conn)
    if inspector.has_table("alembic_version"):
        found = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
        if len(found) == 1:
            return SchemaState(str(found[0]), head())
        if found:
            raise LedgerError(f"the ledger has several schema revisions at once: {found}")
    present = [name for name in _LEGACY_TABLES if inspector.has_table(name)]
    if not present:
        return SchemaState(None, head())
    version = None
    if "newsbot_meta" in present:
        version = conn.execute(
            sa.text("SELECT value FROM newsbot_meta WHERE key = 'schema_version'")
        ).scalar()
    if version != "1" or len(present) != len(_LEGACY_TABLES):
        raise LedgerError(
            f"the database holds newsbot tables ({', '.join(present)}) but no schema revision "
            f"newsbot recognises (schema_version {version!r}): it was not made by newsbot, or "
            "not completely; use an empty database"
        )
    return SchemaState(LEGACY_REVISION, head(), legacy=True)


def ensure(conn: Connection, *, where: str, upgrade: bool) -> SchemaChange | None:
    """Bring the database in ``conn``'s transaction to the newest revision, or refuse.

    ``where`` names the database in messages (a URL without its password). Returns what
    changed, or ``None`` when the schema was already current.
    """
    found = state(conn)
    if found.up_to_date:
        return None
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key, hashtext(current_schema()))"),
            {"key": _LOCK_KEY},
        )
        found = state(conn)  # another instance may have done it while we waited
        if found.up_to_date:
            return None
    if not found.known:
        raise LedgerError(
            f"the ledger at {where} is at schema revision {found.current}, newer than this "
            f"newsbot knows ({found.head}): upgrade newsbot"
        )
    if found.current is not None and not upgrade:
        raise LedgerError(
            f"the ledger at {where} is at schema revision {found.current}, this newsbot needs "
            f"{found.head}: run `newsbot db upgrade`"
        )
    from alembic import command

    config = alembic_config(conn)
    if found.legacy:
        command.stamp(config, LEGACY_REVISION)
    command.upgrade(config, "head")
    return SchemaChange(found.current, found.head)


__all__ = [
    "LEGACY_REVISION",
    "SCRIPT_LOCATION",
    "SchemaChange",
    "SchemaState",
    "alembic_config",
    "ensure",
    "head",
    "is_known",
    "revisions",
    "state",
]
