"""Threads, Facebook Pages and Telegram forum topics end to end through the `newsbot` command,
against the strict local servers: a Traditional Chinese feed reaches each network exactly once
per article, within each platform's limit as the platform's fake measures it, links intact;
categories are routed to forum topics; `check --online` verifies without posting."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from bot.testing.facebook_server import FACEBOOK_LIMIT, FakeFacebook
from bot.testing.feed_server import FeedServer, rss
from bot.testing.telegram_server import FakeTelegram
from bot.testing.threads_server import THREADS_LIMIT, FakeThreads, threads_count
from tests.acceptance.conftest import Newsbot
from tests.acceptance.test_platforms import articles, canonical

THREADS_TOKEN = "THAA-TEST-threads-secret-value"
PAGE_TOKEN = "EAAG-TEST-page-secret-value"
TG_TOKEN = "777002:TEST-topic-secret-token"
PAGE_ID = "104000000000042"
GROUP = -1005550001111
SECRETS = (THREADS_TOKEN, PAGE_TOKEN, TG_TOKEN)


@dataclass
class Networks:
    threads: FakeThreads
    facebook: FakeFacebook
    tg: FakeTelegram
    feed: FeedServer
    diplomacy: int = 0
    local: int = 0


@pytest.fixture
def networks() -> Iterator[Networks]:
    with (
        FakeThreads(token=THREADS_TOKEN) as threads,
        FakeFacebook(token=PAGE_TOKEN, page_id=PAGE_ID) as facebook,
        FakeTelegram(token=TG_TOKEN, chats={str(GROUP): GROUP}) as tg,
        FeedServer() as feed,
    ):
        found = Networks(threads, facebook, tg, feed)
        found.diplomacy = tg.add_topic(GROUP, "城市外交")
        found.local = tg.add_topic(GROUP, "地方")
        yield found


def make_newsbot(
    tmp_path: Path, templates: Path, clean_env: dict[str, str], net: Networks
) -> Newsbot:
    feed = net.feed.url_for("/rss.xml")
    common = {
        "kind": "feed",
        "url": feed,
        "allow_private": ["127.0.0.1"],
        "backlog": 10,
        "max_age": "off",
        "timeout": "5s",
    }
    topic = {
        "kind": "telegram",
        "token": "${TG_TOKEN}",
        "chat": str(GROUP),
        "template": "telegram.html.j2",
        "api_url": net.tg.url,
        "rate": "off",
    }
    raw = {
        "timezone": "Asia/Taipei",
        "database": "sqlite:///ledger.db",
        "templates": "templates",
        "sources": {
            "newsvision": {**common, "channels": ["threads", "facebook"], "excerpt_length": 600},
            # One feed, two routes by category: each into its own forum topic.
            "diplomacy": {
                **common,
                "channels": ["topic_diplomacy"],
                "filters": {"include_categories": ["城市外交"]},
            },
            "local": {
                **common,
                "channels": ["topic_local"],
                "filters": {"include_categories": ["地方"]},
            },
        },
        "channels": {
            "threads": {
                "kind": "threads",
                "access_token": "${THREADS_TOKEN}",
                "template": "threads.txt.j2",
                "api_url": net.threads.url,
                "rate": "off",
            },
            "facebook": {
                "kind": "facebook",
                "page_id": PAGE_ID,
                "access_token": "${PAGE_TOKEN}",
                "template": "facebook.txt.j2",
                "api_url": net.facebook.url,
                "rate": "off",
            },
            "topic_diplomacy": {**topic, "topic": net.diplomacy},
            "topic_local": {**topic, "thread_id": net.local},
        },
    }
    path = tmp_path / "newsbot.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    env = {
        **clean_env,
        "THREADS_TOKEN": THREADS_TOKEN,
        "PAGE_TOKEN": PAGE_TOKEN,
        "TG_TOKEN": TG_TOKEN,
    }
    return Newsbot(path, env)


def test_feed_reaches_threads_facebook_and_topics_once_each(
    tmp_path: Path, templates: Path, clean_env: dict[str, str], networks: Networks
) -> None:
    """Four articles: once each on Threads and the Page, within 500 (Threads' count) and
    63,206, the link whole in the text and as the card; categories in their topics; a second
    run sends nothing."""
    items = articles()
    networks.feed.publish("/rss.xml", rss(items))
    newsbot = make_newsbot(tmp_path, templates, clean_env, networks)

    run = newsbot("once")
    again = newsbot("once")

    assert run.code == 0, run.err
    assert again.code == 0 and "0 sent" in again.err
    threads, facebook = networks.threads, networks.facebook
    assert len(threads.posts) == 4 and len(facebook.posts) == 4
    for item in items:
        link = canonical(item)
        on_threads = [p for p in threads.posts if p.link_attachment == link]
        on_page = [p for p in facebook.posts if p.link == link]
        assert len(on_threads) == 1 and len(on_page) == 1, item.title
        (post,), (page_post,) = on_threads, on_page
        assert link in post.text.split() and link in page_post.message.split()
        assert post.text.startswith(f"【{item.title}】")
        assert threads_count(post.text) == post.length <= THREADS_LIMIT
        assert page_post.length <= FACEBOOK_LIMIT
    assert threads.published_containers() == list(threads.containers)
    assert "🎉🇵🇱" in threads.posts[1].text

    diplomacy = networks.tg.messages_in_topic(GROUP, networks.diplomacy)
    local = networks.tg.messages_in_topic(GROUP, networks.local)
    assert len(diplomacy) == 3 and len(local) == 1
    assert local[0].plain.startswith("住桃園很可以！")
    assert len(networks.tg.messages) == 4
    for result in (run, again):
        for secret in SECRETS:
            assert secret not in result.out + result.err


def test_check_online_verifies_meta_credentials_without_posting(
    tmp_path: Path, templates: Path, clean_env: dict[str, str], networks: Networks
) -> None:
    """`check --online` names the Threads profile and its quota, and the Page; posts nothing.
    An expired token is named as such for its channel, the token itself never shown."""
    newsbot = make_newsbot(tmp_path, templates, clean_env, networks)

    good = newsbot("check", "--online")
    networks.threads.expire_token()
    bad = newsbot("check", "--online")

    assert good.code == 0, good.err
    assert "channel threads: credentials accepted (@newsvision.tw" in good.out
    assert "0 of 250 posts in the last 24 h" in good.out
    assert "channel facebook: credentials accepted (新聞視界 News Vision" in good.out
    assert networks.threads.containers == {} and networks.facebook.posts == []
    assert bad.code != 0
    assert "channel threads: Threads (code 190, subcode 463) rejected the access token" in bad.err
    for secret in SECRETS:
        assert secret not in good.out + good.err + bad.out + bad.err
