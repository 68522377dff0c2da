"""What one Ray task does on the node that took it: run one trial exactly as the local executor does.

Invariants: the task body is the local executor's own code path (plan_run's refusals on this node, then run_suite
for a suite of one plan: its own proxy, replay upstream, sandbox and audit, all on this node); it returns the
trial's record as JSON and raises only for what stops a trial from being run at all (the driver records that as
infra); results go straight to the results directory, which every node sees (a shared filesystem), or to a
scratch copy uploaded with trial.json last when the results live at a URL (store/remote.py).
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from shipbench.config import SuiteConfig
from shipbench.runner.plan import NullProgress
from shipbench.runner.suite import SuiteRun, plan_run, run_suite
from shipbench.store.records import TrialRecord


@dataclass(frozen=True)
class TrialTask:
    """Everything a node needs to run one trial (picklable; never holds a key: nodes read their own)."""

    config: SuiteConfig
    out: str  # the results root: a path every node sees, or an fsspec URL
    trial_id: str
    only_agent: str | None = None
    only_model: str | None = None
    repeats: int | None = None
    force: bool = False
    gem_sources: dict[str, str] = field(default_factory=dict)
    served_context: dict[str, int] = field(default_factory=dict)
    expected_versions: dict[str, str] = field(default_factory=dict)  # agent -> CLI version every node must have


@dataclass(frozen=True)
class TrialOutcome:
    record_json: str
    node: str  # the Ray node id that ran it (host name and pid when run without Ray)


def run_trial_task(task: TrialTask) -> TrialOutcome:
    """The Ray task body (also callable directly: the tests run it without Ray to compare)."""
    from shipbench.runner.keyhold import absorb
    from shipbench.store.remote import is_url

    absorb()  # the node's keys leave this worker's environment (held in memory, as in a local run)
    if is_url(task.out):
        with tempfile.TemporaryDirectory(prefix="shipbench-trial-") as scratch:
            record = _run_with_upload(task, Path(scratch))
    else:
        record = _run_here(task, Path(task.out))
    return TrialOutcome(record.model_dump_json(), _node_id())


def _node_id() -> str:
    try:
        import ray

        if ray.is_initialized():
            return str(ray.get_runtime_context().get_node_id())
    except ImportError:
        pass
    return f"{socket.gethostname()}:{os.getpid()}"


class NodeMismatch(RuntimeError):
    """This node runs another agent CLI version than the run was checked with (a node that joined later)."""


def _check_versions(task: TrialTask, agent: str) -> None:
    from shipbench.cluster.nodes import local_versions

    expected = task.expected_versions.get(agent)
    if expected is None:
        return
    found = local_versions([agent]).agents.get(agent)
    if found != expected:
        raise NodeMismatch(f"node {socket.gethostname()} has {agent} {found}, the run was checked with {expected}: "
                           "install the same CLI on every node")


def _run_here(task: TrialTask, out: Path) -> TrialRecord:
    run = _one_plan_run(task, out)
    _check_versions(task, run.plans[0].agent.name)
    (record,) = asyncio.run(run_suite(
        task.config, out=out, prepared=run, progress=NullProgress(), handle_signals=False,
        gem_sources={k: Path(v) for k, v in task.gem_sources.items()}, served_context=task.served_context,
    ))
    return record


UPLOAD_ATTEMPTS = 3


def _run_with_upload(task: TrialTask, scratch: Path) -> TrialRecord:
    from shipbench.store.remote import RemoteResults, RemoteStoreError

    remote = RemoteResults.open(task.out)
    local_trial = scratch / task.config.name / task.trial_id
    if not task.force:
        remote.download_trial(task.config.name, task.trial_id, local_trial)  # resume from what was uploaded
    record = _run_here(task, scratch)
    for attempt in range(1, UPLOAD_ATTEMPTS + 1):
        try:
            remote.upload_trial(local_trial, task.config.name, task.trial_id)
            return record
        except RemoteStoreError as exc:
            if attempt == UPLOAD_ATTEMPTS:
                raise RemoteStoreError(f"the trial ran ({record.status}) but its upload failed {attempt} times: "
                                       f"{exc}") from None
            time.sleep(2.0 * attempt)
    return record


def _one_plan_run(task: TrialTask, out: Path) -> SuiteRun:
    """This node's plan for the trial: the same expansion and refusals as the driver's (agent CLI installed here,
    sandbox usable here), narrowed to the one trial."""
    force = {task.trial_id} if task.force else None
    run = plan_run(task.config, out=out, only_agent=task.only_agent, only_model=task.only_model,
                   repeats=task.repeats, force=force)
    plans = [p for p in run.plans if p.trial_id == task.trial_id]
    if not plans:
        raise LookupError(f"trial {task.trial_id} is not in suite {task.config.name!r} on this node")
    model_id = plans[0].model.id
    trajectories = {k: v for k, v in run.trajectories.items() if k == model_id}
    return replace(run, plans=plans, trajectories=trajectories)
