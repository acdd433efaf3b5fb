"""Templates: escaping, filters, errors that name file:line, the sandbox, and fitting."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.compose.length import TELEGRAM_CAPTION, X_POST, LengthRule, x_weighted_length
from bot.compose.render import Renderer, hashtags
from bot.compose.sample import SAMPLE_ARTICLE, SAMPLE_SOURCE
from bot.errors import PermanentError, TemplateError

REPO_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
TAIPEI = ZoneInfo("Asia/Taipei")
LINK = 'https://news.example.tw/新聞/高雄?utm_source=telegram&utm_medium=social&x="1"'
EXCERPT = "高雄與波蘭姊妹市 格丁尼亞 的交流再度邁向新里程！由高雄市副市長 羅達生 率領市府團隊。"


def _renderer(tmp_path: Path, **templates: str) -> Renderer:
    for name, body in templates.items():
        (tmp_path / name.replace("__", ".")).write_text(body, encoding="utf-8")
    return Renderer(tmp_path, TAIPEI)


def _render(
    renderer: Renderer, name: str, rule: LengthRule = TELEGRAM_CAPTION, **kw: object
) -> str:
    article = kw.pop("article", SAMPLE_ARTICLE)
    post = renderer.render(
        name,
        article=article,  # type: ignore[arg-type]
        excerpt=str(kw.pop("excerpt", EXCERPT)),
        source=SAMPLE_SOURCE,
        channel="telegram",
        link=str(kw.pop("link", LINK)),
        rule=rule,
    )
    return post.text


def test_html_templates_escape_feed_text_once(tmp_path: Path) -> None:
    """In *.html.j2, <, >, & and \" from the feed arrive escaped exactly once."""
    r = _renderer(tmp_path, t__html__j2="<b>{{ article.title }}</b>")
    article = replace(SAMPLE_ARTICLE, title='高雄 <b>&amp; "港都" & 格丁尼亞')
    assert _render(r, "t.html.j2", article=article) == (
        "<b>高雄 &lt;b&gt;&amp;amp; &#34;港都&#34; &amp; 格丁尼亞</b>"
    )


def test_plain_templates_are_not_escaped(tmp_path: Path) -> None:
    """In plain-text templates feed text arrives verbatim."""
    r = _renderer(tmp_path, t__txt__j2="{{ article.title }}")
    article = replace(SAMPLE_ARTICLE, title='高雄 <b> & "港都"')
    assert _render(r, "t.txt.j2", X_POST, article=article) == '高雄 <b> & "港都"'


def test_tracking_link_arrives_untouched(tmp_path: Path) -> None:
    """The link with its tracking parameters survives intact (HTML-escaped only in HTML)."""
    r = _renderer(
        tmp_path, t__txt__j2="{{ link }}", t__html__j2='<a href="{{ link }}">閱讀全文</a>'
    )
    assert _render(r, "t.txt.j2", X_POST) == LINK
    href = re.search(r'href="([^"]*)"', _render(r, "t.html.j2"))
    assert href is not None
    assert html.unescape(href.group(1)) == LINK


def test_hashtags_filter_is_cjk_safe() -> None:
    """Categories become #tags: CJK kept, a category's words written together (#國際交流),
    empty and digit-only tags dropped."""
    assert hashtags(["地方", "國際 交流", "格但斯克・索波特", "AI-城市", "  ", "2025", "地方"]) == (
        "#地方 #國際交流 #格但斯克索波特 #AI城市"
    )


def test_datetime_filter_converts_to_the_configured_timezone(tmp_path: Path) -> None:
    """datetime shows the published time in the configured zone, and nothing for None."""
    r = _renderer(
        tmp_path,
        t__txt__j2="{{ article.published | datetime }}|{{ article.published | datetime('%m/%d') }}",
    )
    article = replace(SAMPLE_ARTICLE, published=datetime(2025, 9, 14, 17, 5, tzinfo=UTC))
    assert _render(r, "t.txt.j2", X_POST, article=article) == "2025-09-15 01:05|09/15"
    assert _render(r, "t.txt.j2", X_POST, article=replace(article, published=None)) == "|"


def test_undefined_variable_names_file_and_line(tmp_path: Path) -> None:
    """A StrictUndefined error is a TemplateError whose where is the template file and line."""
    r = _renderer(tmp_path, bad__txt__j2="{{ article.title }}\n\n{{ article.subtitle }}\n")
    with pytest.raises(TemplateError) as info:
        _render(r, "bad.txt.j2", X_POST)
    assert info.value.where == f"{tmp_path / 'bad.txt.j2'}:3"
    assert "subtitle" in str(info.value)


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    """check() reports a syntax error with the template file and line."""
    r = _renderer(
        tmp_path, bad__txt__j2="【{{ article.title }}】\n{% if article.excerpt %}\n{{ link }\n"
    )
    with pytest.raises(TemplateError) as info:
        r.check("bad.txt.j2")
    assert info.value.where is not None
    assert info.value.where.endswith("bad.txt.j2:3")


def test_missing_template_is_a_template_error(tmp_path: Path) -> None:
    """check() on a template that does not exist raises TemplateError naming it."""
    r = _renderer(tmp_path)
    with pytest.raises(TemplateError, match=r"nope\.txt\.j2"):
        r.check("nope.txt.j2")


