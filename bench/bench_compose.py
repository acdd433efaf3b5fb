"""Fitted posts per second for long Chinese articles, X and Telegram; and the cost of measuring
an X post with our fast x_weighted_length against twitter-text-parser's parse_tweet.

Run: python bench/bench_compose.py
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

from twitter_text import parse_tweet

from bot.compose.excerpt import build_excerpt
from bot.compose.length import TELEGRAM_CAPTION, TELEGRAM_MESSAGE, X_POST, x_weighted_length
from bot.compose.render import Renderer
from bot.compose.sample import SAMPLE_ARTICLE

BYLINE = r"新聞視界時報\s*記者\s*\S+\s*整理報導"
N = 2000


def main() -> None:
    renderer = Renderer(Path(__file__).parents[1] / "templates", ZoneInfo("Asia/Taipei"))
    # Distinct articles, so that no per-text cache hides the cost of a new excerpt.
    articles = [
        replace(
            SAMPLE_ARTICLE,
            key=f"k{i}",
            url=f"https://news.example.tw/新聞/{i}",
            title=f"{SAMPLE_ARTICLE.title}（{i}）",
            summary_html=SAMPLE_ARTICLE.summary_html.replace("高雄", f"高雄{i}", 1),
        )
        for i in range(N)
    ]
    start = time.perf_counter()
    excerpts = [build_excerpt(a.summary_html, strip=[BYLINE]) for a in articles]
    per_excerpt = (time.perf_counter() - start) / N
    print(f"build_excerpt: {per_excerpt * 1e6:.0f} µs per article ({1 / per_excerpt:,.0f}/s)")

    for name, rule in (
        ("x.txt.j2", X_POST),
        ("telegram.html.j2", TELEGRAM_CAPTION),
        ("telegram.html.j2", TELEGRAM_MESSAGE),
    ):
        start = time.perf_counter()
        for article, excerpt in zip(articles, excerpts, strict=True):
            renderer.render(
                name,
                article=article,
                excerpt=excerpt,
                source="bench",
                channel="c",
                link=article.url + "?utm_source=x&utm_medium=social",
                rule=rule,
            )
        elapsed = time.perf_counter() - start
        print(f"{name} limit {rule.limit}: {N / elapsed:,.0f} fitted posts/s")

    post = renderer.render(
        "x.txt.j2",
        article=articles[0],
        excerpt=excerpts[0],
        source="bench",
        channel="c",
        link=articles[0].url,
        rule=X_POST,
    ).text
    for label, fn in (("x_weighted_length", x_weighted_length), ("parse_tweet", parse_tweet)):
        n = 200 if fn is parse_tweet else 5000
        start = time.perf_counter()
        for _ in range(n):
            fn(post)
        print(f"{label}: {(time.perf_counter() - start) / n * 1e6:.0f} µs per X post")


if __name__ == "__main__":
    main()
