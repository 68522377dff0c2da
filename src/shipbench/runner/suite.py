"""Run a whole suite: expand trials, start the shared proxy (and replay upstreams), run with --jobs, index.

Invariants: every refusal (bad filter, agent not installed, unenforceable budget, unusable sandbox, unsafe
path, --out held by another run) is a ConfigError raised before anything is written or started; the run holds the
exclusive lock on --out from then until its servers are stopped; one MeteringProxy per suite run, one
ReplayServer per distinct trajectory (a replay model with an explicit base_url uses that server
instead); trials start in plan order; the SQLite index mirrors every trial.json that loads after its
trial (an unreadable one is never indexed); the first SIGINT/SIGTERM stops agents gracefully
(interrupted trials stay "running" and resume on the next run), a second one cancels the trials;
servers are stopped on every exit path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from rich.console import Console

from shipbench.agents.base import AgentEvent
from shipbench.config import ConfigError, ModelConfig, SuiteConfig
from shipbench.proxy.retry import RetryPolicy
from shipbench.proxy.server import MeteringProxy
from shipbench.replay.server import ReplayServer
from shipbench.replay.trajectory import load_trajectory
from shipbench.runner.keyhold import held_keys
from shipbench.runner.plan import Limiters, NullProgress, ProgressSink, RunEnv, TrialPlan, check_pairs, expand_plans
from shipbench.runner.progress import LineProgress
from shipbench.runner.refusals import check_filters, check_runnable, check_sandbox
from shipbench.runner.trial import run_trial
from shipbench.sandbox.registry import ResolvedSandbox, no_sandbox
from shipbench.store.index import upsert
from shipbench.store.layout import SuitePaths, UnsafePathError, checked_suite_paths
from shipbench.store.lock import ResultsLocked, results_lock
from shipbench.store.records import TrialRecord, load_trial
from shipbench.tasks.pack import TaskPack, TaskPackError, load_task

BUNDLED_REPLAY_DIR = Path(__file__).resolve().parents[1] / "replay"


@dataclass(frozen=True)
class SuiteRun:
    """A suite run that passed every refusal and holds the lock on --out: its plans and trajectories."""

    plans: list[TrialPlan]
    paths: SuitePaths
    trajectories: dict[str, Path]
    sandbox: ResolvedSandbox = field(default_factory=no_sandbox)


def plan_run(
    config: SuiteConfig, *, out: Path, only_agent: str | None = None, only_model: str | None = None,
    repeats: int | None = None, force: set[str] | None = None,
) -> SuiteRun:
    """The run's plans, or a ConfigError for every refusal; reads only, writes nothing."""
    try:
        task = load_task(config.task)
    except TaskPackError as exc:
        raise ConfigError(str(exc)) from exc
    except (OSError, UnicodeDecodeError) as exc:  # e.g. a task.toml that is not UTF-8
        raise ConfigError(f"task {config.task!r}: cannot read the task pack: {exc}") from exc
    check_pairs(config)
    check_filters(config, only_agent, only_model)
    try:
        paths = checked_suite_paths(out, config.name)
        plans = expand_plans(config, task, paths, only_agent=only_agent, only_model=only_model, repeats=repeats,
                             force=force)
    except UnsafePathError as exc:
        raise ConfigError(str(exc)) from exc
    unknown = sorted((force or set()) - {p.trial_id for p in plans})
    if unknown:
        raise ConfigError(f"--force: no such trial in this run: {', '.join(unknown)}")
    check_runnable(plans)
    sandbox = check_sandbox(config)
    return SuiteRun(plans, paths, _trajectories(plans, task), sandbox)


@contextlib.contextmanager
def prepared_run(
    config: SuiteConfig, *, out: Path, only_agent: str | None = None, only_model: str | None = None,
    repeats: int | None = None, force: set[str] | None = None,
) -> Iterator[SuiteRun]:
    """plan_run, then the exclusive lock on `out` for the block (a held lock is a ConfigError)."""
    run = plan_run(config, out=out, only_agent=only_agent, only_model=only_model, repeats=repeats, force=force)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(results_lock(out))
        except ResultsLocked as exc:
            raise ConfigError(str(exc)) from None
        except OSError as exc:
            raise ConfigError(f"--out {out}: cannot create or lock the results directory: {exc}") from None
        yield run


async def run_suite(
    config: SuiteConfig,
    *,
    out: Path,
    only_agent: str | None = None,
    only_model: str | None = None,
    repeats_override: int | None = None,
    jobs_override: int | None = None,
    force: set[str] | None = None,
    console: Console | None = None,
    progress: ProgressSink | None = None,
    environ: Mapping[str, str] | None = None,
    retry: RetryPolicy | None = None,
    gem_sources: dict[str, Path] | None = None,
    monitor_interval_s: float = 1.0,
    handle_signals: bool = True,
    shutdown: asyncio.Event | None = None,
    prepared: SuiteRun | None = None,
    served_context: dict[str, int] | None = None,
) -> list[TrialRecord]:
    """Run (or resume) every trial of the suite; returns the trial records in plan order.

    Setting `shutdown` (or SIGINT/SIGTERM when handle_signals) stops the run gracefully. Progress goes to
    `progress`, else plain lines on `console`, else nowhere. `prepared` (from prepared_run, whose lock the
    caller holds) replaces out/only_agent/only_model/repeats_override/force. `served_context` (model id -> tokens,
    from the preflight) tells agents the context a server really serves when the suite does not say.
    """
    make_env = partial(
        RunEnv, limiters=Limiters.for_suite(config, jobs_override or config.jobs),
        environ={**os.environ, **held_keys()} if environ is None else environ,
        progress=progress or (LineProgress(console) if console else NullProgress()),
        gem_sources=gem_sources or {}, monitor_interval_s=monitor_interval_s, shutdown=shutdown or asyncio.Event(),
        served_context=dict(served_context or {}),
    )
    if prepared is not None:
        return await _serve_and_run(prepared, retry, handle_signals, make_env)
    with prepared_run(config, out=out, only_agent=only_agent, only_model=only_model, repeats=repeats_override,
                      force=force) as run:
        return await _serve_and_run(run, retry, handle_signals, make_env)


