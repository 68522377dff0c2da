"""Benchmark: `shipbench report` over 500 synthetic trials (target: under 10 s in all).

Run: .venv/bin/python benchmarks/bench_report.py [--trials 500] [--configs 50] [--repeats 3]
Builds audited trial dirs from the real pydantic records (tests/report_helpers.py), then times each
stage: load (read + validate every trial.json and audit.json), aggregate (bootstrap intervals, rank
intervals, paired comparisons, views), Markdown, and HTML when shipbench.report.html is present.
Prints the median and max per stage and of the total; exits 1 when the total median exceeds 10 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from tests.report_helpers import synthetic_results  # noqa: E402

from shipbench.report.build import html_renderer  # noqa: E402
from shipbench.report.leaderboard import build_leaderboard  # noqa: E402
from shipbench.report.load import load_results  # noqa: E402
from shipbench.report.markdown import render_markdown  # noqa: E402

TARGET_S = 10.0


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def run_once(root: Path, out: Path, html: bool) -> dict[str, float]:
    times: dict[str, float] = {}
    times["load"], loaded = _timed(lambda: load_results(root))
    trials = loaded.trials  # type: ignore[attr-defined]
    if len(trials) != len(list(root.glob("*/*/trial.json"))) or loaded.skipped:  # type: ignore[attr-defined]
        raise SystemExit("benchmark data did not load completely")
    times["aggregate"], board = _timed(lambda: build_leaderboard(trials))
    times["markdown"], _ = _timed(lambda: render_markdown(board))  # type: ignore[arg-type]
    if html:
        render = html_renderer()
        times["html"], _ = _timed(lambda: render(board, trials, out))  # type: ignore[arg-type]
    times["total"] = sum(times.values())
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--configs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    try:
        html_renderer()
        html = True
    except ImportError:
        html = False
    with tempfile.TemporaryDirectory() as tmp:
        root = synthetic_results(Path(tmp) / "results", args.trials, configs=args.configs)
        runs = [run_once(root, Path(tmp) / f"html{i}", html) for i in range(args.repeats)]
    html_note = "yes" if html else "absent"
    print(f"{args.trials} trials, {args.configs} configurations, {args.repeats} runs, html={html_note}")
    print("  (aggregate = 2000 bootstrap resamples per interval, rank intervals, paired neighbours)")
    for stage in runs[0]:
        values = [r[stage] for r in runs]
        print(f"  {stage:<10} median {statistics.median(values):6.2f} s   max {max(values):6.2f} s")
    total = statistics.median(r["total"] for r in runs)
    print(f"target: total < {TARGET_S:.0f} s -> {'OK' if total < TARGET_S else 'TOO SLOW'}")
    return 0 if total < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
