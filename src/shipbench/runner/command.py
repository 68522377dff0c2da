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
import urllib.parse
from pathlib import Path

from rich.console import Console

from shipbench.config import ConfigError, SuiteConfig, load_suite
from shipbench.preflight import PreflightReport, raise_for_failures, run_preflight
from shipbench.runner.plan import TrialPlan
from shipbench.runner.progress import LiveProgress, make_progress, summary_table
from shipbench.runner.suite import SuiteRun, plan_run, prepared_run, run_suite
from shipbench.runner.trial import is_done
from shipbench.store.layout import SuitePaths
from shipbench.store.records import TrialRecord, load_trial

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


def _finished(plan: TrialPlan) -> bool:
    """The trial's result is on disk already (the run will skip it)."""
    try:
        return is_done(load_trial(plan.paths.record))
    except (OSError, ValueError):
        return False


def with_executor(config: SuiteConfig, kind: str | None, address: str | None) -> SuiteConfig:
    """The suite with the CLI's --executor / --ray-address applied (a bad kind is a ConfigError)."""
    if kind is None and address is None:
        return config
    if kind not in (None, "local", "ray"):
        raise ConfigError(f"--executor {kind!r}: use local or ray")
    update: dict[str, object] = {}
    if kind is not None:
        update["kind"] = kind
    if address is not None:
        update["address"] = address
        update.setdefault("kind", "ray")
    executor = config.executor.model_copy(update=update)
    return config.model_copy(update={"executor": executor})


def preflight_run(config: SuiteConfig, prepared: SuiteRun, console: Console) -> PreflightReport | None:
    """Preflight the models and agents of the run's plans; write preflight.json when it passes, else raise the
    ConfigError listing the failures. None when there is nothing to check (no plans, or only replay models)."""
    plans = [p for p in prepared.plans if p.force or not _finished(p)]  # a resumed run asks only what will run
    if not plans:
        return None
    agents = list(dict.fromkeys(p.agent.name for p in plans))
    models = list({p.model.id: p.model for p in plans}.values())
    if all(m.provider == "replay" for m in models):
        return None  # the harness's own upstream: nothing to ask anyone

    def line(text: str) -> None:
        console.print(text, highlight=False, markup=False, soft_wrap=True)

    report = asyncio.run(run_preflight(config, min_context_tokens=plans[0].task.spec.min_context_tokens,
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


def _on_ray(config: SuiteConfig, prepared: SuiteRun, *, out: str, console: Console, only_agent: str | None,
            only_model: str | None, repeats: int | None, jobs: int | None, force: set[str] | None,
            gem_sources: dict[str, Path] | None, served: dict[str, int], index: bool = True) -> list[TrialRecord]:
    """The same plans on a Ray cluster (shipbench.cluster); the index is rebuilt from the results afterwards."""
    from shipbench.cluster import RayRun, run_on_ray
    from shipbench.store.index import rebuild_index
    from shipbench.store.remote import is_url

    target = out if is_url(out) else str(Path(out).expanduser().resolve())  # nodes resolve nothing of the driver's
    run = RayRun(config=config, plans=prepared.plans, out=target, only_agent=only_agent, only_model=only_model,
                 repeats=repeats, force=frozenset(force or ()), jobs=jobs,
                 gem_sources={k: str(Path(v).resolve()) for k, v in (gem_sources or {}).items()}, served_context=served)
    records = run_on_ray(run, console)
    if index:
        rebuild_index(prepared.paths)
    return records


def _run_at_url(config: SuiteConfig, url: str, *, console: Console, label: str, only_agent: str | None,
                only_model: str | None, repeats: int | None, jobs: int | None, force: set[str] | None,
                gem_sources: dict[str, Path] | None, preflight: bool) -> int:
    """Results in shared storage (an fsspec URL): only the Ray executor writes there (each node uploads its trial
    with trial.json last); the index is built from the uploaded records and uploaded beside them. No lock: the
    results directory is not a local path (do not run two drivers on one URL)."""
    import tempfile

    from shipbench.store.index import rebuild_index
    from shipbench.store.layout import SuitePaths
    from shipbench.store.remote import RemoteResults, RemoteStoreError

    if config.executor.kind != "ray":
        raise ConfigError(f"--out {url}: results at a URL need --executor ray (nodes upload their trials there)")
    if urllib.parse.urlsplit(url).password:
        raise ConfigError("--out: the URL holds a password; give credentials in the environment (AWS_*, ...) or the "
                          "store's own config, never in the URL (it is printed and sent to every node)")
    try:
        remote = RemoteResults.open(url)
    except RemoteStoreError as exc:
        raise ConfigError(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="shipbench-driver-") as scratch:
        prepared = plan_run(config, out=Path(scratch), only_agent=only_agent, only_model=only_model,
                            repeats=repeats, force=force)
        report = preflight_run(config, prepared, console) if preflight else None
        console.print(f"shipbench run: suite {config.name!r} task {config.task!r} -> {url}/{config.name}{label}",
                      highlight=False)
        records = _on_ray(config, prepared, out=url, console=console, only_agent=only_agent, only_model=only_model,
                          repeats=repeats, jobs=jobs, force=force, gem_sources=gem_sources,
                          served=served_contexts(report), index=False)
        try:
            local = remote.mirror_for_report(config.name, Path(scratch) / "mirror")
            rebuild_index(SuitePaths(local))
            remote.upload_file(local / "index.sqlite", f"{config.name}/index.sqlite")
        except (RemoteStoreError, OSError) as exc:
            console.print(f"index not uploaded: {exc}", highlight=False, markup=False)
    console.print(summary_table(records, f"{config.name}: {len(records)} trials{label}"))
    console.print(f"results: {url}/{config.name} (index.sqlite, one directory per trial)", highlight=False)
    return exit_code(records)


def exit_code(records: list[TrialRecord]) -> int:
    if any(r.status == "infra_error" for r in records):
        return EXIT_INFRA
    if any(r.status in ("running", "pending") for r in records):
        return EXIT_INTERRUPTED
    return EXIT_OK


def run_command(
    config: SuiteConfig,
    *,
    out: Path | str,
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
    if isinstance(out, str):
        return _run_at_url(config, out, console=console, label=label, only_agent=only_agent, only_model=only_model,
                           repeats=repeats, jobs=jobs, force=force, gem_sources=gem_sources, preflight=preflight)
    with prepared_run(config, out=out, only_agent=only_agent, only_model=only_model, repeats=repeats,
                      force=force) as prepared:
        report = preflight_run(config, prepared, console) if preflight else None
        console.print(f"shipbench run: suite {config.name!r} task {config.task!r} -> {out / config.name}{label}",
                      highlight=False)
        if config.executor.kind == "ray":
            records = _on_ray(config, prepared, out=str(out), console=console, only_agent=only_agent,
                              only_model=only_model, repeats=repeats, jobs=jobs, force=force,
                              gem_sources=gem_sources, served=served_contexts(report))
        else:
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


__all__ = ["DEMO_SUITE", "ConfigError", "exit_code", "load_suite_file", "run_command", "with_executor"]
