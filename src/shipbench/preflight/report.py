"""What a preflight found: per model, each check with its status and one-line detail (`preflight.json`).

Invariants: a failed check's detail is the one line a user reads (it names the model and says what to do); no
detail ever holds a key (the checks redact every key value before they record a line).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shipbench.serving.base import ServingInfo

CheckStatus = Literal["passed", "failed", "skipped"]


class PreflightCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str  # key | reachable | model_listed | wire:<wire> | tools:<wire> | context | replay
    status: CheckStatus
    detail: str = ""
    seconds: float = 0.0


class ModelPreflight(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: str  # the suite's id
    model: str  # the id sent upstream
    provider: str
    base_url: str | None = None
    agents: list[str] = Field(default_factory=list)  # the selected agents that will use it
    checks: list[PreflightCheck] = Field(default_factory=list)
    served_context: int | None = None  # tokens, when the server or provider states it
    serving: ServingInfo | None = None  # what a self-hosted server says about itself

    @property
    def failures(self) -> list[str]:
        return [c.detail for c in self.checks if c.status == "failed"]


class PreflightReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suite: str
    task: str
    min_context_tokens: int
    started_at: str  # ISO 8601, UTC
    seconds: float = 0.0
    models: list[ModelPreflight] = Field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        return [line for m in self.models for line in m.failures]

    @property
    def passed(self) -> bool:
        return not self.failures

    def for_model(self, model_id: str) -> ModelPreflight | None:
        return next((m for m in self.models if m.model_id == model_id), None)


def failure_message(report: PreflightReport) -> str:
    """The ConfigError text for a failed preflight: a head line, then one line per failure."""
    lines = report.failures
    head = f"preflight failed ({len(lines)} problem{'s' if len(lines) != 1 else ''}; --no-preflight skips it):"
    return "\n".join([head, *(f"  {line}" for line in lines)])
