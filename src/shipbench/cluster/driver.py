"""The Ray driver: plans the suite, schedules one Ray task per trial, shows progress, rebuilds the index.

Invariants: the driver never runs a trial itself (nodes do, see worker.py); a finished trial is skipped without a
task, like the local executor skips it; per-provider and per-model concurrency (`provider_concurrency`,
`models.concurrency`) hold cluster-wide because the driver only submits a trial while its slots are free and frees
them when the task ends, whatever the end (a lost node cannot leak a slot); each trial yields exactly one record
(Ray retries a trial whose node was lost, up to `executor.max_retries`; a trial that still fails is infra_error,
never a model result); Ctrl-C cancels every running task (their keepers stop the agents) and leaves those trials
"running" for the next run to resume. Ray only ever binds loopback when the cluster address is loopback.
"""

from __future__ import annotations

import os
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from shipbench.cluster.nodes import check_nodes, local_versions
from shipbench.cluster.worker import TrialOutcome, TrialTask, run_trial_task
from shipbench.config import ConfigError, SuiteConfig
from shipbench.runner.plan import TrialPlan
from shipbench.runner.trial import is_done, new_record
from shipbench.store.records import TrialRecord

POLL_S = 0.5


@dataclass
class Slots:
    """Cluster-wide trial slots by provider and by model id (limits from the suite); the driver is the only holder."""

    providers: dict[str, int]
    models: dict[str, int]
    jobs: int | None
    busy: Counter[str] = field(default_factory=Counter)

    @classmethod
    def for_suite(cls, suite: SuiteConfig, jobs: int | None) -> Slots:
        models = {m.id: m.concurrency for m in suite.models if m.concurrency}
        return cls(dict(suite.provider_concurrency), models, jobs)

    def _keys(self, plan: TrialPlan) -> list[str]:
        keys = ["*"]
        if plan.model.provider in self.providers:
            keys.append(f"provider:{plan.model.provider}")
        if plan.model.id in self.models:
            keys.append(f"model:{plan.model.id}")
        return keys

    def _limit(self, key: str) -> int | None:
        if key == "*":
            return self.jobs
        kind, _, name = key.partition(":")
        return self.providers.get(name) if kind == "provider" else self.models.get(name)

    def free(self, plan: TrialPlan) -> bool:
        return all((limit := self._limit(k)) is None or self.busy[k] < limit for k in self._keys(plan))

    def take(self, plan: TrialPlan) -> None:
        self.busy.update(self._keys(plan))

    def give(self, plan: TrialPlan) -> None:
        self.busy.subtract(self._keys(plan))


@dataclass(frozen=True)
class RayRun:
    """One suite run on Ray: what the driver was asked (the plans passed every refusal)."""

    config: SuiteConfig
    plans: list[TrialPlan]
    out: str
    only_agent: str | None = None
    only_model: str | None = None
    repeats: int | None = None
    force: frozenset[str] = frozenset()
    jobs: int | None = None
    gem_sources: dict[str, str] = field(default_factory=dict)
    served_context: dict[str, int] = field(default_factory=dict)


