"""Telegram and X end to end through the `newsbot` command, against the strict local servers:
a full run delivers each Traditional Chinese article exactly once per platform with its markup
and links intact; no secret reaches any output or the ledger, with right or wrong credentials;
`check --online` verifies credentials without posting and names the misconfigured channel."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from bot import cli, logs
from bot.testing.feed_server import FeedItem, FeedServer, rss
from bot.testing.telegram_server import FakeTelegram, SentMessage
from bot.testing.x_server import FakeX, XPost, weighted_length
from tests.acceptance.conftest import Newsbot, Result

TAIPEI = timezone(timedelta(hours=8))
CHAT_ID = -1001234567890

# Neither looks like a real bot token (`<8-10 digits>:<35 characters>`), nor like what the
# redactor's token pattern masks on its own: only the config-value redaction can hide them.
TOKEN = "777000:TEST-secret-token-value-xyz"
WRONG_TOKEN = "777001:TEST-wrong-token-value-abc"
X_KEYS = {
    "X_CONSUMER_KEY": "ck-TEST-newsvision-key",
    "X_CONSUMER_SECRET": "cs-TEST-consumer-secret-value",
    "X_ACCESS_TOKEN": "at-TEST-access-token-value",
    "X_ACCESS_TOKEN_SECRET": "ats-TEST-access-secret-value",
}
WRONG_X_SECRETS = {
    "X_CONSUMER_SECRET": "cs-TEST-WRONG-consumer-secret",
    "X_ACCESS_TOKEN_SECRET": "ats-TEST-WRONG-access-secret",
}
ALL_SECRETS = (TOKEN, WRONG_TOKEN, *X_KEYS.values(), *WRONG_X_SECRETS.values())

MARKUP_TITLE = '高雄 & 格丁尼亞 <合作> "新創"'
BYLINE = "<p>新聞視界時報 記者 王秉程 整理報導</p>"
LONG_SUMMARY = (
    BYLINE + "<p>高雄與波蘭姊妹市格丁尼亞的交流再度邁向新里程！由高雄市副市長羅達生率領市府團隊，"
    "於波蘭時間9月14日與格丁尼亞市政府正式簽署「經濟合作備忘錄」，"
    "雙方將在港口物流、離岸風電、智慧城市與新創產業等領域深化合作。</p>"
    "<p>羅達生表示，格丁尼亞是波蘭重要的港口城市，與高雄同樣以港立市，"
    "未來將透過定期互訪、產業媒合與人才交流，讓兩座城市的企業有更多合作機會。"
    "格丁尼亞市長也回應，期待明年率團訪問高雄，參觀亞洲新灣區與高雄展覽館。</p>"
)


def articles(start: int = 1) -> list[FeedItem]:
    """Four articles in the spirit of the seed: markup characters, emoji, a long summary."""
    published = datetime(2025, 9, 16, 9, 0, tzinfo=TAIPEI)
    stories = [
        (
            MARKUP_TITLE,
            BYLINE + "<p>高雄市與格丁尼亞市簽署合作備忘錄，聚焦智慧城市 &amp; 新創產業，"
            "雙方約定 &lt;每年&gt; 互訪一次。</p>",
            ("城市外交", "投資理財"),
        ),
        (
            "高雄迎來第43座姊妹市！與波蘭格丁尼亞締盟 🎉🇵🇱",
            BYLINE
            + "<p>9月14日，高雄與波蘭格丁尼亞市正式締結姊妹市，🤝 這是高雄首座波蘭姊妹市。</p>",
            ("城市外交",),
        ),
        (
            "高雄 & 格丁尼亞再升級！簽署經濟合作備忘錄，攜手打造新創與智慧城市新典範",
            LONG_SUMMARY,
            ("投資理財", "城市外交"),
        ),
        (
            "住桃園很可以！GoPro Creator Camp熱鬧登場",
            BYLINE + "<p>桃園市政府昨(15)日下午在桃園區舉辦記者會，副市長蘇俊賓特別出席。</p>",
            ("地方", "文化"),
        ),
    ]
    items = []
    for offset, (title, summary, categories) in enumerate(stories):
        number = 30000 + start + offset
        items.append(
            FeedItem(
                guid=f"newsvision-{number}",
                title=title,
                # `&` in the query must survive HTML escaping in the href and plain text on X.
                link=f"https://news.example.tw/article/{number}?lang=zh-TW&ref=rss&utm_source=rss",
                summary_html=summary,
                published=published + timedelta(minutes=offset),
                categories=categories,
                author="王秉程",
            )
        )
    return items


def canonical(item: FeedItem) -> str:
    """The article URL newsbot keeps: the site's tracking parameters are dropped."""
    return item.link.replace("&utm_source=rss", "")


