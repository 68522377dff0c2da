"""The trial lifecycle: skip, resume or start; run the unfinished phases; audit; save trial.json.

Invariants:
- run_trial never raises except on cancellation (after saving the record); every harness failure
  (binary missing, version unknown, key missing, proxy or git failure, unexpected exception) ends as
  status infra_error with a redacted message. A trial whose failure class is infra (infra_error, or a
  provider outage / server down ending in any status) is retried by the next run, from its first infra
  phase (it is not a result); every other finished status is final and the trial is skipped.
- A finished phase is never re-run or rewritten; an unfinished phase (a crash or an interrupt left it
  "running") restarts from the workspace its predecessor committed (git tag), its old files removed.
- Only completed / completed_with_errors phases let the next phase run; any other status ends the
  trial with that status. trial.json is written atomically before and after every phase.
- A trial.json that cannot be read or validated is never overwritten or wiped: that trial is reported
  as infra_error naming the file (nothing saved, nothing run) until the user fixes it or passes
  `--force <trial id>`. Each phase stores its failure class; a resume reads it, never re-derives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from pydantic import ValidationError

from shipbench import __version__
from shipbench.agents.base import AgentAdapter, Usage
from shipbench.agents.common import DEFAULT_PATH
from shipbench.agents.discovery import detect_version, find_binary
from shipbench.agents.registry import get_adapter
from shipbench.audit.engine import is_incomplete
from shipbench.audit.models import AuditResult
from shipbench.config import validation_problems
from shipbench.proxy.types import UpstreamTarget
from shipbench.runner import serving
from shipbench.runner.audit_worker import audit_in_process
from shipbench.runner.events import Redactor
from shipbench.runner.killtree import kill_marked
from shipbench.runner.phase import PhaseContext, PhaseOutcome, now, run_phase
from shipbench.runner.plan import PhasePlan, PlanError, RunEnv, TrialPlan, resolve_key
from shipbench.runner.workspace import Wrap, init_workspace, phase_tag, reset_to
from shipbench.runner.workspace import commit_phase as git_commit_phase
from shipbench.sandbox.base import SandboxRequest
from shipbench.store.records import (
    FINISHED,
    FailureClass,
    LlmCallRecord,
    PhaseRecord,
    TrialRecord,
    TrialStatus,
    Versions,
    load_trial,
    save_trial,
)

OK_PHASE: frozenset[str] = frozenset({"completed", "completed_with_errors"})
INFRA_STATUSES: frozenset[str] = frozenset({"infra_error", "provider_error"})
LOCAL_HOSTS = ("http://127.0.0.1", "http://localhost", "http://[::1]")


class InfraError(Exception):
    """A harness-side failure: the trial is reported as infra_error with this message."""


class TrialFileError(Exception):
    """An existing trial.json that cannot be used; the trial is left untouched."""


def is_done(record: TrialRecord) -> bool:
    """A trial whose result is final (skipped by a re-run). A trial that ended as infra (infra_error, or any
    status whose failure class is infra: a server that was down, a provider outage) is retried."""
    return record.status in FINISHED and record.status != "infra_error" and record.failure_class != "infra"


def phase_done(phase: PhaseRecord) -> bool:
    """A phase that is a result: finished, and not for a reason of the infrastructure (those phases re-run)."""
    return phase.status in FINISHED and phase.status != "infra_error" and stored_failure_class(phase) != "infra"


def failure_class_of(status: str) -> FailureClass:
    if status in OK_PHASE:
        return "none"
    return "infra" if status in INFRA_STATUSES else "model"


def stored_failure_class(phase: PhaseRecord) -> FailureClass:
    """The class recorded when the phase ended; derived from the status only for records older than the field."""
    return phase.failure_class if phase.failure_class is not None else failure_class_of(phase.status)


async def run_trial(plan: TrialPlan, env: RunEnv) -> TrialRecord:
    try:
        existing = None if plan.force else _load(plan)
    except TrialFileError as exc:
        record = unreadable_record(plan, str(exc))
        env.progress.trial_finished(record, skipped=False)
        return record
    if plan.force and plan.paths.root.exists():
        shutil.rmtree(plan.paths.root)
    if existing is not None and is_done(existing):
        env.progress.trial_finished(existing, skipped=True)
        return existing
    record = existing or new_record(plan)
    if env.shutdown.is_set():
        return record
    async with _hold(env.limiters.slots(plan.model)):
        if env.shutdown.is_set():
            return record
        return await _run(plan, env, record)


def new_record(plan: TrialPlan) -> TrialRecord:
    stamp = now()
    return TrialRecord(
        trial_id=plan.trial_id, suite=plan.suite.name, task=plan.task.id, agent=plan.agent.name,
        model_id=plan.model.id, model=plan.model.model, provider=plan.model.provider, repeat=plan.repeat,
        replay=plan.model.provider == "replay", config=plan.config_snapshot(),
        versions=Versions(shipbench=__version__, task=_task_version(plan)), created_at=stamp, updated_at=stamp,
    )


def unreadable_record(plan: TrialPlan, problem: str) -> TrialRecord:
    """The (unsaved) infra_error record reported for a trial whose trial.json cannot be used."""
    record = new_record(plan)
    record.status, record.failure_class = "infra_error", "infra"
    record.status_reason = (f"{problem}; the trial was left untouched: fix the file, or re-run with "
                            f"--force {plan.trial_id} to start it over from an empty workspace")
    return record


async def _run(plan: TrialPlan, env: RunEnv, record: TrialRecord) -> TrialRecord:
    redactor = Redactor()
    record.status, record.status_reason, record.failure_class = "running", "", "none"
    env.progress.trial_started(plan.trial_id, len(plan.phases()))
    try:
        await _execute(plan, env, record, redactor)
    except asyncio.CancelledError:
        record.status_reason = "interrupted (cancelled); a re-run resumes"
        _save(plan, record)
        raise
    except InfraError as exc:
        _finish(record, "infra_error", redactor(str(exc)), "infra")
    except Exception as exc:  # the harness failed, not the model: never let it escape the suite
        _finish(record, "infra_error", redactor(f"harness error: {exc!r}"), "infra")
    _save(plan, record)
    env.progress.trial_finished(record, skipped=False)
    return record


async def _execute(plan: TrialPlan, env: RunEnv, record: TrialRecord, redactor: Redactor) -> None:
    adapter, binary, upstream = await _prepare(plan, env, record, redactor)
    await _start_server(plan, record, upstream.api_key)
    finished = {p.id: p for p in record.phases if phase_done(p)}
    for phase in plan.phases():  # attempts about to be redone: their calls stay on the record as abandoned spend
        if phase.id not in finished:
            _keep_spend(plan, record, phase.n)
    await _prepare_workspace(plan, record, finished, git_wrap(plan, env))
    session: str | None = None
    spent, spent_usd = Usage(), 0.0
    final: tuple[TrialStatus, str, FailureClass] = ("completed", "", "none")
    for phase in plan.phases():
        done = finished.get(phase.id)
        if done is None:
            _save(plan, record)
            await asyncio.to_thread(kill_marked, plan.marker(phase.n))  # left running by a crashed earlier run?
            resume = session if (plan.agent.continue_session and adapter.capabilities.continues_session) else None
            ctx = PhaseContext(adapter, binary, upstream, redactor, spent + record.abandoned_usage,
                               spent_usd + record.abandoned_cost_usd, resume)
            await _server_loaded(plan, record, f"before phase {phase.n}", upstream.api_key)
            env.progress.phase_started(plan.trial_id, phase.n, phase.id)
            outcome = await _run_phase(plan, env, record, phase, ctx)
            await _blame_server(plan, record, outcome, upstream.api_key)
            if outcome.interrupted:
                record.status_reason = outcome.record.status_reason
                return
            done = outcome.record
            final = _worse(final, (done.status, done.status_reason, outcome.failure_class))
        else:
            final = _worse(final, (done.status, done.status_reason, stored_failure_class(done)))
        session = done.session_id or session
        spent, spent_usd = spent + done.proxy_usage, spent_usd + done.cost_usd
        if done.status not in OK_PHASE:
            break
    if final[0] != "infra_error":
        await _validate(plan, env, record)
        await _audit(plan, env, record, redactor)
    _finish(record, *final)


async def _prepare(
    plan: TrialPlan, env: RunEnv, record: TrialRecord, redactor: Redactor
) -> tuple[AgentAdapter, Path, UpstreamTarget]:
    try:
        adapter = get_adapter(plan.agent.name)
    except KeyError as exc:
        raise InfraError(str(exc)) from None
    binary = find_binary(adapter.capabilities, plan.agent.binary)
    if binary is None:
        raise InfraError(f"{adapter.capabilities.binary} not found (install {adapter.capabilities.npm_package})")
    version = await detect_version(adapter, binary)
    if version is None:
        raise InfraError(f"{binary}: could not detect the version (`{binary} --version` failed)")
    record.versions.agent_cli = version
    record.sandbox = env.sandbox.record
    key, key_error = resolve_key(plan.model, env.environ)
    if key_error:
        raise InfraError(key_error)
    redactor.add(key)
    return adapter, binary, _upstream(plan, env, key)


def _upstream(plan: TrialPlan, env: RunEnv, key: str | None) -> UpstreamTarget:
    model = plan.model
    base = env.replay_urls.get(model.id) if model.provider == "replay" else model.upstream_url()
    if not base:
        raise InfraError(f"model {model.id!r}: no upstream URL (provider {model.provider})")
    headers: dict[str, str] = {}
    if model.provider == "replay" or base.startswith(LOCAL_HOSTS):  # never send local paths to a cloud
        headers["X-Shipbench-Workspace"] = str(plan.paths.workspace.resolve())
    return UpstreamTarget(provider=model.provider, base_url=base, api_key=key, pricing=model.pricing,
                          extra_headers=headers, serving_kind=model.serving.kind if model.serving else None)


def git_wrap(plan: TrialPlan, env: RunEnv) -> Wrap:
    """The trial's sandbox around the harness's own git commands in the workspace (see runner/workspace.py);
    no proxy endpoint, so under `network = "proxy-only"` git runs with no network at all."""
    path_env = os.environ.get("PATH") or DEFAULT_PATH
    request = SandboxRequest(workspace=plan.paths.workspace, home=plan.paths.home,
                             binary=Path(shutil.which("git", path=path_env) or "/usr/bin/git"), path_env=path_env,
                             network=plan.suite.sandbox.network)
    return lambda argv: env.sandbox.sandbox.wrap(argv, request)


async def _prepare_workspace(
    plan: TrialPlan, record: TrialRecord, finished: dict[str, PhaseRecord], wrap: Wrap
) -> None:
    paths = plan.paths
    if not finished:
        if paths.home.exists():
            shutil.rmtree(paths.home)
        if (paths.root / "phases").exists():
            shutil.rmtree(paths.root / "phases")
        record.phases = []
        await init_workspace(paths.workspace, paths.home, wrap)
        return
    last = max(finished.values(), key=lambda p: p.n)
    paths.home.mkdir(parents=True, exist_ok=True)
    await reset_to(paths.workspace, paths.home, phase_tag(last.n), wrap)
    record.phases = sorted(finished.values(), key=lambda p: p.n)


def _keep_spend(plan: TrialPlan, record: TrialRecord, n: int) -> None:
    """Move an attempt's recorded calls (its llm_calls.jsonl, the proxy's truth) into the trial's abandoned spend,
    once: the file's digest is saved with the totals (atomically) before the file is removed, so a crash in between
    leaves a file the next run recognises and only removes."""
    calls = plan.paths.llm_calls(n)
    try:
        data = calls.read_bytes()
    except OSError:
        return
    digest = hashlib.sha256(data).hexdigest()
    if digest not in record.abandoned_files:
        for line in data.decode("utf-8", errors="replace").splitlines():
            try:
                call = LlmCallRecord.model_validate_json(line)
            except ValueError:
                continue  # a line cut by a crash
            record.abandoned_calls += 1
            record.abandoned_usage = record.abandoned_usage + call.usage
            cost = call.cost_usd if call.cost_usd is not None else call.upstream_cost_usd
            record.abandoned_cost_usd = round(record.abandoned_cost_usd + (cost or 0.0), 6)
        record.abandoned_files.append(digest)
        _save(plan, record)
    calls.unlink(missing_ok=True)


async def _start_server(plan: TrialPlan, record: TrialRecord, key: str | None) -> None:
    """A self-hosted model: load the model before any phase (timed apart), then record what the server says."""
    if plan.model.serving is None:
        return
    seconds, problem = await serving.warm_up(plan.model, key)
    if problem is not None:
        raise InfraError(f"{plan.model.serving.kind} server: the model did not load: {problem}")
    record.serving_warmup_s = seconds
    record.serving = await serving.describe(plan.model, key)


async def _server_loaded(plan: TrialPlan, record: TrialRecord, when: str, key: str | None) -> None:
    check = await serving.check_loaded(plan.model, key)
    if check.note:
        record.serving_events.append(f"{when}: {check.note}")
    if check.problem is not None:
        raise InfraError(check.problem)


async def _blame_server(plan: TrialPlan, record: TrialRecord, outcome: PhaseOutcome, key: str | None) -> None:
    """A phase that failed while the server unloaded the model or changed its context (it was checked fine
    before the phase) failed for the server."""
    if outcome.interrupted or outcome.failure_class != "model" or plan.model.serving is None:
        return
    check = await serving.check_loaded(plan.model, key)
    if check.note:
        record.serving_events.append(f"after phase {outcome.record.n}: {check.note}")
        outcome.failure_class = outcome.record.failure_class = "infra"
        outcome.record.status_reason += f"; the server changed under the phase ({check.note}): not the model's"
        _save(plan, record)


async def _run_phase(
    plan: TrialPlan, env: RunEnv, record: TrialRecord, phase: PhasePlan, ctx: PhaseContext
) -> PhaseOutcome:
    phase_dir = plan.paths.phase_dir(phase.n)
    if phase_dir.exists():
        shutil.rmtree(phase_dir)  # an interrupted attempt's partial logs (its spend was kept: _keep_spend)
    placeholder = PhaseRecord(n=phase.n, id=phase.id, status="running", started_at=now())
    _put_phase(record, placeholder)
    _save(plan, record)
    try:
        outcome = await run_phase(plan, env, phase, ctx)
    except PlanError as exc:
        raise InfraError(str(exc)) from None
    if not outcome.interrupted:
        outcome.record.files_changed = await git_commit_phase(
            plan.paths.workspace, plan.paths.home, phase.n, phase.id, git_wrap(plan, env)
        )
    _put_phase(record, outcome.record)
    _save(plan, record)
    return outcome


async def _validate(plan: TrialPlan, env: RunEnv, record: TrialRecord) -> None:
    """The task's runtime ladder on the workspace (validate/): validation.json in the trial dir, read by the audit.
    A ladder that cannot run is recorded on the trial, never a trial failure."""
    if not plan.suite.validation.enabled or not plan.task.spec.validation.stages:
        return
    from shipbench.validate import validate_project

    def say(message: str) -> None:
        with contextlib.suppress(Exception):  # display errors never reach a trial
            env.progress.note(plan.trial_id, f"validate {message}")

    try:
        result = await asyncio.to_thread(validate_project, plan.paths.workspace, plan.task, plan.paths.root,
                                         network=plan.suite.validation.network, progress=say)
        record.works_passed, record.works_run = result.works
        record.validation_error = None
    except Exception as exc:
        record.works_passed = record.works_run = None
        record.validation_error = f"validation failed: {exc!r}"


async def _audit(plan: TrialPlan, env: RunEnv, record: TrialRecord, redactor: Redactor) -> None:
    try:
        text = await asyncio.to_thread(audit_in_process, plan.paths.workspace, plan.task.root, env.gem_sources)
        result = AuditResult.model_validate_json(text)
        plan.paths.audit.write_text(redactor(text), encoding="utf-8")
        record.audit_score, record.audit_tier = result.score, result.tier
        record.audit_error = result.verdict if is_incomplete(result.verdict) else None  # partial: never ranked
    except Exception as exc:
        record.audit_score = record.audit_tier = None
        record.audit_error = redactor(f"audit failed: {exc!r}")


def _finish(record: TrialRecord, status: TrialStatus, reason: str, failure: FailureClass) -> None:
    record.status, record.status_reason, record.failure_class = status, reason, failure
    record.usage = sum((p.proxy_usage for p in record.phases), Usage())
    record.cost_usd = round(sum(p.cost_usd for p in record.phases), 6)
    record.unpriced_calls = sum(p.unpriced_calls for p in record.phases)
    record.wall_s = round(sum(p.wall_s for p in record.phases), 3)


def _worse(
    current: tuple[TrialStatus, str, FailureClass], new: tuple[TrialStatus, str, FailureClass]
) -> tuple[TrialStatus, str, FailureClass]:
    """The trial's status: the first failing phase's, else completed_with_errors if any phase had errors."""
    if current[0] not in OK_PHASE:
        return current
    if new[0] not in OK_PHASE or new[0] == "completed_with_errors":
        return new
    return current


def _put_phase(record: TrialRecord, phase: PhaseRecord) -> None:
    record.phases = sorted([p for p in record.phases if p.n != phase.n] + [phase], key=lambda p: p.n)


def _save(plan: TrialPlan, record: TrialRecord) -> None:
    record.updated_at = now()
    save_trial(plan.paths.record, record)


def _load(plan: TrialPlan) -> TrialRecord | None:
    """The saved record; None for a trial never started; TrialFileError when one exists but cannot be used."""
    path = plan.paths.record
    try:
        return load_trial(path)
    except FileNotFoundError:
        if any((plan.paths.root / "phases").glob("*")):
            raise TrialFileError(f"{path}: missing, but phases/ holds output of an earlier run") from None
        return None
    except OSError as exc:
        raise TrialFileError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    except ValidationError as exc:
        raise TrialFileError(f"{path}: invalid trial.json: {_one_line(validation_problems(exc))}") from None
    except ValueError as exc:  # not UTF-8
        raise TrialFileError(f"{path}: invalid trial.json: {_one_line(str(exc))}") from None


def _one_line(text: str, limit: int = 600) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _task_version(plan: TrialPlan) -> str:
    digest = hashlib.sha256()
    for name in ("task.toml", "rubric.toml"):
        with contextlib.suppress(OSError):
            digest.update((plan.task.root / name).read_bytes())
    return f"{plan.task.id}@{digest.hexdigest()[:12]}"


@contextlib.asynccontextmanager
async def _hold(slots: list[asyncio.Semaphore]) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as stack:
        for slot in slots:
            await stack.enter_async_context(slot)
        yield
