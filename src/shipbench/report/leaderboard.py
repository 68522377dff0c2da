"""Aggregate trial rows into the leaderboard: one row per configuration (task x agent x model x settings).

Invariants: only finished, non-infra, audited trials enter scores, ranks and intervals; infra failures
are listed apart and imported rows are never ranked; adjacent ranked rows whose score intervals
overlap (or that lack an interval) are marked not separable; the output is JSON-serialisable and
deterministic for a given seed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from functools import lru_cache
from statistics import fmean, median

from pydantic import BaseModel, ConfigDict, Field

from shipbench.report.importer import UNAUDITED
from shipbench.report.load import SkippedTrial, TrialProblem, TrialRow
from shipbench.report.stats import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    MeanEstimate,
    PairedComparison,
    intervals_overlap,
    mean_interval,
    paired_comparison,
    rank_intervals,
)
from shipbench.report.views import Views, build_views
from shipbench.tasks.pack import BUILTIN_TASKS, Rubric, TaskPackError, load_task, tier_for

API_BAD = ("missing", "bad_arguments")


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApiSummary(_M):
    """API-correctness verdicts over the audited trials of a configuration (non-test code)."""

    ok: int = 0
    missing: int = 0
    bad_arguments: int = 0
    unverifiable: int = 0
    trials_audited: int = 0
    trials_clean: int = 0  # audited trials with no missing and no bad_arguments call
    verdict: str = "n/a"  # e.g. "4/5 clean, 2 bad calls"

    def summarise(self) -> ApiSummary:
        bad = self.missing + self.bad_arguments
        if self.trials_audited:
            self.verdict = f"{self.trials_clean}/{self.trials_audited} clean" + (f", {bad} bad calls" if bad else "")
        return self


class TokenSummary(_M):
    """Mean tokens per trial (proxy-metered)."""

    input: float = 0.0
    output: float = 0.0
    cache_read: float = 0.0
    cache_write: float = 0.0
    reliable: bool = True


class ConfigRow(_M):
    key: str
    task: str
    agent: str
    model_id: str
    model: str
    provider: str
    settings: str = ""
    imported: bool = False
    rank: int | None = None
    rank_low: int | None = None
    rank_high: int | None = None
    score: MeanEstimate
    tier: str | None = None
    tier_counts: dict[str, int] = Field(default_factory=dict)
    dimensions: dict[str, float] = Field(default_factory=dict)  # dimension id -> mean points
    trials: int = 0  # all trials of this configuration, infra included
    scored: int = 0
    infra: int = 0
    unfinished: int = 0
    status_counts: dict[str, int] = Field(default_factory=dict)
    status_share: dict[str, float] = Field(default_factory=dict)  # over non-infra finished trials
    api: ApiSummary = Field(default_factory=ApiSummary)
    median_wall_s: float | None = None
    tokens: TokenSummary = Field(default_factory=TokenSummary)
    cost_per_trial: float | None = None
    cost_per_point: float | None = None
    delegations: int = 0
    delegations_per_trial: float = 0.0
    separable_from_next: bool | None = None  # None for the last ranked row
    comparison_with_next: PairedComparison | None = None
    trial_ids: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class NoClearWinner(_M):
    """Two adjacent ranked configurations that the data cannot tell apart."""

    task: str
    a: str
    b: str
    reason: str  # "intervals overlap" | "too few runs for an interval"
    sentence: str


class InfraTrial(_M):
    trial_id: str
    key: str
    status: str
    reason: str


class ContaminatedTrial(_M):
    trial_id: str
    key: str
    paths: list[str]  # grading-side files its tool calls named


class Leaderboard(_M):
    level: float = DEFAULT_LEVEL
    seed: int = DEFAULT_SEED
    resamples: int = DEFAULT_RESAMPLES
    tasks: list[str] = Field(default_factory=list)
    rows: list[ConfigRow] = Field(default_factory=list)  # ranked (per task), best first
    no_clear_winner: list[NoClearWinner] = Field(default_factory=list)
    views: Views = Field(default_factory=Views)
    infra: list[InfraTrial] = Field(default_factory=list)
    contaminated: list[ContaminatedTrial] = Field(default_factory=list)  # read the grading side: not ranked
    imported: list[ConfigRow] = Field(default_factory=list)
    skipped: list[SkippedTrial] = Field(default_factory=list)
    problems: list[TrialProblem] = Field(default_factory=list)  # loaded trials with a missing/unreadable file
    totals: dict[str, int] = Field(default_factory=dict)
    methods: dict[str, str] = Field(default_factory=dict)


@lru_cache(maxsize=32)
def _rubric(task: str) -> Rubric | None:
    """Built-in tasks only: a task name read from a results dir must never make us import a task pack."""
    if task not in BUILTIN_TASKS:
        return None
    try:
        return load_task(task).rubric
    except (TaskPackError, OSError, ValueError):
        return None


def _tier_of(task: str, mean: float | None, counts: Counter[str], scored: list[TrialRow]) -> str | None:
    """The tier of the mean score under the rubric the trials were scored with (recorded in each audit);
    today's built-in rubric only for audits older than that record; the most common trial tier when the
    trials were scored with different rubrics or the task is unknown."""
    if mean is None:
        return None
    stamps = [_stamp(r) for r in scored]
    known = {s for s in stamps if s is not None}
    if len(known) == 1 and None not in stamps:
        ((_, tiers),) = known
        return tier_for(round(mean), dict(tiers))
    rubric = _rubric(task)
    if not known and rubric is not None:
        return rubric.tier(round(mean))
    return counts.most_common(1)[0][0] if counts else None


def _stamp(row: TrialRow) -> tuple[str, tuple[tuple[str, int], ...]] | None:
    """(digest, tier thresholds) of the rubric that scored the row's audit; None for an older audit."""
    if row.audit is None or row.audit.rubric is None:
        return None
    return row.audit.rubric.digest, tuple(sorted(row.audit.rubric.tiers.items()))


