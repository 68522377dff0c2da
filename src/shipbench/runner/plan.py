"""What one trial is (TrialPlan), the shared services it runs with (RunEnv), and how a suite expands.

Invariants: plans are expanded in a stable order (agents, then models, then repeats, as written in the
suite) with stable ids from `store.layout.trial_id`, distinct within a run (two configurations never
share a trial directory); a real key is only ever resolved from the
environment at run time (never stored in a plan's config snapshot); phase numbers are the 1-based
position of the phase in the task pack, so a suite's `phases` subset never renumbers a trial's dirs.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from shipbench.agents.base import AgentEvent, SubagentSpec, Usage
from shipbench.agents.registry import UnknownAgentError, get_adapter
from shipbench.config import PROVIDER_WIRES, AgentConfig, ConfigError, ModelConfig, SuiteConfig
from shipbench.sandbox.registry import ResolvedSandbox, no_sandbox
from shipbench.store.layout import SuitePaths, TrialPaths, trial_id
from shipbench.store.records import TrialRecord
from shipbench.tasks.pack import TaskPack

if TYPE_CHECKING:
    from shipbench.proxy.server import MeteringProxy


class PlanError(Exception):
    """A plan that cannot run for a reason the user must fix (reported as infra_error)."""


@dataclass(frozen=True)
class PhasePlan:
    n: int  # 1-based position in the task pack
    id: str
    prompt_file: Path


@dataclass(frozen=True)
class TrialPlan:
    suite: SuiteConfig
    agent: AgentConfig
    model: ModelConfig
    repeat: int
    task: TaskPack
    paths: TrialPaths
    force: bool = False

    @property
    def trial_id(self) -> str:
        return self.paths.root.name

    def phases(self) -> list[PhasePlan]:
        """The task's phases selected by the suite (all when `suite.phases` is None), in task order."""
        wanted = self.suite.phases
        out: list[PhasePlan] = []
        for n, phase in enumerate(self.task.spec.phases, 1):
            if wanted is None or phase.id in wanted:
                out.append(PhasePlan(n, phase.id, self.task.root / phase.prompt))
        return out

    def prompt(self, phase: PhasePlan) -> str:
        """The phase prompt; a configured variant reads `<stem>.<variant>.md` beside the default prompt."""
        path = phase.prompt_file
        variant = self.agent.prompt_variant
        if variant:
            path = path.with_name(f"{path.stem}.{variant}{path.suffix}")
            if not path.is_file():
                raise PlanError(f"prompt variant {variant!r} for phase {phase.id!r} not found: {path}")
        return path.read_text(encoding="utf-8")

    def subagents(self) -> tuple[SubagentSpec, ...]:
        return tuple(SubagentSpec(s.name, s.model, s.description, s.prompt) for s in self.model.subagents)

    def marker(self, n: int) -> str:
        """Deterministic process marker for phase n of this trial dir (a re-run can sweep a crashed run's)."""
        digest = hashlib.sha256(str(self.paths.root.resolve()).encode()).hexdigest()[:16]
        return f"shipbench-{digest}-p{n}"

    def config_snapshot(self) -> dict[str, object]:
        """The suite entries this trial used: names of key env vars at most, never a key."""
        return {
            "suite": self.suite.name,
            "task": self.suite.task,
            "phases": [p.id for p in self.phases()],
            "agent": self.agent.model_dump(mode="json"),
            "model": self.model.model_dump(mode="json"),
            "limits": self.suite.limits.model_dump(mode="json"),
            "budget": self.suite.budget.model_dump(mode="json"),
            "sandbox": self.suite.sandbox.model_dump(mode="json"),
        }


class ProgressSink(Protocol):
    """Observer of trial progress (the display); the lifecycle only calls these, never renders."""

    def trial_started(self, trial_id: str, phases: int) -> None: ...

    def phase_started(self, trial_id: str, n: int, phase_id: str) -> None: ...

    def on_event(self, trial_id: str, event: AgentEvent) -> None: ...

    def on_usage(self, trial_id: str, usage: Usage, cost_usd: float) -> None: ...

    def trial_finished(self, record: TrialRecord, skipped: bool) -> None: ...

    def note(self, trial_id: str, text: str) -> None: ...  # a step after the phases (the runtime ladder)


class NullProgress:
    def note(self, trial_id: str, text: str) -> None:
        pass

    def trial_started(self, trial_id: str, phases: int) -> None:
        pass

    def phase_started(self, trial_id: str, n: int, phase_id: str) -> None:
        pass

    def on_event(self, trial_id: str, event: AgentEvent) -> None:
        pass

    def on_usage(self, trial_id: str, usage: Usage, cost_usd: float) -> None:
        pass

    def trial_finished(self, record: TrialRecord, skipped: bool) -> None:
        pass


