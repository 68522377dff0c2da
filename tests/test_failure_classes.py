"""The failure classes of issue 8, section 2: each class is reproduced by projects written blind (by a
writer who had not read the checks), in at least two code styles, under tests/fixtures/failure_classes/.

Each `<class>/<style>.expected.toml` names what the class settles: rules that must fire (with the
evidence place), rules that must not, audit facts, dimension bands and API verdicts. Audited against the
real ruby_llm 1.14.1 source beside the checkout. Format: tests/fixtures/failure_classes/README.md.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import FIXTURES, REAL_RUBY_LLM, need_real_gem

from shipbench.audit.engine import audit_project
from shipbench.audit.models import AuditResult, Evidence
from shipbench.tasks import load_task

CLASSES = FIXTURES / "failure_classes"
EXPECTED = sorted(CLASSES.glob("*/*.expected.toml"))
IDS = [f"{p.parent.name}/{p.name.removesuffix('.expected.toml')}" for p in EXPECTED]
# Projects the audit still misjudges, each with what it misses. Strict: one that starts passing fails
# here until it is taken off this list (and README.md's list of known misses).
KNOWN_MISSES = {
    "mock_on_dead_path/service_minitest_mock": "the replay branch is dead because the session key it reads "
    "is never written; a read of a never-written store key is not followed, so the mock on it is not a "
    "rubber stamp and the tests count as exercising the LLM path",
    "mock_on_dead_path/model_mocha_env_branch": "the Rails.env.test? branch is found (tests.rubber_stamp), but "
    "tests_exercise_llm_path still counts the test that only ever runs the test branch",
}
CASES = [
    pytest.param(p, id=i, marks=pytest.mark.xfail(strict=True, reason=KNOWN_MISSES[i]))
    if i in KNOWN_MISSES
    else pytest.param(p, id=i)
    for p, i in zip(EXPECTED, IDS, strict=True)
]


@dataclass(frozen=True)
class ClassExpectation:
    klass: str
    project: Path
    findings: dict[str, list[str]]
    absent: list[str]
    facts: dict[str, Any]
    dimensions: dict[str, tuple[int, int]]
    api_calls: list[dict[str, Any]]

    @classmethod
    def load(cls, path: Path) -> ClassExpectation:
        raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        findings: dict[str, list[str]] = {}
        for item in raw.get("findings", []):
            findings.setdefault(item["rule"], []).extend(item.get("evidence", []))
        return cls(
            klass=raw["class"],
            project=path.parent / path.name.removesuffix(".expected.toml"),
            findings=findings,
            absent=list(raw.get("absent", {}).get("rules", [])),
            facts=dict(raw.get("facts", {})),
            dimensions={k: (int(v[0]), int(v[1])) for k, v in raw.get("dimensions", {}).items()},
            api_calls=list(raw.get("api_calls", [])),
        )


@cache
def audited(project: Path) -> AuditResult:
    return audit_project(project, "rails-chat", gem_sources={"ruby_llm": REAL_RUBY_LLM})


def _placed(spec: str, evidence: list[Evidence]) -> bool:
    path, sep, line = spec.rpartition(":")
    if sep and line.isdigit():
        return any(e.path == path and e.line == int(line) for e in evidence)
    return any(e.path == spec for e in evidence)


def mismatches(result: AuditResult, expected: ClassExpectation) -> list[str]:
    problems: list[str] = []
    fired: dict[str, list[Evidence]] = {}
    for f in result.findings:
        fired.setdefault(f.rule, []).extend(f.evidence)
    for rule, specs in expected.findings.items():
        if rule not in fired:
            problems.append(f"missing finding {rule}")
            continue
        problems.extend(f"{rule}: no evidence at {s}" for s in specs if not _placed(s, fired[rule]))
    problems.extend(f"unexpected finding {rule}" for rule in expected.absent if rule in fired)
    for key, value in expected.facts.items():
        got = result.facts.get(key)
        if key == "severity" and isinstance(value, list):
            missing = [v for v in value if v not in (got or [])]
            if missing:
                problems.append(f"facts.severity {got}, expected to include {missing}")
        elif got != value:
            problems.append(f"facts.{key} = {got!r}, expected {value!r}")
    scores = {d.id: d.score for d in result.dimensions}
    for dim, (low, high) in expected.dimensions.items():
        if not low <= scores.get(dim, -1) <= high:
            problems.append(f"dimension {dim}={scores.get(dim)} outside [{low}, {high}]")
    for api in expected.api_calls:
        if not any(
            c.call == api["call"]
            and c.verdict == api["verdict"]
            and c.path == api["path"]
            and ("line" not in api or c.line == api["line"])
            for c in result.api_calls
        ):
            problems.append(f"no api call {api['call']} -> {api['verdict']} at {api['path']}:{api.get('line')}")
    return problems


def describe(result: AuditResult) -> str:
    lines = [f"score={result.score} tier={result.tier}"]
    lines.append("dimensions: " + ", ".join(f"{d.id}={d.score}/{d.max}" for d in result.dimensions))
    lines += [f"  {f.points:>4} {f.rule} {[f'{e.path}:{e.line}' for e in f.evidence[:4]]}" for f in result.findings]
    lines += [f"  api {c.verdict} {c.call} @ {c.path}:{c.line}" for c in result.api_calls]
    return "\n".join(lines)


@pytest.mark.parametrize("path", CASES)
def test_failure_class_project_is_judged_as_the_expert_would(path: Path) -> None:
    need_real_gem()
    expected = ClassExpectation.load(path)
    result = audited(expected.project)
    problems = mismatches(result, expected)
    assert not problems, "\n".join([str(path.relative_to(CLASSES)), *problems, describe(result)])


def test_every_class_has_two_styles_and_known_rules() -> None:
    rules = load_task("rails-chat").rubric.rules
    styles: dict[str, int] = {}
    for path in EXPECTED:
        expected = ClassExpectation.load(path)
        assert expected.klass == path.parent.name, path
        assert expected.project.is_dir(), f"{path}: no project beside it"
        assert not [r for r in [*expected.findings, *expected.absent] if r not in rules], path
        assert not set(expected.findings) & set(expected.absent), path
        styles[expected.klass] = styles.get(expected.klass, 0) + 1
    assert styles, "no failure-class projects"
    assert not [k for k, n in styles.items() if n < 2], f"classes with fewer than two styles: {styles}"
    assert set(KNOWN_MISSES) <= set(IDS), "a known miss names a project that does not exist"
