"""Scoring: per-key deductions, rule caps, dimension floors, order independence, tiers."""

from __future__ import annotations

import random

from shipbench.audit.checks import Hit
from shipbench.audit.models import Evidence
from shipbench.audit.scoring import UnknownRuleError, score
from shipbench.tasks import load_task

RUBRIC = load_task("rails-chat").rubric
EV = (Evidence(path="Gemfile", line=1, snippet="x"),)


def _dim(dims: list, dim_id: str):  # type: ignore[no-untyped-def]
    return next(d for d in dims if d.id == dim_id)


def test_no_hits_is_full_marks_tier_a() -> None:
    dims, total, tier = score(RUBRIC, [])
    assert total == 100 and tier == "A"
    assert all(d.score == d.max for d in dims)


def test_per_key_points_up_to_cap() -> None:
    rule = RUBRIC.rules["deliverables.ci_gem_missing"]
    gems = ["brakeman", "rubocop", "simplecov", "bundler-audit", "extra1", "extra2"]
    hits = [Hit("deliverables.ci_gem_missing", f"{g} missing", EV, key=g) for g in gems]
    dims, total, _ = score(RUBRIC, hits)
    deliverables = _dim(dims, "deliverables")
    assert deliverables.score == 25 - rule.cap
    assert sum(-f.points for f in deliverables.findings) == rule.cap
    assert len(deliverables.findings) == len(gems)  # capped ones are still reported, with 0 points
    assert total == 100 - rule.cap


def test_same_key_merges_evidence() -> None:
    e2 = (Evidence(path="b.rb", line=3),)
    hits = [Hit("production.csrf_disabled", "m", EV), Hit("production.csrf_disabled", "m", e2)]
    dims, _, _ = score(RUBRIC, hits)
    production = _dim(dims, "production")
    assert len(production.findings) == 1
    assert [e.path for e in production.findings[0].evidence] == ["Gemfile", "b.rb"]


def test_dimension_floor_and_exact_accounting() -> None:
    hits = [
        Hit(rule, "m", EV)
        for rule in RUBRIC.rules
        if rule.startswith("persistence.") and "no_app" not in rule
    ]
    dims, _, _ = score(RUBRIC, hits)
    persistence = _dim(dims, "persistence")
    assert persistence.score == 0
    assert sum(-f.points for f in persistence.findings) == persistence.max


def test_order_independent() -> None:
    hits = [
        Hit("deliverables.stack_gem_missing", "a", EV, key="turbo-rails"),
        Hit("deliverables.compose_missing", "b", EV),
        Hit("rubyllm.missing_api", "c", EV, key="Chat#user"),
        Hit("rubyllm.missing_api", "d", EV, key="RubyLLM::Client"),
        Hit("tests.none", "e", EV),
    ]
    expected = score(RUBRIC, hits)
    for seed in range(5):
        shuffled = hits[:]
        random.Random(seed).shuffle(shuffled)
        assert score(RUBRIC, shuffled) == expected


def test_unknown_rule_is_rejected() -> None:
    try:
        score(RUBRIC, [Hit("deliverables.made_up", "m", EV)])
    except UnknownRuleError as exc:
        assert "deliverables.made_up" in str(exc)
    else:
        raise AssertionError("unknown rule accepted")


def test_tier_thresholds() -> None:
    assert [RUBRIC.tier(s) for s in (100, 80, 79, 60, 59, 40, 39, 0)] == [
        "A",
        "A",
        "B",
        "B",
        "C",
        "C",
        "D",
        "D",
    ]
