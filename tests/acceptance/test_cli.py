"""The ``newsbot`` command end to end: the runnable default, dedupe across runs, and one clear
message with exit status 2 for every config and template mistake."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.testing.feed_server import FeedItem, FeedServer, rss
from tests.acceptance.conftest import REPO, Newsbot

CONFIG = """\
timezone: Asia/Taipei
database: sqlite:///ledger.db
templates: templates
sources:
  newsvision:
    kind: feed
    url: {url}
    allow_private: [127.0.0.1]
    backlog: {backlog}
    max_age: off
    strip: ['新聞視界時報\\s*記者\\s*\\S+\\s*整理報導']
channels:
  telegram:
    kind: console
    template: telegram.html.j2
  x:
    kind: console
    template: x.txt.j2
"""


def item(n: int, title: str | None = None) -> FeedItem:
    return FeedItem(
        guid=f"nv-{n}",
        title=title or f"高雄醫材進軍泰國！經發局攜手在地業者參展（{n}）",
        link=f"https://news.example.tw/article/{n}?utm_source=rss",
        summary_html=(
            "<p>新聞視界時報 記者 王秉程 整理報導</p>"
            "<p>在全球供應鏈因美國關稅政策調整而重新洗牌之際，"
            "高雄市府經發局積極協助在地醫材業者「化危機為轉機」。</p>"
        ),
        published=datetime(2025, 9, 15, 8, 0, tzinfo=UTC) + timedelta(minutes=n),
        categories=("產業",),
    )


@pytest.fixture
def feed() -> FeedServer:
    with FeedServer() as server:
        yield server  # type: ignore[misc]


def setup(
    tmp_path: Path, templates: Path, clean_env: dict[str, str], url: str, backlog: int = 0
) -> Newsbot:
    config = tmp_path / "newsbot.yaml"
    config.write_text(CONFIG.format(url=url, backlog=backlog), encoding="utf-8")
    return Newsbot(config, clean_env)


def test_default_config_posts_to_the_console(tmp_path: Path, clean_env: dict[str, str]) -> None:
    """The repository's default config runs with no account and prints Chinese posts."""
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "config", copy / "config")
    shutil.copytree(REPO / "templates", copy / "templates")
    newsbot = Newsbot(copy / "config" / "newsbot.yaml", clean_env)
    first = newsbot("once")
    assert first.code == 0, first.err
    assert first.out.count("── telegram-preview") == 5 and first.out.count("── x-preview") == 5
    assert "高雄" in first.out and "記者 王秉程" not in first.out
    second = newsbot("once")
    assert second.code == 0 and "──" not in second.out


def test_once_twice_delivers_nothing_new(
    tmp_path: Path, templates: Path, clean_env: dict[str, str], feed: FeedServer
) -> None:
    """A second run on an unchanged feed delivers nothing; a new entry goes out once per channel."""
    url = feed.publish("/rss.xml", rss([item(1), item(2)]))
    newsbot = setup(tmp_path, templates, clean_env, url)
    assert newsbot("once").code == 0  # first sight, backlog 0: nothing posted
    feed.publish("/rss.xml", rss([item(1), item(2), item(3)]))
    run = newsbot("once")
    assert run.code == 0, run.err
    assert run.out.count("── telegram") == 1 and run.out.count("── x") == 1
    assert "（3）" in run.out
    again = newsbot("once")
    assert "──" not in again.out
    status = json.loads(newsbot("status", "--json").out)
    assert status["counts"] == {"skipped": 4, "sent": 2}


def test_status_and_retry(
    tmp_path: Path, templates: Path, clean_env: dict[str, str], feed: FeedServer
) -> None:
    """status prints the log with filters; retry reports how many went back to the queue."""
    url = feed.publish("/rss.xml", rss([item(1)]))
    newsbot = setup(tmp_path, templates, clean_env, url, backlog=1)
    assert newsbot("once").code == 0
    table = newsbot("status", "--channel", "x")
    assert table.code == 0 and "sent" in table.out and "高雄醫材" in table.out
    assert "telegram" not in table.out.split("\n", 1)[1]
    retried = newsbot("retry")
    assert retried.code == 0 and retried.out.startswith("0 deliveries")


