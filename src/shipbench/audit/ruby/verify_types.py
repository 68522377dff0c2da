"""Result types of library-call verification, shared by the verifier and the task checks.

Invariants: `ApiReport` is what a project's calls into verified gems look like after resolution;
`missing`/`bad_arguments` verdicts are only ever produced with a definition source in hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from shipbench.audit.models import ApiCall


class GemSource(BaseModel):
    """Which source of a gem the verifier used (or why none)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gem: str
    locked_version: str | None
    used_version: str | None
    path: str | None
    note: str = ""


class FakeMismatch(BaseModel):
    """A test double that stands in for an API the real library lacks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    line: int
    kind: str  # "fake_method" | "fake_signature" | "missing_constant" | "stubbed_method" | "defined_constant"
    name: str  # e.g. "FakeChat#send_message" or "RubyLLM::Client"
    real: str  # the real class it imitates, e.g. "Chat"
    detail: str = ""


@dataclass
class ApiReport:
    calls: list[ApiCall] = field(default_factory=list)
    fakes: list[FakeMismatch] = field(default_factory=list)
    sources: list[GemSource] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # files the verifier had to skip, and why

    @property
    def verified(self) -> bool:
        """True when at least one gem source was available, so verdicts can be trusted."""
        return any(s.path for s in self.sources)