def telegram_link(item: FeedItem) -> str:
    return canonical(item) + "&utm_source=telegram&utm_medium=social"


@dataclass
class Platforms:
    tg: FakeTelegram
    x: FakeX
    feed: FeedServer


@pytest.fixture
def platforms() -> Iterator[Platforms]:
    """The strict fakes and a feed server, each in a thread of its own on 127.0.0.1."""
    with (
        FakeTelegram(token=TOKEN, chats={"@newsvision": CHAT_ID}) as tg,
        FakeX(
            consumer_key=X_KEYS["X_CONSUMER_KEY"],
            consumer_secret=X_KEYS["X_CONSUMER_SECRET"],
            access_token=X_KEYS["X_ACCESS_TOKEN"],
            access_token_secret=X_KEYS["X_ACCESS_TOKEN_SECRET"],
        ) as x,
        FeedServer() as feed,
    ):
        yield Platforms(tg, x, feed)


def write_config(tmp_path: Path, platforms: Platforms) -> Path:
    raw = {
        "timezone": "Asia/Taipei",
        "database": "sqlite:///ledger.db",
        "templates": "templates",
        "sources": {
            "newsvision": {
                "kind": "feed",
                "url": platforms.feed.url_for("/rss.xml"),
                "allow_private": ["127.0.0.1"],  # the fake site
                "backlog": 10,
                "max_age": "off",
                "excerpt_length": 300,
                "timeout": "5s",
                "strip": ["新聞視界時報\\s*記者\\s*\\S+\\s*整理報導"],
            }
        },
        "channels": {
            "telegram": {
                "kind": "telegram",
                "token": "${TELEGRAM_BOT_TOKEN}",
                "chat": "@newsvision",
                "template": "telegram.html.j2",
                "api_url": platforms.tg.url,
                "timeout": "5s",
                "tracking": {"utm_source": "telegram", "utm_medium": "social"},
                # The platform's default pace spaces posts seconds apart; not under test here.
                "rate": "100/s",
                "burst": 10,
            },
            "x": {
                "kind": "x",
                "consumer_key": "${X_CONSUMER_KEY}",
                "consumer_secret": "${X_CONSUMER_SECRET}",
                "access_token": "${X_ACCESS_TOKEN}",
                "access_token_secret": "${X_ACCESS_TOKEN_SECRET}",
                "template": "x.txt.j2",
                "api_url": platforms.x.url,
                "timeout": "5s",
                "rate": "100/s",
                "burst": 10,
            },
        },
    }
    path = tmp_path / "newsbot.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def make_newsbot(
    tmp_path: Path,
    templates: Path,
    clean_env: dict[str, str],
    platforms: Platforms,
    *,
    token: str = TOKEN,
    x_secrets: dict[str, str] | None = None,
) -> Newsbot:
    env = {**clean_env, "TELEGRAM_BOT_TOKEN": token, **X_KEYS, **(x_secrets or {})}
    return Newsbot(write_config(tmp_path, platforms), env)


def with_credentials(newsbot: Newsbot, *, token: str, x_secrets: dict[str, str]) -> Newsbot:
    """The same config and ledger, run with other credentials in the environment."""
    return Newsbot(newsbot.config, {**newsbot.env, "TELEGRAM_BOT_TOKEN": token, **x_secrets})


def ledger_dump(folder: Path) -> str:
    """Every row of every table of the ledger, as text, and the database files' raw bytes."""
    lines = []
    with sqlite3.connect(folder / "ledger.db") as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert "deliveries" in tables and "articles" in tables
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                lines.append(f"{table}: {row!r}")
    raw = b"".join(p.read_bytes() for p in sorted(folder.glob("ledger.db*")))
    return "\n".join(lines) + "\n" + raw.decode("utf-8", errors="replace")


def delivery_states(folder: Path) -> dict[tuple[str, str], int]:
    with sqlite3.connect(folder / "ledger.db") as db:
        query = "SELECT channel, state, COUNT(*) FROM deliveries GROUP BY channel, state"
        return {(channel, state): n for channel, state, n in db.execute(query)}


