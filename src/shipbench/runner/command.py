"""Glue between the CLI verbs (`run`, `demo`) and run_suite: progress display, summary, exit code.

Invariants: exit code 0 when every selected trial finished (whatever its status), 1 when any trial
ended in infra_error (an unreadable trial.json included), 130 when the run was interrupted (some trial
still "running": re-run to resume); a bad suite or any refusal before the run starts (see run_suite)
raises ConfigError for the CLI to turn into exit code 2; so does a failed preflight (unless preflight=False),
which runs after the static refusals and the lock on --out, before anything else is written or started, and
whose passing report is written to <out>/<suite>/preflight.json (replay models are skipped: no network).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from rich.console import Console

from shipbench.config import ConfigError, SuiteConfig, load_suite
from shipbench.preflight import PreflightReport, raise_for_failures, run_preflight
from shipbench.runner.progress import LiveProgress, make_progress, summary_table
from shipbench.runner.suite import SuiteRun, prepared_run, run_suite
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


def preflight_run(config: SuiteConfig, prepared: SuiteRun, console: Console) -> PreflightReport | None:
    """Preflight the models and agents of the run's plans; write preflight.json when it passes, else raise the
    ConfigError listing the failures. None when there is nothing to check (no plans, or only replay models)."""
    if not prepared.plans:
        return None
    agents = list(dict.fromkeys(p.agent.name for p in prepared.plans))
    models = list({p.model.id: p.model for p in prepared.plans}.values())
    if all(m.provider == "replay" for m in models):
        return None  # the harness's own upstream: nothing to ask anyone

    def line(text: str) -> None:
        console.print(text, highlight=False, markup=False, soft_wrap=True)

    report = asyncio.run(run_preflight(config, min_context_tokens=prepared.plans[0].task.spec.min_context_tokens,
                                       agents=agents, models=models, progress=line))
    raise_for_failures(report)
    prepared.paths.root.mkdir(parents=True, exist_ok=True)
    (prepared.paths.root / "preflight.json").write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return report


def served_contexts(report: PreflightReport | None) -> dict[str, int]:
    """Model id -> the context its server says it serves (what agents are told when the suite gives none)."""
    if report is None:
        return {}
    return {m.model_id: m.served_context for m in report.models if m.served_context}


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
    preflight: bool = True,
) -> int:
    """Refuse or lock, preflight the selected models, then run or resume the suite with a progress display; print
    the summary; return the exit code. Every static refusal is a ConfigError raised before anything is printed or
    written; a failed preflight prints its check lines, then raises a ConfigError listing each failure."""
    replay = any(m.provider == "replay" for m in config.models)
    label = " (REPLAY run: scripted upstream, not a real model)" if replay else ""
    with prepared_run(config, out=out, only_agent=only_agent, only_model=only_model, repeats=repeats,
                      force=force) as prepared:
        report = preflight_run(config, prepared, console) if preflight else None
        console.print(f"shipbench run: suite {config.name!r} task {config.task!r} -> {out / config.name}{label}",
                      highlight=False)
        progress = make_progress(console)
        live = progress if isinstance(progress, LiveProgress) else contextlib.nullcontext()
        with live:
            records = asyncio.run(
                run_suite(config, out=out, jobs_override=jobs, console=console, progress=progress,
                          gem_sources=gem_sources, prepared=prepared, served_context=served_contexts(report))
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
