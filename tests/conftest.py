"""Fixtures every tier shares: ledgers on a real SQLite file and, when
``NEWSBOT_TEST_DATABASE_URL`` is set, on PostgreSQL (each test in a schema of its own)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

PG_URL = os.environ.get("NEWSBOT_TEST_DATABASE_URL")


def postgres_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    assert PG_URL
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The ledger's database: a SQLite file, and PostgreSQL when one is configured."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    if not PG_URL:
        pytest.skip("set NEWSBOT_TEST_DATABASE_URL to run the PostgreSQL tests")
    yield from postgres_schema_url()


# Figures a test measures (crash-test tallies, webhook latency) are printed at the end of the
# run. Under xdist a worker's output never reaches the terminal, so workers append them to a
# file and the controller prints it in the summary.
RESULTS = Path(__file__).resolve().parents[1] / "var" / "test-results.txt"


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test using it may resolve, let alone reach, any host but 127.0.0.1."""
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "localhost", "::1", b"127.0.0.1"):
            raise OSError(f"test tried to reach {host!r}: only 127.0.0.1 is allowed")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


@pytest.fixture
def report() -> Callable[[str], None]:
    """Record one line for the end-of-run summary."""

    def write(line: str) -> None:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a", encoding="utf-8") as handle:
            handle.write(line.rstrip("\n") + "\n")

    return write


# The tests that take tens of seconds each (the kill-and-restart crash tests, the benchmarks'
# smoke run), by node id prefix: they run first, so that no worker is left with one of them
# when the other has run out of tests (``--dist worksteal``, pyproject.toml, steals from the
# end of a worker's queue, so the end should be made of short tests).
SLOWEST = ("tests/integration/test_crash", "tests/integration/test_bench_smoke.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slowest first, then the tests that start servers or processes, then the unit tests,
    which fill the end of the run on both workers in small pieces. The sort is stable: the
    order within each group is pytest's own."""

    def rank(item: pytest.Item) -> int:
        if item.nodeid.startswith(SLOWEST):
            return 0
        return 2 if item.nodeid.startswith("tests/unit/") else 1

    items.sort(key=rank)


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):
        RESULTS.unlink(missing_ok=True)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if RESULTS.exists():
        terminalreporter.section("measured")
        for line in RESULTS.read_text(encoding="utf-8").splitlines():
            terminalreporter.write_line(line)
