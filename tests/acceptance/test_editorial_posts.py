"""Issue 12 end to end: Traditional Chinese articles with lists, headings, tables, numbers with
units, full-width spaces and long Latin passages go through `newsbot once` to the strict local
Telegram and X servers, and every post is read back as an editor would read it."""

from __future__ import annotations

import html as html_lib
import itertools
import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import yaml

from bench.corpus import articles as corpus_articles
from bench.corpus import broad_articles
from bot.compose.excerpt import DEFAULT_SLACK
from bot.testing.feed_server import FeedItem, rss
from bot.testing.x_server import weighted_length
from tests.acceptance.test_platforms import (  # noqa: F401 (the fixture is used by name)
    CHAT_ID,
    TAIPEI,
    Platforms,
    make_newsbot,
    platforms,
)

BYLINE = "<p>新聞視界時報 記者 王秉程 整理報導</p>"
LATIN = (
    "<p>格丁尼亞副市長 奧克塔維亞・戈任斯卡（Oktawia Gorzeńska）表示："
    "\"Taiwan's exclusion from the international maritime forum is unjust, and Gdynia will "
    "keep working with Kaohsiung on "
    "start-up exchanges, smart-city pilots, port logistics and offshore wind, because both "
    'cities share the same maritime heritage." 雙方並同意明年互訪。</p>'
)
HANDWRITTEN = [
    (
        "【影音】直擊颱風前夕　漁港船隻進港避風",
        BYLINE + "<h3>政策重點</h3><ul><li>算力基礎建設</li><li>資料治理</li></ul>"
        "<p>部長表示，將持續推動。台北股市今天終場以 25,872.14 點作收，對部分產品課徵 100% 關稅，"
        "自 9 月 14 日起實施，票價 NT$1,200 起，並開放更多政府資料給民眾與企業使用。</p>",
        ("國際 交流", "地方"),
    ),
    ("港灣城市聯手　激盪創新火花", BYLINE + LATIN, ("城市・外交",)),
    (
        "類組錄取率公布　第一類組創新高",
        BYLINE + "<table><tr><th>類組</th><th>錄取率</th></tr><tr><td>第一類組</td><td>96.1%</td>"
        "</tr><tr><td>第二類組</td><td>98.3%</td></tr></table><p>教育部表示，今年整體錄取率"
        "較去年提高 1.2 個百分點，將持續檢討招生名額。</p>",
        ("教育",),
    ),
    ("颱風快訊", BYLINE, ("生活",)),  # no text at all: nothing may dangle
]

_TAG = re.compile(r"<[^>]+>")
_BLOCK_TAGS = re.compile(r"</?(?:p|li|ul|h[1-6]|td|th|tr|table|blockquote|figcaption|br)\b[^>]*>")
# Found here independently of bot/compose: numbers with their units (spaces squeezed out) and
# Latin words, hyphenated ones included.
_NUMBER = re.compile(r"(?:NT\$)?\d+(?:[,.]\d+)*(?:%|點|億元|個百分點|月\d+日|[月日])?")
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'’\-]*[A-Za-z]")


def _items() -> list[FeedItem]:
    published = datetime(2025, 9, 15, 14, 30, tzinfo=TAIPEI)
    stories = [*HANDWRITTEN]
    stories += [(g.title, g.html, g.categories) for g in corpus_articles(12, seed=7)]
    stories += [(g.title, g.html, g.categories) for g in broad_articles(6, seed=7)]
    return [
        FeedItem(
            guid=f"editorial-{i}",
            title=title,
            link=f"https://news.example.tw/article/{50000 + i}",
            summary_html=summary,
            published=published + timedelta(minutes=i),
            categories=categories,
            author="王秉程",
        )
        for i, (title, summary, categories) in enumerate(stories)
    ]


def _squeeze(text: str) -> str:
    """Whitespace out, but one space kept between Latin words (so they stay apart)."""
    text = re.sub(r"(?<=[A-Za-z0-9.,'\"])\s+(?=[A-Za-z0-9'\"])", "\x00", text)
    return re.sub(r"\s+", "", text).replace("\x00", " ")


def _blocks(summary: str) -> list[str]:
    parts = [_squeeze(html_lib.unescape(_TAG.sub("", p))) for p in _BLOCK_TAGS.split(summary)]
    return [p for p in parts if p and "整理報導" not in p]


