"""Hostile command lines and environments against the real ``newsbot`` command: one message and
exit 2 for a bad number or name, exit 1 for a source that could not be read, no traceback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.testing.feed_server import FeedServer, rss
from tests.acceptance.conftest import Newsbot, copy_templates, environment
from tests.acceptance.test_cli import item, setup


@pytest.fixture
def feed() -> FeedServer:
    with FeedServer() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def newsbot(
    tmp_path: Path, templates: Path, clean_env: dict[str, str], feed: FeedServer
) -> Newsbot:
    bot = setup(tmp_path, templates, clean_env, feed.publish("/rss.xml", rss([item(1)])), 1)
    assert bot("once").code == 0
    return bot


@pytest.fixture(scope="module")
def posted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Newsbot]:
    """What ``newsbot`` gives, made once for the tests that only read it (a usage error
    changes nothing): one ``once`` less per test."""
    folder = tmp_path_factory.mktemp("posted")
    with FeedServer() as feed:
        url = feed.publish("/rss.xml", rss([item(1)]))
        bot = setup(folder, copy_templates(folder), environment(), url, 1)
        assert bot("once").code == 0
        yield bot


@pytest.mark.parametrize(
    "args",
    [
        ("status", "-n", "99999999999999999999999"),
        ("status", "-n", "-1"),
        ("status", "-n", "0"),
        ("status", "-n", "١٢"),
        ("retry", "--id", "99999999999999999999"),
        ("once", "--for", "99999999999d"),
        ("preview", "-n", "-3"),
    ],
)
def test_an_out_of_range_number_exits_2_with_one_message(
    posted: Newsbot, args: tuple[str, ...]
) -> None:
    """Huge, negative or non-ASCII numbers are a usage error (exit 2), never a traceback."""
    result = posted(*args)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err and "expected" in result.err


def test_retry_for_an_unknown_channel_names_the_mistake(posted: Newsbot) -> None:
    """`retry --channel nosuch` says there is no such channel and lists the real ones."""
    result = posted("retry", "--channel", "nosuch")
    assert result.code == 2
    assert "no channel named 'nosuch'" in result.err and "telegram, x" in result.err


def test_once_exits_1_when_a_source_could_not_be_read(newsbot: Newsbot, feed: FeedServer) -> None:
    """A feed answering 404 makes `once` exit 1 and say which source failed."""
    feed.set_fault("/rss.xml", "404")
    result = newsbot("once")
    assert result.code == 1
    assert "could not read 1 source(s): newsvision" in result.err


def test_status_into_a_closed_pipe_has_no_traceback(posted: Newsbot) -> None:
    """`newsbot status | head -1` ends quietly: no BrokenPipeError traceback."""
    command = [sys.executable, "-m", "bot", "--config", str(posted.config), "status"]
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=posted.env,
        cwd=posted.config.parent,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.readline()
        process.stdout.close()
        err = process.stderr.read().decode()
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_a_postgresql_url_without_the_extra_says_what_to_install(
    tmp_path: Path, clean_env: dict[str, str], newsbot: Newsbot
) -> None:
    """Without psycopg, a postgresql:// database names the extra to install."""
    blocker = tmp_path / "no_psycopg"
    blocker.mkdir()
    (blocker / "psycopg.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'psycopg'\", name='psycopg')\n"
    )
    text = newsbot.config.read_text().replace(
        "sqlite:///ledger.db", "postgresql+psycopg://newsbot@127.0.0.1:1/newsbot"
    )
    newsbot.config.write_text(text)
    env = {**clean_env, "PYTHONPATH": f"{blocker}:{clean_env['PYTHONPATH']}"}
    result = Newsbot(newsbot.config, env)("status")
    assert result.code != 0 and "Traceback" not in result.err
    assert "newsbot[postgres]" in result.err


def test_check_fails_fast_on_a_template_that_loops_a_billion_times(newsbot: Newsbot) -> None:
    """Three nested range(1000) loops: `check` exits 2 within seconds, naming file and line."""
    template = newsbot.config.parent / "templates" / "x.txt.j2"
    template.write_text(
        "{{ article.title }}\n{% for a in range(1000) %}{% for b in range(1000) %}"
        "{% for c in range(1000) %}{% endfor %}{% endfor %}{% endfor %}\n{{ link }}",
        encoding="utf-8",
    )
    result = newsbot("check", timeout=30)
    assert result.code == 2
    assert f"{template}:2" in result.err and "to render" in result.err
