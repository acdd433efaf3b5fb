"""`python -m bench --smoke` still runs every benchmark end to end (tiny sizes, local servers on
127.0.0.1 only). It checks that the benchmarks work, never their timings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = {"poll", "delay", "delivery", "corrections", "compose", "text", "ledger", "memory"}


def test_every_benchmark_runs_in_smoke_mode(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    # PostgreSQL only when the test run has one (CI does): the ledger benchmark measures both.
    postgres = os.environ.get("NEWSBOT_TEST_DATABASE_URL", "")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out), "--postgres", postgres],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,  # 21 s on a quiet machine; over 120 s seen at load 10
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["smoke"] is True
    assert set(results["benchmarks"]) == BENCHMARKS
    for name, bench in results["benchmarks"].items():
        assert bench["error"] is None, (name, bench["error"])
        assert bench["figures"], name
        assert all(f["value"] is not None for f in bench["figures"])
    # Benchmark 2 measures both paths: a feed fetch and a webhook call, each to acceptance.
    delay = [f["name"] for f in results["benchmarks"]["delay"]["figures"]]
    assert any(n.startswith("feed fetch returned") for n in delay)
    assert any(n.startswith("webhook call") for n in delay)
    names = [f["name"] for f in results["benchmarks"]["ledger"]["figures"]]
    assert any(n.startswith("SQLite: status") for n in names)
    if postgres:
        assert any(n.startswith("PostgreSQL: claim_due") for n in names)
    # The table is printed for people, as Markdown.
    assert "| # | benchmark | figure |" in done.stdout
