"""Issue 12: Chinese posts an editor would have written — blocks kept apart, no cut inside a
number or a word, the budget used, Taiwan's date forms, templates that read naturally."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.compose.excerpt import (
    DEFAULT_SLACK,
    cut,
    excerpt_source,
    html_to_text,
    one_line,
    stored_excerpt,
)
from bot.compose.length import TELEGRAM_MESSAGE, X_POST, prefix_weights, x_weighted_length
from bot.compose.render import ComposedPost, Renderer
from bot.compose.sample import SAMPLE_ARTICLE
from bot.config import Config
from bot.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
TAIPEI = ZoneInfo("Asia/Taipei")
LINK = "https://news.example.tw/article/12436"


def _compose(
    template: str, excerpt: str, *, title: str | None = None, **kw: object
) -> ComposedPost:
    renderer = Renderer(REPO / "templates", TAIPEI, **kw)  # type: ignore[arg-type]
    rule = X_POST if template.startswith("x") else TELEGRAM_MESSAGE
    article = replace(SAMPLE_ARTICLE, title=title or SAMPLE_ARTICLE.title)
    return renderer.compose(
        template,
        article=article,
        excerpt=excerpt,
        source="s",
        channel="c",
        link=LINK,
        rule=rule,
    )


# ------------------------------------------------------------------------- blocks kept apart

LIST_HTML = "<ul><li>算力基礎建設</li><li>資料治理</li></ul><p>部長表示，將持續推動。</p>"
HEADING_HTML = "<h3>政策重點</h3><p>數位部今天公布方案。</p>"
TABLE_HTML = (
    "<table><tr><th>類組</th><th>錄取率</th></tr><tr><td>第一類組</td><td>96.1%</td></tr>"
    "<tr><td>第二類組</td><td>98.3%</td></tr></table>"
)


@pytest.mark.parametrize(
    ("html", "lines"),
    [
        (LIST_HTML, ["算力基礎建設", "資料治理", "部長表示，將持續推動。"]),
        (HEADING_HTML, ["政策重點", "數位部今天公布方案。"]),
        (TABLE_HTML, ["類組｜錄取率", "第一類組｜96.1%", "第二類組｜98.3%"]),
        ("<p>高雄<br>格丁尼亞</p><blockquote>引言</blockquote><figure><figcaption>圖說"
         "</figcaption></figure>", ["高雄", "格丁尼亞", "引言", "圖說"]),
    ],
)  # fmt: skip
def test_blocks_end_in_a_line_break(html: str, lines: list[str]) -> None:
    """List items, headings, table rows, br, blockquote and figcaption each end their line;
    the cells of a row are set apart by ｜."""
    assert excerpt_source(html).split("\n") == lines


@pytest.mark.parametrize("template", ["x.txt.j2", "telegram.html.j2"])
def test_blocks_stay_apart_in_posts_of_both_channels(template: str) -> None:
    """The posted excerpt keeps a line break between a list item or heading and the next text."""
    text = _compose(template, excerpt_source(LIST_HTML + HEADING_HTML)).post.text
    assert "算力基礎建設\n資料治理\n部長表示" in text
    assert "政策重點\n數位部今天公布方案。" in text
    assert "政策重點數位部" not in text


def test_a_cut_after_a_heading_does_not_fuse_it_with_the_next_text() -> None:
    """A cut right after a heading without punctuation ends with an ellipsis, never with the
    next block's first characters glued on."""
    body = "高雄與格丁尼亞同為港灣城市" * 5
    text = excerpt_source(f"<h3>港灣城市聯手　激盪創新火花</h3><p>{body}</p>")
    result = cut(text, 15, slack=0.2)
    assert result.text == "港灣城市聯手　激盪創新火花…"
    assert result.kind == "clause"


# ------------------------------------------------------------------ never inside a number/word

PROTECTED = ["25,872.14 點", "100%", "9 月 14 日", "NT$1,200", "Jean-Pierre", "@newsvision_tw",
             "#城市外交", "https://news.example.tw/a/1", "412.5 億元", "政府"]  # fmt: skip
NUMBERS_TEXT = (
    "台北股市今天終場以 25,872.14 點作收並對部分產品課徵 100% 關稅於 9 月 14 日起實施票價 NT$1,200"
    "由 Jean-Pierre 主持請追蹤 @newsvision_tw 與 #城市外交 詳見 https://news.example.tw/a/1 "
    "成交量達 412.5 億元並開放更多政府資料"
)


@pytest.mark.parametrize("platform", ["telegram", "x"])
def test_no_budget_cuts_inside_a_number_word_url_handle_or_tag(platform: str) -> None:
    """At every budget, the cut keeps each number with its unit, each Latin word, URL, handle,
    tag and the word 政府 whole or drops it whole."""
    weights = prefix_weights(NUMBERS_TEXT, platform) if platform == "x" else None  # type: ignore[arg-type]
    top = x_weighted_length(NUMBERS_TEXT) if platform == "x" else len(NUMBERS_TEXT)
    for budget in range(4, top):
        kept = cut(NUMBERS_TEXT, budget, weights).text.removesuffix("…")
        for span in PROTECTED:
            start = NUMBERS_TEXT.find(span)
            assert not start < len(kept) < start + len(span), (budget, kept[-15:], span)