def test_preview_sends_and_records_nothing(
    tmp_path: Path, templates: Path, clean_env: dict[str, str], feed: FeedServer
) -> None:
    """preview shows each post with its length and limit, and leaves the ledger empty."""
    url = feed.publish("/rss.xml", rss([item(1), item(2)]))
    newsbot = setup(tmp_path, templates, clean_env, url)
    shown = newsbot("preview")
    assert shown.code == 0, shown.err
    assert "/280" in shown.out and "/4096" in shown.out and "（2）" in shown.out
    assert json.loads(newsbot("status", "--json").out)["counts"] == {}


def test_check_renders_each_template(
    tmp_path: Path, templates: Path, clean_env: dict[str, str]
) -> None:
    """check validates the config and renders every channel's template against a sample."""
    newsbot = setup(tmp_path, templates, clean_env, "https://news.example.tw/rss.xml")
    result = newsbot("check")
    assert result.code == 0, result.err
    assert "ok   channel telegram" in result.out and "ok   channel x" in result.out


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("backlog: 0", "backlgo: 0"), "sources.newsvision.backlgo: unknown key"),
        (("backlog: 0", "backlog: lots"), "sources.newsvision.backlog"),
        (
            ("kind: console\n    template: x", "kind: myspace\n    template: x"),
            "unknown kind 'myspace'",
        ),
        (("max_age: off", "max_age: off\n    channels: [facebook]"), "no channel named 'facebook'"),
        (("template: x.txt.j2", "template: ${X_TEMPLATE}"), "X_TEMPLATE is not set"),
        (("    kind: feed", "    kind: feed\n  bad"), "not valid YAML"),
    ],
)
def test_config_mistakes_exit_2_with_one_message(
    tmp_path: Path,
    templates: Path,
    clean_env: dict[str, str],
    change: tuple[str, str],
    expected: str,
) -> None:
    """Each config mistake is one line naming file and key, exit 2, no traceback."""
    newsbot = setup(tmp_path, templates, clean_env, "https://news.example.tw/rss.xml")
    newsbot.config.write_text(
        newsbot.config.read_text(encoding="utf-8").replace(*change, 1), encoding="utf-8"
    )
    for command in ("check", "once"):
        result = newsbot(command)
        assert result.code == 2, (command, result.err)
        assert expected in result.err and "newsbot.yaml:" in result.err
        assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (None, "missing.txt.j2"),
        ("【{{ article.title }】\n{{ link }}", "x.txt.j2:1"),
        ("{{ article.title }}\n{{ article.nope }}\n{{ link }}", "x.txt.j2:2"),
    ],
)
def test_template_mistakes_exit_2_with_file_and_line(
    tmp_path: Path, templates: Path, clean_env: dict[str, str], template: str | None, expected: str
) -> None:
    """A template that is missing, does not compile or does not render names its file and line."""
    newsbot = setup(tmp_path, templates, clean_env, "https://news.example.tw/rss.xml")
    if template is None:
        newsbot.config.write_text(
            newsbot.config.read_text(encoding="utf-8").replace(
                "template: x.txt.j2", "template: missing.txt.j2"
            ),
            encoding="utf-8",
        )
    else:
        (templates / "x.txt.j2").write_text(template, encoding="utf-8")
    result = newsbot("check")
    assert result.code == 2
    assert expected in result.err and "Traceback" not in result.err


def test_usage_mistake_exits_2(tmp_path: Path, templates: Path, clean_env: dict[str, str]) -> None:
    """An unknown command is a usage error with status 2."""
    newsbot = setup(tmp_path, templates, clean_env, "https://news.example.tw/rss.xml")
    result = newsbot("frobnicate")
    assert result.code == 2 and "invalid choice" in result.err