@dataclass
class Limiters:
    """Concurrency slots: suite --jobs, per provider, per model; a trial holds all of its slots."""

    jobs: asyncio.Semaphore
    providers: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    models: dict[str, asyncio.Semaphore] = field(default_factory=dict)

    @classmethod
    def for_suite(cls, suite: SuiteConfig, jobs: int) -> Limiters:
        return cls(
            jobs=asyncio.Semaphore(max(1, jobs)),
            providers={p: asyncio.Semaphore(max(1, n)) for p, n in suite.provider_concurrency.items()},
            models={m.id: asyncio.Semaphore(m.concurrency) for m in suite.models if m.concurrency},
        )

    def slots(self, model: ModelConfig) -> list[asyncio.Semaphore]:
        out = [self.jobs]
        if model.provider in self.providers:
            out.append(self.providers[model.provider])
        if model.id in self.models:
            out.append(self.models[model.id])
        return out


@dataclass
class RunEnv:
    """Services shared by every trial of a suite run."""

    proxy: MeteringProxy
    proxy_url: str
    limiters: Limiters
    replay_urls: dict[str, str] = field(default_factory=dict)  # model id -> replay server base URL
    environ: Mapping[str, str] = field(default_factory=dict)  # where real keys come from
    progress: ProgressSink = field(default_factory=NullProgress)
    shutdown: asyncio.Event = field(default_factory=asyncio.Event)
    gem_sources: dict[str, Path] = field(default_factory=dict)
    monitor_interval_s: float = 1.0
    sandbox: ResolvedSandbox = field(default_factory=no_sandbox)  # where agents run (suite runs: [sandbox])
    served_context: dict[str, int] = field(default_factory=dict)  # model id -> context the preflight read

    def context_window(self, model: ModelConfig) -> int | None:
        """The context the agent is told: the suite's own figure, else what the server says it serves."""
        return model.context_window or self.served_context.get(model.id)


def resolve_key(model: ModelConfig, environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(real key, error). Replay and keyless local servers need none; a cloud provider's missing key is an error."""
    name = model.key_env()
    if name is None:
        return None, None
    key = environ.get(name, "").strip()
    if key:
        return key, None
    if model.provider == "replay" or (model.provider == "openai_compatible" and model.api_key_env is None):
        return None, None
    return None, f"model {model.id!r}: environment variable {name} is not set (provider {model.provider})"


def agent_label(agent: AgentConfig) -> str:
    """The agent part of a trial id: its name, plus the settings that make it another configuration."""
    label = agent.name
    if agent.prompt_variant:
        label += f"+{agent.prompt_variant}"
    if not agent.continue_session:
        label += "+fresh-sessions"
    return label


def check_pairs(suite: SuiteConfig) -> None:
    """Refuse, before anything runs, an unknown agent or an agent whose wire API the model's upstream does
    not speak (the proxy forwards requests unchanged, it never translates between wire formats)."""
    problems: list[str] = []
    for agent in suite.agents:
        try:
            wire = get_adapter(agent.name).capabilities.wire_api
        except UnknownAgentError as exc:
            problems.append(exc.message)
            continue
        for model in suite.models:
            if wire not in PROVIDER_WIRES[model.provider]:
                spoken = ", ".join(sorted(PROVIDER_WIRES[model.provider]))
                problems.append(
                    f"agent {agent.name!r} speaks {wire}, but model {model.id!r} (provider {model.provider}) "
                    f"accepts only {spoken}"
                )
    labels = [agent_label(a) for a in suite.agents]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        problems.append(f"agent configurations listed twice (same name and settings): {', '.join(twice)}")
    if problems:
        raise ConfigError("; ".join(problems))


def expand_plans(
    suite: SuiteConfig,
    task: TaskPack,
    paths: SuitePaths,
    *,
    only_agent: str | None = None,
    only_model: str | None = None,
    repeats: int | None = None,
    force: set[str] | None = None,
) -> list[TrialPlan]:
    force = force or set()
    plans: list[TrialPlan] = []
    owners: dict[str, str] = {}
    for agent in suite.agents:
        if only_agent and agent.name != only_agent:
            continue
        for model in suite.models:
            if only_model and only_model not in (model.id, model.model):
                continue
            for repeat in range(1, (repeats or suite.repeats) + 1):
                tid = trial_id(task.id, agent_label(agent), model.id, repeat)
                owner = f"agent {agent_label(agent)!r} model {model.id!r}"
                if owners.setdefault(tid, owner) != owner:
                    raise ConfigError(f"{owners[tid]} and {owner} would share the trial directory {tid}: "
                                      "rename one model id or prompt variant")
                plans.append(TrialPlan(suite, agent, model, repeat, task, paths.trial(tid), tid in force))
    return plans
