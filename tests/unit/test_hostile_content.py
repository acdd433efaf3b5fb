"""Hostile text in feeds and hostile templates: what reaches a post is clean, within the
platform's limits, valid Telegram HTML, never cut inside a grapheme cluster; and a template
that reaches for Python internals fails at ``newsbot check`` with file:line and exit 2."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import regex

from bot import cli
from bot.compose.excerpt import build_excerpt, clean_text, html_to_text, shorten
from bot.compose.length import TELEGRAM_CAPTION, TELEGRAM_MESSAGE, X_POST, LengthRule
from bot.compose.render import Renderer
from bot.compose.sample import SAMPLE_ARTICLE
from bot.errors import TemplateError
from bot.model import Article
from bot.sources.feed import parse_feed
from bot.testing.telegram_html import clean_text as telegram_clean
from bot.testing.telegram_html import parse_html
from bot.testing.x_server import weighted_length

REPO = Path(__file__).resolve().parents[2]
HOSTILE = REPO / "tests" / "fixtures" / "feeds" / "hostile"
NOW = datetime(2025, 9, 17, 9, 0, tzinfo=UTC)
TAIPEI = ZoneInfo("Asia/Taipei")
GRAPHEME = regex.compile(r"\X")

FAMILY = "👨\u200d👩\u200d👧\u200d👦"
TECHNOLOGIST = "🧑🏽\u200d💻"
FLAGS = "🇹🇼🇵🇱"
THUMB = "👍🏽"
ENGLAND = "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"
EMOJI = (FAMILY, TECHNOLOGIST, "🇹🇼", "🇵🇱", THUMB, ENGLAND, "❤️")
LONG_WORD = "Gdynia" * 834


# ----------------------------------------------------------------------------- clean_text


@pytest.mark.parametrize(
    ("dirty", "clean"),
    [
        ("高雄\u202e與格丁尼亞\u202c締盟", "高雄與格丁尼亞締盟"),  # right-to-left override
        ("\u2067高雄\u2069 \u200f港\u200e灣\u061c", "高雄 港灣"),  # isolates and marks
        ("高\u200b雄\u2060港\ufeff灣\u00ad城市", "高雄港灣城市"),  # zero-width and soft hyphen
        ("高\u200d雄\u200c港", "高雄港"),  # joiners between Han do nothing but split words
        ("新聞\x00視界\x07時報\x1b[0m\x7f\x85\x9b", "新聞視界時報[0m"),  # C0 and C1 controls
        ("第一行\r第二行\r\n第三行\u2028第四行\u2029", "第一行\n第二行\n第三行\n第四行\n"),
        ("格丁尼亞\U000e0069\U000e0067\U000e006e\U000e006f\U000e0072\U000e0065", "格丁尼亞"),
        ("人才交流👨\u200d中", "人才交流👨中"),  # a ZWJ sequence cut short
    ],
)
def test_clean_text_drops_invisible_and_control_characters(dirty: str, clean: str) -> None:
    """Bidi controls, zero-width characters, C0/C1 controls and stray tag characters go."""
    assert clean_text(dirty) == clean


@pytest.mark.parametrize("emoji", EMOJI)
def test_clean_text_keeps_emoji_sequences_whole(emoji: str) -> None:
    """ZWJ families, skin tones, flags and tag-sequence flags survive cleaning unchanged."""
    text = f"高雄{emoji}格丁尼亞"
    assert clean_text(text) == text


def test_clean_text_keeps_joiners_where_scripts_shape_with_them() -> None:
    """ZWNJ in Persian and ZWJ in Devanagari change how letters join: they stay."""
    for text in ("می\u200cخواهم", "क्\u200dष"):
        assert clean_text(text) == text


def test_clean_text_leaves_ordinary_text_alone() -> None:
    """Text without suspect characters comes back as the very same object (the fast path)."""
    text = "高雄 & 格丁尼亞再升級！簽署<經濟合作備忘錄>"
    assert clean_text(text) is text


def test_html_to_text_neutralises_markup_entities_and_invisibles() -> None:
    """Script vanishes, entities decode, bidi and zero-width characters are dropped."""
    text = html_to_text(
        "<p>高雄&#x200B;與&#x202E;格丁尼亞&#8236;的交流</p><script>alert('x')</script>"
        "<p>&lt;b&gt;合作&lt;/b&gt; &amp;amp; 交流&nbsp;&#x1b;再度邁向新里程！</p>"
    )
    assert text == "高雄與格丁尼亞的交流\n<b>合作</b> &amp; 交流 再度邁向新里程！"


# ------------------------------------------------------------------------ feeds to articles


def test_hostile_titles_become_clean_one_line_text() -> None:
    """Markup, double escapes, bidi and zero-width characters are gone; the emoji are whole."""
    body = (HOSTILE / "hostile-entries.xml").read_bytes()
    articles = {a.key: a for a in parse_feed(body, base_url="https://news.example.tw/", now=NOW)[0]}
    title = articles["newsvision-12436"].title
    assert title == f"高雄 & 格丁尼亞締盟！ {FAMILY} {FLAGS} {THUMB} {ENGLAND}"
    summary_text = html_to_text(articles["newsvision-12436"].summary_html)
    assert "alert" not in summary_text
    assert "\u202e" not in summary_text and "\u200b" not in summary_text


def test_json_feed_control_characters_never_reach_the_article() -> None:
    """NULs, escapes and C1 controls are removed from title, summary, author and categories."""
    body = (HOSTILE / "control-characters.json").read_bytes()
    (article,), _ = parse_feed(body, base_url="https://news.example.tw/", now=NOW)
    assert article.title == "高雄港灣城市[31m論壇 開幕"
    assert article.summary_html == "<p>高雄與格丁尼亞攜手合作。</p>\n<p>第二段\n第三段</p>"
    assert article.author == "王秉程"
    assert article.categories == ("城市外交",)
    fields = json.dumps([article.title, article.summary_html, article.author, article.key])
    assert not regex.search(r"\\u00[01]|\\u007f|\\u00[89]", fields)


def test_very_long_title_is_capped_at_a_grapheme_boundary() -> None:
    """A 5,000-letter title is cut to a headline's length, with an ellipsis."""
    body = (HOSTILE / "hostile-entries.xml").read_bytes()
    articles = {a.key: a for a in parse_feed(body, base_url="https://news.example.tw/", now=NOW)[0]}
    title = articles["newsvision-12437"].title
    assert len(title) <= 500
    assert title.endswith("…")
    assert LONG_WORD.startswith(title[:-1])


