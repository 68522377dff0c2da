"""Turn hits into findings, dimension scores, a total and a tier.

Invariants: the result depends only on the set of hits (order-independent); per dimension,
the points of its findings add up exactly to `max - score`; a rule deducts `points` per distinct
key up to its cap; once a dimension reaches 0, further findings are kept with 0 points.
"""

from __future__ import annotations

from collections import defaultdict

from shipbench.audit.checks import Hit
from shipbench.audit.models import DimensionScore, Evidence, Finding, Tier
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
            merged[key] = Hit(rule=hit.rule, message=prev.message, evidence=evidence, key=hit.key)
        else:
            merged[key] = hit
    return merged


def score(rubric: Rubric, hits: list[Hit]) -> tuple[list[DimensionScore], int, Tier]:
    """Return (dimensions, total score, tier) for these hits under this rubric."""
    order = {rule_id: i for i, rule_id in enumerate(rubric.rules)}
    for hit in hits:
        if hit.rule not in rubric.rules:
            raise UnknownRuleError(f"check emitted rule {hit.rule!r}, which the rubric does not define")
    merged = merge_hits(hits)
    by_dim: dict[str, list[Hit]] = defaultdict(list)
    for (_rule, _key), hit in sorted(merged.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
        by_dim[rubric.rules[hit.rule].dimension].append(hit)

    dimensions: list[DimensionScore] = []
    for dim in rubric.dimensions:
        budget = dim.weight
        spent_by_rule: dict[str, int] = defaultdict(int)
        findings: list[Finding] = []
        for hit in by_dim.get(dim.id, []):
            rule = rubric.rules[hit.rule]
            points = min(rule.points, rule.cap - spent_by_rule[hit.rule], budget)
            points = max(points, 0)
            spent_by_rule[hit.rule] += points
            budget -= points
            findings.append(
                Finding(
                    rule=hit.rule,
                    dimension=dim.id,
                    points=-points,
                    message=hit.message,
                    evidence=sorted(hit.evidence, key=_evidence_order),
                )
            )
        dimensions.append(
            DimensionScore(id=dim.id, title=dim.title, score=budget, max=dim.weight, findings=findings)
        )
    total = sum(d.score for d in dimensions)
    return dimensions, total, rubric.tier(total)


def _evidence_order(e: Evidence) -> tuple[str, int, str]:
    return (e.path, e.line, e.snippet)
