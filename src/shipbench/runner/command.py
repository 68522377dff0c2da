"""Glue between the CLI verbs (`run`, `demo`) and run_suite: progress display, summary, exit code.

Invariants: exit code 0 when every selected trial finished (whatever its status), 1 when any trial
ended in infra_error (an unreadable trial.json included), 130 when the run was interrupted (some trial
still "running": re-run to resume); a bad suite or any refusal before the run starts (see run_suite)
raises ConfigError for the CLI to turn into exit code 2.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from rich.console import Console

from shipbench.config import ConfigError, SuiteConfig, load_suite
from shipbench.runner.progress import LiveProgress, make_progress, summary_table
from shipbench.runner.suite import prepared_run, run_suite
from shipbench.store.layout import SuitePaths
from shipbench.store.records import TrialRecord

BUNDLED_SUITES = Path(__file__).resolve().parents[1] / "suites"
DEMO_SUITE = BUNDLED_SUITES / "demo.toml"
EXIT_OK, EXIT_INFRA, EXIT_INTERRUPTED = 0, 1, 130


def load_suite_file(path: Path) -> SuiteConfig:
    """load_suite, with relative replay_script paths resolved against the suite file's directory."""
    config = load_suite(path)
    for model in config.models:
        script = model.replay_script
        if script and not Path(script).is_absolute() and (path.parent / script).is_file():
            model.replay_script = str((path.parent / script).resolve())
    return config


def exit_code(records: list[TrialRecord]) -> int:
    if any(r.status == "infra_error" for r in records):
        return EXIT_INFRA
    if any(r.status in ("running", "pending") for r in records):
        return EXIT_INTERRUPTED
    return EXIT_OK


def run_command(
    config: SuiteConfig,
    *,
    out: Path,
    console: Console,
    only_agent: str | None = None,
    only_model: str | None = None,
    repeats: int | None = None,
    jobs: int | None = None,
    force: set[str] | None = None,
    gem_sources: dict[str, Path] | None = None,
) -> int:
    """Refuse or lock, then run or resume the suite with a progress display; print the summary; return the exit
    code. Every refusal is a ConfigError raised before anything is printed or written."""
    replay = any(m.provider == "replay" for m in config.models)
    label = " (REPLAY run: scripted upstream, not a real model)" if replay else ""
    with prepared_run(config, out=out, only_agent=only_agent, only_model=only_model, repeats=repeats,
                      force=force) as prepared:
        console.print(f"shipbench run: suite {config.name!r} task {config.task!r} -> {out / config.name}{label}",
                      highlight=False)
        progress = make_progress(console)
        live = progress if isinstance(progress, LiveProgress) else contextlib.nullcontext()
        with live:
            records = asyncio.run(
                run_suite(config, out=out, jobs_override=jobs, console=console, progress=progress,
                          gem_sources=gem_sources, prepared=prepared)
            )
    console.print(summary_table(records, f"{config.name}: {len(records)} trials{label}"))
    interrupted = [r.trial_id for r in records if r.status in ("running", "pending")]
    if interrupted:
        console.print(f"interrupted: {len(interrupted)} trials unfinished; run the same command again to resume",
                      highlight=False)
    infra = [r for r in records if r.status == "infra_error"]
    for r in infra:
        console.print(f"infra_error (not scored): {r.trial_id}: {r.status_reason}", highlight=False, markup=False,
                      soft_wrap=True)
    console.print(f"results: {SuitePaths(out / config.name).root} (index.sqlite, one directory per trial)",
                  highlight=False)
    return exit_code(records)


__all__ = ["DEMO_SUITE", "ConfigError", "exit_code", "load_suite_file", "run_command"]
