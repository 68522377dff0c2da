"""Benchmark `--jobs` scaling: N replay trials of one real agent CLI at jobs 1, 2, 4 (wall time, speedup).

Usage: .venv/bin/python benchmarks/bench_jobs.py [--agent codex] [--trials 8] [--jobs 1 2 4] [--trajectory hello]
Each jobs value runs the same N trials (repeats of one agent x the replay model) into a fresh results dir,
through the whole pipeline (proxy, watchdogs, audit, store). Needs the agent CLI installed; no network.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from shipbench.config import SuiteConfig
from shipbench.runner.plan import NullProgress
from shipbench.runner.suite import run_suite

HELLO_PROMPT = "Create a file named hello.txt in the current directory with a short greeting in it."
RUBRIC = (
    '[tiers]\nA = 85\nB = 70\nC = 50\n[[dimensions]]\nid = "deliverables"\ntitle = "D"\nweight = 100\n'
    '[rules."deliverables.missing"]\ndimension = "deliverables"\npoints = 10\nwhy = "bench"\n'
)


def hello_task(root: Path) -> Path:
    (root / "prompts").mkdir(parents=True)
    (root / "prompts" / "hello.md").write_text(HELLO_PROMPT)
    (root / "task.toml").write_text(
        'id = "hello"\ntitle = "hello"\n[[phases]]\nid = "hello"\nprompt = "prompts/hello.md"\n'
        '[[requirements]]\nid = "R1"\ntext = "hello.txt"\n'
    )
    (root / "rubric.toml").write_text(RUBRIC)
    (root / "checks.py").write_text("CHECKS = []\n")
    return root


def suite(task: str, agent: str, trials: int, trajectory: str) -> SuiteConfig:
    return SuiteConfig.model_validate({
        "name": "bench", "task": task, "repeats": trials, "agents": [{"name": agent}],
        "models": [{"id": "replay", "model": "replay-model", "provider": "replay", "replay_script": trajectory}],
        "limits": {"idle_s": 120, "phase_wall_s": 600, "grace_s": 2},
    })


def run_once(config: SuiteConfig, jobs: int) -> tuple[float, list[str]]:
    with tempfile.TemporaryDirectory(prefix="shipbench-bench-jobs-") as out:
        start = time.perf_counter()
        records = asyncio.run(run_suite(config, out=Path(out), jobs_override=jobs, progress=NullProgress(),
                                        monitor_interval_s=0.25, handle_signals=False))
        return time.perf_counter() - start, [r.status for r in records]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", default="codex")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--trajectory", default="hello", help="bundled name or trajectory file")
    parser.add_argument("--task", default=None, help="task pack (default: a one-phase hello task)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="shipbench-bench-task-") as tmp:
        task = args.task or str(hello_task(Path(tmp) / "task"))
        config = suite(task, args.agent, args.trials, args.trajectory)
        rows: list[tuple[int, float, list[str]]] = []
        for jobs in args.jobs:
            wall, statuses = run_once(config, jobs)
            rows.append((jobs, wall, statuses))
    base = rows[0][1]
    print(f"{args.trials} replay trials of {args.agent} ({args.trajectory}), whole pipeline per trial")
    print(f"{'jobs':>4}  {'wall s':>8}  {'s/trial':>8}  {'speedup':>7}  statuses")
    for jobs, wall, statuses in rows:
        counts = {s: statuses.count(s) for s in sorted(set(statuses))}
        print(f"{jobs:>4}  {wall:8.2f}  {wall / args.trials:8.2f}  {base / wall:7.2f}x  {counts}")
    bad = [s for _, _, statuses in rows for s in statuses if s != "completed"]
    if bad:
        print(f"warning: {len(bad)} trials did not complete: {statistics.mode(bad)} most often", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
