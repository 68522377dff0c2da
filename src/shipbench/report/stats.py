"""Statistics for the leaderboard: bootstrap intervals, rank intervals, paired comparisons.

Invariants: every random draw comes from a `random.Random` seeded from (seed, a stable label), so the
same inputs give byte-identical output whatever the order of configurations; n=1 never gets an
interval ("single run: no interval"); nothing here depends on numpy.

Methods (documented choices):
- Interval of a mean: *expanded percentile bootstrap* (Hesterberg 2015). The plain percentile
  bootstrap is too narrow for small n (about 90% coverage at n=10 for a nominal 95%); the expanded
  version reads the bootstrap distribution at widened tail probabilities
  alpha'/2 = Phi(-sqrt(n/(n-1)) * t_{alpha/2, n-1}), which matches the t interval for normal data and
  keeps the bootstrap's shape (skew, bounded scores) otherwise.
- Rank interval: bootstrap the whole ranking (resample every configuration's trials, rank the means,
  competition ranking: 1 + number of strictly better means), then take the percentiles of each rank.
- Paired comparison of A vs B over matching (task, repeat) pairs: two-sided sign-flip permutation test
  of the mean difference (exact enumeration up to 14 pairs, else seeded Monte Carlo), plus the expanded
  percentile bootstrap interval of the mean difference. Separable iff p < 1 - level and the interval
  excludes 0.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from statistics import NormalDist, fmean

from pydantic import BaseModel, ConfigDict

DEFAULT_LEVEL = 0.95
DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 20240601
SINGLE_RUN = "single run: no interval"
_EXACT_MAX_PAIRS = 14
_CHUNK = 8
_PERMUTATIONS = 20000
_EPS = 1e-9


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MeanEstimate(_M):
    """A mean with its bootstrap interval (None for n < 2; `note` says why)."""

    n: int
    mean: float | None
    low: float | None = None
    high: float | None = None
    level: float = DEFAULT_LEVEL
    method: str = "expanded percentile bootstrap"
    note: str = ""

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None


class PairedComparison(_M):
    """A vs B over the (task, repeat) keys both have; diff = A - B."""

    a: str
    b: str
    pairs: int
    mean_diff: float | None = None
    low: float | None = None
    high: float | None = None
    p_value: float | None = None
    level: float = DEFAULT_LEVEL
    method: str = "sign-flip permutation test + expanded percentile bootstrap of the mean difference"
    separable: bool = False
    note: str = ""


def rng_for(seed: int, label: str) -> random.Random:
    """A generator that depends only on (seed, label): str seeds are hashed with SHA-512 by `random`."""
    return random.Random(f"{seed}:{label}")


def t_two_sided_cdf(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with integer df (exact finite series, Abramowitz & Stegun 26.7.3-4)."""
    if t <= 0:
        return 0.0
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2 == 1:
        if df == 1:
            return 2 * theta / math.pi
        term, total = 1.0, 1.0
        for k in range(3, df, 2):  # coefficients 2/3, 2*4/(3*5), ...
            term *= (k - 1) / k * c2
            total += term
        return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)
    term, total = 1.0, 1.0
    for k in range(2, df, 2):  # coefficients 1/2, 1*3/(2*4), ...
        term *= (k - 1) / k * c2
        total += term
    return math.sin(theta) * total


