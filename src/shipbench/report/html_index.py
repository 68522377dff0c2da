"""Context for index.html: the ranked table, per-task charts, views, infra/imported/skipped sections, all trials.

Invariants: reads the Leaderboard and TrialRow models only (no disk access); numeric cells carry the raw value
as their sort key so sorting never parses display text; a "≈" marks both rows of every adjacent pair that is not
separable, and the board's own "no clear winner" sentences are shown verbatim (cleaned).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from shipbench.report import svg
from shipbench.report.html_tables import Cell, Column, Table, generic_table, num, text
from shipbench.report.html_text import clean, fmt_secs, fmt_usd, one_line
from shipbench.report.leaderboard import ConfigRow, Leaderboard
from shipbench.report.load import TrialRow
from shipbench.report.views import Group

APPROX = "≈"


class ImportedRow(BaseModel):
    """What the imported-history table shows of a ConfigRow."""

    configuration: str
    task: str
    runs: int
    score: float | None
    tier: str | None
    cost_per_trial: float | None
    median_wall_s: float | None
    notes: str


def _score_cell(row: ConfigRow) -> Cell:
    est = row.score
    if est.mean is None:
        return num(None, title=est.note or "not scored")
    if est.low is not None and est.high is not None:
        shown = f"{est.mean:.1f} [{est.low:.1f}–{est.high:.1f}]"
        title = f"mean of {est.n} runs, {est.level:.0%} interval: {est.method}"
    else:
        shown, title = f"{est.mean:.1f}", est.note or "single run: no interval"
    return num(est.mean, shown, title)


def _rank_cell(row: ConfigRow) -> Cell:
    if row.rank is None:
        return num(None)
    span = f"{row.rank_low}–{row.rank_high}" if row.rank_low != row.rank_high else str(row.rank)
    return num(row.rank, str(row.rank), f"rank interval {span}")


def _share(row: ConfigRow, status: str) -> Cell:
    share = row.status_share.get(status)
    return num(share, f"{share:.0%}" if share is not None else None)


def leaderboard_table(rows: list[ConfigRow], trial_href: Callable[[str], str], many_tasks: bool) -> Table:
    names = ["Rank", "Configuration", *(["Task"] if many_tasks else []), "Score [95% CI]", "Tier", "API",
             "Completed", "Median time", "Tokens in / out", "Cost / trial", "Cost / point", "Scored / runs"]
    numeric = {"Rank", "Score [95% CI]", "API", "Completed", "Median time", "Tokens in / out",
               "Cost / trial", "Cost / point", "Scored / runs"}
    table = Table("leaderboard", [Column(n, num=n in numeric) for n in names],
                  caption="One row per configuration (agent × model × settings). Click a header to sort.",
                  empty="No scored configurations.")
    for i, row in enumerate(rows):
        score = _score_cell(row)
        prev_tied = i > 0 and rows[i - 1].task == row.task and rows[i - 1].separable_from_next is False
        if row.separable_from_next is False or prev_tied:
            score.mark, score.mark_title = APPROX, "not separable from a neighbour: no clear winner"
        api = row.api
        api_ratio = api.trials_clean / api.trials_audited if api.trials_audited else None
        first = trial_href(row.trial_ids[0]) if len(row.trial_ids) == 1 else None
        table.rows.append([
            _rank_cell(row), text(row.key, 100, href=first, title=row.key), *([text(row.task)] if many_tasks else []),
            score, text(row.tier, kind="tier"), num(api_ratio, one_line(api.verdict, 60)),
            _share(row, "completed"), num(row.median_wall_s, fmt_secs(row.median_wall_s)),
            num(row.tokens.input + row.tokens.output, f"{row.tokens.input:,.0f} / {row.tokens.output:,.0f}",
                "mean per trial; sorted by the sum"),
            num(row.cost_per_trial, fmt_usd(row.cost_per_trial)), num(row.cost_per_point, fmt_usd(row.cost_per_point)),
            num(row.scored, f"{row.scored} / {row.trials}"),
        ])
    return table


def dimension_table(rows: list[ConfigRow]) -> Table:
    dims = list(dict.fromkeys(d for r in rows for d in r.dimensions))
    table = Table("dimensions", [Column("Configuration")] + [Column(d, num=True) for d in dims],
                  caption="Mean points per rubric dimension over scored trials.", empty="No audited trials.")
    for r in rows:
        table.rows.append([text(r.key, 100)] + [num(r.dimensions.get(d)) for d in dims])
    return table


def status_table(rows: list[ConfigRow]) -> Table:
    statuses = sorted({s for r in rows for s in r.status_counts})
    table = Table("statuses", [Column("Configuration")] + [Column(s, num=True) for s in statuses]
                  + [Column("infra", num=True), Column("unfinished", num=True)],
                  caption="Trials per final status (infrastructure failures are not scored).")
    for r in rows:
        table.rows.append([text(r.key, 100)] + [num(r.status_counts.get(s, 0)) for s in statuses]
                          + [num(r.infra), num(r.unfinished)])
    return table


def comparison_table(rows: list[ConfigRow]) -> Table:
    table = Table("paired", [Column("A"), Column("B"), Column("Pairs", num=True), Column("Mean A−B", num=True),
                             Column("95% CI", num=True), Column("p", num=True), Column("Separable")],
                  caption="Each ranked row against the next, paired over the same (task, repeat).",
                  empty="Fewer than two ranked configurations.")
    for r in rows:
        c = r.comparison_with_next
        if c is None:
            continue
        ci = f"{c.low:+.1f} to {c.high:+.1f}" if c.low is not None and c.high is not None else (c.note or "–")
        table.rows.append([text(c.a, 80), text(c.b, 80), num(c.pairs),
                           num(c.mean_diff, f"{c.mean_diff:+.1f}" if c.mean_diff is not None else None),
                           num(c.low, one_line(ci, 80)), num(c.p_value, f"{c.p_value:.3f}" if c.p_value is not None
                                                              else None),
                           text("yes" if c.separable else "no: no clear winner")])
    return table


def group_tables(groups: list[Group], prefix: str, what: str) -> list[Table]:
    out: list[Table] = []
    for i, g in enumerate(groups):
        spread = f"spread {g.spread:.1f} points" if g.spread is not None else "spread unknown"
        verdict = "best and worst separable" if g.separable else "no clear difference"
        table = Table(f"{prefix}-{i}", [Column("Configuration"), Column("Runs", num=True),
                                        Column("Score [95% CI]", num=True), Column("Tier"),
                                        Column("Cost / trial", num=True), Column("Median time", num=True)],
                      caption=one_line(f"{what} {g.by} ({g.task}): {spread}, {verdict}", 200))
        for e in g.entries:
            ci = f" [{e.low:.1f}–{e.high:.1f}]" if e.low is not None and e.high is not None else ""
            table.rows.append([text(e.key, 100), num(e.n), num(e.score, f"{e.score:.1f}{ci}" if e.score is not None
                                                                 else None),
                               text(e.tier, kind="tier"), num(e.cost_per_trial, fmt_usd(e.cost_per_trial)),
                               num(e.median_wall_s, fmt_secs(e.median_wall_s))])
        out.append(table)
    return out


def trials_table(trials: list[TrialRow], trial_href: Callable[[str], str]) -> Table:
    cols = [Column("Trial"), Column("Configuration"), Column("Repeat", num=True), Column("Status"),
            Column("Score", num=True), Column("Tier"), Column("Time", num=True), Column("Cost", num=True),
            Column("Tokens", num=True), Column("Notes")]
    table = Table("trials", cols, caption="Every trial; the id links to its page.", empty="No trials.")
    for t in trials:
        table.rows.append([
            text(t.trial_id, 100, href=trial_href(t.trial_id), title=t.trial_id), text(t.config_key, 80),
            num(t.repeat), text(t.status, kind="status"),
            num(t.score, f"{t.score:.0f}" if t.score is not None else None),
            text(t.tier, kind="tier"), num(t.wall_s, fmt_secs(t.wall_s)), num(t.cost_usd, fmt_usd(t.cost_usd)),
            num(t.usage.total, f"{t.usage.total:,}" + ("" if t.tokens_reliable else " (unreliable)")),
            text("; ".join(([t.status_reason] if t.status_reason else []) + t.notes), 160),
        ])
    return table


def task_charts(board: Leaderboard, task: str) -> list[dict[str, str]]:
    rows = [r for r in board.rows if r.task == task and r.score.mean is not None]
    agents = {r.key: r.agent for r in board.rows}
    v = board.views
    def pts(points: list[Any]) -> list[svg.Point]:
        return [svg.Point(p.key, p.x, p.y, agents.get(p.key, "")) for p in points if p.task == task]
    charts = [
        ("Score with 95% interval", "Mean audit score; whiskers: bootstrap interval (none for single runs).",
         svg.intervals([svg.Interval(r.key, r.score.mean or 0.0, r.score.low, r.score.high) for r in rows])),
        ("Cost vs score", "Dashed: Pareto front (no other configuration is cheaper and better).",
         svg.scatter(pts(v.cost_vs_score), "Cost vs score", "cost per trial (USD)", "score", front=True)),
        ("Time vs score", "Median wall time per trial against mean score; dashed: Pareto front.",
         svg.scatter(pts(v.time_vs_score), "Time vs score", "median wall time (s)", "score", front=True)),
        ("Tier distribution", "Share of scored trials per tier.",
         svg.tier_bars([svg.TierCounts(t.key, t.counts) for t in v.tier_distribution if t.task == task])),
    ]
    return [{"title": t, "caption": c, "svg": s} for t, c, s in charts]


def index_context(board: Leaderboard, trials: list[TrialRow], trial_href: Callable[[str], str]) -> dict[str, Any]:
    many = len(board.tasks) > 1
    imported = generic_table("imported", [_imported_view(r) for r in board.imported],
                             caption="Historical rows from the reference harness: imported, unaudited, not ranked.",
                             empty="No imported rows.")
    infra = generic_table("infra", board.infra, caption="Infrastructure failures: reported apart, never scored.",
                          empty="No infrastructure failures.")
    for row in infra.rows:
        row[0].href = trial_href(row[0].text) if row[0].text in {t.trial_id for t in trials} else None
    return {
        "title": "shipbench leaderboard",
        "totals": board.totals, "tasks": board.tasks,
        "leaderboard": leaderboard_table(board.rows, trial_href, many),
        "no_clear_winner": [clean(s.sentence, 300, 3) for s in board.no_clear_winner],
        "charts": [{"task": task, "charts": task_charts(board, task)} for task in board.tasks],
        "dimensions": dimension_table(board.rows), "statuses": status_table(board.rows),
        "paired": comparison_table(board.rows),
        "harness": group_tables(board.views.harness_effect, "harness", "Model"),
        "across": group_tables(board.views.agent_across_models, "across", "Agent"),
        "delegations": generic_table("delegations", board.views.delegations,
                                     caption="Delegations to subagents.", empty="No delegations recorded."),
        "infra": infra, "imported": imported,
        "contaminated": generic_table("contaminated", board.contaminated,
                                      caption="Trials whose agent read the grading side (rubric, checks, other "
                                      "trials, reports): listed apart, never ranked.", empty="No contaminated trial."),
        "skipped": generic_table("skipped", board.skipped, caption="Directories that could not be loaded.",
                                 empty="Nothing skipped."),
        "problems": generic_table("problems", board.problems,
                                  caption="Trials loaded with a file missing or unreadable (no readable audit.json: "
                                  "not scored).", empty="Every trial was read in full."),
        "trials": trials_table(trials, trial_href),
        "methods": [(one_line(k, 40), clean(v, 300, 4)) for k, v in board.methods.items()],
        "level": board.level, "seed": board.seed, "resamples": board.resamples,
    }


def _imported_view(row: ConfigRow) -> ImportedRow:
    return ImportedRow(configuration=row.key, task=row.task, runs=row.trials, score=row.score.mean, tier=row.tier,
                       cost_per_trial=row.cost_per_trial, median_wall_s=row.median_wall_s,
                       notes="; ".join(["imported, unaudited", *row.notes]))
