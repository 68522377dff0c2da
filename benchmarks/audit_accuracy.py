"""Audit accuracy against the article's published scores: tier agreement and mean absolute error.

Audits every calibration project under tests/fixtures/calibration/<split>/ (written blind, see that
folder's README) against the real ruby_llm source in ../shared/reference/gems, and compares the
result with the published score of the model the project reproduces.

    .venv/bin/python benchmarks/audit_accuracy.py                 # both splits, summary per split
    .venv/bin/python benchmarks/audit_accuracy.py --split tuned -v  # one split, with each finding
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from shipbench.audit.engine import audit_project
from shipbench.audit.facts.lockfile import parse_lockfile
from shipbench.audit.models import AuditResult

ROOT = Path(__file__).resolve().parent.parent
CALIBRATION = ROOT / "tests" / "fixtures" / "calibration"
GEMS = ROOT.parent / "shared" / "reference" / "gems"
SPLITS = ("tuned", "heldout")
TOLERANCE = 6


@dataclass(frozen=True)
class Outcome:
    split: str
    slug: str
    model: str
    published: int
    published_tier: str
    band: tuple[int, int]
    result: AuditResult

    @property
    def error(self) -> int:
        return self.result.score - self.published

    @property
    def tier_ok(self) -> bool:
        return self.result.tier == self.published_tier

    @property
    def close(self) -> bool:
        return self.tier_ok and abs(self.error) <= TOLERANCE


def gem_sources(project: Path) -> dict[str, Path]:
    """The real ruby_llm source at the version the project's Gemfile.lock pins (1.14.1 when unknown)."""
    version = "1.14.1"
    for lock in sorted(project.rglob("Gemfile.lock")):
        version = parse_lockfile(lock.read_text(encoding="utf-8", errors="replace")).get("ruby_llm", version)
        break
    source = GEMS / f"ruby_llm-{version}"
    return {"ruby_llm": source} if source.is_dir() else {}


def audit_split(split: str) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for expected in sorted((CALIBRATION / split).glob("*.expected.toml")):
        slug = expected.name.removesuffix(".expected.toml")
        project = expected.parent / slug
        if not project.is_dir():
            continue
        meta = tomllib.loads(expected.read_text(encoding="utf-8"))
        result = audit_project(project, "rails-chat", gem_sources(project))
        outcomes.append(
            Outcome(
                split=split,
                slug=slug,
                model=str(meta["model"]),
                published=int(meta["published_score"]),
                published_tier=str(meta["published_tier"]),
                band=(int(meta["band"][0]), int(meta["band"][1])),
                result=result,
            )
        )
    return outcomes


def summary(outcomes: list[Outcome]) -> str:
    if not outcomes:
        return "no projects"
    n = len(outcomes)
    tiers = sum(o.tier_ok for o in outcomes)
    close = sum(o.close for o in outcomes)
    mae = sum(abs(o.error) for o in outcomes) / n
    return (
        f"tier agreement {tiers}/{n} ({100 * tiers / n:.0f}%), "
        f"within ±{TOLERANCE} and same tier {close}/{n}, MAE {mae:.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=SPLITS, action="append")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every finding")
    args = parser.parse_args(argv)
    if not GEMS.is_dir():
        print(f"needs the real gem sources in {GEMS}", file=sys.stderr)
        return 2
    for split in args.split or SPLITS:
        outcomes = audit_split(split)
        print(f"== {split}")
        print(f"{'project':<22} {'model':<28} {'published':>9} {'audit':>7} {'err':>5}  severity")
        for o in outcomes:
            mark = "ok" if o.close else ("tier" if not o.tier_ok else "far")
            sev = ",".join(str(s) for s in o.result.facts.get("severity", []) or [])  # type: ignore[union-attr]
            print(
                f"{o.slug:<22} {o.model:<28} {o.published:>6} {o.published_tier} {o.result.score:>5} {o.result.tier}"
                f" {o.error:>+5}  {mark:<4} {sev}"
            )
            if args.verbose:
                for d in o.result.dimensions:
                    print(f"    {d.id:<13} {d.score:>3}/{d.max}")
                    for f in d.findings:
                        where = ", ".join(f"{e.path}:{e.line}" for e in f.evidence[:3])
                        print(f"        {f.points:>4} {f.rule:<36} {where}")
        print(summary(outcomes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