def assert_no_secret(text: str, where: str) -> None:
    """No secret, whole, in its distinctive part or URL-encoded, appears in ``text``."""
    for secret in ALL_SECRETS:
        forms = {secret, secret.split(":", 1)[-1], quote(secret, safe="")}
        for form in forms:
            assert form not in text, f"a secret ({secret[:6]}…) leaked into {where}"


def one_message_per_article(tg: FakeTelegram, items: list[FeedItem]) -> dict[str, SentMessage]:
    found: dict[str, SentMessage] = {}
    for item in items:
        matching = [
            m
            for m in tg.messages_in(CHAT_ID)
            if any(e.url == telegram_link(item) for e in m.entities)
        ]
        assert len(matching) == 1, f"{item.title}: {len(matching)} Telegram messages"
        found[item.guid] = matching[0]
    return found


def one_post_per_article(x: FakeX, items: list[FeedItem]) -> dict[str, XPost]:
    found: dict[str, XPost] = {}
    for item in items:
        matching = [p for p in x.posts if canonical(item) in p.text.split()]
        assert len(matching) == 1, f"{item.title}: {len(matching)} X posts"
        found[item.guid] = matching[0]
    return found


# ------------------------------------------------------------------------------------ full run


def test_full_run_delivers_each_article_once_intact(
    tmp_path: Path, templates: Path, clean_env: dict[str, str], platforms: Platforms
) -> None:
    """Each article reaches Telegram and X exactly once, accepted, links whole, markup as text."""
    items = articles()
    platforms.feed.publish("/rss.xml", rss(items))
    newsbot = make_newsbot(tmp_path, templates, clean_env, platforms)

    run = newsbot("once")
    again = newsbot("once")

    assert run.code == 0, run.err
    assert "4 new article(s)" in run.err and "8 sent" in run.err
    assert again.code == 0 and "0 sent" in again.err
    tg, x = platforms.tg, platforms.x
    # The strict servers accepted every request: no parse error, nothing over a limit.
    assert [a.status for a in tg.attempts if a.method == "sendMessage"] == [200] * 4
    assert [a.status for a in x.attempts_to("/2/tweets")] == [201] * 4
    assert len(tg.messages) == 4 and len(x.posts) == 4

    messages = one_message_per_article(tg, items)
    posts = one_post_per_article(x, items)
    for item in items:
        message, post = messages[item.guid], posts[item.guid]
        # Telegram: the reader sees the title as text, escaped exactly once on the wire.
        assert message.plain.startswith(item.title + "\n"), message.plain
        assert message.entities[0].type == "bold"
        assert message.link_preview_options == {"url": telegram_link(item)}
        for entity_text in ("&amp;", "&lt;", "&gt;", "&quot;", "&#34;", "&#x"):
            assert entity_text not in message.plain, message.plain
        assert "&amp;amp;" not in (message.text or "") and "&amp;lt;" not in (message.text or "")
        assert len(message.plain) <= 4096
        # X: plain text, the title verbatim, the link whole and weighing 23.
        assert post.text.startswith(f"【{item.title}】"), post.text
        assert "&amp;" not in post.text and "&lt;" not in post.text
        assert post.weighted_length == weighted_length(post.text) <= 280

    markup = items[0]
    wire = messages[markup.guid].text or ""
    assert "<b>高雄 &amp; 格丁尼亞 &lt;合作&gt; &#34;新創&#34;</b>" in wire
    assert "智慧城市 & 新創產業，雙方約定 <每年> 互訪一次。" in messages[markup.guid].plain
    assert "智慧城市 & 新創產業，雙方約定 <每年> 互訪一次。" in posts[markup.guid].text
    assert "🎉🇵🇱" in messages[items[1].guid].plain and "🎉🇵🇱" in posts[items[1].guid].text

    # The long summary is fitted on X at a cut with an ellipsis; Telegram, with room, gets more.
    long_post, long_message = posts[items[2].guid], messages[items[2].guid]
    assert "…" in long_post.text and long_post.weighted_length > 250
    assert len(long_message.plain) > len(long_post.text)

    status = newsbot("status", "--json")
    assert status.code == 0, status.err
    report = json.loads(status.out)
    assert report["counts"] == {"sent": 8}
    texts = {(d["channel"], d["text"]) for d in report["deliveries"]}
    assert {("x", p.text) for p in x.posts} <= texts
    assert {("telegram", m.text) for m in tg.messages} <= texts


