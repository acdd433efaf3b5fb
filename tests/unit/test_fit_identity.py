"""Speed work on compose must not change a single post: the fitted posts of the text benchmark's
articles, on every length-limited channel, are compared with digests recorded before it.

An intended change of output (a new cut rule, a template edit) rewrites the digests on purpose:
``python -m tests.unit.test_fit_identity`` (and the commit says why the posts changed).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.corpus import BYLINE, articles
from bot.compose.excerpt import stored_excerpt
from bot.compose.length import (
    BLUESKY_POST,
    MASTODON_DEFAULT,
    TELEGRAM_MESSAGE,
    THREADS_POST,
    X_POST,
    LengthRule,
)
from bot.compose.render import Renderer

ROOT = Path(__file__).resolve().parents[2]
DIGESTS = ROOT / "tests" / "fixtures" / "fitted" / "posts.json"
CHANNELS: tuple[tuple[str, str, LengthRule, int | None], ...] = (
    ("x", "x.txt.j2", X_POST, 300),
    ("x-whole", "x.txt.j2", X_POST, None),
    ("telegram", "telegram.html.j2", TELEGRAM_MESSAGE, 300),
    ("threads", "threads.txt.j2", THREADS_POST, 300),
    ("bluesky", "bluesky.txt.j2", BLUESKY_POST, 300),
    ("mastodon", "mastodon.txt.j2", MASTODON_DEFAULT, 300),
)


def _digests() -> dict[str, str]:
    renderer = Renderer(ROOT / "templates", ZoneInfo("Asia/Taipei"))
    found = {}
    for gen in articles(240):
        article = gen.article(query="?utm_source=bot")
        source = stored_excerpt(gen.html, strip=[BYLINE], length=300)
        for label, template, rule, bound in CHANNELS:
            composed = renderer.compose(
                template,
                article=article,
                excerpt=source,
                source="bench",
                channel=label,
                link=article.url,
                rule=rule,
                max_chars=bound,
            )
            seen = "\x00".join(
                (composed.post.text, str(composed.post.length), composed.cut, composed.excerpt)
            )
            found[f"{gen.key}/{label}"] = hashlib.sha256(seen.encode()).hexdigest()[:16]
    return found


def test_fitted_posts_are_unchanged() -> None:
    """Every fitted post (text, length, cut, excerpt) of 240 articles on six channels is the
    one recorded before compose was made faster."""
    expected = json.loads(DIGESTS.read_text(encoding="utf-8"))
    found = _digests()
    changed = sorted(key for key in expected if found.get(key) != expected[key])
    assert found.keys() == expected.keys()
    assert not changed, f"{len(changed)} posts changed, the first: {changed[:5]}"


if __name__ == "__main__":
    DIGESTS.write_text(json.dumps(_digests(), indent=0, sort_keys=True) + "\n", encoding="utf-8")
    sys.stdout.write(f"wrote {DIGESTS}\n")
