"""Turn hits into findings, dimension scores, a total and a tier.

Invariants: the result depends only on the set of hits (order-independent); per dimension,
the points of its findings add up exactly to `max - score`; a rule deducts `points` per distinct
key up to its cap; once a dimension reaches 0, further findings are kept with 0 points. Severity
classes (applied after the additive pass, see `severity.py`) only ever remove points, and each
point they remove is a `severity.<id>` finding.
"""

from __future__ import annotations

from collections import defaultdict

from shipbench.audit.checks import Hit
from shipbench.audit.models import DimensionScore, Evidence, Finding, Tier
from shipbench.audit.severity import DimensionTally, apply_severity
from shipbench.tasks.pack import Rubric


class UnknownRuleError(ValueError):
    pass


def merge_hits(hits: list[Hit]) -> dict[tuple[str, str], Hit]:
    merged: dict[tuple[str, str], Hit] = {}
    for hit in hits:
        key = (hit.rule, hit.key)
        if key in merged:
            prev = merged[key]
            evidence = tuple(dict.fromkeys((*prev.evidence, *hit.evidence)))
            merged[key] = Hit(
                rule=hit.rule, message=prev.message, evidence=evidence, key=hit.key, tags=prev.tags | hit.tags
            )
        else:
            merged[key] = hit
    return merged


def score(rubric: Rubric, hits: list[Hit]) -> tuple[list[DimensionScore], int, Tier]:
    """Return (dimensions, total score, tier) for these hits under this rubric."""
    dimensions, total, tier, _fired = score_with_severity(rubric, hits)
    return dimensions, total, tier


def score_with_severity(rubric: Rubric, hits: list[Hit]) -> tuple[list[DimensionScore], int, Tier, list[str]]:
    """As `score`, plus the ids of the severity classes that fired."""
    order = {rule_id: i for i, rule_id in enumerate(rubric.rules)}
    for hit in hits:
        if hit.rule not in rubric.rules:
            raise UnknownRuleError(f"check emitted rule {hit.rule!r}, which the rubric does not define")
    merged = sorted(merge_hits(hits).items(), key=lambda kv: (order[kv[0][0]], kv[0][1]))
    by_dim: dict[str, list[Hit]] = defaultdict(list)
    for _key, hit in merged:
        by_dim[rubric.rules[hit.rule].dimension].append(hit)

    tallies = [_additive(rubric, dim.id, dim.weight, by_dim.get(dim.id, [])) for dim in rubric.dimensions]
    fired = apply_severity(rubric, [hit for _key, hit in merged], tallies)
    dimensions = [
        DimensionScore(
            id=t.dim_id, title=rubric.dimension(t.dim_id).title, score=t.score, max=t.max, findings=t.findings
        )
        for t in tallies
    ]
    total = sum(d.score for d in dimensions)
    return dimensions, total, rubric.tier(total), fired


def _additive(rubric: Rubric, dim_id: str, weight: int, hits: list[Hit]) -> DimensionTally:
    """The additive pass for one dimension: each hit deducts its rule's points within budget and cap."""
    budget = weight
    overflow = 0
    spent_by_rule: dict[str, int] = defaultdict(int)
    findings: list[Finding] = []
    for hit in hits:
        rule = rubric.rules[hit.rule]
        wanted = max(min(rule.points, rule.cap - spent_by_rule[hit.rule]), 0)
        points = min(wanted, budget)
        overflow += wanted - points
        spent_by_rule[hit.rule] += wanted
        budget -= points
        findings.append(
            Finding(
                rule=hit.rule,
                dimension=dim_id,
                points=-points,
                message=hit.message,
                evidence=sorted(hit.evidence, key=evidence_order),
            )
        )
    return DimensionTally(dim_id=dim_id, max=weight, score=budget, findings=findings, overflow=overflow)


def evidence_order(e: Evidence) -> tuple[str, int, str]:
    return (e.path, e.line, e.snippet)