# ------------------------------------------------------------------------------------- secrets


def test_no_secret_in_output_or_ledger_with_right_credentials(
    tmp_path: Path, templates: Path, clean_env: dict[str, str], platforms: Platforms
) -> None:
    """Debug logs in JSON and text, status in both forms and the ledger never show a secret."""
    items = articles()
    platforms.feed.publish("/rss.xml", rss(items[:2]))
    newsbot = make_newsbot(tmp_path, templates, clean_env, platforms)
    runs: list[tuple[str, Result]] = [("once json", newsbot("-v", "--log-format", "json", "once"))]
    platforms.feed.publish("/rss.xml", rss(items))
    runs.append(("once text", newsbot("-v", "once")))
    runs.append(("status text", newsbot("-v", "status")))
    runs.append(("status json", newsbot("-v", "--log-format", "json", "status", "--json")))
    runs.append(("check json", newsbot("-v", "--log-format", "json", "check", "--online")))

    assert [r.code for _, r in runs] == [0] * 5, [r.err for _, r in runs]
    assert len(platforms.tg.messages) == 4 and len(platforms.x.posts) == 4
    json_lines = [line for line in runs[0][1].err.splitlines() if line.strip()]
    assert json_lines and all(json.loads(line)["level"] for line in json_lines)
    assert any(json.loads(line)["level"] == "debug" for line in json_lines), "no debug output"
    for name, result in runs:
        assert_no_secret(result.out, f"stdout of {name}")
        assert_no_secret(result.err, f"stderr of {name}")
    assert_no_secret(ledger_dump(tmp_path), "the ledger")


def test_no_secret_in_output_or_ledger_with_wrong_credentials(
    tmp_path: Path, templates: Path, clean_env: dict[str, str], platforms: Platforms
) -> None:
    """A refused token and refused X secrets are reported by name, never by value, anywhere."""
    items = articles()
    platforms.feed.publish("/rss.xml", rss(items[:2]))
    newsbot = make_newsbot(tmp_path, templates, clean_env, platforms)
    wrong_token = with_credentials(newsbot, token=WRONG_TOKEN, x_secrets={})
    wrong_x = with_credentials(newsbot, token=TOKEN, x_secrets=WRONG_X_SECRETS)
    runs: list[tuple[str, Result]] = []

    runs.append(("wrong token once", wrong_token("-v", "--log-format", "json", "once")))
    # A channel that cannot start keeps its posts queued for when the token is fixed.
    assert delivery_states(tmp_path) == {("telegram", "queued"): 2, ("x", "sent"): 2}
    platforms.feed.publish("/rss.xml", rss(items))
    runs.append(("wrong X once", wrong_x("-v", "once")))
    runs.append(("wrong X status", wrong_x("-v", "--log-format", "json", "status", "--json")))

    codes = {name: result.code for name, result in runs}
    assert codes == {"wrong token once": 1, "wrong X once": 1, "wrong X status": 0}, [
        r.err for _, r in runs
    ]
    assert "TELEGRAM_BOT_TOKEN" in runs[0][1].err and "X_CONSUMER_SECRET" in runs[1][1].err
    for name, result in runs:
        assert_no_secret(result.out, f"stdout of {name}")
        assert_no_secret(result.err, f"stderr of {name}")
    assert_no_secret(ledger_dump(tmp_path), "the ledger")

    # What the ledger says: Telegram's posts of the refused-token run waited and went out with
    # the right token; every X post of the wrong-secrets run failed, with the reason.
    report = json.loads(runs[2][1].out)
    by_channel: dict[str, list[str]] = {}
    for delivery in report["deliveries"]:
        by_channel.setdefault(delivery["channel"], []).append(delivery["state"])
    assert sorted(by_channel["telegram"]) == ["sent"] * 4
    assert sorted(by_channel["x"]) == ["failed", "failed", "sent", "sent"]
    reasons = {d["reason"] for d in report["deliveries"] if d["state"] == "failed"}
    assert len(reasons) == 1 and next(iter(reasons)).startswith("X rejected the credentials")


# --------------------------------------------------------------------------- check --online


