"""Text quality: would an editor have written these posts? (issue 12)

Over the articles of :mod:`bench.corpus` (240 by default, Traditional Chinese, long and short,
with lists, tables, headings, numbers with units, English names, quotations and emoji), each
is composed for X (``x.txt.j2``, 280 weighted) and Telegram (``telegram.html.j2``, 4096 with
the editor's 300-character bound) as the pipeline does, and every post is read back:

- which boundary each shortened excerpt ends at (sentence / clause / phrase / character);
- the budget left unused in shortened posts (median, p90), in the channel's own measure;
- fused blocks: two neighbouring blocks of the article's HTML (split here by a plain regex,
  not by the code under test) whose last and first characters run together in the post;
- cuts inside a number or a word: the excerpt ends strictly inside a number the corpus wrote,
  a name or word of its lists, a Latin word, a URL, @handle or #tag (found here independently);
- where the text has a sentence or clause end in the last third of the excerpt's budget, the
  share of excerpts that end at a sentence or clause.
"""

from __future__ import annotations

import html as html_lib
import itertools
import re
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.common import Report, median, percentile, repo_root

_BLOCK_TAGS = re.compile(
    r"</?(?:p|li|ul|ol|h[1-6]|td|th|tr|table|blockquote|figcaption|figure|br|div)\b[^>]*>"
)
_TAG = re.compile(r"<[^>]+>")
_LATIN = re.compile(r"[A-Za-z][A-Za-z'’\-&]*[A-Za-z]")
_ENTITY = re.compile(r"https?://\S+|[@#][\w\u4e00-\u9fff]+")
_END_MARK = re.compile(r"[。！？!?][」』”）)]*|[，、；：]")
_SPACES = re.compile(r"[^\S\n]+")


def _blocks(html: str) -> list[str]:
    parts = [
        re.sub(r"\s+", "", html_lib.unescape(_TAG.sub("", p))) for p in _BLOCK_TAGS.split(html)
    ]
    return [p for p in parts if p and "整理報導" not in p]


def _fused(html: str, post_text: str) -> int:
    plain = _SPACES.sub("", html_lib.unescape(_TAG.sub("", post_text)))
    count = 0
    blocks = _blocks(html)
    for a, b in itertools.pairwise(blocks):
        if (a[-8:] + b[:8]) in plain:
            count += 1
    return count


def _protected(source: str, numbers: list[str], atoms: list[str]) -> list[tuple[int, int]]:
    spans = []
    for needle in {*numbers, *atoms}:
        start = source.find(needle)
        while start >= 0:
            spans.append((start, start + len(needle)))
            start = source.find(needle, start + 1)
    spans += [m.span() for m in _LATIN.finditer(source)]
    spans += [m.span() for m in _ENTITY.finditer(source)]
    return spans


