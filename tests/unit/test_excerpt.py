"""HTML to text, and excerpts cut where a Chinese reader expects."""

from __future__ import annotations

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.compose.excerpt import Cut, build_excerpt, cut, html_to_text, shorten
from bot.compose.length import prefix_weights, x_weighted_length

BYLINE = r"新聞視界時報\s*記者\s*\S+\s*整理報導"
ARTICLE_HTML = """
<div class="article">
<p>新聞視界時報 記者 王秉程 整理報導</p>
<script>var tracker = "不該出現";</script><style>p { color: red; }</style>
<p>高雄與波蘭姊妹市 格丁尼亞 的交流再度邁向新里程！</p>
<p>由高雄市副市長 羅達生 率領市府團隊，於波蘭時間 9 月 14 日與格丁尼亞市政府正式簽署
經濟合作備忘錄。</p>
<p>此次合作涵蓋格丁尼亞市政府經濟政策處、波美拉尼亞科技園區（PPNT）、格丁尼亞資訊中心
（Gdynia IT Centre）等單位。</p>
</div>
"""


def test_html_to_text_drops_script_style_and_template_content() -> None:
    """Script, style, noscript and template contents never reach the text."""
    html = (
        "<p>高雄</p><script>alert('x')</script><style>b{}</style>"
        "<noscript>請啟用</noscript><template><p>模板</p></template><p>港都</p>"
    )
    text = html_to_text(html)
    assert text == "高雄\n港都"


def test_html_to_text_separates_blocks_and_decodes_entities() -> None:
    """Block elements become single line breaks; entities decode; inline tags do not split."""
    html = (
        "<h2>港灣城市&amp;智慧</h2><p>羅達生<b>副市長</b>&nbsp;指出&lt;三大方向&gt;</p>"
        "<br><br><ul><li>人才</li><li>產業</li></ul>"
    )
    assert html_to_text(html) == "港灣城市&智慧\n羅達生副市長 指出<三大方向>\n人才\n產業"


def test_html_to_text_collapses_whitespace_and_control_characters() -> None:
    """Runs of spaces become one, control characters vanish, and the result is NFC and stripped."""
    html = "  <p>Gorzen\u0301ska\x07   說\t\t好</p>\n\n\n<p>  下一段  </p>  "
    assert html_to_text(html) == "Gorzeńska 說 好\n下一段"


def test_html_to_text_survives_broken_html() -> None:
    """Unclosed tags and stray brackets do not raise or lose the text."""
    assert "高雄市" in html_to_text("<p>高雄市<b>經發局<div>補充 < 說明 <a href='x")


def test_build_excerpt_strips_the_byline_and_keeps_paragraphs_apart() -> None:
    """The byline pattern is removed; paragraphs stay one a line (issue 12: blocks never fuse),
    and a source line break inside a paragraph joins CJK text without a stray space."""
    excerpt = build_excerpt(ARTICLE_HTML, strip=[BYLINE], length=500)
    assert "新聞視界時報" not in excerpt
    assert "不該出現" not in excerpt
    assert excerpt.startswith("高雄與波蘭姊妹市 格丁尼亞 的交流再度邁向新里程！\n由高雄市")
    assert "正式簽署經濟合作備忘錄。\n此次合作" in excerpt


def test_build_excerpt_ends_at_a_sentence_end_without_ellipsis() -> None:
    """With room for a full sentence, the excerpt ends at 。/！ and has no ellipsis."""
    excerpt = build_excerpt(ARTICLE_HTML, strip=[BYLINE], length=90)
    assert excerpt.endswith("經濟合作備忘錄。")
    assert len(excerpt) <= 90


def test_shorten_prefers_a_clause_end_and_drops_its_mark() -> None:
    """Without a sentence end in reach, the cut is at a clause mark, replaced by the ellipsis."""
    text = (
        "由高雄市副市長羅達生率領市府團隊，"
        "於波蘭時間九月十四日與格丁尼亞市政府正式簽署經濟合作備忘錄"
    )
    assert shorten(text, 30) == "由高雄市副市長羅達生率領市府團隊…"


def test_shorten_keeps_a_closing_quote_with_the_sentence() -> None:
    """A sentence end followed by a closing quote keeps the quote: 。」 stays together."""
    text = "她說：「城市外交不只是一紙協議。」接著又補充了許多關於未來合作的細節與時程安排"
    assert shorten(text, 25) == "她說：「城市外交不只是一紙協議。」"