def _tokens(rows: list[TrialRow]) -> TokenSummary:
    if not rows:
        return TokenSummary()
    return TokenSummary(
        input=fmean(r.usage.input_tokens for r in rows), output=fmean(r.usage.output_tokens for r in rows),
        cache_read=fmean(r.usage.cache_read_tokens for r in rows),
        cache_write=fmean(r.usage.cache_write_tokens for r in rows),
        reliable=all(r.tokens_reliable for r in rows),
    )


def _api(rows: list[TrialRow]) -> ApiSummary:
    out = ApiSummary()
    for r in rows:
        if not r.audited:
            continue
        out.trials_audited += 1
        out.ok += r.api_verdicts.get("ok", 0)
        out.missing += r.api_verdicts.get("missing", 0)
        out.bad_arguments += r.api_verdicts.get("bad_arguments", 0)
        out.unverifiable += r.api_verdicts.get("unverifiable", 0)
        out.trials_clean += not any(r.api_verdicts.get(v, 0) for v in API_BAD)
    return out.summarise()


def _dimensions(rows: list[TrialRow]) -> dict[str, float]:
    acc: defaultdict[str, list[float]] = defaultdict(list)
    for r in rows:
        for dim, pts in r.dimensions.items():
            acc[dim].append(pts)
    return {dim: fmean(v) for dim, v in acc.items()}


def aggregate_config(rows: list[TrialRow], *, level: float, resamples: int, seed: int) -> ConfigRow:
    """One leaderboard row from every trial of one configuration."""
    first = rows[0]
    counted = [r for r in rows if r.finished and not r.infra and not r.contaminated]
    scored = [r for r in counted if r.score is not None]
    scores = [r.score for r in scored if r.score is not None]
    est = mean_interval(scores, label=f"{first.task}|{first.config_key}", level=level, resamples=resamples, seed=seed)
    tiers = Counter(r.tier for r in scored if r.tier)
    status = Counter(r.status for r in counted)
    costs = [r.cost_usd for r in counted if r.cost_usd is not None]
    cost = fmean(costs) if costs and len(costs) == len(counted) else None
    row = ConfigRow(
        key=first.config_key, task=first.task, agent=first.agent, model_id=first.model_id, model=first.model,
        provider=first.provider, settings=first.settings, imported=first.imported, score=est,
        tier=_tier_of(first.task, est.mean, tiers, scored), tier_counts=dict(sorted(tiers.items())),
        dimensions=_dimensions(scored), trials=len(rows), scored=len(scored),
        infra=sum(r.infra for r in rows), unfinished=sum(not r.finished and not r.infra for r in rows),
        status_counts=dict(sorted(status.items())),
        status_share={s: c / len(counted) for s, c in sorted(status.items())},
        api=_api(counted), median_wall_s=median(r.wall_s for r in counted) if counted else None,
        tokens=_tokens(counted), cost_per_trial=cost,
        cost_per_point=cost / est.mean if cost is not None and est.mean else None,
        delegations=sum(r.delegations for r in counted),
        delegations_per_trial=fmean(r.delegations for r in counted) if counted else 0.0,
        trial_ids=[r.trial_id for r in rows],
    )
    if first.imported:
        row.notes = list(dict.fromkeys(n for r in rows for n in r.notes if n != UNAUDITED))
    else:
        if not all(r.tokens_reliable for r in counted):
            row.notes.append("token counts unreliable")
        if counted and len(costs) < len(counted):
            row.notes.append("cost unknown for some trials")
    if not all(r.cost_reliable for r in counted):
        row.notes.append("cost understated for some trials")
    return row


def _group(rows: list[TrialRow]) -> dict[tuple[str, str], list[TrialRow]]:
    groups: defaultdict[tuple[str, str], list[TrialRow]] = defaultdict(list)
    for r in rows:
        groups[(r.task, r.config_key)].append(r)
    return dict(groups)