BODIES = ["臺灣半導體產業協會", "國家發展委員會", "格丁尼亞資訊中心"]
BODIES_TEXT = (
    "The delegation met representatives of 臺灣半導體產業協會 to discuss start-up exchanges 並拜會"
    "國家發展委員會與格丁尼亞資訊中心討論雙方新創團隊的交流"
)


def test_no_budget_cuts_inside_the_name_of_a_body() -> None:
    """A phrase cut never splits the name of an institution (臺灣|半導體產業協會), though jieba
    finds a word boundary inside it."""
    for budget in range(4, len(BODIES_TEXT)):
        kept = cut(BODIES_TEXT, budget).text.removesuffix("…")
        for body in BODIES:
            start = BODIES_TEXT.find(body)
            assert not start < len(kept) < start + len(body), (budget, kept[-15:], body)


def test_an_x_post_ends_at_the_last_clause_end_rather_than_mid_clause() -> None:
    """On X the excerpt ends at the last clause end even when it lies a sixth of the excerpt's
    budget back (some 18 characters), and keeps the most text among the ends in reach."""
    excerpt = (
        "高雄市副市長羅達生率領市府團隊，於波蘭時間9月14日與格丁尼亞市政府正式簽署經濟合作備忘錄，"
        "並參訪格丁尼亞港與當地新創團隊。"
        "此次合作涵蓋波美拉尼亞科技園區、格丁尼亞資訊中心等單位，"
        "未來雙方將在智慧港口與綠色航運新創事業人才交流與產業媒合等領域持續深化合作並互設辦公室"
    )
    composed = _compose("x.txt.j2", excerpt, title="高雄格丁尼亞簽署備忘錄")
    assert composed.cut == "clause"
    assert composed.excerpt.endswith("格丁尼亞資訊中心等單位…")
    assert composed.post.length <= 280


def test_a_cut_does_not_split_a_chinese_word() -> None:
    """Where no punctuation is in reach, the cut falls between words: never 開放更多政…"""
    text = "數位發展部今天宣布將開放更多政府資料給民眾與企業使用並持續推動"
    for budget in range(8, len(text)):
        out = cut(text, budget, slack=0.05).text
        assert not out.endswith("政…"), out
        assert not out.endswith("資…"), out


def test_an_open_quotation_is_closed_and_counts_against_a_cut() -> None:
    """A cut inside 「…」 closes the quotation after the ellipsis, within the budget."""
    text = "她表示：「城市外交不只是一紙協議，而是逐步實現的行動藍圖，未來將持續推動交流。」"
    out = cut(text, 24, slack=0.2)
    assert out.text.endswith("…」")
    assert len(out.text) <= 24


# ---------------------------------------------------------------------------- budget and score

LATIN_HEAVY = (
    "格丁尼亞副市長表示：\"Taiwan's exclusion from the international forum is unjust, and "
    "Gdynia will keep working with Kaohsiung on start-up exchanges, smart-city pilots, port "
    "logistics and offshore wind, because both cities share the same maritime heritage and the "
    'same ambitions for the decade ahead." 雙方並同意明年互訪。'
)


def test_x_uses_its_budget_for_latin_heavy_text() -> None:
    """A Latin-heavy excerpt is not capped at 160 code points before fitting: the X post
    leaves at most the slack share of its excerpt budget unused."""
    source = stored_excerpt(f"<p>{LATIN_HEAVY}</p>", length=300)
    composed = _compose("x.txt.j2", source, title="高雄格丁尼亞簽署備忘錄")
    assert composed.cut != "none"
    assert composed.post.length <= 280
    assert composed.budget_left <= 0.09 * 2 * 230  # a sentence end may give away twice


def test_the_slack_decides_between_a_sentence_end_and_the_full_budget() -> None:
    """With no slack the longest cut wins; with a generous slack the earlier sentence end."""
    text = "高雄與格丁尼亞正式簽署合作備忘錄。未來雙方將共同推動產業發展新創事業與智慧城市政策"
    assert cut(text, 30, slack=0.0).kind == "phrase"
    generous = cut(text, 30, slack=0.5)
    assert generous.kind == "sentence"
    assert generous.text == "高雄與格丁尼亞正式簽署合作備忘錄。"


def test_excerpt_length_is_an_upper_bound_applied_per_channel() -> None:
    """The editor's bound caps the excerpt in code points even when the channel has room."""
    renderer = Renderer(REPO / "templates", TAIPEI)
    text = "高雄與格丁尼亞正式簽署合作備忘錄，" * 20
    composed = renderer.compose(
        "telegram.html.j2",
        article=SAMPLE_ARTICLE,
        excerpt=text,
        source="s",
        channel="c",
        link=LINK,
        rule=TELEGRAM_MESSAGE,
        max_chars=50,
    )
    assert len(composed.excerpt) <= 50
    assert composed.cut != "none"


# ------------------------------------------------------------------------------------ spacing