def test_shorten_returns_the_text_when_it_fits_and_nothing_for_tiny_budgets() -> None:
    """A fitting text is unchanged; a budget of 0 or 1 yields the empty string."""
    assert shorten("高雄市", 3) == "高雄市"
    assert shorten("高雄市經發局", 0) == ""
    assert shorten("高雄市經發局", 1) == ""


def test_shorten_does_not_split_latin_words() -> None:
    """Latin words are not cut in half when a word boundary keeps enough text."""
    text = "Oktawia Gorzeńska visited Kaohsiung harbour yesterday afternoon"
    out = shorten(text, 30)
    assert out == "Oktawia Gorzeńska visited…"


def test_shorten_never_cuts_inside_a_url() -> None:
    """A URL in the text is kept whole or dropped whole, never cut in the middle."""
    url = "https://news.example.tw/news/kaohsiung-gdynia?id=12345"
    text = f"詳見 {url} 了解更多高雄與格丁尼亞的合作細節與後續發展"
    for budget in range(1, len(text)):
        out = shorten(text, budget)
        assert url in out or "https" not in out, (budget, out)


GRAPHEME_HEAVY = ["👨‍👩‍👧‍👦", "🇹🇼", "🇵🇱", "é", "e\u0301", "🙋🏽", "1️⃣", "高", "，", "。", " ", "a"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(GRAPHEME_HEAVY), min_size=1, max_size=40), st.integers(0, 60))
def test_shorten_never_splits_a_grapheme_cluster(parts: list[str], budget: int) -> None:
    """Every cut lies on a grapheme-cluster boundary: no broken family emoji, flag or accent."""
    text = "".join(parts)
    out = shorten(text, budget)
    kept = out.removesuffix("…")
    assert len(out) <= budget
    assert text.startswith(kept)
    clusters = regex.findall(r"\X", text)
    assert kept == "".join(clusters[: len(regex.findall(r"\X", kept))])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["高雄", "格丁尼亞", "，", "。", "！", " Gdynia ", "😷", "https://x.tw/a "]
        ),
        max_size=40,
    ).map("".join),
    st.integers(0, 120),
)
def test_shorten_with_x_weights_fits_the_budget(text: str, budget: int) -> None:
    """With X prefix weights, the shortened text never weighs more than the budget on X."""
    out = shorten(text, budget, prefix_weights(text, "x"), ellipsis_weight=2)
    assert x_weighted_length(out) <= budget


_SIMPLE_RANGES = [
    (0x0A, 0x0A),
    (0x20, 0x7E),
    (0xA0, 0x2FF),
    (0x2000, 0x200B),
    (0x2010, 0x206F),
    (0x2E80, 0x3029),
    (0x3030, 0x3098),
    (0x309B, 0x9FFF),
    (0xAC00, 0xD7A3),
    (0xF900, 0xFAFF),
    (0xFE10, 0xFE1F),
    (0xFE30, 0xFE4F),
    (0xFF01, 0xFF9D),
    (0xFFE0, 0xFFEE),
]


@given(
    st.lists(
        st.one_of(*(st.integers(lo, hi) for lo, hi in _SIMPLE_RANGES)).map(chr), max_size=60
    ).map("".join)
)
@settings(max_examples=300, deadline=None)
def test_fast_cluster_path_agrees_with_unicode_segmentation(text: str) -> None:
    """In text the fast path accepts, every code point is its own grapheme cluster (\\X)."""
    from bot.compose.excerpt import _ONE_CODE_POINT_CLUSTERS

    assert _ONE_CODE_POINT_CLUSTERS.fullmatch(text)
    assert [len(c) for c in regex.findall(r"\X", text)] == [1] * len(text)


def test_fast_cluster_path_refuses_what_combines() -> None:
    """Combining marks, joiners, emoji modifiers and flags take the full \\X path."""
    from bot.compose.excerpt import _ONE_CODE_POINT_CLUSTERS

    for text in ["e\u0301", "👨\u200d👩", "👍🏽", "🇹🇼", "か\u3099", "\r\n", "ｶﾞ"]:
        assert not _ONE_CODE_POINT_CLUSTERS.fullmatch(text), repr(text)


# ------------------------------------------------------- which end wins: the latest in reach


def test_the_latest_end_in_reach_wins_over_an_earlier_sentence_end() -> None:
    """Within the slack the cut keeps the most text: a clause end well past a sentence end
    beats the sentence end (the old score took the strongest kind, however early)."""
    text = (
        "高雄與格丁尼亞今天正式簽署港灣城市合作備忘錄。"  # a sentence end at 23
        "雙方將在智慧港口、綠色航運與新創事業上合作，"  # clause ends at 29, 34 and 44
        "並於明年互設辦公室以深化交流與產業媒合"
    )
    result = cut(text, 56)
    assert result == Cut(
        "高雄與格丁尼亞今天正式簽署港灣城市合作備忘錄。雙方將在智慧港口、綠色航運與新創事業上合作…",
        "clause",
    )


