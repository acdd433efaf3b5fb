"""Lengths as X and Telegram count them."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from twitter_text import parse_tweet

from bot.compose.length import (
    TELEGRAM_CAPTION,
    X_POST,
    prefix_weights,
    telegram_length,
    x_weighted_length,
)

CONFORMANCE = Path(__file__).resolve().parents[1] / "fixtures" / "conformance"
SECTIONS = ("WeightedTweetsWithDiscountedEmojiCounterTest", "UnicodeDirectionalMarkerCounterTest")


def _cases() -> list[Any]:
    path = CONFORMANCE / "twitter-text-validate.yml"
    if not path.exists():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no conformance data at {path}"))]
    tests = yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]
    return [
        pytest.param(case, id=f"{section}:{case['description']}")
        for section in SECTIONS
        for case in tests[section]
    ]


@pytest.mark.parametrize("case", _cases())
def test_x_weighted_length_passes_twitter_text_conformance(case: dict[str, Any]) -> None:
    """Every v3 conformance case gets the weighted length twitter-text expects."""
    assert x_weighted_length(case["text"]) == case["expected"]["weightedLength"]


CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
PUNCT = st.sampled_from(list("，。、「」！？：；（）… .,:;!?-_/#@\n\r\t\u3000・×—"))
EMOJI = st.sampled_from(
    ["😷", "👨‍👩‍👧", "🇹🇼", "🙋🏽", "1️⃣", "#️⃣", "©", "™", "❤️", "🚢", "é", "e\u0301"]
)
URLS = st.sampled_from(
    [
        "https://news.example.tw/新聞/高雄?utm_source=x&utm_medium=social",
        "http://t.co/abc123",
        "example.com",
        "www.gov.tw/a_b",
        "高雄.台灣",
        "3.5%",
        "a.b",
        "https://x.com/ ",
    ]
)
TOKENS = st.one_of(
    st.text(CJK, min_size=1, max_size=8),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=8),
    PUNCT,
    EMOJI,
    URLS,
    st.characters(blacklist_categories=("Cs",)),  # parse_tweet cannot encode a lone surrogate
)
MIXED = st.lists(TOKENS, max_size=30).map("".join)


@settings(max_examples=300, deadline=None)
@given(MIXED)
def test_x_weighted_length_equals_parse_tweet(text: str) -> None:
    """The fast count equals twitter-text-parser's parse_tweet on mixed CJK/Latin/emoji/URL text."""
    assert x_weighted_length(text) == parse_tweet(text).weightedLength


@settings(max_examples=200, deadline=None)
@given(MIXED)
def test_x_prefix_weights_total_matches_length(text: str) -> None:
    """The last cumulative X weight of NFC text is the text's weighted length, and never falls."""
    import unicodedata

    text = unicodedata.normalize("NFC", text).replace("\r", "")
    weights = prefix_weights(text, "x")
    assert len(weights) == len(text) + 1
    assert weights[-1] == x_weighted_length(text)
    assert all(a <= b for a, b in itertools.pairwise(weights))


def test_x_prefix_weights_charge_a_url_once_as_23() -> None:
    """A URL weighs 23 in prefix weights, charged from its first code point, and not per char."""
    text = "高雄 https://news.example.tw/news/1?utm_source=x 好"
    weights = prefix_weights(text, "x")
    start = text.index("https")
    assert weights[start + 1] - weights[start] == 23
    assert weights[text.index(" 好")] == weights[start] + 23


def test_x_counts_cjk_as_two_and_a_link_as_23() -> None:
    """A Chinese sentence weighs 2 per character, a long link 23, the ellipsis 2."""
    assert x_weighted_length("高雄與格丁尼亞簽署備忘錄。") == 26
    assert x_weighted_length("https://news.example.tw/" + "a" * 200) == 23
    assert x_weighted_length("…") == 2


def test_telegram_length_ignores_tags_and_counts_entities_as_one() -> None:
    """Tags do not count; &lt; &gt; &amp; &quot; and numeric entities count one character."""
    html = (
        '<b>高雄&amp;格丁尼亞</b>\n<a href="https://x.tw/?a=1&amp;b=2">閱讀全文</a>'
        " &lt;3 &#128512; &#x1F600;"
    )
    visible = "高雄&格丁尼亞\n閱讀全文 <3 😀 😀"
    assert telegram_length(html) == len(visible)


def test_telegram_prefix_weights_are_code_points() -> None:
    """On Telegram every code point weighs one, emoji included."""
    assert prefix_weights("高雄👨‍👩‍👧", "telegram") == [0, 1, 2, 3, 4, 5, 6, 7]


def test_length_rules_measure_by_their_platform() -> None:
    """A rule measures with its own platform's count."""
    assert X_POST.measure("高雄") == 4
    assert TELEGRAM_CAPTION.measure("<b>高雄</b>") == 2
