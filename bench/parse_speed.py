"""Parse cost per feed: newsbot's gated fast path beside feedparser alone, in one run.

    python -m bench.parse_speed [-n 200]

On the poll benchmark's own 50-entry feed (bench.common.feed_document) and an Atom twin of it.
The ratio is what the fast path saves per cold poll; the gate (one expat pass with a few
handlers) is included in the fast figure.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from bench.common import feed_document
from bot.sources.feed import parse_feed
from bot.sources.gate import fast_path_allowed
from bot.testing.feed_server import atom, sample_items

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _best(body: bytes, *, fast: bool, n: int) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            parse_feed(body, base_url="https://news.example.tw/rss.xml", now=NOW, fast_path=fast)
        best = min(best, (time.perf_counter() - start) / n)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.parse_speed")
    parser.add_argument("-n", type=int, default=100)
    n = parser.parse_args().n
    documents = {
        "rss 50 entries (poll benchmark)": feed_document(1, 50).encode(),
        "atom 50 entries": atom(sample_items(50)).encode(),
    }
    for name, body in documents.items():
        assert fast_path_allowed(body) is not None, name
        fast, slow = _best(body, fast=True, n=n), _best(body, fast=False, n=n)
        gate = time.perf_counter()
        for _ in range(n):
            fast_path_allowed(body)
        gate = (time.perf_counter() - gate) / n
        print(
            f"{name}: fast path {fast * 1000:.2f} ms (gate {gate * 1000:.2f} ms), "
            f"feedparser alone {slow * 1000:.2f} ms, ratio {slow / fast:.1f}x"
        )


if __name__ == "__main__":
    main()
