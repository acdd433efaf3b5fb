"""The ledger's schema under Alembic on real SQLite and PostgreSQL: created at the newest
revision, upgraded or refused when older, refused when newer, and always equal to
``bot.ledger.metadata``."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from bot import migrations
from bot.errors import LedgerError
from bot.ledger import SCHEMA_VERSION, Ledger, NewArticle, metadata
from bot.model import Article, DeliveryState
from tests.conftest import PG_URL, postgres_schema_url

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 9, 15, 8, 0, tzinfo=UTC)
HEAD = migrations.head()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL on a fresh schema (skipped without NEWSBOT_TEST_DATABASE_URL)."""
    if not PG_URL:
        pytest.skip("set NEWSBOT_TEST_DATABASE_URL to run the PostgreSQL tests")
    yield from postgres_schema_url()


def migrate(url: str, revision: str, *, down: bool = False) -> None:
    """Run the packaged revisions up (or down) to ``revision``, outside newsbot's rules."""
    engine = Ledger._engine(url)
    try:
        with engine.begin() as conn:
            config = migrations.alembic_config(conn)
            (command.downgrade if down else command.upgrade)(config, revision)
    finally:
        engine.dispose()


def revision_of(url: str) -> str | None:
    engine = Ledger._engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def meta_version(url: str) -> str | None:
    engine = Ledger._engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text("SELECT value FROM newsbot_meta WHERE key = 'schema_version'")
            ).scalar()
    finally:
        engine.dispose()


def make_legacy(url: str) -> None:
    """A ledger as newsbot made it before Alembic: revision 0001's tables, no version table."""
    migrate(url, "0001")
    engine = Ledger._engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE alembic_version")
        conn.execute(
            sa.text(
                "INSERT INTO articles (source, key, url, title, summary_html, excerpt, "
                "categories, seen_at) VALUES ('nv', 'guid-1', 'https://news.example.tw/1', "
                "'高雄', '', '摘要', '[]', :now)"
            ),
            {"now": NOW.replace(tzinfo=None)},
        )
        conn.execute(
            sa.text(
                "INSERT INTO deliveries (article_id, channel, state, due_at, priority, "
                "attempts, created_at, updated_at) SELECT id, 'x', 'queued', :now, 0, 0, "
                ":now, :now FROM articles"
            ),
            {"now": NOW.replace(tzinfo=None)},
        )
    engine.dispose()


def test_revision_files_form_one_line_that_alembic_agrees_with() -> None:
    """The revision ids newsbot reads from the file names (to open a current ledger without
    loading Alembic) are Alembic's own history, one line from 0001 to the head."""
    scripts = ScriptDirectory.from_config(migrations.alembic_config())
    history = [script.revision for script in scripts.walk_revisions()][::-1]
    assert history == migrations.revisions() == [f"{n:04d}" for n in range(1, len(history) + 1)]
    assert scripts.get_heads() == [HEAD]
    assert migrations.head() == f"{SCHEMA_VERSION:04d}"


def test_empty_database_is_created_at_the_newest_revision(database_url: str) -> None:
    """Opening an empty database creates every table at the head revision, in step with
    newsbot_meta's schema_version."""
    ledger = Ledger.open(database_url)
    assert ledger.schema_change == migrations.SchemaChange(None, HEAD)
    ledger.close()
    assert revision_of(database_url) == HEAD
    assert meta_version(database_url) == str(SCHEMA_VERSION) == str(int(HEAD))
    again = Ledger.open(database_url)
    assert again.schema_change is None
    again.close()