def test_status_shows_x_spend_and_publish_to_post_delay(
    tmp_path: Path, templates: Path, clean_env: dict[str, str], feed: FeedServer
) -> None:
    """status reports this month's X posts and spend against the budget, and each post's delay."""
    from bot.testing.x_server import FakeX

    keys = {
        "consumer_key": "ck-x",
        "consumer_secret": "cs-x-secret",
        "access_token": "at-x",
        "access_token_secret": "ats-x-secret",
    }
    with FakeX(**keys) as fake:
        url = feed.publish("/rss.xml", rss([item(1)]))
        config = tmp_path / "newsbot.yaml"
        config.write_text(
            CONFIG.format(url=url, backlog=1).split("channels:\n")[0]
            + "channels:\n  x:\n    kind: x\n"
            + "".join(f"    {k}: {v}\n" for k, v in keys.items())
            + f"    template: x.txt.j2\n    api_url: {fake.url}\n    rate: off\n"
            + "    price_per_link_post: 0.2\n    monthly_budget: 50\n",
            encoding="utf-8",
        )
        newsbot = Newsbot(config, clean_env)
        assert newsbot("once").code == 0
        assert len(fake.posts) == 1
    shown = newsbot("status")
    assert "x channel x: 1 posts this month, 0.20 of 50.00 USD" in shown.out
    assert "DELAY" in shown.out
    data = json.loads(newsbot("status", "--json").out)
    assert data["x_month"]["x"]["posts"] == 1
    assert data["deliveries"][0]["delay_seconds"] > 0


def test_once_for_drains_what_the_pace_holds_back(
    tmp_path: Path, templates: Path, clean_env: dict[str, str], feed: FeedServer
) -> None:
    """One pass posts what the pace allows now; `once --for` keeps going at that pace."""
    url = feed.publish("/rss.xml", rss([item(1), item(2), item(3)]))
    newsbot = setup(tmp_path, templates, clean_env, url, backlog=3)
    text = newsbot.config.read_text(encoding="utf-8")
    newsbot.config.write_text(
        text.replace("template: x.txt.j2", "template: x.txt.j2\n    min_gap: 1s"), "utf-8"
    )
    first = newsbot("once")
    assert first.out.count("── x") == 1 and first.out.count("── telegram") == 3
    rest = newsbot("once", "--for", "10s")
    assert rest.code == 0 and rest.out.count("── x") == 2


def test_a_key_in_a_feed_url_reaches_neither_log_nor_ledger(
    tmp_path: Path, templates: Path, clean_env: dict[str, str], feed: FeedServer
) -> None:
    """A private feed's key from the environment is masked in the error logged and in the
    source's last error kept by the ledger, though the fetch error quotes the URL."""
    import sqlite3

    feed.set_fault("/private.xml", "404")
    url = feed.url_for("/private.xml") + "?key=${FEED_KEY}"
    newsbot = setup(tmp_path, templates, clean_env, url)
    newsbot.env["FEED_KEY"] = "feed-key-s3cret-value"
    result = newsbot("once")
    assert "HTTP 404" in result.err and "feed-key-s3cret-value" not in result.err
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        (error,) = db.execute("SELECT last_error FROM sources").fetchone()
    assert "HTTP 404" in error and "feed-key-s3cret-value" not in error


def test_one_broken_item_costs_only_itself_and_status_says_why(
    tmp_path: Path, templates: Path, clean_env: dict[str, str], feed: FeedServer
) -> None:
    """An item whose link is a malformed URL is skipped with its reason in `status`; the
    other items of the feed are posted."""
    broken = FeedItem(
        guid="nv-broken",
        title="壞掉的連結",
        link="http://example.c[o.test/",
        summary_html="<p>這一則的連結是壞的。</p>",
        published=datetime(2025, 9, 15, 9, 0, tzinfo=UTC),
    )
    url = feed.publish("/rss.xml", rss([item(1), broken, item(2)]))
    newsbot = setup(tmp_path, templates, clean_env, url, backlog=5)
    run = newsbot("once")
    assert run.code == 0, run.err
    assert run.out.count("── telegram") == 2 and "（1）" in run.out and "（2）" in run.out
    shown = newsbot("status")
    assert "source newsvision: entries skipped: entry 2 (壞掉的連結)" in shown.out
    assert "ValueError" in shown.out
    data = json.loads(newsbot("status", "--json").out)
    assert data["sources"][0]["source"] == "newsvision"
    assert "壞掉的連結" in data["sources"][0]["problem"]