def _read_as_an_editor(plain: str, item: FeedItem, where: str) -> None:
    # The title may hold the same words as a heading: only the rest of the post is read.
    lines_kept = re.sub(r"[^\S\n]+", "", plain).replace(_squeeze(item.title), "", 1)
    blocks = _blocks(item.summary_html)
    for a, b in itertools.pairwise(blocks):
        assert a[-6:] + b[:6] not in lines_kept, f"{where}: {a[-6:]}|{b[:6]} fused"
    if "…" in plain:
        # The post sets a table row's cells apart by ｜, the squeezed source by nothing.
        tail = _squeeze(plain[: plain.index("…")].rstrip("」』）)")).replace("｜", "")[-8:]
        source = _squeeze(html_lib.unescape(_TAG.sub(" ", item.summary_html)))
        end = source.find(tail) + len(tail)
        assert end >= len(tail), f"{where}: the excerpt is not the article's text: {tail}"
        for pattern in (_NUMBER, _LATIN_WORD):
            for match in pattern.finditer(source):
                assert not match.start() < end < match.end(), (
                    f"{where}: cut inside {match.group()!r}: …{tail}"
                )
    assert "【【" not in plain, where
    tags = plain.rsplit("\n", maxsplit=1)[-1]
    assert "_" not in tags, f"{where}: hashtags {tags}"
    assert "\u3000" in plain or "\u3000" not in item.title, f"{where}: full-width space lost"
    for line in plain.split("\n"):
        assert line == line.strip(), f"{where}: a line with a dangling space: {line!r}"


def test_every_post_reads_as_an_editor_would_have_written_it(
    tmp_path: Path,
    templates: Path,
    clean_env: dict[str, str],
    platforms: Platforms,  # noqa: F811 (the fixture imported above)
) -> None:
    """Blocks apart, no cut inside a number or word, labelled titles once, #國際交流, the X
    budget used up to the last clause end in reach, full-width spaces kept and Taiwan's date
    forms, on both real channels."""
    items = _items()
    platforms.feed.publish("/rss.xml", rss(items))
    newsbot = make_newsbot(tmp_path, templates, clean_env, platforms)
    config = yaml.safe_load(newsbot.config.read_text(encoding="utf-8"))
    config["sources"]["newsvision"]["backlog"] = len(items)
    newsbot.config.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")

    run = newsbot("once")

    assert run.code == 0, run.err
    tg, x = platforms.tg, platforms.x
    assert len(tg.messages_in(CHAT_ID)) == len(items) and len(x.posts) == len(items)
    unused = []
    for item in items:
        post = next(p for p in x.posts if item.link in p.text)
        message = next(
            m
            for m in tg.messages_in(CHAT_ID)
            if any(item.link in (e.url or "") for e in m.entities)
        )
        _read_as_an_editor(post.text, item, f"X {item.guid}")
        _read_as_an_editor(message.plain, item, f"Telegram {item.guid}")
        assert post.weighted_length == weighted_length(post.text) <= 280
        if "…" in post.text:
            unused.append(280 - post.weighted_length)
        # Telegram says when, in Taiwan's form.
        assert re.search(r"2025年9月15日 下午\d{1,2}:\d\d", message.plain), message.plain
    labelled = next(p for p in x.posts if "【影音】" in p.text)
    assert labelled.text.startswith("【影音】直擊颱風前夕　漁港船隻進港避風\n")
    assert "#國際交流" in labelled.text
    assert "算力基礎建設\n資料治理" in labelled.text
    empty = next(p for p in x.posts if "颱風快訊" in p.text)
    assert empty.text.startswith("【颱風快訊】https://"), empty.text
    latin = next(p for p in x.posts if "港灣城市聯手" in p.text)
    assert "…" in latin.text and 280 - latin.weighted_length <= 30, latin.text
    # A shortened post ends at the last sentence or clause end within the slack, else cut
    # tightly mid-clause: none gives away more than the slack's share of the limit.
    assert unused and max(unused) <= DEFAULT_SLACK * 280, unused


def test_preview_json_tells_each_post_its_length_limit_cut_and_budget(
    clean_env: dict[str, str],
) -> None:
    """`newsbot preview --json` gives, per article and channel, the exact text, its measured
    length and limit, the cut taken and the budget left, consistent with each other."""
    from tests.acceptance.conftest import REPO, Newsbot

    newsbot = Newsbot(REPO / "config" / "newsbot.yaml", clean_env)
    run = newsbot("preview", "--json", "-n", "2")

    assert run.code == 0, run.err
    rows = json.loads(run.out)
    assert len(rows) == 4
    assert {r["channel"] for r in rows} == {"telegram-preview", "x-preview"}
    for row in rows:
        assert row["cut"] in ("none", "sentence", "clause", "phrase", "character")
        assert row["budget_left"] == row["limit"] - row["length"] >= 0
        if row["platform"] == "x":
            assert row["length"] == weighted_length(row["text"])
            assert row["limit"] == 280
        else:
            assert row["limit"] == 4096
        if row["cut"] in ("clause", "phrase", "character"):
            assert "…" in row["text"], row  # a sentence end is kept whole, without one
