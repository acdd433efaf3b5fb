"""Corrections and takedowns end to end through ``newsbot run``, against the local Telegram, X,
feed and a signed CMS webhook: a posted article's title is corrected in the feed, and the
Telegram post is edited in place while X gets the reply its policy says; ``history`` shows both
with the platforms' receipts; a webhook ``delete`` takes another article's posts down on both."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from bot.sources.webhook import signed_headers
from bot.testing.feed_server import FeedItem, rss
from tests.acceptance.conftest import Newsbot
from tests.acceptance.test_platforms import (
    CHAT_ID,
    TOKEN,
    X_KEYS,
    Platforms,
    platforms,
    write_config,
)
from tests.integration.test_crash import wait_for

__all__ = ["platforms"]  # the fixture: the strict Telegram and X fakes and a feed server

SECRET = "cms-TEST-webhook-signing-secret"
TITLE = "桃園捷運綠線通車日延至 2027 年 6 月，市府：工程進度達 78%"
CORRECTED = "【更正】桃園捷運綠線通車日延至 2027 年 9 月，市府：工程進度達 78%"
PUSHED = {
    "id": "cms-88123",
    "url": "https://news.example.tw/article/88123",
    "title": "立委質詢國防預算，國防部長：明年增編 1,200 億元 💰",
    "summary": "<p>國防部長今（2）日赴立法院備詢，說明明年度國防預算將增編 1,200 億元。</p>",
    "published": "2026-12-02T08:30:00+08:00",
}


def feed_item(title: str) -> FeedItem:
    return FeedItem(
        guid="newsvision-77001",
        title=title,
        link="https://news.example.tw/article/77001",
        summary_html="<p>桃園市政府今（2）日宣布，捷運綠線北段通車日期調整，工程進度達 78%。</p>",
        published=datetime(2026, 12, 2, 1, 0, tzinfo=UTC),
        categories=("交通", "地方"),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def daemon(
    tmp_path: Path, templates: Path, clean_env: dict[str, str], platforms: Platforms
) -> Iterator[tuple[Newsbot, str]]:
    """``newsbot run`` on a feed (polled every second) and a webhook, posting to both fakes;
    the newsbot for one-off commands, and the webhook's address."""
    port = free_port()
    # test_platforms' Telegram and X channels and feed, polled every second, plus the CMS.
    config = write_config(tmp_path, platforms)
    raw = yaml.safe_load(config.read_text("utf-8"))
    raw["health"] = {"listen": f"127.0.0.1:{port}"}
    raw["sources"]["newsvision"]["every"] = "1s"
    raw["sources"]["cms"] = {"kind": "webhook", "secret": "${CMS_SECRET}", "max_age": "off"}
    config.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), "utf-8")
    env = {**clean_env, "TELEGRAM_BOT_TOKEN": TOKEN, "CMS_SECRET": SECRET, **X_KEYS}
    platforms.feed.publish("/rss.xml", rss([feed_item(TITLE)]))
    log = (tmp_path / "run.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(config), "run"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp_path,
    )
    try:
        yield Newsbot(config, env), f"http://127.0.0.1:{port}/hooks/cms"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, (tmp_path / "run.log").read_text("utf-8")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        log.close()


def push(hook: str, document: dict[str, str]) -> int:
    body = json.dumps(document, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(hook, data=body, headers=signed_headers(SECRET, body))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as answer:
        return int(answer.status)


def test_a_correction_and_a_takedown_reach_telegram_and_x_through_newsbot_run(
    daemon: tuple[Newsbot, str], platforms: Platforms
) -> None:
    """Posted, then corrected in the feed: Telegram's message is edited in place to the new
    text, X gets a correction reply (its default policy), ``history`` shows both with their
    receipts; a pushed article then withdrawn by a signed webhook ``delete`` is deleted on
    both platforms."""
    newsbot, hook = daemon
    tg, x = platforms.tg, platforms.x
    wait_for(lambda: len(tg.messages) == 1 and len(x.posts) == 1, 60, "the article on both")
    [message] = tg.messages
    [tweet] = x.posts

    platforms.feed.publish("/rss.xml", rss([feed_item(CORRECTED)]))
    wait_for(lambda: bool(tg.edits and x.replies), 60, "the correction on both")
    now = tg.current(CHAT_ID, message.message_id)
    assert now is not None and CORRECTED in now.plain and TITLE not in now.plain
    assert len(tg.messages) == 1  # edited in place, nothing new posted
    [reply] = x.replies
    assert reply.reply_to == tweet.id and "更正" in reply.text
    assert x.current(tweet.id) == tweet.text  # X's original stays as it was

    history = newsbot("history", "https://news.example.tw/article/77001")
    assert history.code == 0, history.err
    assert CORRECTED in history.out
    assert "edit" in history.out and "reply" in history.out
    assert str(message.message_id) in history.out and reply.id in history.out

    assert push(hook, {**PUSHED, "action": "create"}) == 202
    wait_for(lambda: len(tg.messages) == 2 and len(x.posts) == 3, 60, "the pushed article on both")
    pushed_message = tg.messages[1]
    pushed_tweet = next(p for p in x.posts if "國防" in p.text)
    assert push(hook, {"action": "delete", "id": PUSHED["id"], "reason": "當事人要求撤下"}) == 202
    wait_for(
        lambda: (
            tg.current(CHAT_ID, pushed_message.message_id) is None
            and x.current(pushed_tweet.id) is None
        ),
        60,
        "the takedown on both",
    )
    assert tg.current(CHAT_ID, message.message_id) is not None  # the other article stays up
    history = newsbot("history", PUSHED["url"])
    assert history.code == 0, history.err
    assert history.out.count("delete") >= 2 and "當事人要求撤下" in history.out
