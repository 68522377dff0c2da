"""Severity classes: after the additive pass, a defect that kills what other dimensions depend on
caps those dimensions, may pass overflowing deductions into the total, and may cap the tier.

Invariants: classes are applied in the rubric's order and only ever lower scores; every point
they remove is one `severity.<class id>` finding in the dimension it came from, carrying the
evidence of the hits that triggered the class; a dimension never goes below 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shipbench.audit.checks import Hit
from shipbench.audit.models import Evidence, Finding
from shipbench.tasks.pack import Rubric, SeverityClass

MAX_TRIGGER_EVIDENCE = 8


@dataclass
class DimensionTally:
    """One dimension while it is being scored: `overflow` is what the additive pass could not deduct."""

    dim_id: str
    max: int
    score: int
    findings: list[Finding] = field(default_factory=list)
    overflow: int = 0

    def take(self, points: int, finding: Finding) -> int:
        """Remove up to `points` (never below 0), recording `finding` with the amount; return it."""
        taken = min(points, self.score)
        if taken > 0:
            self.score -= taken
            self.findings.append(finding.model_copy(update={"points": -taken}))
        return taken


def fired_classes(rubric: Rubric, hits: list[Hit]) -> list[tuple[str, list[Hit]]]:
    """(class id, triggering hits) for every severity class these hits set off, in rubric order."""
    out: list[tuple[str, list[Hit]]] = []
    for class_id, cls in rubric.severity.items():
        triggers: dict[str, list[Hit]] = {}
        for hit in hits:
            for trigger in _triggers_of(cls, hit):
                triggers.setdefault(trigger, []).append(hit)
        if len(triggers) >= cls.min_triggers:
            out.append((class_id, [h for group in triggers.values() for h in group]))
    return out


def _triggers_of(cls: SeverityClass, hit: Hit) -> list[str]:
    found = [f"rule:{hit.rule}"] if hit.rule in cls.rules else []
    found += [f"tag:{tag}" for tag in cls.tags if tag in hit.tags]
    return found


def apply_severity(rubric: Rubric, hits: list[Hit], tallies: list[DimensionTally]) -> list[str]:
    """Apply every class that fires to `tallies` in place; return the ids of the classes that fired."""
    by_dim = {t.dim_id: t for t in tallies}
    fired = fired_classes(rubric, hits)
    for class_id, triggers in fired:
        cls = rubric.severity[class_id]
        evidence = _trigger_evidence(triggers)
        for dim_id, cap in cls.caps.items():
            tally = by_dim[dim_id]
            if tally.score > cap:
                tally.take(tally.score - cap, _finding(class_id, cls, dim_id, evidence, f"capped at {cap}/{tally.max}"))
        owed = sum(by_dim[d].overflow for d in cls.overflow)
        if owed:
            _spill(class_id, cls, by_dim, evidence, owed, "deductions past the dimension's budget")
        if cls.tier_ceiling is not None:
            excess = sum(t.score for t in tallies) - rubric.tier_max(cls.tier_ceiling)
            if excess > 0:
                _spill(class_id, cls, by_dim, evidence, excess, f"tier held at {cls.tier_ceiling} or below")
    return [class_id for class_id, _ in fired]


def _spill(
    class_id: str,
    cls: SeverityClass,
    by_dim: dict[str, DimensionTally],
    evidence: list[Evidence],
    points: int,
    why: str,
) -> None:
    for dim_id in cls.spill:
        if points <= 0:
            return
        points -= by_dim[dim_id].take(points, _finding(class_id, cls, dim_id, evidence, why))


def _finding(class_id: str, cls: SeverityClass, dim_id: str, evidence: list[Evidence], how: str) -> Finding:
    return Finding(
        rule=f"severity.{class_id}",
        dimension=dim_id,
        points=0,
        message=f"{cls.title}: {how}. {cls.why}",
        evidence=evidence,
    )


def _trigger_evidence(triggers: list[Hit]) -> list[Evidence]:
    seen = dict.fromkeys(e for hit in triggers for e in hit.evidence)
    ordered = sorted(seen, key=lambda e: (e.path, e.line, e.snippet))
    return ordered[:MAX_TRIGGER_EVIDENCE]
