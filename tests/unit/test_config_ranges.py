"""Hostile config values: empty secrets, out-of-range numbers, YAML bombs. One message each."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.config import load_config
from tests.unit.test_config import ENV, GOOD, error_for, write


@pytest.mark.parametrize(
    ("variable", "key", "line"),
    [
        ("TG_TOKEN", "channels.telegram.token", 15),
        ("XK", "channels.x.consumer_key", 20),
        ("XTS", "channels.x.access_token_secret", 23),
    ],
)
@pytest.mark.parametrize("empty", ["", "   "])
def test_an_empty_token_is_an_error_naming_its_key(
    tmp_path: Path, variable: str, key: str, line: int, empty: str
) -> None:
    """A token or key set but empty (or blank) in the environment is refused at its key."""
    error = error_for(tmp_path, GOOD, {**ENV, variable: empty})
    assert error.key == key
    assert f"newsbot.yaml:{line}" in str(error) and "empty" in str(error)


WEBHOOK = GOOD.replace(
    "sources:\n",
    "sources:\n  cms:\n    kind: webhook\n    secret: ${CMS_SECRET:-}\n",
).replace("channels:\n  telegram", "health: {listen: 127.0.0.1:0}\nchannels:\n  telegram")


def test_an_empty_webhook_secret_is_an_error(tmp_path: Path) -> None:
    """``secret: ${X:-}`` with X unset, or X set but empty, never makes a webhook with key ''."""
    for environ in (ENV, {**ENV, "CMS_SECRET": ""}):
        error = error_for(tmp_path, WEBHOOK, environ)
        assert error.key == "sources.cms.secret" and "newsbot.yaml:7" in str(error)
    assert load_config(write(tmp_path, WEBHOOK), environ={**ENV, "CMS_SECRET": "s3cret!"})


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("every: 2m", "every: -5", "sources.newsvision.every"),
        ("every: 2m", "every: 0s", "sources.newsvision.every"),
        ("every: 2m", "every: 250ms", "sources.newsvision.every"),
        ("every: 2m", "every: 99999999999d", "sources.newsvision.every"),
        ("every: 2m", "every: .inf", "sources.newsvision.every"),
        ("max_age: 24h", "max_age: 0s", "sources.newsvision.max_age"),
        ("every: 2m", "every: 2m\n    timeout: 0s", "sources.newsvision.timeout"),
        (
            "every: 2m",
            "every: 2m\n    max_bytes: 99999999999999999999999",
            "sources.newsvision.max_bytes",
        ),
        ("every: 2m", "every: 2m\n    max_bytes: 0", "sources.newsvision.max_bytes"),
        ("backlog: 0", "backlog: -1", "sources.newsvision.backlog"),
        ("template: x.txt.j2", "template: x.txt.j2\n    min_gap: -10", "channels.x.min_gap"),
        ("template: x.txt.j2", "template: x.txt.j2\n    rate: 5/0s", "channels.x.rate"),
        (
            "template: x.txt.j2",
            "template: x.txt.j2\n    price_per_post: .nan",
            "channels.x.price_per_post",
        ),
        (
            "template: x.txt.j2",
            "template: x.txt.j2\n    max_attempts: 99999999999",
            "channels.x.max_attempts",
        ),
        ("timezone: Asia/Taipei", "timezone: Asia/Taipei\nretention: 0s", "retention"),
        ("timezone: Asia/Taipei", "timezone: Asia/Taipei\nstop_timeout: -1s", "stop_timeout"),
    ],
)
def test_out_of_range_numbers_are_one_message_at_their_key(
    tmp_path: Path, old: str, new: str, key: str
) -> None:
    """Each duration, count and size outside its sane range is a ConfigError at file:line:key."""
    error = error_for(tmp_path, GOOD.replace(old, new, 1))
    assert error.key == key
    assert error.where is not None and error.where.startswith(str(tmp_path / "newsbot.yaml") + ":")
    assert any(word in str(error) for word in ("expected", "less than", "greater than", "finite"))


def test_values_at_the_edges_of_the_ranges_are_accepted(tmp_path: Path) -> None:
    """The ranges refuse mistakes only: a 1 s poll, a zero gap and a 1 GiB cap are fine."""
    text = GOOD.replace("every: 2m", "every: 1s\n    max_bytes: 1073741824").replace(
        "template: x.txt.j2", "template: x.txt.j2\n    min_gap: 0s"
    )
    config = load_config(write(tmp_path, text), environ=ENV)
    assert config.sources["newsvision"].every.total_seconds() == 1


def test_sources_as_a_list_is_a_clean_error(tmp_path: Path) -> None:
    """``sources: [a, b]`` says a mapping was expected, at the ``sources`` key."""
    head, tail = GOOD.split("sources:")[0], GOOD.split("channels:")[1]
    text = head + "sources: [a, b]\nchannels:" + tail
    error = error_for(tmp_path, text)
    assert error.key == "sources" and "dictionary" in str(error)


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    """Billion laughs (nine levels of nine aliases) is one message naming the file, in seconds."""
    levels = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, 10):
        levels.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]")
    # CPU time, not wall time: a loaded machine must not fail it, an expanding bomb would.
    started = time.process_time()
    error = error_for(tmp_path, "\n".join(levels) + "\n" + GOOD)
    assert time.process_time() - started < 5
    assert "alias" in str(error) and str(tmp_path / "newsbot.yaml") in str(error)


def test_a_recursive_anchor_and_deep_nesting_are_refused(tmp_path: Path) -> None:
    """A self-referencing anchor and 10,000 nested lists are one message, not a RecursionError."""
    assert "deeper" in str(error_for(tmp_path, "x: &x [*x]\n" + GOOD))
    assert "nested" in str(error_for(tmp_path, "x: " + "[" * 10_000 + "]" * 10_000 + "\n" + GOOD))
