"""One Traditional Chinese feed to all six kinds of channel at once, through the `newsbot`
command against the strict local servers: each article exactly once per network, each post
within its platform's limit as the platform's fake measures it, every link whole."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from bot.testing.bluesky_server import FakeBluesky
from bot.testing.facebook_server import FACEBOOK_LIMIT, FakeFacebook
from bot.testing.feed_server import FeedServer, rss
from bot.testing.mastodon_server import FakeMastodon, countable_length
from bot.testing.telegram_server import FakeTelegram
from bot.testing.threads_server import THREADS_LIMIT, FakeThreads, threads_count
from bot.testing.x_server import FakeX, weighted_length
from tests.acceptance.conftest import Newsbot
from tests.acceptance.test_platforms import (
    TOKEN,
    X_KEYS,
    Platforms,
    articles,
    canonical,
    one_message_per_article,
    one_post_per_article,
    platforms,  # noqa: F401  (the Telegram and X fakes and the feed, as a fixture)
)

APP_PASSWORD = "TEST-six-bsky-app-pass"
MASTO_TOKEN = "TEST-six-masto-token"
THREADS_TOKEN = "THAA-TEST-six-threads-token"
PAGE_TOKEN = "EAAG-TEST-six-page-token"
PAGE_ID = "104000000000077"
SECRETS = (TOKEN, APP_PASSWORD, MASTO_TOKEN, THREADS_TOKEN, PAGE_TOKEN, *X_KEYS.values())


@dataclass
class Six:
    tg: FakeTelegram
    x: FakeX
    threads: FakeThreads
    facebook: FakeFacebook
    bsky: FakeBluesky
    masto: FakeMastodon
    feed: FeedServer


@pytest.fixture
def six(platforms: Platforms) -> Iterator[Six]:  # noqa: F811 (the imported fixture)
    """Every platform's fake and the newsroom's feed, each on 127.0.0.1."""
    with (
        FakeThreads(token=THREADS_TOKEN) as threads,
        FakeFacebook(token=PAGE_TOKEN, page_id=PAGE_ID) as facebook,
        FakeBluesky(app_password=APP_PASSWORD) as bsky,
        FakeMastodon(access_token=MASTO_TOKEN) as masto,
    ):
        yield Six(platforms.tg, platforms.x, threads, facebook, bsky, masto, platforms.feed)


def newsbot_for(tmp_path: Path, clean_env: dict[str, str], six: Six) -> Newsbot:
    fast = {"rate": "100/s", "burst": 10}
    raw = {
        "timezone": "Asia/Taipei",
        "database": "sqlite:///ledger.db",
        "templates": "templates",
        "sources": {
            "newsvision": {
                "kind": "feed",
                "url": six.feed.url_for("/rss.xml"),
                "allow_private": ["127.0.0.1"],
                "backlog": 10,
                "max_age": "off",
                "strip": ["新聞視界時報\\s*記者\\s*\\S+\\s*整理報導"],
            }
        },
        "channels": {
            "telegram": {
                "kind": "telegram",
                "token": "${TELEGRAM_BOT_TOKEN}",
                "chat": "@newsvision",
                "template": "telegram.html.j2",
                "api_url": six.tg.url,
                "tracking": {"utm_source": "telegram", "utm_medium": "social"},
                **fast,
            },
            "x": {
                "kind": "x",
                "consumer_key": "${X_CONSUMER_KEY}",
                "consumer_secret": "${X_CONSUMER_SECRET}",
                "access_token": "${X_ACCESS_TOKEN}",
                "access_token_secret": "${X_ACCESS_TOKEN_SECRET}",
                "template": "x.txt.j2",
                "api_url": six.x.url,
                **fast,
            },
            "threads": {
                "kind": "threads",
                "access_token": "${THREADS_TOKEN}",
                "template": "threads.txt.j2",
                "api_url": six.threads.url,
                **fast,
            },
            "facebook": {
                "kind": "facebook",
                "page_id": PAGE_ID,
                "access_token": "${PAGE_TOKEN}",
                "template": "facebook.txt.j2",
                "api_url": six.facebook.url,
                **fast,
            },
            "bluesky": {
                "kind": "bluesky",
                "handle": six.bsky.handle,
                "app_password": "${BLUESKY_APP_PASSWORD}",
                "pds_url": six.bsky.url,
                "template": "bluesky.txt.j2",
                **fast,
            },
            "mastodon": {
                "kind": "mastodon",
                "instance_url": six.masto.url,
                "access_token": "${MASTODON_ACCESS_TOKEN}",
                "template": "mastodon.txt.j2",
                **fast,
            },
        },
    }
    path = tmp_path / "newsbot.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    env = {
        **clean_env,
        **X_KEYS,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "THREADS_TOKEN": THREADS_TOKEN,
        "PAGE_TOKEN": PAGE_TOKEN,
        "BLUESKY_APP_PASSWORD": APP_PASSWORD,
        "MASTODON_ACCESS_TOKEN": MASTO_TOKEN,
    }
    return Newsbot(path, env)


def test_one_feed_reaches_all_six_networks_once_each_within_their_limits(
    tmp_path: Path, templates: Path, clean_env: dict[str, str], six: Six
) -> None:
    """Four Chinese articles, six networks: 24 posts, one per article and network, each within
    the limit as that platform's fake counts it, the link whole; a second run sends nothing
    and no secret is printed."""
    items = articles()
    six.feed.publish("/rss.xml", rss(items))
    newsbot = newsbot_for(tmp_path, clean_env, six)

    run = newsbot("once")
    again = newsbot("once")

    assert run.code == 0, run.err
    assert "24 sent" in run.err, run.err
    assert again.code == 0 and "0 sent" in again.err, again.err
    one_message_per_article(six.tg, items)
    for post in one_post_per_article(six.x, items).values():
        assert weighted_length(post.text) <= 280
    for item in items:
        link = canonical(item)
        on_threads = [p for p in six.threads.posts if p.link_attachment == link]
        assert len(on_threads) == 1, item.title
        assert threads_count(on_threads[0].text) <= THREADS_LIMIT
        assert link in on_threads[0].text.split()
        on_page = [p for p in six.facebook.posts if p.link == link]
        assert len(on_page) == 1 and on_page[0].length <= FACEBOOK_LIMIT, item.title
        on_bsky = [p for p in six.bsky.posts if any(v == link for _, _, v in p.facet_texts())]
        assert len(on_bsky) == 1, item.title
        assert on_bsky[0].graphemes <= 300 and on_bsky[0].size <= 3000
        on_masto = [s for s in six.masto.statuses if link in s.text.split()]
        assert len(on_masto) == 1, item.title
        assert countable_length(on_masto[0].text, 23) <= 500
    for result in (run, again):
        for secret in SECRETS:
            assert secret not in result.out + result.err