async def _serve_and_run(
    run: SuiteRun, retry: RetryPolicy | None, handle_signals: bool, make_env: Callable[..., RunEnv]
) -> list[TrialRecord]:
    proxy = MeteringProxy(retry=retry or RetryPolicy())
    replays: list[ReplayServer] = []
    proxy_url = await proxy.start(unix_socket=run.sandbox.record.network == "proxy-only")
    try:
        urls = await _start_replays(run.plans, run.trajectories, replays)
        env = make_env(proxy=proxy, proxy_url=proxy_url, replay_urls=urls, sandbox=run.sandbox)
        return await _run_all(run.plans, env, run.paths, handle_signals)
    finally:
        for server in replays:
            await server.stop()
        await proxy.stop()


async def _run_all(plans: list[TrialPlan], env: RunEnv, suite_paths: SuitePaths, handle: bool) -> list[TrialRecord]:
    tasks = [asyncio.create_task(_one(plan, env, suite_paths), name=plan.trial_id) for plan in plans]
    with _signals(env.shutdown, tasks, enabled=handle):
        results = await asyncio.gather(*tasks, return_exceptions=True)
    records: list[TrialRecord] = []
    for result in results:
        if isinstance(result, BaseException):
            if isinstance(result, asyncio.CancelledError):
                continue  # second signal: the trial saved itself as interrupted
            raise result
        records.append(result)
    return records


async def _one(plan: TrialPlan, env: RunEnv, suite_paths: SuitePaths) -> TrialRecord:
    record = await run_trial(plan, env)
    try:
        await asyncio.to_thread(_index, suite_paths, plan)
    except Exception as exc:  # the index is rebuildable; never lose a trial over it
        env.progress.on_event(plan.trial_id, _index_warning(exc))
    return record


def _index(suite_paths: SuitePaths, plan: TrialPlan) -> None:
    """Mirror the trial.json on disk (the truth) into the index; a missing or unreadable one is left out."""
    try:
        on_disk = load_trial(plan.paths.record)
    except (OSError, ValueError):
        return
    upsert(suite_paths, on_disk)


def _index_warning(exc: Exception) -> AgentEvent:
    return AgentEvent(kind="error", raw_type="index", text=f"index update failed: {exc!r}")


def resolve_trajectory(model: ModelConfig, task: TaskPack) -> Path:
    """A replay model's script: a file path, a bundled name (`hello`), or the task's bundled trajectory."""
    if model.replay_script is None:
        path = task.root / "replay" / "trajectory.json"
    else:
        path = Path(model.replay_script)
        if not path.is_file():
            bundled = BUNDLED_REPLAY_DIR / f"{model.replay_script}.json"
            path = bundled if bundled.is_file() else path
    if not path.is_file():
        raise ConfigError(f"model {model.id!r}: replay trajectory not found: {path}")
    return path


def _trajectories(plans: list[TrialPlan], task: TaskPack) -> dict[str, Path]:
    """model id -> trajectory file, for replay models that need a server started by us."""
    out: dict[str, Path] = {}
    for plan in plans:
        model = plan.model
        if model.provider == "replay" and model.base_url is None and model.id not in out:
            out[model.id] = resolve_trajectory(model, task)
    return out


async def _start_replays(
    plans: list[TrialPlan], trajectories: dict[str, Path], started: list[ReplayServer]
) -> dict[str, str]:
    urls: dict[str, str] = {}
    by_file: dict[Path, str] = {}
    for model_id, path in trajectories.items():
        if path not in by_file:
            try:
                trajectory = load_trajectory(path)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"model {model_id!r}: bad replay trajectory {path}: {exc}") from exc
            server = ReplayServer(trajectory)
            started.append(server)
            by_file[path] = await server.start()
        urls[model_id] = by_file[path]
    for plan in plans:
        if plan.model.provider == "replay" and plan.model.base_url:
            urls[plan.model.id] = plan.model.base_url
    return urls


@contextlib.contextmanager
def _signals(shutdown: asyncio.Event, tasks: list[asyncio.Task[TrialRecord]], *, enabled: bool) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []

    def on_signal() -> None:
        if shutdown.is_set():
            for task in tasks:
                task.cancel()
        shutdown.set()

    if enabled:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal)
                installed.append(sig)
            except (RuntimeError, ValueError, NotImplementedError):
                pass  # not the main thread: the caller handles signals
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
