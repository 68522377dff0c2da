"""The rails-chat corpus: audit every fixture project and hold it to its `<name>.expected.toml`.

Each fixture under tests/fixtures/rails_chat/ reproduces one failure family from the seed article; its
expectations (format in tests/fixtures/rails_chat/README.md) name the exact tier, score bands, the
findings that must fire with their evidence lines, the rules that must not fire and API verdicts.
The meta tests check the expectations themselves against the rubric and the fixture files, so a
stale line number or an unknown rule id fails on its own, independently of the checks.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import FIXTURES, RUBY_LLM_GEM, write_tree

from shipbench.audit.engine import audit_project
from shipbench.audit.models import AuditResult, Evidence
from shipbench.audit.serialize import to_json
from shipbench.tasks import load_task

CORPUS = FIXTURES / "rails_chat"
PROJECTS = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
TIER_RANGES = {"A": (80, 100), "B": (60, 79), "C": (40, 59), "D": (0, 39)}
FAKE_OPENROUTER_KEY = re.compile(r"sk-or-v1-[0-9a-f]{64}")


@dataclass(frozen=True)
class EvidenceSpec:
    """`path:line` (that exact place) or `path` (any line of that file)."""

    path: str
    line: int | None

    @classmethod
    def parse(cls, text: str) -> EvidenceSpec:
        path, sep, line = text.rpartition(":")
        if sep and line.isdigit():
            return cls(path=path, line=int(line))
        return cls(path=text, line=None)

    def __str__(self) -> str:
        return self.path if self.line is None else f"{self.path}:{self.line}"


@dataclass(frozen=True)
class ApiCallSpec:
    call: str
    verdict: str
    path: str
    line: int | None


@dataclass(frozen=True)
class Expectation:
    tier: str
    score: tuple[int, int]
    dimensions: dict[str, tuple[int, int]]
    findings: dict[str, list[EvidenceSpec]]
    absent: list[str]
    api_calls: list[ApiCallSpec] = field(default_factory=list)

    @classmethod
    def load(cls, name: str) -> Expectation:
        raw: dict[str, Any] = tomllib.loads((CORPUS / f"{name}.expected.toml").read_text(encoding="utf-8"))
        findings: dict[str, list[EvidenceSpec]] = {}
        for item in raw.get("findings", []):
            findings.setdefault(item["rule"], []).extend(EvidenceSpec.parse(e) for e in item.get("evidence", []))
        return cls(
            tier=raw["tier"],
            score=_band(raw["score"]),
            dimensions={dim: _band(band) for dim, band in raw.get("dimensions", {}).items()},
            findings=findings,
            absent=list(raw.get("absent", {}).get("rules", [])),
            api_calls=[
                ApiCallSpec(call=c["call"], verdict=c["verdict"], path=c["path"], line=c.get("line"))
                for c in raw.get("api_calls", [])
            ],
        )


def _band(value: list[int]) -> tuple[int, int]:
    low, high = value
    return int(low), int(high)


@cache
def audited(name: str) -> tuple[AuditResult, str, str]:
    """The audit of one fixture, run twice: (result, first JSON, second JSON)."""
    first = audit_project(CORPUS / name, "rails-chat", gem_sources={"ruby_llm": RUBY_LLM_GEM})
    second = audit_project(CORPUS / name, "rails-chat", gem_sources={"ruby_llm": RUBY_LLM_GEM})
    return first, to_json(first), to_json(second)


def describe(result: AuditResult) -> str:
    """A compact dump of an audit, for failure messages."""
    lines = [f"score={result.score} tier={result.tier} verdict={result.verdict!r}"]
    lines.append("dimensions: " + ", ".join(f"{d.id}={d.score}/{d.max}" for d in result.dimensions))
    for f in result.findings:
        where = ", ".join(f"{e.path}:{e.line}" for e in f.evidence[:6])
        lines.append(f"  {f.points:>4} {f.rule}  [{where}]")
    for c in result.api_calls:
        lines.append(f"  api {c.verdict:<13} {c.call} @ {c.path}:{c.line}")
    if "check_errors" in result.facts:
        lines.append(f"  check_errors: {result.facts['check_errors']}")
    return "\n".join(lines)


def mismatches(result: AuditResult, expected: Expectation) -> list[str]:
    problems: list[str] = []
    if result.tier != expected.tier:
        problems.append(f"tier {result.tier}, expected {expected.tier}")
    low, high = expected.score
    if not low <= result.score <= high:
        problems.append(f"score {result.score} outside [{low}, {high}]")
    scores = {d.id: d.score for d in result.dimensions}
    for dim, (d_low, d_high) in expected.dimensions.items():
        if not d_low <= scores.get(dim, -1) <= d_high:
            problems.append(f"dimension {dim}={scores.get(dim)} outside [{d_low}, {d_high}]")
    fired: dict[str, list[Evidence]] = {}
    for f in result.findings:  # one rule may fire several times (distinct keys): pool its evidence
        fired.setdefault(f.rule, []).extend(f.evidence)
    for rule, specs in expected.findings.items():
        if rule not in fired:
            problems.append(f"missing finding {rule}")
            continue
        places = {(e.path, e.line) for e in fired[rule]}
        paths = {e.path for e in fired[rule]}
        for spec in specs:
            found = (spec.path, spec.line) in places if spec.line is not None else spec.path in paths
            if not found:
                problems.append(f"{rule}: no evidence at {spec}")
    problems.extend(f"unexpected finding {rule}" for rule in expected.absent if rule in fired)
    for api in expected.api_calls:
        if not any(
            c.call == api.call
            and c.verdict == api.verdict
            and c.path == api.path
            and (api.line is None or c.line == api.line)
            for c in result.api_calls
        ):
            where = api.path if api.line is None else f"{api.path}:{api.line}"
            problems.append(f"no api call {api.call} -> {api.verdict} at {where}")
    return problems


# ---------------------------------------------------------------- the corpus against the audit


@pytest.mark.parametrize("name", PROJECTS)
def test_fixture_meets_its_expectations(name: str) -> None:
    result, _, _ = audited(name)
    problems = mismatches(result, Expectation.load(name))
    assert not problems, "\n".join([f"{name}:", *problems, "audit:", describe(result)])


@pytest.mark.parametrize("name", PROJECTS)
def test_audit_json_is_byte_identical_across_runs(name: str) -> None:
    _, first, second = audited(name)
    assert first == second


def test_non_rails_directory_gets_no_app_findings_only(tmp_path: Path) -> None:
    write_tree(tmp_path, {"notes.txt": "ideas for a chat app\n", "package.json": '{"name": "chat"}\n'})
    result = audit_project(tmp_path, "rails-chat", gem_sources={"ruby_llm": RUBY_LLM_GEM})
    assert (result.score, result.tier) == (0, "D")
    assert {f.rule for f in result.findings} == {f"{d.id}.no_app" for d in result.dimensions}
    assert result.api_calls == []


# ---------------------------------------------------------------- the expectations themselves


def test_every_fixture_has_expectations_and_every_expectation_a_fixture() -> None:
    tomls = {p.name.removesuffix(".expected.toml") for p in CORPUS.glob("*.expected.toml")}
    assert tomls == set(PROJECTS)
    assert len(PROJECTS) >= 14


@pytest.mark.parametrize("name", PROJECTS)
def test_expectations_agree_with_the_rubric(name: str) -> None:
    rubric = load_task("rails-chat").rubric
    expected = Expectation.load(name)
    weights = {d.id: d.weight for d in rubric.dimensions}
    tier_low, tier_high = TIER_RANGES[expected.tier]
    low, high = expected.score
    assert tier_low <= low <= high <= tier_high, "the score band must lie inside the expected tier"
    for dim, (d_low, d_high) in expected.dimensions.items():
        assert 0 <= d_low <= d_high <= weights[dim], dim
    named = [*expected.findings, *expected.absent]
    assert not [rule for rule in named if rule not in rubric.rules], "unknown rule ids"
    assert not set(expected.findings) & set(expected.absent), "a rule cannot be both required and absent"
    least_loss = 0
    for dim_id, weight in weights.items():
        cost = sum(rubric.rules[r].points for r in expected.findings if rubric.rules[r].dimension == dim_id)
        least_loss += min(weight, cost)
    assert 100 - least_loss >= low, "the required findings alone already push the score below the band"


@pytest.mark.parametrize("name", PROJECTS)
def test_expected_evidence_points_at_real_lines(name: str) -> None:
    expected = Expectation.load(name)
    places: list[tuple[str, int | None]] = [(s.path, s.line) for specs in expected.findings.values() for s in specs]
    places += [(c.path, c.line) for c in expected.api_calls]
    for path, line in places:
        source = CORPUS / name / path
        assert source.is_file(), f"{name}: {path} does not exist"
        if line is not None:
            text = source.read_text(encoding="utf-8").splitlines()
            assert 1 <= line <= len(text) and text[line - 1].strip(), f"{name}: {path}:{line} is not a code line"


def test_textbook_project_expects_every_rule_absent() -> None:
    expected = Expectation.load("textbook_tier_a")
    rubric = load_task("rails-chat").rubric
    assert expected.findings == {}
    assert set(expected.absent) == set(rubric.rules)
    assert (expected.tier, expected.score[1]) == ("A", 100)


def test_committed_key_is_fake_but_pattern_shaped() -> None:
    env = (CORPUS / "committed_secrets" / ".env").read_text(encoding="utf-8")
    match = FAKE_OPENROUTER_KEY.search(env)
    assert match is not None
    hex_part = match.group(0).removeprefix("sk-or-v1-")
    assert hex_part == "0123456789abcdef" * 4, "the fixture key must be an obviously fake repeating pattern"