@pytest.mark.parametrize(
    "link",
    [
        "javascript:alert(document.cookie)",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "file:///etc/passwd",
        "mailto:editor@news.example.tw",
        "https://",
    ],
)
def test_entries_linking_outside_the_web_are_skipped(link: str) -> None:
    """Only http(s) links are posted; any other scheme skips the entry with a warning."""
    item = (
        f"<item><title>點我領獎</title><link>{link}</link><guid>newsvision-12460</guid>"
        f'<enclosure url="javascript:alert(1)" type="image/jpeg" length="0"/></item>'
    )
    good = (
        "<item><title>高雄港灣城市論壇</title><link>https://news.example.tw/article/12461</link>"
        '<enclosure url="javascript:alert(1)" type="image/jpeg" length="0"/></item>'
    )
    body = f'<rss version="2.0"><channel><title>新聞視界時報</title>{item}{good}</channel></rss>'
    articles, warnings = parse_feed(body.encode(), base_url="https://news.example.tw/", now=NOW)
    assert [a.url for a in articles] == ["https://news.example.tw/article/12461"]
    assert articles[0].image is None
    (warning,) = warnings
    assert warning.startswith("entry 1 (點我領獎) ") and warning.endswith("; skipped")


# -------------------------------------------------------------------------- grapheme clusters


def _whole_clusters(original: str, cut: str) -> bool:
    """Whether ``cut`` (without a trailing ellipsis) is ``original`` up to a cluster boundary."""
    kept = cut.removesuffix("…")
    if not original.startswith(kept):
        return False
    boundaries = {0}
    position = 0
    for cluster in GRAPHEME.findall(original):
        position += len(cluster)
        boundaries.add(position)
    return len(kept) in boundaries