def connect(address: str | None) -> Any:
    """ray, initialised against `address` (a loopback address keeps every Ray socket on loopback)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("executor ray needs Ray: pip install 'shipbench[cluster]' (ray==2.60.0)") from exc
    kwargs: dict[str, Any] = {"ignore_reinit_error": True, "include_dashboard": False, "log_to_driver": False,
                              "configure_logging": False}
    target = address or os.environ.get("RAY_ADDRESS")
    host = urllib.parse.urlsplit(f"//{target}").hostname if target and "://" not in target else None
    if target is None or host in ("127.0.0.1", "localhost"):
        kwargs["_node_ip_address"] = "127.0.0.1"
    try:
        ray.init(address=target, **kwargs)
    except Exception as exc:  # a cluster that is down or refuses us: the user's setup, one line
        raise ConfigError(f"executor ray: cannot join the Ray cluster at {target or '(a new local one)'}: "
                          f"{type(exc).__name__}: {exc}") from None
    return ray


def run_on_ray(run: RayRun, console: Console, *, on_record: Callable[[TrialRecord], None] | None = None,
               ray_module: Any = None) -> list[TrialRecord]:
    """Schedule every trial of `run` on the cluster; the records in plan order (unfinished ones as they are)."""
    _refuse_keyless_local_ray(run)
    ray = ray_module or connect(run.config.executor.address)
    agents = list(dict.fromkeys(p.agent.name for p in run.plans))
    reference = local_versions(agents)
    nodes = check_nodes(ray, agents, reference if all(reference.agents.values()) else None)
    first = nodes[0].agents if nodes else {}
    versions = {a: v for a, v in first.items() if v is not None}  # nodes that join later must match these
    console.print(f"ray: {len(nodes)} node(s): " + ", ".join(f"{n.host} ({n.node_id[:8]})" for n in nodes),
                  highlight=False, markup=False)
    remote = ray.remote(run_trial_task).options(**_task_options(run.config))
    results: dict[str, TrialRecord] = {}
    pending = [p for p in run.plans if not _skip(p, run, results, console)]
    slots = Slots.for_suite(run.config, run.jobs)
    running: dict[Any, TrialPlan] = {}
    try:
        while pending or running:
            for plan in list(pending):
                if not slots.free(plan):
                    continue
                slots.take(plan)
                pending.remove(plan)
                try:
                    ref = remote.remote(_task(plan, run, versions))
                except Exception as exc:  # the task could not even be submitted: give its slot back, say why
                    slots.give(plan)
                    results[plan.trial_id] = _failed(plan, exc)
                    continue
                running[ref] = plan
                console.print(f"[ray start] {plan.trial_id}", highlight=False, markup=False)
            done, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
            for ref in done:
                plan = running.pop(ref)
                slots.give(plan)
                record, node = _collect(ray, ref, plan)
                results[plan.trial_id] = record
                if on_record is not None:
                    on_record(record)
                console.print(f"[ray done] {plan.trial_id} on node {node[:12]}: {record.status}"
                              + (f" ({record.status_reason})" if record.status_reason else ""),
                              highlight=False, markup=False, soft_wrap=True)
    except KeyboardInterrupt:
        for ref in running:
            ray.cancel(ref, force=True)
        console.print(f"interrupted: {len(running)} running trial(s) cancelled; run again to resume", highlight=False)
    return [results.get(p.trial_id) or _unfinished(p) for p in run.plans]


def _refuse_keyless_local_ray(run: RayRun) -> None:
    """A Ray started by this process inherits its environment, from which the provider keys were removed (they are
    held in memory): its trials could only fail. Nodes started with `ray start` read their own keys."""
    if run.config.executor.address or os.environ.get("RAY_ADDRESS"):
        return
    keyed = sorted({m.id for p in run.plans if (m := p.model).provider not in ("replay", "openai_compatible")})
    if keyed:
        raise ConfigError(f"executor ray without an address starts a local Ray that does not get the provider keys "
                          f"(models {', '.join(keyed)}): start the nodes with `ray start` where the keys are set and "
                          "pass --ray-address (docs/cluster.md)")


def _task_options(config: SuiteConfig) -> dict[str, Any]:
    ex = config.executor
    options: dict[str, Any] = {"num_cpus": ex.cpus_per_trial, "max_retries": ex.max_retries,
                               "retry_exceptions": False}
    if ex.gpus_per_trial:
        options["num_gpus"] = ex.gpus_per_trial
    if ex.memory_gb is not None:
        options["memory"] = int(ex.memory_gb * 1024**3)
    if ex.resources:
        options["resources"] = dict(ex.resources)
    return options


def _task(plan: TrialPlan, run: RayRun, versions: dict[str, str]) -> TrialTask:
    return TrialTask(config=run.config, out=run.out, trial_id=plan.trial_id, only_agent=run.only_agent,
                     only_model=run.only_model, repeats=run.repeats, force=plan.trial_id in run.force,
                     gem_sources=run.gem_sources, served_context=run.served_context, expected_versions=versions)


def _skip(plan: TrialPlan, run: RayRun, results: dict[str, TrialRecord], console: Console) -> bool:
    """A finished trial (read from the results) needs no task: it is reported as skipped, like locally."""
    if plan.force:
        return False
    record = _stored_record(plan, run.out, run.config.name)
    if record is None or not is_done(record):
        return False
    results[plan.trial_id] = record
    console.print(f"[ray skip] {plan.trial_id}: {record.status}", highlight=False, markup=False)
    return True


def _stored_record(plan: TrialPlan, out: str, suite: str) -> TrialRecord | None:
    from shipbench.store.remote import RemoteResults, RemoteStoreError, is_url

    try:
        if is_url(out):
            text = RemoteResults.open(out).read_trial_json(suite, plan.trial_id)
        else:
            path = plan.paths.record
            text = path.read_text(encoding="utf-8") if path.is_file() else None
        return TrialRecord.model_validate_json(text) if text else None
    except (OSError, ValueError, RemoteStoreError):
        return None  # unreadable: the node reports it (the local rules keep such a file untouched)


def _collect(ray: Any, ref: Any, plan: TrialPlan) -> tuple[TrialRecord, str]:
    """The trial's record and the node that ran it, or an infra_error record when its task could not finish (on
    every node it tried)."""
    try:
        outcome: TrialOutcome = ray.get(ref)
        return TrialRecord.model_validate_json(outcome.record_json), outcome.node
    except Exception as exc:  # the task's own error, a lost node after retries, or a record that does not validate
        return _failed(plan, exc), "-"


def _failed(plan: TrialPlan, exc: BaseException) -> TrialRecord:
    record = new_record(plan)
    record.status, record.failure_class = "infra_error", "infra"
    record.status_reason = f"the Ray task failed: {_task_error(exc)}; a re-run retries it"
    return record


def _task_error(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"[:500]
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]


def _unfinished(plan: TrialPlan) -> TrialRecord:
    record = new_record(plan)
    record.status, record.status_reason = "running", "interrupted before it finished; a re-run resumes it"
    return record

