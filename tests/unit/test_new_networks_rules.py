"""Rules of the newer networks as pure values: rate windows, Threads' count, their configs."""

from __future__ import annotations

import itertools
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.compose.length import THREADS_POST, prefix_weights, threads_length, total_weight
from bot.config import (
    BlueskyChannelConfig,
    FacebookChannelConfig,
    MastodonChannelConfig,
    Rate,
    TelegramChannelConfig,
    ThreadsChannelConfig,
    XChannelConfig,
    load_config,
)
from bot.errors import ConfigError
from bot.pacing import Room, Window, room
from bot.testing.threads_server import threads_count

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
X_WINDOWS = (Window(200, timedelta(minutes=15)), Window(300, timedelta(hours=3)))


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def post_until_refused(clock: Clock, windows: tuple[Window, ...], started: list[datetime]) -> Room:
    """Posts one at a time, as the ledger would let them, until the windows refuse."""
    while True:
        left = room(windows, now=clock.now, started=started)
        if not left.posts:
            return left
        started.insert(0, clock.now)
        clock.advance(1)


# ------------------------------------------------------------------------------- rate windows


def test_no_window_means_no_limit() -> None:
    """No configured window: room is unlimited (None)."""
    assert room((), now=T0, started=[T0] * 10) == Room(None)


def test_the_short_window_refuses_first_and_opens_when_its_oldest_leaves() -> None:
    """200 posts in 200 s fill the 15-minute window; the next may go when the first of them is
    15 minutes old, not before."""
    clock = Clock()
    started: list[datetime] = []
    refused = post_until_refused(clock, X_WINDOWS, started)
    assert len(started) == 200
    assert refused.opens_at == T0 + timedelta(minutes=15)
    clock.now = T0 + timedelta(minutes=15) - timedelta(seconds=1)
    assert room(X_WINDOWS, now=clock.now, started=started).posts == 0
    clock.now = T0 + timedelta(minutes=15)
    assert room(X_WINDOWS, now=clock.now, started=started).posts == 1


def test_the_long_window_holds_although_every_short_one_has_room() -> None:
    """Posting as fast as 200/15m allows, the 300/3h window stops the 301st, and it opens
    three hours after the first post."""
    clock = Clock()
    started: list[datetime] = []
    refused = post_until_refused(clock, X_WINDOWS, started)
    clock.now = refused.opens_at or clock.now
    refused = post_until_refused(clock, X_WINDOWS, started)
    assert len(started) == 300
    recent = [t for t in started if t > clock.now - timedelta(minutes=15)]
    assert len(recent) < 200, "the 15-minute window alone would have allowed more"
    assert refused.opens_at == T0 + timedelta(hours=3)


def test_posts_in_flight_count_in_every_window() -> None:
    """Two sends in flight use two places of a 2/min window: no room, opening a minute on."""
    windows = (Window(2, timedelta(minutes=1)),)
    left = room(windows, now=T0, started=[], in_flight=2)
    assert left == Room(0, T0 + timedelta(minutes=1))
    assert room(windows, now=T0, started=[], in_flight=1).posts == 1


@given(
    st.lists(st.integers(min_value=0, max_value=4 * 3600), max_size=400),
    st.integers(min_value=0, max_value=4 * 3600),
)
def test_room_never_lets_a_window_overflow(offsets: list[int], at: int) -> None:
    """Whatever happened before, posting the room given now keeps every window within count."""
    now = T0 + timedelta(seconds=at)
    started = sorted((T0 + timedelta(seconds=o) for o in offsets if o < at), reverse=True)
    left = room(X_WINDOWS, now=now, started=started)
    allowed = left.posts or 0
    for window in X_WINDOWS:
        inside = sum(1 for t in started if t > now - window.period)
        assert inside + allowed <= max(window.count, inside)


# --------------------------------------------------------------------------- Threads' count


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("高雄港", 3),
        ("👍", 4),
        ("❤️", 6),  # U+2764 U+FE0F: 3 + 3 bytes
        ("🇹🇼", 8),
        ("👨‍👩‍👧", 18),
        ("港口 🚢 合作", 10),
        ("https://news.example.tw/a?b=1", 29),
    ],
)
def test_threads_length_counts_emoji_as_utf8_bytes(text: str, count: int) -> None:
    """Threads: one per character, an emoji its UTF-8 bytes; the fake agrees."""
    assert threads_length(text) == count
    assert threads_count(text) == count


@given(st.text(st.sampled_from([*"高雄港口，。「」ab 1🚢👍❤️🇹🇼", "\ufe0f"]), max_size=80))
def test_threads_prefix_weights_agree_with_the_count(text: str) -> None:
    """The fitter's cumulative weights end at the measured count, and never overstate it
    short of a whole emoji."""
    weights = prefix_weights(text, "threads")
    assert weights[-1] == total_weight(text, "threads") == THREADS_POST.measure(text)
    assert all(a <= b for a, b in itertools.pairwise(weights))


# ------------------------------------------------------------------------------------ config

CONFIG = """\
sources:
  news: {{kind: feed, url: "https://news.example.tw/rss.xml"}}
channels:
{channels}
"""


def load(tmp_path: Path, channels: str, env: dict[str, str] | None = None) -> object:
    path = tmp_path / "newsbot.yaml"
    path.write_text(CONFIG.format(channels=textwrap.indent(channels, "  ")), encoding="utf-8")
    return load_config(path, environ=env or {})