EMOJI_TEXT = "高雄與格丁尼亞締盟" + "".join(f"{e}交流" for e in EMOJI * 6) + ENGLAND * 5


@pytest.mark.parametrize("budget", range(1, 120))
def test_shorten_never_cuts_inside_an_emoji_sequence(budget: int) -> None:
    """At every budget, a cut of emoji-dense text ends on a grapheme-cluster boundary."""
    cut = shorten(EMOJI_TEXT, budget)
    assert len(cut) <= budget
    assert _whole_clusters(EMOJI_TEXT, cut)


@pytest.mark.parametrize("budget", [2, 10, 159, 160, 4095])
def test_shorten_of_a_very_long_word_is_fast_and_within_budget(budget: int) -> None:
    """A 5,000-character word with no space or URL is cut at a character boundary."""
    cut = shorten(LONG_WORD, budget)
    assert 0 < len(cut) <= budget
    assert _whole_clusters(LONG_WORD, cut)


# ------------------------------------------------------------------------------ whole posts

RULES = {
    "telegram.html.j2": (TELEGRAM_MESSAGE, TELEGRAM_CAPTION),
    "x.txt.j2": (X_POST,),
}


def _hostile_articles() -> list[Article]:
    body = (HOSTILE / "hostile-entries.xml").read_bytes()
    articles, _ = parse_feed(body, base_url="https://news.example.tw/rss.xml", now=NOW)
    json_body = (HOSTILE / "control-characters.json").read_bytes()
    articles += parse_feed(json_body, base_url="https://news.example.tw/", now=NOW)[0]
    emoji_article = Article(
        key="newsvision-12450",
        url="https://news.example.tw/article/12450",
        title=EMOJI_TEXT * 3,
        summary_html=f"<p>{EMOJI_TEXT * 40}</p>",
        published=NOW,
        categories=("城市外交", "🇹🇼", "Gdynia\u200b港"),
    )
    word_article = Article(
        key="newsvision-12451",
        url="https://news.example.tw/article/12451",
        title=f"高雄{LONG_WORD}",
        summary_html=f"<p>{LONG_WORD} {LONG_WORD}</p>",
        published=NOW,
    )
    return [*articles, emoji_article, word_article]


def _check_post(text: str, rule: LengthRule, length: int) -> None:
    assert length <= rule.limit
    if rule.platform == "telegram":
        parsed = parse_html(text)  # raises HtmlParseError where Telegram would refuse
        plain = telegram_clean(parsed.text)
        assert plain
        assert len(plain) <= rule.limit
    else:
        plain = text
        assert weighted_length(text) <= rule.limit
    for cluster in GRAPHEME.findall(plain):
        # A cut inside a sequence leaves a dangling joiner or a lone regional indicator.
        assert not cluster.endswith("\u200d"), cluster
        indicators = regex.findall(r"\p{Regional_Indicator}", cluster)
        assert len(indicators) in (0, 2), cluster
    assert not regex.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\u202a-\u202e\u2066-\u2069]", plain)


@pytest.mark.parametrize("template", sorted(RULES))
def test_posts_from_hostile_articles_are_valid_and_within_limits(template: str) -> None:
    """Every hostile article renders, with the repo's templates, into a post the strict fakes
    would accept: Telegram HTML that parses, within the limit, no cluster cut in two."""
    renderer = Renderer(REPO / "templates", TAIPEI)
    for article in _hostile_articles():
        excerpt = build_excerpt(article.summary_html)
        for rule in RULES[template]:
            post = renderer.render(
                template,
                article=article,
                excerpt=excerpt,
                source="newsvision",
                channel="telegram" if rule.platform == "telegram" else "x",
                link=article.url + "?utm_source=newsbot",
                rule=rule,
            )
            _check_post(post.text, rule, post.length)
            assert article.url in post.text


# ------------------------------------------------------------------------------ the sandbox