def test_check_online_verifies_credentials_without_posting(
    tmp_path: Path, templates: Path, clean_env: dict[str, str], platforms: Platforms
) -> None:
    """check --online asks getMe and users/me, says the credentials work, and posts nothing."""
    newsbot = make_newsbot(tmp_path, templates, clean_env, platforms)

    result = newsbot("check", "--online")

    assert result.code == 0, result.err
    assert "ok   channel telegram: credentials accepted (newsvision_test_bot)" in result.out
    assert "ok   channel x: credentials accepted (newsvision_tw)" in result.out
    assert {a.method for a in platforms.tg.attempts} == {"getMe"}
    assert [a.status for a in platforms.x.attempts_to("/2/users/me")] == [200]
    assert platforms.tg.messages == [] and platforms.x.posts == []
    assert platforms.x.attempts_to("/2/tweets") == []
    assert not (tmp_path / "ledger.db").exists() or "deliveries" not in ledger_dump(tmp_path)


@dataclass(frozen=True)
class Miscredentialed:
    token: str
    x_secrets: dict[str, str]
    broken: set[str]
    log_format: str


@pytest.mark.parametrize(
    "case",
    [
        Miscredentialed(WRONG_TOKEN, {}, {"telegram"}, "text"),
        Miscredentialed(TOKEN, WRONG_X_SECRETS, {"x"}, "json"),
        Miscredentialed(WRONG_TOKEN, WRONG_X_SECRETS, {"telegram", "x"}, "text"),
    ],
    ids=["wrong-token", "wrong-x-secrets", "both-wrong"],
)
def test_check_online_names_the_misconfigured_channel(
    tmp_path: Path,
    templates: Path,
    clean_env: dict[str, str],
    platforms: Platforms,
    case: Miscredentialed,
) -> None:
    """check --online exits 2 naming each channel whose credentials are refused, and only those."""
    newsbot = make_newsbot(
        tmp_path, templates, clean_env, platforms, token=case.token, x_secrets=case.x_secrets
    )

    result = newsbot("-v", "--log-format", case.log_format, "check", "--online")

    assert result.code == 2, result.out
    named = {name for name in ("telegram", "x") if f"newsbot: channel {name}: " in result.err}
    assert named == case.broken, result.err
    if "telegram" in case.broken:
        assert "Telegram refused the bot token" in result.err
    else:
        assert "ok   channel telegram: credentials accepted" in result.out
    if "x" in case.broken:
        assert "X rejected the credentials (401 Unauthorized)" in result.err
    else:
        assert "ok   channel x: credentials accepted" in result.out
    assert platforms.tg.messages == [] and platforms.x.posts == []
    assert_no_secret(result.out + result.err, "check --online")


# The HTTP libraries log every request; the Telegram URL carries the bot token in its path.
LIBRARY_LOGGERS = ("httpx", "httpcore", "telegram", "tweepy", "urllib3", "requests_oauthlib")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """`cli.main` in this process reconfigures logging; put everything back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in (*LIBRARY_LOGGERS, "oauthlib")}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


@pytest.mark.usefixtures("restore_logging")
def test_config_secrets_are_masked_even_when_libraries_log_every_request(
    tmp_path: Path,
    templates: Path,
    platforms: Platforms,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With the HTTP libraries logging each request URL, the token (not token-shaped) is masked
    by the config-value redaction, not merely kept out by quiet loggers."""
    platforms.feed.publish("/rss.xml", rss(articles()[:1]))
    config = write_config(tmp_path, platforms)
    for name, value in {"TELEGRAM_BOT_TOKEN": TOKEN, **X_KEYS}.items():
        monkeypatch.setenv(name, value)
    real_setup = logs.setup_logging

    def chatty_setup(**kwargs: Any) -> logs.Redactor:
        redactor = real_setup(**kwargs)
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).setLevel(logging.DEBUG)
        return redactor

    monkeypatch.setattr(cli, "setup_logging", chatty_setup)

    code = cli.main(["--config", str(config), "-v", "--log-format", "json", "once"])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert len(platforms.tg.messages) == 1 and len(platforms.x.posts) == 1
    # The library did log the URL with the token in it, and the redactor masked it.
    assert "/bot[REDACTED]/sendMessage" in captured.err
    assert_no_secret(captured.out + captured.err, "output with chatty libraries")
    assert_no_secret(ledger_dump(tmp_path), "the ledger")
