"""Fidelity: newsbot's feed reader beside feedparser, file by file, over a directory of feeds.

    python -m bench.fidelity /tmp/fp/feedparser-6.0.11/tests     # feedparser's own test corpus
    python -m bench.fidelity tests/fixtures/corpus -v            # ours

For every file (an optional ``Header: Content-type: ...`` line in it is the HTTP header, as in
feedparser's test suite) three readings are made: newsbot with its fast path, newsbot with
feedparser alone, and ``feedparser.parse`` with its defaults (the reference). Reported:

- ``fast≠slow``: the two newsbot readings differ in any Article field (must never happen);
- ``lost``: the reference has an entry with a usable link that newsbot does not post;
- ``title``/``summary``/``author``: the posted entry's field differs from the reference's beyond
  the deliberate normalisations (entities decoded, markup reduced to text, one line, links
  canonical, tracking parameters removed).

feedparser's corpus is not committed (fetch it with ``pip download --no-deps --no-binary :all:
feedparser==6.0.11``); this script runs it when given its path. It is the one place outside
``bot/sources`` besides the poll benchmark's baseline that imports feedparser: it is the
reference being compared against.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections import Counter
from dataclasses import astuple
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser

from bot.compose.excerpt import html_to_text, one_line
from bot.errors import SourceError
from bot.links import canonical_url
from bot.model import Article
from bot.sources import feed
from bot.sources.feed import parse_feed

NOW = datetime(2030, 1, 1, tzinfo=UTC)
_HEADER = re.compile(rb"^Header:\s+([^:]+):(.+)$", re.MULTILINE)


def content_type_of(body: bytes) -> str | None:
    for name, value in _HEADER.findall(body):
        if name.strip().lower() == b"content-type":
            return value.strip().decode("latin-1")
    return None


def _web(url: str) -> bool:
    return url[:8].lower().startswith(("http://", "https://")) and len(url) > 8


def expected_url(entry: Any) -> str:
    """The link newsbot should post for a feedparser entry, or "" when it should skip it."""
    link = str(entry.get("link") or "").strip()
    if _web(link):
        return link
    ident = str(entry.get("id") or "").strip()
    if _web(ident) and entry.get("guidislink", True):
        return ident
    return ""


def text_of_title(entry: Any) -> str:
    title = str(entry.get("title") or "")
    kind = str((entry.get("title_detail") or {}).get("type") or "text/plain")
    if kind in ("text/html", "application/xhtml+xml"):
        title = html_to_text(title)
    return one_line(title, 500)


def text_of_summary(entry: Any) -> str:
    content = entry.get("content") or []
    value = str(content[0].get("value") or "") if content else ""
    detail: Any = content[0] if content and value else entry.get("summary_detail") or {}
    value = value or str(entry.get("summary") or "")
    if str(detail.get("type") or "text/html") not in ("text/html", "application/xhtml+xml"):
        return " ".join(value.split())
    return " ".join(html_to_text(value).split())


def author_of(entry: Any) -> str:
    name = str((entry.get("author_detail") or {}).get("name") or entry.get("author") or "")
    return one_line(name, 200)


def compare(path: Path) -> list[tuple[str, str]]:
    """Every difference found in one file, as (class, detail)."""
    body = path.read_bytes()
    content_type = content_type_of(body)
    base = "http://127.0.0.1:8097/" + path.name
    problems: list[tuple[str, str]] = []
    readings: list[list[Article] | str] = []
    for fast in (True, False):
        try:
            articles, _ = parse_feed(
                body, base_url=base, now=NOW, content_type=content_type, fast_path=fast
            )
            readings.append(articles)
        except SourceError as exc:
            readings.append(f"SourceError: {exc}")
        except Exception as exc:  # a crash is exactly what we look for
            readings.append(f"CRASH {type(exc).__name__}: {exc}")
            problems.append(("crash", f"{type(exc).__name__}: {exc}"))
    fast_read, slow_read = readings
    if _shape(fast_read) != _shape(slow_read):
        problems.append(("fast≠slow", f"{_brief(fast_read)}\n      vs {_brief(slow_read)}"))
    headers = {"content-location": base}
    if content_type:
        headers["content-type"] = content_type
    reference = feedparser.parse(body, response_headers=headers)
    entries = reference.get("entries") or []
    try:
        raws, _, _ = feed._read_entries(body, content_type=content_type, fast_path=False)
    except SourceError as exc:
        if entries:
            problems.append(("lost", f"feedparser reads {len(entries)} entries; {exc}"))
        return problems
    except Exception as exc:  # a crash is exactly what we look for
        problems.append(("crash", f"reading the entries: {type(exc).__name__}: {exc}"))
        return problems
    try:
        fast_raws, _, _ = feed._read_entries(body, content_type=content_type, fast_path=True)
    except Exception as exc:  # a difference like any other
        fast_raws = []
        problems.append(("fast≠slow", f"fast path raised {exc}"))
    fast_fields = [_fields(r, base) for r in fast_raws]
    slow_fields = [_fields(r, base) for r in raws]
    if fast_fields != slow_fields:
        diff = [(f, s) for f, s in zip(fast_fields, slow_fields, strict=False) if f != s][:1]
        problems.append(("fast≠slow", f"{len(fast_raws)} vs {len(raws)} entries: {diff}"))
    if len(raws) != len(entries):
        problems.append(("count", f"feedparser {len(entries)} entries, newsbot {len(raws)}"))
        return problems
    posted = {a.url for a in slow_read} if isinstance(slow_read, list) else set()
    for raw, entry in zip(raws, entries, strict=True):
        if isinstance(raw, str):
            problems.append(("unreadable", raw))
            continue
        url = expected_url(entry)
        try:
            url = canonical_url(url) if url else ""
        except ValueError:
            url = ""  # a malformed URL: newsbot skips the entry, saying why
        article = _article(raw, base)
        if isinstance(article, str):
            if url:
                problems.append(("link", f"want {url!r}: {article}"))
            # Read with a placeholder link, to compare the other fields all the same.
            article = feed._to_article(
                dataclasses.replace(raw, link="http://placeholder.test/"), base_url=base, now=NOW
            )
            if isinstance(article, str):
                continue
        elif not url:
            problems.append(("link", f"feedparser has no usable link; newsbot {article.url!r}"))
        elif article.url != url:
            problems.append(("link", f"want {url!r} have {article.url!r}"))
        elif url not in posted:
            problems.append(("lost", f"{url} read but not posted"))
        for field, want, have in (
            ("title", text_of_title(entry), article.title),
            ("summary", text_of_summary(entry), _text(article.summary_html)),
            ("author", author_of(entry), article.author or ""),
        ):
            if field == "title" and not want:
                continue  # newsbot derives a title from the text; feedparser has none
            if want != have:
                problems.append((field, f"want {want[:80]!r} have {have[:80]!r}"))
    return problems


def _article(raw: Any, base: str) -> Article | str:
    if isinstance(raw, str):
        return raw
    try:
        return feed._to_article(raw, base_url=base, now=NOW)
    except ValueError as exc:  # what read_feed skips with its reason
        return f"{type(exc).__name__}: {exc}"


def _fields(raw: Any, base: str) -> object:
    article = _article(raw, base)
    if isinstance(article, str) and not isinstance(raw, str):
        article = feed._to_article(
            dataclasses.replace(raw, link="http://placeholder.test/"), base_url=base, now=NOW
        )
    return astuple(article) if isinstance(article, Article) else article


def _text(markup: str) -> str:
    return " ".join(html_to_text(markup).split())


def _shape(reading: list[Article] | str) -> object:
    return [astuple(a) for a in reading] if isinstance(reading, list) else reading


def _brief(reading: list[Article] | str) -> str:
    if isinstance(reading, str):
        return reading[:120]
    return repr([(a.url, a.title[:30]) for a in reading])[:300]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fidelity")
    parser.add_argument("root", type=Path)
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--only", help="only this class of difference")
    args = parser.parse_args(argv)
    files = sorted(p for p in args.root.rglob("*") if p.suffix in (".xml", ".json", ".rdf"))
    classes: Counter[str] = Counter()
    bad_files = 0
    for path in files:
        problems = compare(path)
        if args.only:
            problems = [p for p in problems if p[0] == args.only]
        if problems:
            bad_files += 1
        for kind, detail in problems:
            classes[kind] += 1
            if args.verbose:
                print(f"{kind:10} {path.relative_to(args.root)}\n      {detail}")
    print(f"{len(files)} files, {bad_files} with differences: {dict(classes)}")
    return 1 if bad_files else 0


if __name__ == "__main__":
    sys.exit(main())
