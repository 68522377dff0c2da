"""Persisted audit models: the audit JSON contract of ../shared/DESIGN.md, as pydantic.

Invariants: every deduction is a `Finding` naming a rubric rule and carrying at least one
`Evidence` (path relative to the project root, 1-based line); lists are emitted in a stable,
sorted order so the same input always serialises to byte-identical JSON.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DimensionId = Literal[
    "deliverables", "rubyllm", "tests", "errors", "persistence", "hotwire", "architecture", "production"
]
Tier = Literal["A", "B", "C", "D"]
Verdict = Literal["ok", "missing", "bad_arguments", "unverifiable"]
FileStatus = Literal[
    "binary", "too_large", "unparsable", "symlink_outside", "unreadable", "syntax_error", "not_regular"
]
PersistenceKind = Literal[
    "session_cookie", "rails_cache", "database", "singleton", "class_variable", "client_side", "none"
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Evidence(_Model):
    """One place in the audited project that supports a finding."""

    path: str
    line: int = Field(ge=0, description="1-based line; 0 when the evidence is the file as a whole")
    snippet: str = ""


class Finding(_Model):
    """One deduction: a rubric rule that fired, how many points it cost, and where."""

    rule: str
    dimension: str
    points: int = Field(le=0, description="points deducted, as a negative number (0 for notes)")
    message: str
    evidence: list[Evidence]


class DimensionScore(_Model):
    id: str
    title: str
    score: int
    max: int
    findings: list[Finding]


class Definition(_Model):
    """Where a verified method or constant is defined in the library's own source."""

    gem: str
    version: str
    path: str
    line: int


class ApiCall(_Model):
    """One call into a verified library, with the verdict from the library's real source."""

    path: str
    line: int
    call: str
    verdict: Verdict
    definition: Definition | None = None
    detail: str = ""
    suggestions: list[str] = Field(default_factory=list)
    in_test: bool = False


class FileIssue(_Model):
    """A file the audit could not read as source: recorded, never fatal.

    `not_regular`: a FIFO, socket or device (the detail names which), never opened for reading.
    """

    path: str
    status: FileStatus
    detail: str = ""


class RubricStamp(_Model):
    """Which rubric scored an audit: a digest of the rubric as loaded, and its tier thresholds, so a
    report ranks the audit by the rubric it was scored with, not by whatever rubric is current."""

    digest: str
    tiers: dict[str, int]


class AuditResult(_Model):
    """What `shipbench audit --json` writes."""

    task: str
    project: str
    score: int
    tier: Tier
    verdict: str = Field(description="one line for humans: 'scored', or why the project could not be scored")
    dimensions: list[DimensionScore]
    findings: list[Finding]
    api_calls: list[ApiCall]
    facts: dict[str, object]
    file_issues: list[FileIssue] = Field(default_factory=list)
    shipbench_version: str
    rubric: RubricStamp | None = None  # absent in audits written before the stamp existed