def t_critical(level: float, df: int) -> float:
    """The two-sided critical value t with P(|T| < t) = level (bisection on the exact CDF)."""
    lo, hi = 0.0, 1.0
    while t_two_sided_cdf(hi, df) < level:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        if t_two_sided_cdf(mid, df) < level:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def expanded_tail(level: float, n: int) -> float:
    """The tail probability alpha'/2 the expanded percentile interval reads at, for sample size n >= 2."""
    t = t_critical(level, n - 1)
    return NormalDist().cdf(-math.sqrt(n / (n - 1)) * t)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile of already sorted values, q in [0, 1]."""
    if not sorted_values:
        raise ValueError("percentile of nothing")
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def bootstrap_means(values: Sequence[float], resamples: int, rng: random.Random) -> list[float]:
    n = len(values)
    return [sum(rng.choices(values, k=n)) / n for _ in range(resamples)]


def mean_interval(
    values: Sequence[float], *, label: str = "", level: float = DEFAULT_LEVEL,
    resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
) -> MeanEstimate:
    """Mean and expanded percentile bootstrap interval; n=1 gets no interval, n=0 no mean."""
    n = len(values)
    if n == 0:
        return MeanEstimate(n=0, mean=None, level=level, note="no scored trials")
    mean = fmean(values)
    if n == 1:
        return MeanEstimate(n=1, mean=mean, level=level, note=SINGLE_RUN)
    if max(values) - min(values) < _EPS:
        return MeanEstimate(n=n, mean=mean, low=mean, high=mean, level=level, note="all runs equal")
    means = sorted(bootstrap_means(values, resamples, rng_for(seed, label)))
    tail = expanded_tail(level, n)
    return MeanEstimate(n=n, mean=mean, low=percentile(means, tail), high=percentile(means, 1 - tail), level=level)


def intervals_overlap(a: MeanEstimate, b: MeanEstimate) -> bool:
    """True when the intervals overlap or either has none (a single run can be told apart from nothing)."""
    if a.low is None or a.high is None or b.low is None or b.high is None:
        return True
    return a.low <= b.high + _EPS and b.low <= a.high + _EPS


def rank_intervals(
    groups: Mapping[str, Sequence[float]], *, level: float = DEFAULT_LEVEL,
    resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
) -> dict[str, tuple[int, int]]:
    """Percentile interval of each configuration's rank (1 = best) under the bootstrapped ranking."""
    keys = sorted(k for k, v in groups.items() if v)
    if not keys:
        return {}
    draws = {k: bootstrap_means(groups[k], resamples, rng_for(seed, "rank:" + k)) for k in keys}
    ranks: dict[str, list[int]] = {k: [] for k in keys}
    for i in range(resamples):
        means = sorted((draws[k][i] for k in keys), reverse=True)
        for k in keys:
            ranks[k].append(1 + _count_above(means, draws[k][i]))
    tail = (1 - level) / 2
    out: dict[str, tuple[int, int]] = {}
    for k in keys:
        ordered = sorted(ranks[k])
        out[k] = (round(percentile(ordered, tail)), round(percentile(ordered, 1 - tail)))
    return out


def _count_above(desc: Sequence[float], value: float) -> int:
    """How many entries of a descending list are strictly greater than value (binary search)."""
    lo, hi = 0, len(desc)
    while lo < hi:
        mid = (lo + hi) // 2
        if desc[mid] > value + _EPS:
            lo = mid + 1
        else:
            hi = mid
    return lo


def sign_flip_p(diffs: Sequence[float], rng: random.Random, resamples: int = _PERMUTATIONS) -> float:
    """Two-sided p-value of mean(diffs) == 0 under random sign flips (exact for small n)."""
    n = len(diffs)
    observed = abs(math.fsum(diffs))
    if observed < _EPS:
        return 1.0
    if n <= _EXACT_MAX_PAIRS:
        total = math.fsum(diffs)  # flipping the signs of subset S gives total - 2 * sum(S)
        every = _subset_sums(diffs)
        return sum(1 for s in every if abs(total - 2 * s) >= observed - _EPS) / len(every)
    # Monte Carlo: one random bit per pair says "flip"; flipped sums come from per-chunk subset-sum tables.
    total = math.fsum(diffs)
    chunks = [_subset_sums(diffs[i: i + _CHUNK]) for i in range(0, n, _CHUNK)]
    mask = (1 << _CHUNK) - 1
    hits = 0
    for _ in range(resamples):
        bits = rng.getrandbits(n)
        flipped = 0.0
        for table in chunks:
            flipped += table[bits & mask]
            bits >>= _CHUNK
        hits += abs(total - 2 * flipped) >= observed - _EPS
    return (hits + 1) / (resamples + 1)


def _subset_sums(values: Sequence[float]) -> list[float]:
    """sums[m] = sum of values[i] for every bit i set in m."""
    sums = [0.0]
    for v in values:
        sums += [s + v for s in sums]
    return sums


def paired_comparison(
    a_name: str, a: Mapping[object, float], b_name: str, b: Mapping[object, float], *,
    level: float = DEFAULT_LEVEL, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
) -> PairedComparison:
    """Compare A and B over the keys (e.g. (task, repeat)) both have."""
    keys = sorted((k for k in a if k in b), key=repr)
    out = PairedComparison(a=a_name, b=b_name, pairs=len(keys), level=level)
    if not keys:
        out.note = "no matching (task, repeat) pairs"
        return out
    diffs = [a[k] - b[k] for k in keys]
    out.mean_diff = fmean(diffs)
    if len(keys) == 1:
        out.note = "single pair: no test"
        return out
    label = f"pair:{a_name}|{b_name}"
    est = mean_interval(diffs, label=label, level=level, resamples=resamples, seed=seed)
    out.low, out.high = est.low, est.high
    out.p_value = sign_flip_p(diffs, rng_for(seed, label + ":perm"))
    if 2 / 2 ** len(keys) >= 1 - level:
        out.note = f"too few pairs: with {len(keys)} pairs the smallest attainable p is {2 / 2 ** len(keys):.3f}"
    excludes_zero = est.low is not None and est.high is not None and (est.low > 0 or est.high < 0)
    out.separable = out.p_value < 1 - level and excludes_zero
    return out
