"""The blind calibration corpus: its metadata is well formed, and the audit's agreement with the
article's published tiers does not fall below the figures recorded in docs/audit-accuracy.md.

The floors are a ratchet: raise them when agreement improves; a change that lowers agreement on
either split fails here. Needs the real ruby_llm sources beside the checkout.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CALIBRATION = ROOT / "tests" / "fixtures" / "calibration"
sys.path.insert(0, str(ROOT / "benchmarks"))
import audit_accuracy  # noqa: E402

TIERS = {"A": (80, 100), "B": (60, 79), "C": (40, 59), "D": (0, 39)}
# Recorded floors (docs/audit-accuracy.md): projects in the published tier.
TIER_FLOOR = {"tuned": 13, "heldout": 8}
# ... and projects in the published tier and within ±6 of the published score.
CLOSE_FLOOR = {"tuned": 10, "heldout": 6}

EXPECTED = sorted(CALIBRATION.glob("*/*.expected.toml"))


@pytest.mark.parametrize("path", EXPECTED, ids=[f"{p.parent.name}/{p.stem}" for p in EXPECTED])
def test_expectation_is_well_formed(path: Path) -> None:
    meta = tomllib.loads(path.read_text(encoding="utf-8"))
    published, tier = meta["published_score"], meta["published_tier"]
    low, high = TIERS[tier]
    assert low <= published <= high, "the published score lies in the published tier"
    band_low, band_high = meta["band"]
    assert band_low <= published <= band_high and band_high - band_low <= 12
    assert meta["traits"], "the traits reproduced are listed"
    assert (path.parent / path.name.removesuffix(".expected.toml")).is_dir()


def test_splits_are_disjoint_and_heldout_is_about_a_third() -> None:
    tuned = {p.name for p in (CALIBRATION / "tuned").glob("*.expected.toml")}
    heldout = {p.name for p in (CALIBRATION / "heldout").glob("*.expected.toml")}
    assert not tuned & heldout
    assert len(heldout) >= 4


@pytest.mark.skipif(not audit_accuracy.GEMS.is_dir(), reason="needs ../shared/reference/gems beside the checkout")
@pytest.mark.parametrize("split", ["tuned", "heldout"])
def test_tier_agreement_does_not_regress(split: str) -> None:
    outcomes = audit_accuracy.audit_split(split)
    agreeing = [o.slug for o in outcomes if o.tier_ok]
    assert len(agreeing) >= TIER_FLOOR[split], audit_accuracy.summary(outcomes)


@pytest.mark.skipif(not audit_accuracy.GEMS.is_dir(), reason="needs ../shared/reference/gems beside the checkout")
@pytest.mark.parametrize("split", ["tuned", "heldout"])
def test_close_agreement_does_not_regress(split: str) -> None:
    outcomes = audit_accuracy.audit_split(split)
    close = [o.slug for o in outcomes if o.close]
    assert len(close) >= CLOSE_FLOOR[split], audit_accuracy.summary(outcomes)
