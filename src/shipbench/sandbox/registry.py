"""Backend names -> implementations, and the choice a suite's `[sandbox]` setting makes.

Invariants: `auto` is bwrap when bwrap works here, else none (the reason is recorded); an explicitly named
backend that cannot run here, or a network mode the chosen backend cannot enforce, raises SandboxUnavailable
(the run is refused); the result is what every trial of the run records in trial.json.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from shipbench.config import SandboxConfig
from shipbench.sandbox.base import Sandbox
from shipbench.sandbox.bwrap import BwrapSandbox
from shipbench.sandbox.none import NoSandbox
from shipbench.store.records import SandboxRecord

BACKENDS: dict[str, Callable[[], Sandbox]] = {"bwrap": BwrapSandbox, "none": NoSandbox}
AUTO_ORDER = ("bwrap",)


class SandboxUnavailable(Exception):
    """The requested sandbox cannot be provided here; the message says why."""


@dataclass(frozen=True)
class ResolvedSandbox:
    sandbox: Sandbox
    record: SandboxRecord


def resolve_sandbox(config: SandboxConfig) -> ResolvedSandbox:
    reasons: list[str] = []
    if config.backend == "auto":
        for name in AUTO_ORDER:
            candidate = BACKENDS[name]()
            problem = candidate.problem() or _network_problem(candidate, config)
            if problem is None:
                return _resolved(candidate, config, "")
            reasons.append(f"{name}: {problem}")
        chosen: Sandbox = NoSandbox()
    else:
        chosen = BACKENDS[config.backend]()
        problem = chosen.problem()
        if problem is not None:
            raise SandboxUnavailable(f"sandbox backend {config.backend!r} cannot run here: {problem}")
    problem = _network_problem(chosen, config)
    if problem is not None:
        raise SandboxUnavailable(f'{problem}; use network = "open"')
    return _resolved(chosen, config, "; ".join(f"auto fell back to none ({r})" for r in reasons))


def _network_problem(sandbox: Sandbox, config: SandboxConfig) -> str | None:
    """Why `sandbox` cannot enforce the suite's network mode here (None when it can)."""
    cap = sandbox.capabilities
    if config.network in cap.networks:
        problem = sandbox.network_problem(config.network)
        if problem is None:
            return None
        detail = problem
    else:
        detail = f"it supports: {', '.join(sorted(cap.networks))}"
    return f"sandbox network = {config.network!r} cannot be enforced by backend {cap.name!r} ({detail})"


def _resolved(sandbox: Sandbox, config: SandboxConfig, reason: str) -> ResolvedSandbox:
    cap = sandbox.capabilities
    return ResolvedSandbox(
        sandbox,
        SandboxRecord(
            backend=cap.name,
            requested=config.backend,
            network=config.network,
            reason=reason,
            isolates_processes=cap.isolates_processes,
            isolates_filesystem=cap.isolates_filesystem,
        ),
    )


def no_sandbox() -> ResolvedSandbox:
    """The unsandboxed default for callers that build a RunEnv by hand (tests, tools)."""
    return _resolved(NoSandbox(), SandboxConfig(backend="none"), "")
