"""``newsbot correct``, ``retract`` and ``history`` end to end: the real command against a temp
config and ledger, with a feed on 127.0.0.1 whose article is corrected after it was posted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.testing.feed_server import FeedItem, FeedServer, rss
from tests.acceptance.conftest import Newsbot, copy_templates, environment

# Two sources read the same feed, so one key is in both (ARTICLE may be ambiguous); the console
# channels' policies are off, so the actions are recorded skipped (test_corrections_run.py has
# them applied on the local Telegram and X).
CONFIG = """\
timezone: Asia/Taipei
database: sqlite:///ledger.db
templates: templates
sources:
  newsvision: {{kind: feed, url: "{url}", allow_private: [127.0.0.1], backlog: 1, max_age: "off"}}
  mirror:
    kind: feed
    url: "{url}"
    allow_private: [127.0.0.1]
    backlog: 0
    channels: [x]
channels:
  telegram: {{kind: console, template: telegram.html.j2, corrections: "off", takedowns: "off"}}
  x: {{kind: console, template: x.txt.j2, corrections: "off", takedowns: "off"}}
"""

TITLE = "颱風山陀兒逼近！高雄今（3）日停班停課"
CORRECTED = "颱風山陀兒逼近！高雄明（4）日停班停課"


def item(title: str = TITLE) -> FeedItem:
    return FeedItem(
        guid="nv-typhoon-1003",
        title=title,
        link="https://news.example.tw/article/1003?utm_source=rss",
        summary_html="<p>中央氣象署發布海上陸上颱風警報，雨量可達 500 毫米 🌀</p>",
        published=datetime.now(UTC) - timedelta(minutes=5),
        categories=("天氣", "地方"),
    )


def corrected_by_the_feed(folder: Path, env: dict[str, str]) -> Iterator[Newsbot]:
    """The article posted by ``once``, then its corrected title read by a second ``once``."""
    with FeedServer() as feed:
        url = feed.publish("/rss.xml", rss([item()]))
        config = folder / "newsbot.yaml"
        config.write_text(CONFIG.format(url=url), encoding="utf-8")
        bot = Newsbot(config, env)
        first = bot("once")
        assert first.code == 0, first.err
        feed.publish("/rss.xml", rss([item(CORRECTED)]))
        second = bot("once")
        assert second.code == 0, second.err
        yield bot


@pytest.fixture
def newsbot(tmp_path: Path, templates: Path, clean_env: dict[str, str]) -> Iterator[Newsbot]:
    """A ledger of its own, for a test that corrects or retracts."""
    yield from corrected_by_the_feed(tmp_path, clean_env)


@pytest.fixture(scope="module")
def read_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Newsbot]:
    """One ledger for the tests that change nothing in it (two ``once`` runs less each)."""
    folder = tmp_path_factory.mktemp("corrections")
    copy_templates(folder)
    yield from corrected_by_the_feed(folder, environment())


def history(newsbot: Newsbot, article: str) -> dict[str, object]:
    shown = newsbot("history", article, "--json")
    assert shown.code == 0, shown.err
    found: dict[str, object] = json.loads(shown.out)
    return found


def test_a_corrected_feed_title_is_in_history(read_only: Newsbot) -> None:
    """The feed's corrected title is a revision from the feed, naming the posts it was for."""
    newsbot = read_only
    status = json.loads(newsbot("status", "--json", "--source", "newsvision").out)
    sent = [d for d in status["deliveries"] if d["state"] == "sent"]
    assert {d["revised"] for d in sent} == {"corrected"}
    found = history(newsbot, str(sent[0]["id"]))
    [revision] = found["revisions"]  # type: ignore[misc]
    assert (revision["origin"], revision["changes"], revision["title"]) == (
        "feed",
        ["title"],
        CORRECTED,
    )
    assert {(a["channel"], a["outcome"]) for a in revision["actions"]} == {
        ("telegram", "skipped"),
        ("x", "skipped"),
    }
    assert "corrections are off" in revision["actions"][0]["reason"]
    assert {d["remote_id"] for d in found["deliveries"]} != {None}  # type: ignore[attr-defined]


def test_correct_with_a_title_then_retract(newsbot: Newsbot) -> None:
    """correct --title records the editor's title (origin editor); retract takes the article
    down on every channel; history and status say so; no secret is needed for any of it."""
    status = json.loads(newsbot("status", "--json", "--source", "newsvision").out)
    delivery = str(status["deliveries"][0]["id"])
    corrected = newsbot(
        "correct", delivery, "--title", "颱風山陀兒：高雄 4 日停班停課", "--reason", "日期誤植"
    )
    assert corrected.code == 0, corrected.err
    assert "颱風山陀兒：高雄 4 日停班停課" in corrected.out and "skipped" in corrected.out
    retracted = newsbot("retract", delivery, "--reason", "資訊有誤，撤稿")
    assert retracted.code == 0, retracted.err
    found = history(newsbot, delivery)
    article = found["article"]
    assert article["title"] == "颱風山陀兒：高雄 4 日停班停課"  # type: ignore[index]
    assert article["retracted_at"]  # type: ignore[index]
    kinds = [(r["kind"], r["origin"], r["reason"]) for r in found["revisions"]]  # type: ignore[attr-defined]
    assert kinds == [
        ("update", "feed", None),
        ("update", "editor", "日期誤植"),
        ("delete", "editor", "資訊有誤，撤稿"),
    ]
    text = newsbot("history", delivery)
    assert text.code == 0 and "資訊有誤，撤稿" in text.out and "takedowns are off" in text.out
    table = newsbot("status", "--source", "newsvision")
    assert "sent (retracted)" in table.out
    again = newsbot("correct", delivery)
    assert again.code == 1 and "retracted" in again.err and "Traceback" not in again.err


def test_an_unknown_or_ambiguous_article_is_one_message(read_only: Newsbot) -> None:
    """ARTICLE that names nothing exits 1; one in two sources lists both to choose from."""
    newsbot = read_only
    unknown = newsbot("history", "nv-no-such-article")
    assert unknown.code == 1 and "no article 'nv-no-such-article'" in unknown.err
    ambiguous = newsbot("retract", "nv-typhoon-1003", "--reason", "撤稿")
    assert ambiguous.code == 1 and "Traceback" not in ambiguous.err
    assert "source newsvision" in ambiguous.err and "source mirror" in ambiguous.err
    by_url = newsbot("history", "https://news.example.tw/article/1003")
    assert by_url.code == 1 and "names 2 articles" in by_url.err
