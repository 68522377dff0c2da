"""What a ladder stage is: one module under validate/stages/ exposing `STAGE`, registered in registry.py.

Invariants: a stage never raises for the project's behaviour (it returns a StageResult saying what happened);
what the harness or the machine causes is `infra=True`; a stage that needs an earlier one names it in
`needs`, and is skipped with the reason when that one did not pass; evidence is written under
`ctx.evidence_dir / <stage id>/` and named relative to the validation root.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shipbench.validate.models import CheckResult, StageResult, StageStatus
from shipbench.validate.proc import VALIDATION_ENV, child_env

Where = Literal["sandbox", "host"]  # inside the no-network sandbox, or on the host (docker)


@dataclass
class StageContext:
    """What every stage sees: the copy of the project, where evidence goes, the task's settings and a small
    shared state (the running app, facts of earlier stages)."""

    app_dir: Path  # the harness's copy of the workspace (never the agent's workspace itself)
    root: Path  # the directory validation.json is written to; evidence paths are relative to it
    evidence_dir: Path  # root / "validation"
    settings: dict[str, Any]  # the task's [validation] table (timeouts, accepted model slugs...)
    network: bool = False  # may deps download (the user allowed it)
    secret_token: str = ""  # the per-validation OPENROUTER_API_KEY
    results: dict[str, StageResult] = field(default_factory=dict)  # earlier stages of this ladder
    state: dict[str, Any] = field(default_factory=dict)  # live objects shared in one process (the app)
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    _children: int = 0

    @property
    def home(self) -> Path:
        path = self.app_dir.parent / "home"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def env(self, purpose: str, extra: Mapping[str, str]) -> dict[str, str]:
        """A child's environment (validate/proc.py's child_env) with a marker of its own, so one child can be
        killed without touching the others; every child also carries VALIDATION_ENV (the leak check)."""
        self._children += 1
        marker = f"validate-{self.secret_token[:8]}-{purpose}-{self._children}"
        return child_env(marker, {VALIDATION_ENV: str(self.root), **extra}, self.home)

    def stage_dir(self, stage_id: str) -> Path:
        path = self.evidence_dir / stage_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def bundle_env(self) -> dict[str, str]:
        """Bundler's settings for the project's commands: its Gemfile, and where deps installed the gems."""
        deps = self.results.get("deps")
        installed = deps.facts.get("bundle_env", {}) if deps else {}
        return {"BUNDLE_GEMFILE": str(self.app_dir / "Gemfile"), **{str(k): str(v) for k, v in installed.items()}}

    def write(self, stage_id: str, name: str, text: str) -> str:
        """Write an evidence file and return its path relative to the validation root."""
        path = self.stage_dir(stage_id) / name
        path.write_text(text, encoding="utf-8", errors="replace")
        return self.rel(path)


@dataclass(frozen=True)
class Stage:
    """A ladder stage: `run` does the work; `needs` are stages that must have passed first."""

    id: str
    title: str
    run: Callable[[StageContext], StageResult]
    needs: tuple[str, ...] = ()
    where: Where = "sandbox"
    wants_network: bool = False  # runs where downloads are possible when the user allowed them
    timeout_s: float = 300.0


class StageBuilder:
    """Collects the checks and evidence of one stage run and turns them into its StageResult."""

    def __init__(self, stage_id: str) -> None:
        self.stage_id = stage_id
        self.checks: list[CheckResult] = []
        self.evidence: list[str] = []
        self.facts: dict[str, Any] = {}
        self.started = time.monotonic()

    def check(
        self,
        check_id: str,
        passed: bool | None,
        reason: str = "",
        evidence: list[str] | None = None,
        *,
        skipped: bool = False,
    ) -> CheckResult:
        status: StageStatus = "skipped" if skipped or passed is None else ("passed" if passed else "failed")
        result = CheckResult(id=check_id, status=status, reason=reason, evidence=evidence or [])
        self.checks = [c for c in self.checks if c.id != check_id] + [result]
        return result

    def result(self, status: StageStatus | None = None, reason: str = "", *, infra: bool = False) -> StageResult:
        """The stage's result; without `status`, failed when a check failed, else passed (skipped if none ran)."""
        if status is None:
            failed = [c.id for c in self.checks if c.status == "failed"]
            ran = [c for c in self.checks if c.status != "skipped"]
            status = "failed" if failed else ("passed" if ran else "skipped")
            if status == "skipped" and self.checks and all(c.reason.startswith("infra") for c in self.checks):
                infra, reason = True, reason or "; ".join(c.reason for c in self.checks)
            if failed and not reason:
                reason = "failed: " + ", ".join(failed)
        return StageResult(
            id=self.stage_id,
            status=status,
            reason=reason,
            infra=infra,
            duration_s=round(time.monotonic() - self.started, 2),
            checks=self.checks,
            evidence=self.evidence,
            facts=self.facts,
        )


def skipped(stage_id: str, reason: str, *, infra: bool = False) -> StageResult:
    return StageResult(id=stage_id, status="skipped", reason=reason, infra=infra)
