"""Benchmark: audit time as a project grows to the default file budget (2k, 5k, 20k files).

Run: .venv/bin/python benchmarks/audit_scale.py [--files 2000 5000 20000] [--profile N]
Each project is a small, normal Rails chat app plus generated filler (Ruby classes under lib/ and
app/models/, YAML, Markdown, text) up to N files in all; prints the wall time of one warm
`audit_project` per size, split into scan, facts and checks (with the slowest check), external
linters off. `--profile N` prints the top cProfile entries of one N-file audit instead.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_audit import BASE, CONTROLLER, JS, SERVICE, TEST, VIEW, write_files  # noqa: E402
from shipbench.audit import engine  # noqa: E402
from shipbench.audit.files import ProjectFiles  # noqa: E402
from shipbench.tasks import load_task  # noqa: E402

GEM_SOURCES = {"ruby_llm": REPO / "tests" / "fixtures" / "gems" / "ruby_llm-1.14.1"}
APP = {
    "app/models/application_record.rb": "class ApplicationRecord < ActiveRecord::Base\n  primary_abstract_class\nend\n",
    "app/controllers/application_controller.rb": "class ApplicationController < ActionController::Base\nend\n",
    "app/services/chat_service_0.rb": SERVICE.format(i=0),
    "app/controllers/things_0_controller.rb": CONTROLLER.format(i=0),
    "app/views/things/_item_0.html.erb": VIEW.format(i=0),
    "test/services/chat_service_0_test.rb": TEST.format(i=0),
    "app/javascript/controllers/thing_0_controller.js": JS.format(i=0),
}
FILLER = [
    ("lib/gen/d{d}/thing_{i}.rb", "module Gen\n  class Thing{i}\n    def value\n      {i}\n    end\n  end\nend\n"),
    ("app/models/row_{i}.rb", "class Row{i} < ApplicationRecord\n  validates :name, presence: true\nend\n"),
    ("data/d{d}/item_{i}.yml", "name: item {i}\nvalue: {i}\n"),
    ("docs/d{d}/note_{i}.md", "# Note {i}\n\nNothing to see.\n"),
    ("data/d{d}/raw_{i}.txt", "line {i}\n"),
]


def build_project(root: Path, n_files: int) -> int:
    files = {**BASE, **APP}
    i = 0
    while len(files) < n_files:
        path, body = FILLER[i % len(FILLER)]
        files[path.format(i=i, d=i // 500)] = body.format(i=i)
        i += 1
    return write_files(root, files)


def _timed(name: str, fn: Callable[..., Any], timings: dict[str, float]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            out = fn(*args, **kwargs)
            return list(out) if name.startswith("check:") else out  # checks may be generators
        finally:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - start

    return wrapper


def timed_audit(root: Path) -> tuple[float, str, int, dict[str, float]]:
    """One audit; wall time, verdict, score, and seconds per phase (scan, facts, each check)."""
    timings: dict[str, float] = {}
    pack = load_task("rails-chat")
    pack.checks[:] = [_timed(f"check:{c.__name__}", c, timings) for c in pack.checks]
    scan_attr, real_facts = vars(ProjectFiles)["scan"], getattr(engine, "extract_facts")  # noqa: B009
    setattr(ProjectFiles, "scan", _timed("scan", ProjectFiles.scan, timings))  # noqa: B010
    setattr(engine, "extract_facts", _timed("facts", real_facts, timings))  # noqa: B010
    try:
        start = time.perf_counter()
        result = engine.audit_project(root, pack, GEM_SOURCES, max_files=100_000)
        seconds = time.perf_counter() - start
    finally:
        setattr(ProjectFiles, "scan", scan_attr)  # noqa: B010
        setattr(engine, "extract_facts", real_facts)  # noqa: B010
    return seconds, result.verdict, result.score, timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, nargs="+", default=[2000, 5000, 20000])
    parser.add_argument("--profile", type=int, default=0, help="profile one audit of this many files")
    parser.add_argument("--sort", default="cumulative", help="cProfile sort key for --profile")
    args = parser.parse_args()
    os.environ["SHIPBENCH_NO_EXTERNAL_LINTERS"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm"
        build_project(warm, 50)
        timed_audit(warm)  # imports, grammars, gem index cache
        if args.profile:
            root = Path(tmp) / "profiled"
            build_project(root, args.profile)
            profiler = cProfile.Profile()
            profiler.runcall(timed_audit, root)
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(40)
            return
        print("files  audit_s  ms/file  scan_s  facts_s  checks_s  slowest check (s)  verdict, score")
        for n in args.files:
            root = Path(tmp) / f"p{n}"
            count = build_project(root, n)
            seconds, verdict, score, t = timed_audit(root)
            checks = {k.removeprefix("check:"): v for k, v in t.items() if k.startswith("check:")}
            slowest = max(checks, key=lambda k: checks[k])
            print(
                f"{count:>6} {seconds:7.2f} {1000 * seconds / count:8.2f} {t['scan']:7.2f} {t['facts']:8.2f} "
                f"{sum(checks.values()):9.2f}  {slowest} ({checks[slowest]:.2f})  {verdict}, {score}"
            )
    print("target: 20,000 files in < 20 s (SHIPBENCH_NO_EXTERNAL_LINTERS=1, 2 cores)")


if __name__ == "__main__":
    main()