def test_once_publishes_no_internal_page_no_local_file_and_no_password(
    tmp_path: Path, templates: Path, clean_env: dict[str, str], feed: FeedServer
) -> None:
    """`newsbot once` on a feed (enrich: true) linking to an internal page, a local file and a
    link with a password: only the real article is posted, the internal server sees no
    request, each refusal is logged with its reason, and there is no traceback."""
    secret_file = tmp_path / "secret.html"
    secret_file.write_text('<meta property="og:description" content="本機機密檔案">', "utf-8")
    feed.publish(
        "/article/1",
        '<!doctype html><html lang="zh-Hant"><head><meta charset="utf-8"><title>高雄醫材</title>'
        '<meta property="og:description" content="高雄醫材業者赴泰國參展，拓展東南亞市場。">'
        "</head><body><p>記者王秉程／高雄報導</p></body></html>",
        content_type="text/html; charset=utf-8",
    )
    with FeedServer(host="127.0.0.2") as internal:
        internal.publish(
            "/secret",
            '<!doctype html><html><head><meta charset="utf-8"><title>內部</title>'
            '<meta property="og:description" content="董事會內部薪資草案"></head></html>',
            content_type="text/html; charset=utf-8",
        )
        entries = [
            FeedItem("nv-1", "高雄醫材進軍泰國", feed.url_for("/article/1")),
            FeedItem("nv-2", "內部文件", internal.url_for("/secret")),
            FeedItem("nv-3", "本機檔案", secret_file.as_uri()),
            FeedItem("nv-4", "後台預覽", "http://admin:hunter2@news.example.tw/a/4"),
        ]
        url = feed.publish("/rss.xml", rss(entries))
        newsbot = setup(tmp_path, templates, clean_env, url, backlog=10)
        config = newsbot.config.read_text("utf-8").replace(
            "    max_age: off\n", "    max_age: off\n    enrich: true\n"
        )
        newsbot.config.write_text(config, "utf-8")
        result = newsbot("once")
        assert internal.requests == []
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    assert result.out.count("── x ·") == 1 and result.out.count("── telegram ·") == 1
    assert "拓展東南亞市場" in result.out
    for forbidden in ("董事會", "本機機密", "127.0.0.2", "file:", "hunter2", "admin:"):
        assert forbidden not in result.out
    assert "127.0.0.2" in result.err and "loopback" in result.err
    assert "user name or password" in result.err and "hunter2" not in result.err


def test_status_needs_the_ledger_not_the_channels_secrets(
    tmp_path: Path, templates: Path, clean_env: dict[str, str], feed: FeedServer
) -> None:
    """`newsbot status` (and retry) run without the X keys in the environment: an editor can
    look at the ledger without holding them; sending still refuses, naming the variable."""
    url = feed.publish("/rss.xml", rss([item(1)]))
    config = tmp_path / "newsbot.yaml"
    config.write_text(
        CONFIG.format(url=url, backlog=1).split("channels:\n")[0]
        + "channels:\n  telegram:\n    kind: console\n    template: telegram.html.j2\n"
        + "  x:\n    kind: x\n    consumer_key: ${X_CONSUMER_KEY}\n"
        + "    consumer_secret: ${X_CONSUMER_SECRET}\n    access_token: ${X_ACCESS_TOKEN}\n"
        + "    access_token_secret: ${X_ACCESS_TOKEN_SECRET}\n    template: x.txt.j2\n",
        encoding="utf-8",
    )
    newsbot = Newsbot(config, clean_env)
    shown = newsbot("status")
    assert shown.code == 0, shown.err
    assert "deliveries: none yet" in shown.out
    assert "x channel x: 0 posts this month" in shown.out
    assert newsbot("retry").code == 0
    refused = newsbot("once")
    assert refused.code == 2 and "X_CONSUMER_KEY is not set" in refused.err
