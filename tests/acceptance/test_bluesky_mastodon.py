"""Bluesky and Mastodon end to end through the `newsbot` command, against the strict local
servers: each Traditional Chinese article reaches each network exactly once, within the limit as
the server itself measures it (graphemes, bytes and facet byte ranges on Bluesky; URL weighting
on Mastodon), the link whole; `check --online` verifies both accounts without posting."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from bot.testing.bluesky_server import FakeBluesky
from bot.testing.feed_server import FeedServer, rss
from bot.testing.mastodon_server import FakeMastodon, countable_length
from tests.acceptance.conftest import Newsbot
from tests.acceptance.test_platforms import articles, canonical

APP_PASSWORD = "TEST-bsky-app-pass-0001"
MASTO_TOKEN = "TEST-masto-token-value-0002"


@dataclass
class Networks:
    bsky: FakeBluesky
    masto: FakeMastodon
    feed: FeedServer


@pytest.fixture
def networks() -> Iterator[Networks]:
    """The two fakes (Mastodon with a small 150-character instance) and a feed server."""
    with (
        FakeBluesky(app_password=APP_PASSWORD) as bsky,
        FakeMastodon(access_token=MASTO_TOKEN, max_characters=150) as masto,
        FeedServer() as feed,
    ):
        yield Networks(bsky, masto, feed)


def newsbot_for(tmp_path: Path, clean_env: dict[str, str], networks: Networks) -> Newsbot:
    raw = {
        "timezone": "Asia/Taipei",
        "database": "sqlite:///ledger.db",
        "templates": "templates",
        "sources": {
            "newsvision": {
                "kind": "feed",
                "url": networks.feed.url_for("/rss.xml"),
                "allow_private": ["127.0.0.1"],
                "backlog": 10,
                "max_age": "off",
                "excerpt_length": 400,
                "strip": ["新聞視界時報\\s*記者\\s*\\S+\\s*整理報導"],
            }
        },
        "channels": {
            "bluesky": {
                "kind": "bluesky",
                "handle": networks.bsky.handle,
                "app_password": "${BLUESKY_APP_PASSWORD}",
                "pds_url": networks.bsky.url,
                "template": "bluesky.txt.j2",
                "rate": "100/s",
                "burst": 10,
            },
            "mastodon": {
                "kind": "mastodon",
                "instance_url": networks.masto.url,
                "access_token": "${MASTODON_ACCESS_TOKEN}",
                "template": "mastodon.txt.j2",
                "visibility": "unlisted",
                "rate": "100/s",
                "burst": 10,
            },
        },
    }
    path = tmp_path / "newsbot.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    env = {
        **clean_env,
        "BLUESKY_APP_PASSWORD": APP_PASSWORD,
        "MASTODON_ACCESS_TOKEN": MASTO_TOKEN,
    }
    return Newsbot(path, env)


def test_each_article_once_within_limits_links_intact(
    tmp_path: Path, templates: Path, clean_env: dict[str, str], networks: Networks
) -> None:
    """Four Chinese articles: one post each on Bluesky and Mastodon, accepted by the strict
    servers, within limit as they count, every link whole (facet URI, Mastodon text)."""
    items = articles()
    networks.feed.publish("/rss.xml", rss(items))
    newsbot = newsbot_for(tmp_path, clean_env, networks)

    run = newsbot("once")
    again = newsbot("once")

    assert run.code == 0, run.err
    assert "8 sent" in run.err, run.err
    assert again.code == 0 and "0 sent" in again.err
    bsky, masto = networks.bsky, networks.masto
    assert [a.status for a in bsky.calls("com.atproto.repo.createRecord")] == [200] * 4
    assert [a.status for a in masto.calls("/api/v1/statuses")] == [200] * 4
    # One login per run, not one per post.
    assert bsky.logins == 2
    for item in items:
        link = canonical(item)
        posts = [p for p in bsky.posts if any(v == link for _, _, v in p.facet_texts())]
        assert len(posts) == 1, f"{item.title}: {len(posts)} Bluesky posts"
        post = posts[0]
        assert post.graphemes <= 300 and post.size <= 3000
        assert post.text.startswith(f"【{item.title}】"), post.text
        assert post.record["embed"]["external"]["uri"] == link
        assert post.record["embed"]["external"]["title"] == item.title
        assert post.record["langs"] == ["zh-TW"]
        # CJK before the link: its byte offset is far from its code point offset.
        (link_facet,) = [f for f in post.record["facets"] if "uri" in f["features"][0]]
        start = link_facet["index"]["byteStart"]
        assert start > len(post.text.encode("utf-8")[:start].decode("utf-8")) + 10
        statuses = [s for s in masto.statuses if link in s.text.split()]
        assert len(statuses) == 1, f"{item.title}: {len(statuses)} Mastodon statuses"
        status = statuses[0]
        assert status.length == countable_length(status.text, 23) <= 150
        assert status.visibility == "unlisted" and status.language == "zh-TW"
    # The long article is fitted with an ellipsis on the 150-character instance, and its link,
    # longer than 23 characters, counted as 23.
    long_status = next(s for s in masto.statuses if canonical(items[2]) in s.text)
    assert "…" in long_status.text and long_status.length > 120
    assert len(long_status.text) > 150


def test_check_online_verifies_both_accounts_without_posting(
    tmp_path: Path, templates: Path, clean_env: dict[str, str], networks: Networks
) -> None:
    """`check --online` logs in to Bluesky and asks Mastodon who the token is; nothing posted;
    a wrong app password is named by channel, the secret never printed."""
    newsbot = newsbot_for(tmp_path, clean_env, networks)

    good = newsbot("check", "--online")
    bad = Newsbot(newsbot.config, {**newsbot.env, "BLUESKY_APP_PASSWORD": "TEST-wrong-pass-9"})
    wrong = bad("check", "--online")

    assert good.code == 0, good.err
    assert "channel bluesky: credentials accepted (@newsvision.bsky.social" in good.out
    assert "channel mastodon: credentials accepted (@newsvision@127.0.0.1" in good.out
    assert not networks.bsky.posts and not networks.masto.statuses
    assert wrong.code != 0
    assert "channel bluesky: Bluesky refused the login" in wrong.err
    assert "TEST-wrong-pass-9" not in wrong.err + wrong.out