HOSTILE_TEMPLATES = {
    "class": ("{{ ''.__class__ }}", "unsafe"),
    "subclasses": ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "unsafe"),
    "cycler": ("{{ cycler('a', 'b').next() }}", "'cycler' is undefined"),
    "joiner": ("{{ joiner(',')() }}", "'joiner' is undefined"),
    "namespace": ("{% set ns = namespace(x=1) %}{{ ns.x }}", "'namespace' is undefined"),
    "lipsum": ("{{ lipsum(1000) }}", "'lipsum' is undefined"),
    "range": ("{% for i in range(10**9) %}{{ i }}{% endfor %}", "too long for a template"),
    "power": ("{{ 9 ** (9 ** 9) }}", "too large for a template"),
    "repeat": ("{{ '哈' * 10 ** 9 }}", "too much for a template"),
    "dict": ("{{ article.__dict__ }}", "__dict__"),
    "private": ("{{ article._summary_html }}", "unsafe"),
    "format": ("{{ '{0.__class__}'.format(article) }}", "unsafe"),
    "format_globals": ("{{ '{0.__init__.__globals__}'.format(article) }}", "unsafe"),
    "filter_globals": ("{{ article.title.format.__globals__ }}", "unsafe"),
    "range_globals": ("{{ range.__globals__ }}", "unsafe"),
    "self": ("{{ self.__init__.__globals__ }}", "unsafe"),
    "datetime_class": ("{{ article.published.__class__.__init__ }}", "unsafe"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_TEMPLATES))
def test_template_reaching_for_internals_fails_with_file_and_line(
    name: str, tmp_path: Path
) -> None:
    """Each escape attempt is a TemplateError naming the template file and line 2."""
    body, message = HOSTILE_TEMPLATES[name]
    (tmp_path / "evil.txt.j2").write_text(f"【{{{{ article.title }}}}】\n{body}\n", "utf-8")
    renderer = Renderer(tmp_path, TAIPEI)
    with pytest.raises(TemplateError) as caught:
        renderer.render(
            "evil.txt.j2",
            article=SAMPLE_ARTICLE,
            excerpt="高雄與波蘭姊妹市格丁尼亞的交流再度邁向新里程！",
            source="sample",
            channel="x",
            link=SAMPLE_ARTICLE.url,
            rule=X_POST,
        )
    assert caught.value.where == f"{tmp_path / 'evil.txt.j2'}:2"
    assert message in str(caught.value)


def test_ordinary_template_features_still_work(tmp_path: Path) -> None:
    """Small ranges, small powers, loops and filters a real template uses keep working."""
    (tmp_path / "ok.txt.j2").write_text(
        "{% for i in range(3) %}{{ i }}{% endfor %} {{ 2 ** 10 }} {{ '-' * 3 }} "
        "{{ article.categories | hashtags }} {{ article.published | datetime('%m/%d') }}",
        "utf-8",
    )
    post = Renderer(tmp_path, TAIPEI).render(
        "ok.txt.j2",
        article=SAMPLE_ARTICLE,
        excerpt="",
        source="sample",
        channel="x",
        link=SAMPLE_ARTICLE.url,
        rule=X_POST,
    )
    assert post.text == "012 1024 --- #地方 #國際交流 #投資理財 09/15"


@pytest.mark.parametrize("name", ["subclasses", "lipsum", "range", "format"])
def test_newsbot_check_exits_2_naming_the_template_line(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`newsbot check` renders the sample through the hostile template and exits 2 with
    file:line in the message, without a traceback."""
    monkeypatch.delenv("NEWSBOT_CONFIG", raising=False)
    templates = tmp_path / "templates"
    templates.mkdir()
    body, message = HOSTILE_TEMPLATES[name]
    (templates / "x.txt.j2").write_text(f"{{{{ article.title }}}}\n{body}\n", "utf-8")
    config = tmp_path / "newsbot.yaml"
    config.write_text(
        "timezone: Asia/Taipei\n"
        "database: sqlite:///ledger.db\n"
        "templates: templates\n"
        "sources:\n"
        "  newsvision:\n"
        "    kind: feed\n"
        "    url: https://news.example.tw/rss.xml\n"
        "channels:\n"
        "  console:\n"
        "    kind: console\n"
        "    template: x.txt.j2\n",
        "utf-8",
    )
    assert cli.main(["check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{templates / 'x.txt.j2'}:2" in err
    assert message in err
    assert "Traceback" not in err
