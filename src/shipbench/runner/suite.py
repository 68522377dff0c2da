"""Run a whole suite: expand trials, start the shared proxy (and replay upstreams), run with --jobs, index.

Invariants: one MeteringProxy per suite run, one ReplayServer per distinct trajectory (a replay model
with an explicit base_url uses that server instead); trials start in plan order; the SQLite index is
updated after every trial that wrote a trial.json; the first SIGINT/SIGTERM stops agents gracefully
(interrupted trials stay "running" and resume on the next run), a second one cancels the trials;
servers are stopped on every exit path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator, Mapping
from pathlib import Path

from rich.console import Console

from shipbench.agents.base import AgentEvent
from shipbench.config import ConfigError, ModelConfig, SuiteConfig
from shipbench.proxy.retry import RetryPolicy
from shipbench.proxy.server import MeteringProxy
from shipbench.replay.server import ReplayServer
from shipbench.replay.trajectory import load_trajectory
from shipbench.runner.plan import Limiters, NullProgress, ProgressSink, RunEnv, TrialPlan, check_pairs, expand_plans
from shipbench.runner.progress import LineProgress
from shipbench.runner.trial import run_trial
from shipbench.store.index import upsert
from shipbench.store.layout import SuitePaths
from shipbench.store.records import TrialRecord
from shipbench.tasks.pack import TaskPack, TaskPackError, load_task

BUNDLED_REPLAY_DIR = Path(__file__).resolve().parents[1] / "replay"


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
) -> list[TrialRecord]:
    """Run (or resume) every trial of the suite; returns the trial records in plan order.

    Setting `shutdown` (or SIGINT/SIGTERM when handle_signals) stops the run gracefully. Progress goes to
    `progress`, else plain lines on `console`, else nowhere.
    """
    try:
        task = load_task(config.task)
    except TaskPackError as exc:
        raise ConfigError(str(exc)) from exc
    check_pairs(config)
    suite_paths = SuitePaths(out / config.name)
    plans = expand_plans(config, task, suite_paths, only_agent=only_agent, only_model=only_model,
                         repeats=repeats_override, force=force)
    unknown = sorted((force or set()) - {p.trial_id for p in plans})
    if unknown:
        raise ConfigError(f"--force: no such trial in this run: {', '.join(unknown)}")
    trajectories = _trajectories(plans, task)
    proxy = MeteringProxy(retry=retry or RetryPolicy())
    replays: list[ReplayServer] = []
    proxy_url = await proxy.start()
    try:
        env = RunEnv(
            proxy=proxy, proxy_url=proxy_url, limiters=Limiters.for_suite(config, jobs_override or config.jobs),
            replay_urls=await _start_replays(plans, trajectories, replays),
            environ=os.environ if environ is None else environ,
            progress=progress or (LineProgress(console) if console else NullProgress()), gem_sources=gem_sources or {},
            monitor_interval_s=monitor_interval_s, shutdown=shutdown or asyncio.Event(),
        )
        return await _run_all(plans, env, suite_paths, handle_signals)
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
    if plan.paths.record.is_file():
        try:
            await asyncio.to_thread(upsert, suite_paths, record)
        except Exception as exc:  # the index is rebuildable; never lose a trial over it
            env.progress.on_event(plan.trial_id, _index_warning(exc))
    return record


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