def test_sandbox_blocks_python_internals(tmp_path: Path) -> None:
    """Reaching into Python internals from a template is refused, naming file:line."""
    r = _renderer(tmp_path, evil__txt__j2="{{ link }}\n{{ ''.__class__.__mro__ }}")
    with pytest.raises(TemplateError, match="not allowed in a template") as info:
        _render(r, "evil.txt.j2", X_POST)
    assert info.value.where == f"{tmp_path / 'evil.txt.j2'}:2"


def test_reload_picks_up_changed_templates(tmp_path: Path) -> None:
    """After reload() a changed template file is used; before it the compiled one is."""
    r = _renderer(tmp_path, t__txt__j2="舊版")
    assert _render(r, "t.txt.j2", X_POST) == "舊版"
    (tmp_path / "t.txt.j2").write_text("新版", encoding="utf-8")
    assert _render(r, "t.txt.j2", X_POST) == "舊版"
    r.reload()
    assert _render(r, "t.txt.j2", X_POST) == "新版"


def test_default_templates_render_the_sample_within_limits() -> None:
    """The shipped templates pass check() and render the sample within X and Telegram limits."""
    r = Renderer(REPO_TEMPLATES, TAIPEI)
    for name, rule in (("x.txt.j2", X_POST), ("telegram.html.j2", TELEGRAM_CAPTION)):
        r.check(name)
        post = r.render(
            name, article=SAMPLE_ARTICLE, excerpt=EXCERPT * 5, source=SAMPLE_SOURCE,
            channel="c", link=LINK, rule=rule,
        )  # fmt: skip
        assert post.length <= rule.limit
        assert post.length == rule.measure(post.text)
        assert post.article_key == SAMPLE_ARTICLE.key
        assert post.image == SAMPLE_ARTICLE.image
        assert "#地方" in post.text


def test_fitting_shortens_the_excerpt_before_the_title(tmp_path: Path) -> None:
    """Over the limit, the excerpt is cut (at a sentence or clause end) and the title kept whole."""
    r = _renderer(tmp_path, t__txt__j2="【{{ article.title }}】{{ article.excerpt }} {{ link }}")
    long_excerpt = "高雄與格丁尼亞同為重要港灣城市，兩地都有相似背景。" * 20
    text = _render(
        r, "t.txt.j2", X_POST, excerpt=long_excerpt, link="https://news.example.tw/a?utm_source=x"
    )
    assert f"【{SAMPLE_ARTICLE.title}】" in text
    assert text.endswith(" https://news.example.tw/a?utm_source=x")
    assert x_weighted_length(text) <= 280
    body = text.split("】", 1)[1].rsplit(" ", 1)[0]
    assert body.endswith(("。", "…"))


def test_fitting_shortens_the_title_when_the_excerpt_is_not_enough(tmp_path: Path) -> None:
    """When even an empty excerpt is too long, the title is shortened and the link still whole."""
    r = _renderer(tmp_path, t__txt__j2="{{ article.title }}{{ article.excerpt }} {{ link }}")
    article = replace(SAMPLE_ARTICLE, title="高雄與格丁尼亞的城市外交" * 30)
    text = _render(r, "t.txt.j2", X_POST, article=article, link="https://x.tw/a")
    assert x_weighted_length(text) <= 280
    assert text.endswith("… https://x.tw/a")


def test_fitting_gives_up_with_permanent_error(tmp_path: Path) -> None:
    """A template whose fixed text alone is over the limit raises PermanentError naming it."""
    r = _renderer(tmp_path, t__txt__j2="{{ article.title }}" + "固定文字" * 100 + " {{ link }}")
    with pytest.raises(
        PermanentError, match=r"template t\.txt\.j2 is \d+ long, over the limit of 280"
    ):
        _render(r, "t.txt.j2", X_POST)


def test_fitting_works_when_the_template_transforms_the_excerpt(tmp_path: Path) -> None:
    """An excerpt the template changes (|upper) is still fitted, by real measures."""
    r = _renderer(tmp_path, t__txt__j2="{{ article.excerpt | upper }} {{ link }}")
    text = _render(r, "t.txt.j2", X_POST, excerpt="Kaohsiung and Gdynia sign a memorandum. " * 20)
    assert x_weighted_length(text) <= 280
    assert text.startswith("KAOHSIUNG")


def test_sandbox_kept_attribute_answers_match_jinja() -> None:
    """The sandbox's remembered attribute answers equal Jinja's own, asked again and again, for
    safe names, internals, mutating methods and module values alike."""
    import types

    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from bot.compose.render import _Sandbox

    ours, jinja = _Sandbox(), ImmutableSandboxedEnvironment()
    cases = [
        ("高雄", "upper", str.upper), ("高雄", "__class__", str), ([], "append", None),
        ([], "index", None), ({}, "keys", None), ({}, "clear", None), (str, "mro", None),
        (len, "__self__", None), ((x for x in ()), "gi_frame", None), (types, "path", None),
        (SAMPLE_ARTICLE, "title", "t"), (SAMPLE_ARTICLE, "os", types),
    ]  # fmt: skip
    for _ in range(3):
        for obj, attr, value in cases:
            expected = not isinstance(obj, types.ModuleType) and not isinstance(
                value, types.ModuleType
            )
            expected = expected and jinja.is_safe_attribute(obj, attr, value)
            assert ours.is_safe_attribute(obj, attr, value) == expected, (obj, attr)