def run(*, smoke: bool = False, slack: float | None = None) -> Report:
    from bench.corpus import ATOMS, BYLINE, articles
    from bot.compose.excerpt import stored_excerpt
    from bot.compose.length import TELEGRAM_MESSAGE, X_POST, x_weighted_length
    from bot.compose.render import Renderer
    from bot.model import Article

    report = Report("text")
    corpus = articles(40 if smoke else 240)
    renderer = Renderer(
        Path(repo_root()) / "templates",
        ZoneInfo("Asia/Taipei"),
        **({"slack": slack} if slack is not None else {}),
    )
    channels = (("X", "x.txt.j2", X_POST), ("Telegram", "telegram.html.j2", TELEGRAM_MESSAGE))
    details: dict[str, object] = {}
    for label, template, rule in channels:
        kinds: dict[str, int] = {"sentence": 0, "clause": 0, "phrase": 0, "character": 0}
        unused: list[int] = []
        fused = inside = with_end = at_end = 0
        examples: list[str] = []
        for gen in corpus:
            article = Article(
                key=gen.key,
                url=f"https://news.example.tw/article/{gen.key}",
                title=gen.title,
                summary_html=gen.html,
                published=gen.published,
                categories=gen.categories,
            )
            source = stored_excerpt(gen.html, strip=[BYLINE], length=300)
            composed = renderer.compose(
                template,
                article=article,
                excerpt=source,
                source="bench",
                channel=label,
                link=article.url,
                rule=rule,
                max_chars=300,
            )
            fused += _fused(gen.html, composed.post.text)
            if composed.cut == "none":
                continue
            kinds[composed.cut] = kinds.get(composed.cut, 0) + 1
            unused.append(composed.budget_left)
            kept = composed.excerpt.rstrip('」』）)》〉】]”’"').removesuffix("…")
            k = len(kept)
            if source.startswith(kept) and any(
                s < k < e for s, e in _protected(source, gen.numbers, list(ATOMS))
            ):
                inside += 1
                examples.append(kept[-12:])
            # The excerpt's budget: what it weighs plus what is left.
            weigh = x_weighted_length if rule.platform == "x" else len
            budget = weigh(composed.excerpt) + composed.budget_left
            if rule.platform == "telegram":
                budget = min(budget, 300)
            ends = [
                m.end() if m.group()[0] in "。！？!?" else m.start()
                for m in _END_MARK.finditer(source)
            ]
            if any(budget * 2 / 3 <= weigh(source[:e]) + 2 <= budget for e in ends):
                with_end += 1
                at_end += composed.cut in ("sentence", "clause")
        shortened = sum(kinds.values())
        for kind, n in kinds.items():
            report.add(
                f"{label}: shortened excerpts ending at a {kind}",
                100 * n / max(1, shortened),
                "%",
                note=f"{n} of {shortened} shortened, {len(corpus)} articles",
            )
        measure = "weighted units" if rule.platform == "x" else "characters"
        report.add(
            f"{label}: unused budget, median (shortened posts)",
            median(unused),
            measure,
            goal="<= 6" if label == "X" else "",
            met=(median(unused) <= 6) if label == "X" and not smoke else None,
        )
        report.add(
            f"{label}: unused budget, p90 (shortened posts)", percentile(unused, 90), measure
        )
        report.add(f"{label}: fused blocks", fused, "", goal="0", met=fused == 0)
        report.add(f"{label}: cuts inside a number or word", inside, "", goal="0", met=inside == 0)
        share = 100 * at_end / max(1, with_end)
        report.add(
            f"{label}: at a sentence/clause end where one lies in the last third of the budget",
            share,
            "%",
            goal=">= 90%",
            met=(share >= 90) if not smoke else None,
            note=f"{at_end} of {with_end}",
        )
        details[label] = {"kinds": kinds, "unused": unused, "inside_examples": examples[:10]}
    report.details.update(details)

    # Throughput on these distinct articles, with the analysis and word caches emptied first:
    # the compose benchmark's renumbered seed repeats its text, so jieba's work is cached there.
    import time

    from bot.compose import excerpt as excerpt_module

    excerpt_module._word_ends.cache_clear()
    excerpt_module._analyse.cache_clear()
    posts = [
        (
            Article(
                key=f"{g.key}-t",
                url=f"https://news.example.tw/article/{g.key}-t",
                title=g.title,
                summary_html=g.html,
                published=g.published,
                categories=g.categories,
            ),
            stored_excerpt(g.html, strip=[BYLINE], length=300),
        )
        for g in corpus
    ]
    start = time.process_time()
    for article, source in posts:
        renderer.render(
            "x.txt.j2",
            article=article,
            excerpt=source,
            source="bench",
            channel="x",
            link=article.url,
            rule=X_POST,
            max_chars=300,
        )
    rate = len(posts) / (time.process_time() - start)
    report.add(
        "X: fitted posts/s on these articles, caches emptied (CPU time)",
        rate,
        "/s",
        note="jieba asked for every phrase cut; see compose for the goal's figure",
    )
    return report
