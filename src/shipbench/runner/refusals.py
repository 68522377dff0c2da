"""Checks that refuse a run before anything starts (the CLI turns each ConfigError into exit code 2).

Invariants: every check is read-only (nothing is written, no process but a lookup on PATH and the sandbox
backend's self-tests in throw-away sandboxes: a `true`, and for proxy-only a python in a new network namespace);
each raises one ConfigError listing every problem it found; only the selected agents and models are checked, so a
suite may name an agent that is not installed as long as `--agent` leaves it out.
"""

from __future__ import annotations

from shipbench.agents.base import Usage
from shipbench.agents.discovery import find_binary
from shipbench.agents.registry import get_adapter
from shipbench.config import AgentConfig, ConfigError, ModelConfig, SuiteConfig
from shipbench.proxy.pricing import price_call
from shipbench.runner.plan import TrialPlan
from shipbench.sandbox.registry import ResolvedSandbox, SandboxUnavailable, resolve_sandbox

_PROBE = Usage(input_tokens=1000, output_tokens=1000)


def check_filters(suite: SuiteConfig, only_agent: str | None, only_model: str | None) -> None:
    """`--agent` / `--model` must each match something in the suite (else the run would do nothing)."""
    problems: list[str] = []
    if only_agent and all(a.name != only_agent for a in suite.agents):
        names = ", ".join(dict.fromkeys(a.name for a in suite.agents))
        problems.append(f"--agent {only_agent!r} matches no agent of suite {suite.name!r} (agents: {names})")
    if only_model and all(only_model not in (m.id, m.model) for m in suite.models):
        ids = ", ".join(m.id for m in suite.models)
        problems.append(f"--model {only_model!r} matches no model of suite {suite.name!r} (models: {ids})")
    if problems:
        raise ConfigError("; ".join(problems))


def check_runnable(plans: list[TrialPlan]) -> None:
    """Every selected agent CLI is installed, and a cost budget can be enforced for every selected model."""
    agents = list({a.name + repr(a.binary): a for a in (p.agent for p in plans)}.values())
    models = list({m.id: m for m in (p.model for p in plans)}.values())
    problems = [p for a in agents if (p := missing_binary(a))]
    if plans and plans[0].suite.budget.max_usd is not None:
        problems += [p for m in models if (p := unpriced(m, plans[0].suite.budget.max_usd))]
    if problems:
        raise ConfigError("; ".join(problems))


def check_sandbox(suite: SuiteConfig) -> ResolvedSandbox:
    """The sandbox every trial of the run will use; a backend asked for by name that cannot run here, or a
    network mode it cannot enforce, refuses the run."""
    try:
        return resolve_sandbox(suite.sandbox)
    except SandboxUnavailable as exc:
        raise ConfigError(f"[sandbox]: {exc}") from None


def missing_binary(agent: AgentConfig) -> str | None:
    """Why the agent's CLI cannot be started (None when it is installed)."""
    cap = get_adapter(agent.name).capabilities
    if find_binary(cap, agent.binary) is not None:
        return None
    if agent.binary:
        return f"agent {agent.name!r}: binary {agent.binary} is not an executable file"
    return (
        f"agent {agent.name!r}: `{cap.binary}` is not installed (npm {cap.npm_package}@{cap.npm_version}; "
        "scripts/setup.sh installs it into .tools/npm)"
    )


def unpriced(model: ModelConfig, max_usd: float) -> str | None:
    """Why a `max_usd` budget would be silently off for this model (None when its calls have a price)."""
    if model.pricing is not None:
        return None
    if price_call(_PROBE, provider=model.provider, models=(model.model,), pricing=None).cost_usd is not None:
        return None
    return (
        f"budget max_usd = {max_usd:g} cannot be enforced for model {model.id!r} ({model.model}, provider "
        f"{model.provider}): the price table does not know it; give its price in the suite "
        "(models.pricing: input_per_mtok, output_per_mtok) or drop max_usd"
    )
