"""The corpus of tests/fixtures/corpus (written by tests/corpus.py): every feed gives the stated
Articles, and the fast path and feedparser alone give the same Articles, field by field."""

from __future__ import annotations

import json
from dataclasses import astuple
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.compose.excerpt import html_to_text
from bot.sources.feed import read_feed

CORPUS = Path(__file__).parent.parent / "fixtures" / "corpus"
EXPECTED: dict[str, dict[str, object]] = json.loads(
    (CORPUS / "expected.json").read_text(encoding="utf-8")
)
NOW = datetime(2030, 1, 1, tzinfo=UTC)
BASE = "https://news.example.tw/feeds/corpus.xml"


def read(name: str, *, fast_path: bool = True):  # type: ignore[no-untyped-def]
    case = EXPECTED[name]
    return read_feed(
        (CORPUS / name).read_bytes(),
        base_url=BASE,
        now=NOW,
        content_type=case["content_type"],  # type: ignore[arg-type]
        fast_path=fast_path,
    )


def test_the_corpus_is_broad() -> None:
    """At least 300 feeds, in every format."""
    assert len(EXPECTED) >= 300
    for prefix in (
        "rss091",
        "rss092",
        "rss20",
        "rdf",
        "atom03",
        "atom10",
        "jsonfeed1",
        "jsonfeed11",
    ):
        assert any(name.startswith(prefix) for name in EXPECTED), prefix


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fast_path_and_feedparser_alone_agree(name: str) -> None:
    """Whichever parser reads the feed, the Articles are the same, field by field."""
    fast, slow = read(name), read(name, fast_path=False)
    assert [astuple(a) for a in fast.articles] == [astuple(a) for a in slow.articles]
    assert len(fast.rejected) == len(slow.rejected)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_feed_gives_the_stated_articles(name: str) -> None:
    """Links, titles, text, authors, dates and categories are what the feed says; an entry with
    no usable link is skipped with a reason, never posted under a made-up one."""
    reading = read(name)
    wants = EXPECTED[name]["entries"]
    assert isinstance(wants, list)
    posted = [w for w in wants if w["url"]]
    assert [a.url for a in reading.articles] == [w["url"] for w in posted]
    assert len(reading.rejected) == len(wants) - len(posted)
    for article, want in zip(reading.articles, posted, strict=True):
        assert article.title == want["title"]
        assert " ".join(html_to_text(article.summary_html).split()) == want["text"]
        if want["author"] is not None:
            assert article.author == want["author"]
        if want["published"] is not None:
            assert article.published is not None
            assert article.published.isoformat() == want["published"]
        if want["categories"]:
            assert list(article.categories) == want["categories"]
