"""SIGTERM while a feed poll is in flight: the real ``newsbot run`` finishes it (or cuts it off
quietly) and exits 0, with no CancelledError traceback in its log."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bot.testing.feed_server import FeedServer, rss
from tests.acceptance.test_cli import item
from tests.integration.test_daemon import Daemon

REPO = Path(__file__).resolve().parents[2]

CONFIG = """\
database: sqlite:///ledger.db
templates: {templates}
stop_timeout: 20s
sources:
  newsvision:
    kind: feed
    url: {url}
    allow_private: [127.0.0.1]
    every: 1s
    max_age: off
channels:
  console:
    kind: console
    template: x.txt.j2
"""


def test_sigterm_during_a_poll_leaves_no_traceback(tmp_path: Path) -> None:
    """The poll in flight at SIGTERM finishes (the scheduler's shutdown no longer cancels it)."""
    with FeedServer() as feed:
        url = feed.publish("/rss.xml", rss([item(1)]))
        (tmp_path / "newsbot.yaml").write_text(
            CONFIG.format(templates=REPO / "templates", url=url), encoding="utf-8"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSBOT_", "X_"))}
        daemon = Daemon(tmp_path, env | {"PYTHONPATH": str(REPO)})
        daemon.start()
        try:
            deadline = time.monotonic() + 30
            # The first poll (item 1, the backlog) must be recorded before the feed changes,
            # or on a slow machine the poll cut at SIGTERM would be the first one.
            while "source newsvision: 1 new article(s)" not in daemon.text():
                assert time.monotonic() < deadline, daemon.text()
                time.sleep(0.1)
            feed.set_delay(3.0)
            feed.publish("/rss.xml", rss([item(1), item(2)]))
            # Polled every second, each answer 3 s late: by now one poll is waiting on it.
            time.sleep(1.5)
            assert daemon.terminate(timeout=30) == 0
        finally:
            daemon.kill()
    log = daemon.text()
    assert "newsbot stopped" in log
    assert "Traceback" not in log and "CancelledError" not in log
    stopping = log.index("stopping:")
    assert "source newsvision: 1 new article(s)" in log[stopping:], "the poll was cut off"