def test_full_width_spaces_are_kept_in_titles_and_text() -> None:
    """U+3000 survives in a title and in text; it never becomes an ASCII space."""
    assert one_line("港灣城市聯手　激盪創新火花", 100) == "港灣城市聯手　激盪創新火花"
    assert html_to_text("<p>單一窗口服務　推動落地計畫</p>") == "單一窗口服務　推動落地計畫"


def test_spaces_next_to_cjk_punctuation_go_and_cjk_latin_spacing_stays() -> None:
    """`鄭照新 、經發局長` loses its space; `副市長 羅達生` and `GoPro Creator` keep theirs."""
    spaced = html_to_text("<p>鄭照新 、經發局長 「說明」 ，他說 。</p>")
    assert spaced == "鄭照新、經發局長「說明」，他說。"
    assert html_to_text("<p>副市長 羅達生 率領 GoPro Creator Camp團隊</p>") == (
        "副市長 羅達生 率領 GoPro Creator Camp團隊"
    )


# -------------------------------------------------------------------------------------- dates

PUBLISHED = datetime(2025, 9, 15, 14, 30, tzinfo=TAIPEI)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ article.published | datetime('long') }}", "2025年9月15日 下午2:30"),
        ("{{ article.published | datetime('y年M月d日 ah:mm') }}", "2025年9月15日 下午2:30"),
        ("{{ article.published | datetime('EEE') }}", "週一"),
        ("{{ article.published | datetime('y年M月d日', roc=True) }}", "民國114年9月15日"),
        ("{{ article.published | datetime('long', roc=True) }}", "民國114年9月15日 下午2:30"),
        ("{{ article.published | datetime('%Y/%m/%d') }}", "2025/09/15"),
    ],
)
def test_datetime_speaks_taiwan_forms(tmp_path: Path, template: str, expected: str) -> None:
    """Named styles and CLDR patterns in zh_Hant_TW, the ROC year, and strftime with %."""
    (tmp_path / "t.txt.j2").write_text(template, encoding="utf-8")
    renderer = Renderer(tmp_path, TAIPEI)
    post = renderer.render(
        "t.txt.j2",
        article=replace(SAMPLE_ARTICLE, published=PUBLISHED),
        excerpt="",
        source="s",
        channel="c",
        link=LINK,
        rule=X_POST,
    )
    assert post.text == expected


def test_datetime_follows_the_configured_locale(tmp_path: Path) -> None:
    """Another locale gives that locale's forms."""
    (tmp_path / "t.txt.j2").write_text("{{ article.published | datetime('EEEE') }}", "utf-8")
    renderer = Renderer(tmp_path, TAIPEI, locale="en_US")
    post = renderer.render(
        "t.txt.j2",
        article=replace(SAMPLE_ARTICLE, published=PUBLISHED),
        excerpt="",
        source="s",
        channel="c",
        link=LINK,
        rule=X_POST,
    )
    assert post.text == "Monday"


def test_config_locale_and_slack_are_validated(tmp_path: Path) -> None:
    """`locale` must be a known locale and `excerpt_slack` a share; defaults are zh_Hant_TW."""
    base = {
        "path": tmp_path / "c.yaml",
        "sources": {"s": {"kind": "feed", "url": "https://news.example.tw/rss"}},
        "channels": {"c": {"kind": "console", "template": "x.txt.j2"}},
    }
    config = Config.model_validate(base)
    assert config.locale == "zh_Hant_TW"
    assert config.excerpt_slack == DEFAULT_SLACK
    for bad in ({"locale": "xx_NOPE"}, {"excerpt_slack": 2}):
        with pytest.raises((ConfigError, ValueError)):
            Config.model_validate({**base, **bad})


def test_default_telegram_template_shows_the_time() -> None:
    """The Telegram post says when the article was published, in Taiwan's form."""
    text = _compose("telegram.html.j2", "高雄與格丁尼亞簽署備忘錄。").post.text
    assert "2025年9月15日 上午9:30" in text


# ---------------------------------------------------------------------------------- templates

LABELLED = "【影音】直擊颱風前夕　漁港船隻進港避風"


@pytest.mark.parametrize("excerpt", ["", "漁民提早返港，港區擠滿避風船隻。"])
def test_a_labelled_title_is_not_bracketed_again(excerpt: str) -> None:
    """A title carrying its own 【label】 is posted as it is, with or without an excerpt."""
    text = _compose("x.txt.j2", excerpt, title=LABELLED).post.text
    assert "【【" not in text
    assert text.startswith(LABELLED + "\n")


def test_an_empty_excerpt_leaves_nothing_dangling() -> None:
    """Without an excerpt no line starts or ends with a space and no blank line is left."""
    for title in (LABELLED, "高雄格丁尼亞簽署備忘錄"):
        for line in _compose("x.txt.j2", "", title=title).post.text.split("\n"):
            assert line and line == line.strip(), repr(line)


def test_hashtags_of_multi_word_categories_read_naturally() -> None:
    """`國際 交流` is posted as #國際交流, not #國際_交流."""
    article_tags = _compose("x.txt.j2", "一段摘要。").post.text.split("\n")[-1]
    assert "#國際交流" in article_tags
    assert "_" not in article_tags
