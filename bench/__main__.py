"""``python -m bench``: every benchmark of issue 7 on local servers (127.0.0.1 only), a table on
stdout and ``bench/results.json``. See BENCHMARKS.md for what each figure means.

    python -m bench                 # all seven, about 5-10 minutes on 2 cores
    python -m bench --smoke         # a tiny run of each (CI: checks they run, not timings)
    python -m bench --only compose ledger
    python -m bench --full          # benchmark 6 for the issue's 10 minutes
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench import common

ORDER = (
    "compose",
    "text",
    "poll",
    "delivery",
    "corrections",
    "ledger",
    "delay",
    "memory",
)  # quick ones first
ISSUE_NUMBER = {
    "poll": 1,
    "delay": 2,
    "delivery": 3,
    "compose": 4,
    "ledger": 5,
    "memory": 6,
    "text": 12,
    "corrections": 14,
}
DEFAULT_OUT = Path(__file__).resolve().parent / "results.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; checks, not timings")
    parser.add_argument("--only", nargs="+", choices=ORDER, help="run just these")
    parser.add_argument("--full", action="store_true", help="memory benchmark for 10 minutes")
    parser.add_argument("--duration", type=float, default=60.0, help="memory run, seconds")
    parser.add_argument("--sample", type=float, default=5.0, help="memory sampling, seconds")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("NEWSBOT_TEST_DATABASE_URL", ledger_pg_default()),
        help="PostgreSQL for benchmark 5 (a schema of its own is made and dropped); '' skips it",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where results.json goes")
    args = parser.parse_args(argv)
    duration = 600.0 if args.full else args.duration

    chosen = [name for name in ORDER if not args.only or name in args.only]
    keep = tempfile.mkdtemp(prefix="newsbot-bench-ledger-")
    reports: list[common.Report] = []
    load_before = os.getloadavg()
    started = time.perf_counter()
    try:
        for name in chosen:
            print(f"== {name} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            try:
                report = _run_one(name, args, duration, keep)
            except Exception as exc:
                report = common.Report(name, error=f"{type(exc).__name__}: {exc}")
                traceback.print_exc()
            report.seconds = time.perf_counter() - t0
            reports.append(report)
            print(f"   {name} took {report.seconds:.1f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(keep, ignore_errors=True)
    total = time.perf_counter() - started

    print(table(reports))
    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "smoke": args.smoke,
        "machine": common.machine(),
        "python": sys.version.split()[0],
        "seconds": total,
        # Other work on the machine skews every figure: the 1-minute load average around the run.
        "load_average_before": load_before[0],
        "load_average_after": os.getloadavg()[0],
        "benchmarks": {
            r.bench: {
                "seconds": r.seconds,
                "error": r.error,
                "figures": [f.as_dict() for f in r.figures],
                "details": r.details,
            }
            for r in reports
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1, default=str) + "\n")
    print(
        f"\n{len(reports)} benchmark(s) in {total:.0f} s; load average {load_before[0]:.1f} before,"
        f" {os.getloadavg()[0]:.1f} after; results in {args.out}"
    )
    return 1 if any(r.error for r in reports) else 0


def ledger_pg_default() -> str:
    from bench.ledger import PG_URL

    return PG_URL


def _run_one(name: str, args: argparse.Namespace, duration: float, keep: str) -> common.Report:
    if name == "compose":
        from bench import compose

        return compose.run(smoke=args.smoke)
    if name == "text":
        from bench import text

        return text.run(smoke=args.smoke)
    if name == "poll":
        from bench import poll

        return poll.run(smoke=args.smoke)
    if name == "delivery":
        from bench import delivery

        return delivery.run(smoke=args.smoke)
    if name == "corrections":
        from bench import corrections

        return corrections.run(smoke=args.smoke)
    if name == "ledger":
        from bench import ledger

        return ledger.run(smoke=args.smoke, postgres_url=args.postgres or None, keep=keep)
    if name == "delay":
        from bench import delay

        return delay.run(smoke=args.smoke)
    from bench import memory

    kept = Path(keep) / "ledger-1m.db"
    return memory.run(
        smoke=args.smoke,
        duration=duration,
        sample=args.sample,
        ledger_path=str(kept) if kept.exists() else None,
    )


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "s":
        text = f"{value:.3f}" if value < 10 else f"{value:.1f}"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def table(reports: list[common.Report]) -> str:
    """A Markdown table of every figure (pasteable into BENCHMARKS.md)."""
    lines = [
        "| # | benchmark | figure | value | baseline | ratio | goal | status | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for report in sorted(reports, key=lambda r: ISSUE_NUMBER.get(r.bench, 9)):
        index = ISSUE_NUMBER.get(report.bench, "?")
        if report.error:
            lines.append(
                f"| {index} | {report.bench} | ERROR | - | - | - | - | - | {report.error} |"
            )
        for f in report.figures:
            status = "" if f.met is None else ("met" if f.met else "MISSED")
            ratio = f"{f.ratio:.1f}x" if f.ratio is not None else "-"
            lines.append(
                f"| {index} | {f.bench} | {f.name} | {_fmt(f.value, f.unit)} | "
                f"{_fmt(f.baseline, f.unit)} | {ratio} | {f.goal} | {status} | {f.note} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
