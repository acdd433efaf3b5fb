"""The one secret masker, and the pure rules of ledger identity and health."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from bot.config import load_config, retention_warnings
from bot.daemon import HEARTBEAT_STALE, ledger_health
from bot.ledger import LedgerIdentity, identity_problem
from bot.logs import setup_logging
from bot.redact import REDACTED, Redactor, redact_url

# The shape of a bot token (digits, colon, 35 URL-safe characters), built here so that no
# literal in the repository looks like a real one to a secret scanner.
TOKEN = "0" * 9 + ":" + "X" * 35


def test_a_token_echoed_in_a_request_path_is_masked_without_being_configured() -> None:
    """A bot token inside /bot<token>/ (no word boundary before it) is masked by its shape."""
    text = f"Bad Request: no route for POST /bot{TOKEN}/sendMessage"
    assert Redactor().redact(text) == f"Bad Request: no route for POST /bot{REDACTED}/sendMessage"


def test_configured_secrets_are_masked_longest_first() -> None:
    """A secret containing another is masked whole; short values are left alone."""
    redactor = Redactor(["s3cret", "s3cret-and-more", "ab"])
    assert redactor.redact("k=s3cret-and-more j=s3cret ab") == f"k={REDACTED} j={REDACTED} ab"


def test_update_changes_what_every_holder_masks() -> None:
    """After a reload the same object masks the new secret and no longer the old one."""
    redactor = Redactor(["old-secret"])
    redactor.update(["new-secret"])
    assert redactor.redact("old-secret new-secret") == f"old-secret {REDACTED}"


def test_url_passwords_are_masked_and_the_rest_of_the_url_kept() -> None:
    """A database or feed URL keeps its user, host and path; only the password goes."""
    url = "postgresql+psycopg://newsbot:hunter2@db.internal:5432/newsbot"
    assert redact_url(url) == f"postgresql+psycopg://newsbot:{REDACTED}@db.internal:5432/newsbot"
    assert "hunter2" not in Redactor().redact("cannot fetch http://admin:hunter2@cms.tw/rss")
    plain = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    assert redact_url(plain) == plain


def test_oauth_fields_are_masked() -> None:
    """An OAuth header quoted in an error keeps its shape, not its signature."""
    text = 'OAuth oauth_signature="abc%2Fdef", oauth_token="1-xyz" and oauth_signature=zzz&x=1'
    clean = Redactor().redact(text)
    assert "abc%2Fdef" not in clean and "1-xyz" not in clean and "zzz" not in clean


def test_the_log_filter_uses_the_shared_redactor() -> None:
    """setup_logging masks with the very object it returns, so its updates reach the log."""
    stream = io.StringIO()
    redactor = setup_logging(stream=stream)
    redactor.update(["late-added-secret"])
    logging.getLogger("newsbot.test").warning("failed with late-added-secret at /bot%s/", TOKEN)
    out = stream.getvalue()
    assert "late-added-secret" not in out and TOKEN not in out and REDACTED in out


def identity(
    ledger_id: str | None = "a", file: tuple[int, int] | None = (1, 2), seen: bool = True
) -> LedgerIdentity:
    return LedgerIdentity(ledger_id=ledger_id, file=file, has_seen=seen)


def test_identity_problems_name_what_changed() -> None:
    """Deleted file, replaced file, another ledger id, emptied tables: each is named."""
    opened = identity()
    assert identity_problem(opened, identity()) is None
    assert "deleted" in (identity_problem(opened, identity(file=None)) or "")
    assert "file was replaced" in (identity_problem(opened, identity(file=(1, 3))) or "")
    assert "its id is now missing" in (identity_problem(opened, identity(ledger_id=None)) or "")
    assert "emptied" in (identity_problem(opened, identity(seen=False)) or "")
    # A ledger that never had an article may stay empty; PostgreSQL has no file.
    assert identity_problem(identity(seen=False), identity(seen=False)) is None
    assert identity_problem(identity(file=None), identity(file=None)) is None


def test_ledger_health_fails_on_its_verdict_or_an_overdue_heartbeat() -> None:
    """The ledger's own reason wins; without one, a heartbeat long overdue is a reason."""
    assert ledger_health(None, last_heartbeat=100.0, now=101.0) is None
    assert ledger_health("disk I/O error", last_heartbeat=100.0, now=101.0) == "disk I/O error"
    stale = ledger_health(None, last_heartbeat=100.0, now=100.0 + HEARTBEAT_STALE + 1)
    assert stale is not None and "no heartbeat" in stale


def test_check_warns_when_retention_is_shorter_than_max_age(tmp_path: Path) -> None:
    """retention below a source's max_age (or max_age: off) is warned of; above it is not."""
    path = tmp_path / "newsbot.yaml"
    path.write_text(
        "retention: 1d\n"
        "sources:\n"
        "  short: {kind: feed, url: a.xml, max_age: 12h}\n"
        "  long: {kind: feed, url: b.xml, max_age: 7d}\n"
        "  forever: {kind: feed, url: c.xml, max_age: off}\n"
        "channels:\n  console: {kind: console, template: x.txt.j2}\n",
        encoding="utf-8",
    )
    warnings = retention_warnings(load_config(path))
    assert len(warnings) == 2
    assert "sources.long.max_age (7d)" in warnings[0] and "retention 1d" in warnings[0]
    assert "sources.forever.max_age (off)" in warnings[1]
