"""Templates run under a budget inside the sandbox: time, output size, format widths. Over it
is a TemplateError naming the file and line, raised quickly."""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import babel.localedata
import pytest

from bot.compose import excerpt as excerpt_module
from bot.compose import render as render_module
from bot.compose.length import X_POST
from bot.compose.render import RENDER_SECONDS, Renderer
from bot.compose.sample import SAMPLE_ARTICLE
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


def render(tmp_path: Path, template: str, excerpt: str = "高雄市府表示，擴建工程如期完成。") -> str:
    (tmp_path / "t.txt.j2").write_text(template, encoding="utf-8")
    renderer = Renderer(tmp_path, ZoneInfo("Asia/Taipei"))
    post = renderer.render(
        "t.txt.j2",
        article=ARTICLE,
        excerpt=excerpt,
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


def test_time_the_render_thread_spends_waiting_is_not_charged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A render whose thread waits on a lock (as for the GIL or a core on a loaded machine)
    longer than the whole budget still renders: the budget is the thread's CPU time."""
    held = threading.Lock()
    held.acquire()
    releaser = threading.Timer(RENDER_SECONDS * 1.6, held.release)

    def waiting_summary(html: str) -> str:
        with held:
            return "記者 王秉程／高雄報導"

    monkeypatch.setattr(render_module, "_summary_text", waiting_summary)
    started = time.monotonic()
    releaser.start()
    try:
        text = render(tmp_path, "{{ article.summary }}\n{{ article.title }}", "擴建。")
    finally:
        releaser.join()
    assert time.monotonic() - started > RENDER_SECONDS * 1.5  # it did wait past the budget
    assert text == "記者 王秉程／高雄報導\n高雄港擴建第一期完工，年吞吐量增加 120 萬 TEU 🚢"


def test_a_template_that_waits_and_then_loops_is_still_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Waiting does not buy a loop more time: after it, a busy template stops once it has run
    for the budget in CPU time, not long after."""

    def sleeping_summary(html: str) -> str:
        time.sleep(0.3)
        return ""

    monkeypatch.setattr(render_module, "_summary_text", sleeping_summary)
    started = time.thread_time()
    with pytest.raises(TemplateError, match="to render"):
        render(
            tmp_path,
            "{{ article.summary }}{% for a in range(1000) %}{% for b in range(1000) %}"
            "{% for c in range(1000) %}{% endfor %}{% endfor %}{% endfor %}",
            "擴建。",
        )
    assert RENDER_SECONDS <= time.thread_time() - started < RENDER_SECONDS + 1


def test_loading_the_word_segmenter_is_not_charged_to_the_template(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first phrase cut of a process loads the segmenter (about a second of CPU); that
    one-off work is the fitter's, so the template rendered after it is not refused."""
    loaded = excerpt_module._tokenizer

    @functools.lru_cache(maxsize=1)
    def slow_first_load() -> object:
        spin_until = time.thread_time() + RENDER_SECONDS * 1.5
        while time.thread_time() < spin_until:
            pass
        return loaded()

    monkeypatch.setattr(excerpt_module, "_tokenizer", slow_first_load)
    # No clause end in reach, and a window the segmenter has not seen: a phrase cut, with the
    # segmenter asked; `|trim` makes the template run again after the cut.
    excerpt = "臺灣港務公司預計明年啟用第二座自動化貨櫃碼頭並同步擴充冷鏈倉儲與轉運設施" * 8
    text = render(tmp_path, "{{ article.title }}\n{{ article.excerpt|trim }}", excerpt)
    assert slow_first_load.cache_info().misses == 1
    assert text.startswith("高雄港擴建第一期完工") and text.endswith("…")


def test_a_locales_first_date_is_not_charged_to_the_template(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Babel's one-off load of a locale's data happens when the renderer is built, not in the
    first post's render budget."""
    (tmp_path / "t.txt.j2").write_text(
        "{{ article.published | datetime('EEEE') }} {{ article.title }}", "utf-8"
    )
    monkeypatch.setattr(babel.localedata, "_cache", {})  # as in a fresh process
    renderer = Renderer(tmp_path, ZoneInfo("Asia/Taipei"), locale="en_US")
    monkeypatch.setattr(render_module, "RENDER_SECONDS", 0.002)
    post = renderer.render(
        "t.txt.j2",
        article=replace(SAMPLE_ARTICLE, published=datetime(2025, 9, 15, 8, 20, tzinfo=UTC)),
        excerpt="",
        source="s",
        channel="c",
        link="https://news.example.tw/a/1",
        rule=X_POST,
    )
    assert post.text.startswith("Monday ")
