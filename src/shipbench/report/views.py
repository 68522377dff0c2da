"""Views over the ranked configurations: harness effect, agent across models, Pareto fronts, tiers, delegations.

Invariants: views only regroup leaderboard rows (no new statistics); a Pareto point is on the front
when no other point is at least as good on both axes and strictly better on one (lower cost/time,
higher score); rows without a score or without the x value are left out of a front.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from shipbench.report.leaderboard import ConfigRow


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ViewEntry(_M):
    key: str
    agent: str
    model_id: str
    model: str
    n: int
    score: float | None
    low: float | None = None
    high: float | None = None
    tier: str | None = None
    cost_per_trial: float | None = None
    median_wall_s: float | None = None


class Group(_M):
    """Configurations sharing one axis (a model across agents, or an agent across models)."""

    task: str
    by: str  # the shared value: the model (harness effect) or the agent
    entries: list[ViewEntry]
    spread: float | None = None  # best minus worst mean score
    separable: bool = False  # best and worst intervals do not overlap


class Point(_M):
    key: str
    task: str
    x: float
    y: float
    on_front: bool = False


class TierRow(_M):
    key: str
    task: str
    counts: dict[str, int]


class DelegationRow(_M):
    key: str
    task: str
    total: int
    per_trial: float
    trials: int


class Views(_M):
    harness_effect: list[Group] = Field(default_factory=list)
    agent_across_models: list[Group] = Field(default_factory=list)
    cost_vs_score: list[Point] = Field(default_factory=list)
    time_vs_score: list[Point] = Field(default_factory=list)
    tier_distribution: list[TierRow] = Field(default_factory=list)
    delegations: list[DelegationRow] = Field(default_factory=list)


def _entry(row: ConfigRow) -> ViewEntry:
    return ViewEntry(
        key=row.key, agent=row.agent, model_id=row.model_id, model=row.model, n=row.score.n, score=row.score.mean,
        low=row.score.low, high=row.score.high, tier=row.tier, cost_per_trial=row.cost_per_trial,
        median_wall_s=row.median_wall_s,
    )


def _groups(
    rows: Sequence[ConfigRow], axis: Callable[[ConfigRow], str], other: Callable[[ConfigRow], str]
) -> list[Group]:
    buckets: defaultdict[tuple[str, str], list[ConfigRow]] = defaultdict(list)
    for row in rows:
        buckets[(row.task, axis(row))].append(row)
    out: list[Group] = []
    for (task, by), members in sorted(buckets.items()):
        if len({other(m) for m in members}) < 2:
            continue
        entries = sorted((_entry(m) for m in members), key=lambda e: (-(e.score or float("-inf")), e.key))
        group = Group(task=task, by=by, entries=entries)
        scored = [e for e in entries if e.score is not None]
        if len(scored) >= 2:
            best, worst = scored[0], scored[-1]
            group.spread = (best.score or 0.0) - (worst.score or 0.0)
            group.separable = (
                best.low is not None and worst.high is not None and best.low > worst.high
            )
        out.append(group)
    return out


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (x to minimise, y to maximise) points: True where no other point dominates."""
    flags: list[bool] = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            ox <= x and oy >= y and (ox < x or oy > y) for j, (ox, oy) in enumerate(points) if j != i
        )
        flags.append(not dominated)
    return flags


def _scatter(rows: Sequence[ConfigRow], x_of: Callable[[ConfigRow], float | None]) -> list[Point]:
    points: list[Point] = []
    for row in rows:
        x = x_of(row)
        if x is not None and row.score.mean is not None:
            points.append(Point(key=row.key, task=row.task, x=x, y=row.score.mean))
    for task in {p.task for p in points}:
        same = [p for p in points if p.task == task]
        for point, flag in zip(same, pareto_front([(p.x, p.y) for p in same]), strict=True):
            point.on_front = flag
    return points


def build_views(rows: Sequence[ConfigRow]) -> Views:
    return Views(
        harness_effect=_groups(rows, lambda r: r.model, lambda r: r.agent),
        agent_across_models=_groups(rows, lambda r: r.agent, lambda r: r.model),
        cost_vs_score=_scatter(rows, lambda r: r.cost_per_trial),
        time_vs_score=_scatter(rows, lambda r: r.median_wall_s),
        tier_distribution=[TierRow(key=r.key, task=r.task, counts=r.tier_counts) for r in rows if r.tier_counts],
        delegations=[
            DelegationRow(key=r.key, task=r.task, total=r.delegations, per_trial=r.delegations_per_trial,
                          trials=r.trials - r.infra)
            for r in rows if r.delegations or "subagents=" in r.settings
        ],
    )