def test_rate_accepts_a_list_of_windows(tmp_path: Path) -> None:
    """rate: [200/15m, 300/3h] keeps both; the tightest spaces posts evenly."""
    config = load(
        tmp_path,
        "x: {kind: x, consumer_key: a, consumer_secret: b, access_token: c, "
        "access_token_secret: d, template: x.txt.j2, rate: [200/15m, 300/3h]}\n",
    )
    settings = config.channels["x"]  # type: ignore[attr-defined]
    assert settings.effective_rates == (
        Rate(200, timedelta(minutes=15)),
        Rate(300, timedelta(hours=3)),
    )
    assert settings.effective_rate == Rate(300, timedelta(hours=3))


@pytest.mark.parametrize("bad", ["[]", "[200/15m, off]", "[200/15m, sometimes]"])
def test_bad_rate_lists_are_refused_readably(tmp_path: Path, bad: str) -> None:
    """An empty list, `off` inside a list, or a bad entry: one message at channels.x.rate."""
    with pytest.raises(ConfigError) as caught:
        load(
            tmp_path,
            "x: {kind: x, consumer_key: a, consumer_secret: b, access_token: c, "
            f"access_token_secret: d, template: x.txt.j2, rate: {bad}}}\n",
        )
    assert "channels.x.rate" in str(caught.value)


def test_platform_defaults_follow_2026_documentation() -> None:
    """X: 200/15m and 300/3h, $0.015 a post, $0.20 with a link; Threads 250/24h; Facebook's
    Business Use Case floor 4800/24h; Telegram 20/min."""
    x = XChannelConfig(
        kind="x",
        consumer_key="a",  # type: ignore[arg-type]
        consumer_secret="b",  # type: ignore[arg-type]
        access_token="c",  # type: ignore[arg-type]
        access_token_secret="d",  # type: ignore[arg-type]
        template="x.txt.j2",
    )
    assert x.effective_rates == (Rate(200, timedelta(minutes=15)), Rate(300, timedelta(hours=3)))
    assert (x.price_per_post, x.price_per_link_post) == (0.015, 0.20)
    threads = ThreadsChannelConfig(kind="threads", access_token="t", template="t")  # type: ignore[arg-type]
    assert threads.effective_rates == (Rate(250, timedelta(hours=24)),)
    facebook = FacebookChannelConfig(
        kind="facebook",
        page_id="1",
        access_token="t",  # type: ignore[arg-type]
        template="f",
    )
    assert facebook.effective_rates == (Rate(4800, timedelta(hours=24)),)
    assert facebook.graph_version == "v21.0"


def test_empty_tokens_are_refused(tmp_path: Path) -> None:
    """An access token that came out empty from the environment is a config error, not a 190
    at the first post."""
    for entry in (
        "t: {kind: threads, access_token: '${THREADS_TOKEN}', template: threads.txt.j2}\n",
        "f: {kind: facebook, page_id: '1', access_token: '${FB}', template: facebook.txt.j2}\n",
    ):
        with pytest.raises(ConfigError) as caught:
            load(tmp_path, entry, {"THREADS_TOKEN": "", "FB": " "})
        assert "this secret is empty" in str(caught.value)


@pytest.mark.parametrize(
    ("entry", "where"),
    [
        ("f: {kind: facebook, page_id: mypage, access_token: t, template: f}\n", "page_id"),
        (
            "f: {kind: facebook, page_id: '1', access_token: t, template: f, graph_version: 21}\n",
            "graph_version",
        ),
        ("t: {kind: threads, access_token: t, template: t, user_id: '@me'}\n", "user_id"),
    ],
)
def test_bad_meta_settings_name_the_key(tmp_path: Path, entry: str, where: str) -> None:
    """A page name instead of its id, a version without v, a handle for the user id."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, entry)
    assert where in str(caught.value)


def test_telegram_topic_and_its_alias(tmp_path: Path) -> None:
    """topic: or thread_id: sets message_thread_id; two entries may share a chat."""
    config = load(
        tmp_path,
        "politics: {kind: telegram, token: t, chat: '-1001234', template: t, topic: 7}\n"
        "sports: {kind: telegram, token: t, chat: '-1001234', template: t, thread_id: 9}\n",
    )
    topics = [c.topic for c in config.channels.values()]  # type: ignore[attr-defined]
    assert topics == [7, 9]
    assert all(isinstance(c, TelegramChannelConfig) for c in config.channels.values())  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("template", "rules"),
    [
        ("telegram.html.j2", "telegram"),
        ("threads.txt.j2", "threads"),
        ("desk/facebook-long.txt.j2", "facebook"),
        ("x.txt.j2", "x"),
    ],
)
def test_console_measures_as_the_template_is_named(template: str, rules: str) -> None:
    """A console channel previewing threads.txt.j2 counts as Threads does, and so on."""
    from bot.config import ConsoleChannelConfig

    assert ConsoleChannelConfig(kind="console", template=template).rules == rules


def test_bluesky_and_mastodon_are_paced_by_default() -> None:
    """Left without `rate`, Bluesky posts at most 30 per 10 minutes and Mastodon 30 per 30
    minutes: their documented limits reach the pacing like every other platform's."""
    bluesky = BlueskyChannelConfig(
        kind="bluesky",
        handle="newsvision.bsky.social",
        app_password="abcd-efgh-ijkl-mnop",  # type: ignore[arg-type]
        template="bluesky.txt.j2",
    )
    assert bluesky.effective_rates == (Rate(30, timedelta(minutes=10)),)
    mastodon = MastodonChannelConfig(
        kind="mastodon",
        instance_url="https://mastodon.example.tw",
        access_token="t",  # type: ignore[arg-type]
        template="mastodon.txt.j2",
    )
    assert mastodon.effective_rates == (Rate(30, timedelta(minutes=30)),)
