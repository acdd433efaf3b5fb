"""Templates run under a budget inside the sandbox: time, output size, format widths. Over it
is a TemplateError naming the file and line, raised quickly."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.compose.length import X_POST
from bot.compose.render import Renderer
from bot.errors import TemplateError
from bot.model import Article

ARTICLE = Article(
    key="nv-1",
    url="https://news.example.tw/article/1",
    title="高雄港擴建第一期完工，年吞吐量增加 120 萬 TEU 🚢",
    summary_html="<p>記者 王秉程／高雄報導</p>",
    published=datetime(2025, 9, 16, 10, 0, tzinfo=UTC),
    categories=("地方", "產業"),
)


def render(tmp_path: Path, template: str) -> str:
    (tmp_path / "t.txt.j2").write_text(template, encoding="utf-8")
    renderer = Renderer(tmp_path, ZoneInfo("Asia/Taipei"))
    post = renderer.render(
        "t.txt.j2",
        article=ARTICLE,
        excerpt="高雄市府表示，擴建工程如期完成。",
        source="nv",
        channel="x",
        link=ARTICLE.url,
        rule=X_POST,
    )
    return post.text


@pytest.mark.parametrize(
    ("template", "line", "words"),
    [
        (
            "{{ article.title }}\n{% for a in range(1000) %}{% for b in range(1000) %}"
            "{% for c in range(1000) %}{% endfor %}{% endfor %}{% endfor %}",
            2,
            "to render",
        ),
        (
            "{{ article.title }}\n{% set s = 'x' * 1000 %}{% for a in s %}{% for b in s %}"
            "{% for c in s %}{{ '' }}{% endfor %}{% endfor %}{% endfor %}",
            2,
            "to render",
        ),
        ("{{ article.title }}\n{{ '%0300000000d'|format(1) }}", 2, "too wide"),
        ("{{ article.title }}\n{{ '{:>1000000000}'.format(1) }}", 2, "too wide"),
        ("{{ article.title }}\n{{ '{:>{w}}'.format(1, w=10**9) }}", 2, "too wide"),
        ("{{ article.title }}\n{{ '%*d' % (1000000000, 1) }}", 2, "width"),
        ("{{ article.title }}\n{{ 'x'.center(1000000000) }}", 2, "center"),
        ("{{ article.title }}\n{{ 'x'|center(1000000000) }}", 2, "center"),
        ("{{ article.title }}\n{{ 'x'|indent(1000000000, first=True) }}", 2, "indent"),
        (
            "{{ article.title }}\n{% for a in range(1000) %}{% for b in range(200) %}"
            "{{ 'x' }}{% endfor %}{% endfor %}",
            None,  # measured outside the template's frames: the file only
            "characters",
        ),
    ],
    ids=[
        "ranges",
        "strings",
        "percent",
        "format",
        "nested",
        "star",
        "method",
        "filter",
        "indent",
        "output",
    ],
)
def test_an_over_budget_template_is_a_template_error_at_its_line(
    tmp_path: Path, template: str, line: int | None, words: str
) -> None:
    """Loops past the time budget, huge widths and huge output fail fast with file:line."""
    started = time.monotonic()
    with pytest.raises(TemplateError) as caught:
        render(tmp_path, template)
    assert time.monotonic() - started < 5
    assert ("t.txt.j2" if line is None else f"t.txt.j2:{line}") in str(caught.value)
    assert words in str(caught.value)


def test_ordinary_formatting_and_loops_still_render(tmp_path: Path) -> None:
    """Small widths, loops over categories and format() keep working within the budget."""
    text = render(
        tmp_path,
        "{{ '%-6s|'|format(article.source) }}{{ '{:>4}'.format(7) }} {{ article.title }}\n"
        "{% for c in article.categories %}#{{ c }} {% endfor %}{{ link }}",
    )
    assert text.startswith("nv    |   7 高雄港") and "#地方 #產業" in text