def test_revisions_produce_exactly_the_schema_the_code_uses(database_url: str) -> None:
    """The migrated database and bot.ledger.metadata agree: tables, columns, types,
    indexes, unique constraints."""
    Ledger.open(database_url).close()
    engine = Ledger._engine(database_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    engine.dispose()
    assert differences == []


def test_downgrade_and_upgrade_round_trip(database_url: str) -> None:
    """Each revision can be undone and redone, and the data of revision 0001 survives."""
    Ledger.open(database_url).close()
    migrate(database_url, "0001", down=True)
    assert revision_of(database_url) == "0001" and meta_version(database_url) == "1"
    migrate(database_url, "head")
    assert revision_of(database_url) == HEAD


def test_sqlite_ledger_from_before_alembic_is_upgraded_on_open(tmp_path: Path) -> None:
    """A SQLite ledger made before Alembic is recognised as 0001 and upgraded on open, with
    its articles and deliveries intact."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    make_legacy(url)
    state = Ledger.schema_state(url)
    assert (state.current, state.legacy, state.up_to_date) == ("0001", True, False)
    ledger = Ledger.open(url)
    assert ledger.schema_change == migrations.SchemaChange("0001", HEAD)
    (kept,) = ledger.deliveries()
    assert (kept.article.key, kept.state) == ("guid-1", DeliveryState.QUEUED)
    assert ledger.try_lease("nv", "host:1", NOW, ttl=timedelta(seconds=30))  # 0002's table is there
    ledger.close()
    assert revision_of(url) == HEAD and meta_version(url) == str(SCHEMA_VERSION)


def test_sqlite_at_an_older_revision_is_upgraded_on_open(tmp_path: Path) -> None:
    """SQLite: a ledger at 0001 is brought to the head revision by simply opening it."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url, "0001")
    ledger = Ledger.open(url)
    assert ledger.schema_change == migrations.SchemaChange("0001", HEAD)
    ledger.close()


def test_postgres_at_an_older_revision_is_refused_until_db_upgrade(pg_url: str) -> None:
    """PostgreSQL: an older revision is refused with the URL (no password) and the command
    to run; with upgrade=True (``newsbot db upgrade``) it is brought to head."""
    migrate(pg_url, "0001")
    with_password = pg_url.replace("postgres@", "postgres:s3cret-pw@", 1)
    with pytest.raises(LedgerError) as refused:
        Ledger.open(with_password)
    message = str(refused.value)
    assert f"is at schema revision 0001, this newsbot needs {HEAD}" in message
    assert "run `newsbot db upgrade`" in message
    assert "s3cret-pw" not in message and "127.0.0.1:5432/test" in message
    ledger = Ledger.open(pg_url, upgrade=True)
    assert ledger.schema_change == migrations.SchemaChange("0001", HEAD)
    ledger.close()
    Ledger.open(pg_url).close()


def test_postgres_ledger_from_before_alembic_needs_db_upgrade(pg_url: str) -> None:
    """PostgreSQL: a ledger made before Alembic counts as 0001: refused, then upgraded by
    ``upgrade=True`` with its rows kept."""
    make_legacy(pg_url)
    with pytest.raises(LedgerError, match="schema revision 0001"):
        Ledger.open(pg_url)
    ledger = Ledger.open(pg_url, upgrade=True)
    assert [d.article.key for d in ledger.deliveries()] == ["guid-1"]
    ledger.close()


def test_a_newer_revision_is_refused(database_url: str) -> None:
    """A ledger at a revision this newsbot does not know (a newer newsbot's) is never used,
    on SQLite either."""
    Ledger.open(database_url).close()
    engine = Ledger._engine(database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    engine.dispose()
    with pytest.raises(LedgerError, match="revision 0099, newer than this newsbot knows"):
        Ledger.open(database_url)
    with pytest.raises(LedgerError, match="newer than this newsbot knows"):
        Ledger.open(database_url, upgrade=True)


def test_tables_that_newsbot_did_not_make_are_refused(database_url: str) -> None:
    """A database holding a 'deliveries' table without newsbot's bookkeeping is not touched."""
    engine = Ledger._engine(database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE deliveries (id INTEGER PRIMARY KEY)")
    engine.dispose()
    with pytest.raises(LedgerError, match="no schema revision newsbot recognises"):
        Ledger.open(database_url)


def test_instances_opening_an_empty_database_at_once_create_it_once(database_url: str) -> None:
    """Four instances starting together on an empty database: one creates the schema, the
    others wait for it and find it current; none fails."""
    barrier = threading.Barrier(4)
    changes: list[migrations.SchemaChange | None] = []
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            ledger = Ledger.open(database_url)
        except BaseException as exc:
            errors.append(exc)
            return
        changes.append(ledger.schema_change)
        ledger.close()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(changes, key=lambda c: c is None) == [
        migrations.SchemaChange(None, HEAD),
        None,
        None,
        None,
    ]
    ledger = Ledger.open(database_url)
    article = Article(key="k", url="https://news.example.tw/1", title="高雄")
    ledger.ingest("nv", [NewArticle(article, "")], ["x"], now=NOW)
    assert ledger.counts() == {"queued": 1}
    ledger.close()


def _newsbot(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=config.parent,
        check=False,
    )


def _config(tmp_path: Path, url: str) -> Path:
    feed = tmp_path / "feed.xml"
    feed.write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>',
        encoding="utf-8",
    )
    config = tmp_path / "newsbot.yaml"
    config.write_text(
        f"database: {url}\n"
        f"templates: {REPO / 'templates'}\n"
        "sources:\n  nv: {kind: feed, url: feed.xml}\n"
        "channels:\n  out: {kind: console, template: x.txt.j2}\n",
        encoding="utf-8",
    )
    return config


def test_db_current_and_db_upgrade_commands(database_url: str, tmp_path: Path) -> None:
    """``newsbot db current`` tells the revision (exit 1 while behind); ``newsbot db upgrade``
    brings the ledger to the newest one and says so; a second upgrade has nothing to do."""
    config = _config(tmp_path, database_url)
    empty = _newsbot(config, "db", "current")
    assert empty.returncode == 0 and "empty" in empty.stdout
    migrate(database_url, "0001")
    behind = _newsbot(config, "db", "current")
    assert behind.returncode == 1, behind.stderr
    assert f"schema revision 0001; this newsbot needs {HEAD}" in behind.stdout
    upgraded = _newsbot(config, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"upgraded from schema revision 0001 to {HEAD}" in upgraded.stdout
    current = _newsbot(config, "db", "current")
    assert current.returncode == 0 and f"schema revision {HEAD} (the newest)" in current.stdout
    again = _newsbot(config, "db", "upgrade")
    assert "nothing to do" in again.stdout


def test_postgres_refusal_reaches_the_operator(pg_url: str, tmp_path: Path) -> None:
    """On PostgreSQL at an older revision, ``newsbot status`` exits 1 with the one-line
    message that says to run ``newsbot db upgrade``, and no traceback."""
    migrate(pg_url, "0001")
    result = _newsbot(_config(tmp_path, pg_url), "status")
    assert result.returncode == 1
    assert "run `newsbot db upgrade`" in result.stderr and "Traceback" not in result.stderr
