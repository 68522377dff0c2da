"""What `shipbench validate` writes: validation.json (DESIGN.md's contract, docs/contracts.md's schema).

Invariants: every stage the task's ladder names appears once, in ladder order, with a status; a stage that did
not run says why (`skipped` with a reason); `infra` marks what the harness or the machine caused (no engine, a
port clash, a missing tool), which never counts against the project; evidence paths are relative to the
directory holding validation.json.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

StageStatus = Literal["passed", "failed", "skipped", "error"]
CheckStatus = Literal["passed", "failed", "skipped", "error"]
SCHEMA_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckResult(_Model):
    """One proven fact of a stage (a stable id such as `chat.multi_turn`)."""

    id: str
    status: CheckStatus
    reason: str = ""
    evidence: list[str] = Field(default_factory=list)  # paths under validation/


class StageResult(_Model):
    id: str
    status: StageStatus
    reason: str = ""
    infra: bool = False  # skipped or errored for a cause outside the project (never the model's fault)
    duration_s: float = 0.0
    checks: list[CheckResult] = Field(default_factory=list)
    evidence: list[str] = Field(default_factory=list)
    facts: dict[str, Any] = Field(default_factory=dict)

    def check(self, check_id: str) -> CheckResult | None:
        return next((c for c in self.checks if c.id == check_id), None)


class ValidationResult(_Model):
    schema_version: int = SCHEMA_VERSION
    task: str
    project: str
    engine: Literal["native", "docker", "none"]
    shipbench_version: str
    started_at: str
    duration_s: float = 0.0
    stages: list[StageResult]

    def stage(self, stage_id: str) -> StageResult | None:
        return next((s for s in self.stages if s.id == stage_id), None)

    @property
    def works(self) -> tuple[int, int]:
        """(stages passed, stages run): the report's "works" column; skipped stages are not run."""
        ran = [s for s in self.stages if s.status != "skipped" and not s.infra]
        return sum(s.status == "passed" for s in ran), len(ran)

    def checks(self) -> dict[str, CheckResult]:
        """Every check of every stage by id."""
        return {c.id: c for s in self.stages for c in s.checks}