def pair_scores(rows: list[TrialRow]) -> dict[object, float]:
    """Scores keyed by (task, repeat) for paired comparisons; repeats seen in several suites are averaged."""
    acc: defaultdict[tuple[str, int], list[float]] = defaultdict(list)
    for r in rows:
        if r.score is not None and r.finished and not r.infra:
            acc[(r.task, r.repeat)].append(r.score)
    return {k: fmean(v) for k, v in acc.items()}


def _sort_key(row: ConfigRow) -> tuple[float, float, str]:
    mean = row.score.mean if row.score.mean is not None else float("-inf")
    cost = row.cost_per_trial if row.cost_per_trial is not None else float("inf")
    return (-mean, cost, row.key)


def _rank_task(
    rows: list[ConfigRow], trials: dict[str, list[TrialRow]], board: Leaderboard
) -> None:
    ranked = [r for r in rows if r.score.mean is not None]
    ranked.sort(key=_sort_key)
    groups = {r.key: [t.score for t in trials[r.key] if t.score is not None and t.finished and not t.infra]
              for r in ranked}
    intervals = rank_intervals(
        {k: [v for v in vals if v is not None] for k, vals in groups.items()},
        level=board.level, resamples=board.resamples, seed=board.seed,
    )
    for i, row in enumerate(ranked):
        row.rank = 1 + sum(1 for other in ranked if (other.score.mean or 0) > (row.score.mean or 0) + 1e-9)
        if row.score.n >= 2:  # a single run has no rank interval either (its own mean cannot move)
            row.rank_low, row.rank_high = intervals.get(row.key, (row.rank, row.rank))
        if i + 1 < len(ranked):
            nxt = ranked[i + 1]
            row.separable_from_next = not intervals_overlap(row.score, nxt.score)
            row.comparison_with_next = paired_comparison(
                row.key, pair_scores(trials[row.key]), nxt.key, pair_scores(trials[nxt.key]),
                level=board.level, resamples=board.resamples, seed=board.seed,
            )
            if not row.separable_from_next:
                board.no_clear_winner.append(_no_winner_sentence(row, nxt))
    board.rows.extend(ranked)
    board.rows.extend(sorted((r for r in rows if r.score.mean is None), key=lambda r: r.key))


def _no_winner_sentence(a: ConfigRow, b: ConfigRow) -> NoClearWinner:
    why = "intervals overlap" if a.score.has_interval and b.score.has_interval else "too few runs for an interval"
    return NoClearWinner(task=a.task, a=a.key, b=b.key, reason=why,
                         sentence=f"No clear winner between {a.key} and {b.key} ({why}).")


def build_leaderboard(
    trials: list[TrialRow], *, imported: list[TrialRow] | None = None, skipped: list[SkippedTrial] | None = None,
    level: float = DEFAULT_LEVEL, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
) -> Leaderboard:
    """The whole leaderboard: ranked rows, views, infra failures, imported history, skipped dirs, and the
    trials that were loaded with a per-trial file missing or unreadable (`problems`, from the rows)."""
    board = Leaderboard(level=level, seed=seed, resamples=resamples, skipped=list(skipped or []),
                        problems=[p for t in trials for p in t.problems])
    native = [t for t in trials if not t.imported]
    history = [t for t in trials if t.imported] + list(imported or [])
    groups = _group(native)
    board.tasks = sorted({task for task, _ in groups})
    for task in board.tasks:
        keys = {key: rows for (t, key), rows in groups.items() if t == task}
        rows = [aggregate_config(v, level=level, resamples=resamples, seed=seed) for v in keys.values()]
        _rank_task(rows, keys, board)
    for _key, hist_rows in sorted(_group(history).items()):
        board.imported.append(aggregate_config(hist_rows, level=level, resamples=resamples, seed=seed))
    board.infra = [
        InfraTrial(trial_id=t.trial_id, key=t.config_key, status=t.status, reason=t.status_reason)
        for t in native if t.infra
    ]
    board.contaminated = [
        ContaminatedTrial(trial_id=t.trial_id, key=t.config_key, paths=t.contaminated[:10])
        for t in native if t.contaminated and not t.infra
    ]
    board.views = build_views(board.rows)
    board.totals = {
        "trials": len(native), "scored": sum(t.score is not None for t in native),
        "infra": len(board.infra), "unfinished": sum(not t.finished and not t.infra for t in native),
        "imported": len(history), "skipped": len(board.skipped), "problems": len(board.problems),
        "contaminated": len(board.contaminated),
        "configurations": len(board.rows),
    }
    board.methods = _methods()
    return board


def _methods() -> dict[str, str]:
    return {
        "score_interval": "expanded percentile bootstrap of the mean over repeats (Hesterberg 2015); "
        "n=1: single run, no interval",
        "rank_interval": "percentiles of each configuration's rank over a bootstrapped ranking "
        "(none for a single run)",
        "separable": "adjacent rows are separable only when their score intervals do not overlap",
        "paired": "sign-flip permutation test over matching (task, repeat) pairs + bootstrap interval "
        "of the mean difference",
        "scored_trials": "finished, audited, non-infrastructure trials; infra failures are listed apart",
    }