def test_a_sentence_end_wins_over_a_clause_end_only_a_few_characters_later() -> None:
    """A sentence end is preferred to a clause end that keeps just a few characters more (up to
    a quarter of the slack)."""
    sentence = "高雄與格丁尼亞今天正式簽署港灣城市合作備忘錄。"
    text = (
        sentence
        + "雙方共同合作，並於明年互設辦公室以深化交流與產業媒合並擴大人才培育計畫與數位轉型"
    )
    assert cut(text, 40, slack=0.75) == Cut(sentence, "sentence")  # the clause keeps 7 more
    assert cut(text, 40, slack=0.75 * 6 / 8).kind == "clause"  # a preference below 7


def test_a_clause_end_a_fifth_of_the_budget_back_beats_a_phrase_cut() -> None:
    """By default a clause end that gives away a fifth of the budget is still taken rather than
    cutting mid-clause (the old default reached only 9% back)."""
    text = (
        "臺灣港務公司預計明年啟用第二座自動化貨櫃碼頭，並同步擴充冷鏈倉儲與轉運設施以服務中南部產業"
    )
    result = cut(text, 28)
    assert result == Cut("臺灣港務公司預計明年啟用第二座自動化貨櫃碼頭…", "clause")


def test_a_clause_mark_that_only_opens_a_sentence_is_no_clause_end() -> None:
    """`經發局指出，` opens the next sentence and says nothing: the cut ends at the sentence
    before it or runs on past it, never at `…經發局指出…`."""
    text = (
        "根據統計，今年新創事業相關產值達 412.5 億元，創下歷史新高。"
        "經發局指出，桃園不僅能協助本地新創團隊前進歐洲市場，也能引進德勒斯登的創新思維"
    )
    for budget in range(40, 60):
        result = cut(text, budget)
        assert not result.text.endswith("經發局指出…"), budget
    assert cut(text, 48).kind in ("sentence", "phrase")


@pytest.mark.parametrize(
    ("text", "budget", "expected"),
    [
        ("智慧城市交流 —— 格丁尼亞市副市長率領代表團來訪並參觀高雄港", 9, "智慧城市交流…"),
        ("海洋經濟媒合——此次合作涵蓋波美拉尼亞科技園區等單位與機構", 9, "海洋經濟媒合…"),
        ("新創事業新篇章　激盪創新火花並從波羅的海連結國際", 10, "新創事業新篇章…"),
    ],
    ids=["spaced dash", "dash", "full-width space"],
)
def test_a_dash_or_a_full_width_space_between_phrases_is_a_clause_end(
    text: str, budget: int, expected: str
) -> None:
    """A dash and a full-width space set phrases apart as a comma does: a cut may end there."""
    assert cut(text, budget) == Cut(expected, "clause")


def test_a_latin_full_stop_before_chinese_text_ends_a_sentence() -> None:
    """An English quotation ending `."` right before Chinese text is a sentence end."""
    text = (
        'Smith said: "We will keep working with partners such as 臺灣半導體產業協會."'
        "經發局指出，未來將持續推動雙方新創團隊交流"
    )
    result = cut(text, 84)
    assert result == Cut(
        'Smith said: "We will keep working with partners such as 臺灣半導體產業協會."', "sentence"
    )


@pytest.mark.parametrize(
    ("text", "budget", "expected"),
    [
        (
            "交通局表示，今年起凡是載客 3 人以上的小客車可使用高乘載專用道",
            22,
            "交通局表示，今年起凡是載客 3 人以上…",
        ),
        (
            "文化局希望藉由這項計畫，創造大量在地就業機會並活化老街商圈",
            18,
            "文化局希望藉由這項計畫，創造大量…",
        ),
        (
            "市府今年將推動新政策協助青年創業並在各區設立新的服務據點",
            19,
            "市府今年將推動新政策協助青年創業…",
        ),
    ],
    ids=["的小|客車", "在|地", "並在"],
)
def test_a_phrase_cut_never_stops_on_a_word_that_leans_on_the_next(
    text: str, budget: int, expected: str
) -> None:
    """A one-character particle, preposition or compound opener (的, 在, 並, 小) ends no excerpt:
    the cut falls before it, as an editor's would."""
    assert cut(text, budget, slack=0.0) == Cut(expected, "phrase")
