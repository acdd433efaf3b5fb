"""Property: whatever the article, a fitted post is within its limit and carries the whole link."""

from __future__ import annotations

import html
import math
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.compose.excerpt import _WORD_SLACK
from bot.compose.length import TELEGRAM_CAPTION, TELEGRAM_MESSAGE, X_POST, LengthRule
from bot.compose.render import Renderer
from bot.compose.sample import SAMPLE_ARTICLE

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
RENDERER = Renderer(TEMPLATES, ZoneInfo("Asia/Taipei"))

WORDS = st.sampled_from(
    [
        "高雄", "格丁尼亞", "智慧城市", "新創", "港灣", "備忘錄", "，", "。", "！", "、",
        "「", "」",
        "（PPNT）", " Gdynia IT Centre ", "Oktawia Gorzeńska", " ", "…", "&", "<b>", '"',
        "😷", "👨‍👩‍👧‍👦", "🇹🇼", "1️⃣", "e\u0301", "3.5%", "example.com", "https://t.co/abc",
    ]
)  # fmt: skip
CJK_RUN = st.text(
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1, max_size=30
)
TEXT = st.lists(st.one_of(WORDS, CJK_RUN), max_size=80).map("".join)
LINKS = st.builds(
    lambda host, path, medium: f"https://{host}/{path}?utm_source=bot&utm_medium={medium}",
    st.sampled_from(["news.example.tw", "www.newsvision.com.tw", "a.tw"]),
    st.text(st.sampled_from("abc123-_/"), max_size=120),
    st.sampled_from(["telegram", "x", "social"]),
)
CATEGORIES = st.lists(
    st.sampled_from(["地方", "國際交流", "投資 理財", "AI・科技", "2025"]), max_size=4
)
RULES: list[tuple[str, LengthRule]] = [
    ("x.txt.j2", X_POST),
    ("telegram.html.j2", TELEGRAM_CAPTION),
    ("telegram.html.j2", TELEGRAM_MESSAGE),
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=TEXT.filter(lambda t: t.strip() != ""),
    excerpt=TEXT,
    link=LINKS,
    categories=CATEGORIES,
    which=st.sampled_from(range(len(RULES))),
)
def test_fitted_post_is_within_limit_and_keeps_the_link(
    title: str, excerpt: str, link: str, categories: list[str], which: int
) -> None:
    """A fitted X or Telegram post never exceeds its limit and contains the full link exactly."""
    name, rule = RULES[which]
    article = replace(SAMPLE_ARTICLE, title=title.strip(), categories=tuple(categories))
    post = RENDERER.render(
        name, article=article, excerpt=excerpt.strip(), source="sample",
        channel="c", link=link, rule=rule,
    )  # fmt: skip
    assert post.length == rule.measure(post.text)
    assert post.length <= rule.limit
    visible = html.unescape(post.text) if rule.platform == "telegram" else post.text
    assert link in visible
    assert post.link == link


@settings(max_examples=50, deadline=None)
@given(excerpt=st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=600))
def test_long_chinese_excerpt_fills_the_x_post(excerpt: str) -> None:
    """A long Chinese excerpt is cut close to the limit: within an ellipsis at a character cut,
    within the word slack (a phrase boundary the segmenter finds) at a phrase cut."""
    composed = RENDERER.compose(
        "x.txt.j2", article=SAMPLE_ARTICLE, excerpt=excerpt, source="sample",
        channel="c", link="https://news.example.tw/a?utm_source=x", rule=X_POST,
    )  # fmt: skip
    ellipsis = 2  # "…" weighs two on X
    allowed = {"character": ellipsis, "phrase": ellipsis + math.ceil(_WORD_SLACK * X_POST.limit)}
    assert composed.cut in allowed
    assert composed.post.length <= 280
    assert composed.budget_left <= allowed[composed.cut]
