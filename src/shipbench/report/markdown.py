"""The leaderboard as Markdown (README/blog ready): ranked table, views, infra failures, imported history.

Invariants: every string that came from a results dir (keys, reasons, paths, notes) goes through `cell`,
which strips ANSI/control characters, escapes Markdown and HTML metacharacters and clips long text, so
a hostile trial cannot break a table, inject a link or HTML, or flood the page; a row that is not
separable from the one above is marked "≈" and named in a "No clear winner" sentence.
"""

from __future__ import annotations

import re

from shipbench.report.leaderboard import ConfigRow, Leaderboard
from shipbench.report.stats import MeanEstimate
from shipbench.report.views import Group, Point

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}#+!|~])")
_CELL_MAX = 120
TIERS = ("A", "B", "C", "D")


def cell(text: object, limit: int = _CELL_MAX) -> str:
    """Safe inline Markdown for untrusted text: no ANSI, no control chars, escaped, clipped to `limit`."""
    raw = _ANSI.sub("", str(text))
    raw = "".join(ch if ch.isprintable() else " " for ch in raw)
    raw = " ".join(raw.split())
    if len(raw) > limit:
        raw = raw[: limit - 1] + "…"
    raw = raw.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", raw)


def fmt_score(est: MeanEstimate) -> str:
    if est.mean is None:
        return "–"
    if est.low is None or est.high is None:
        return f"{est.mean:.1f} (n=1, no interval)" if est.n == 1 else f"{est.mean:.1f}"
    return f"{est.mean:.1f} [{est.low:.1f}, {est.high:.1f}]"


def fmt_tokens(n: float) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e3:
        return f"{n / 1e3:.0f}k"
    return f"{n:.0f}"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def fmt_money(value: float | None) -> str:
    if value is None:
        return "–"
    return f"${value:.3f}" if value < 1 else f"${value:.2f}"


def _status(row: ConfigRow) -> str:
    if not row.status_share:
        return "–"
    parts = sorted(row.status_share.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{share:.0%} {cell(name, 30)}" for name, share in parts[:3])


def _rank(row: ConfigRow, prev: ConfigRow | None) -> str:
    if row.rank is None:
        return "–"
    mark = "≈" if prev is not None and prev.rank is not None and prev.separable_from_next is False else ""
    span = f" ({row.rank_low}–{row.rank_high})" if row.rank_low != row.rank_high else ""
    return f"{mark}{row.rank}{span}"


def _tokens(row: ConfigRow) -> str:
    t = row.tokens
    text = f"{fmt_tokens(t.input)} / {fmt_tokens(t.output)} / {fmt_tokens(t.cache_read + t.cache_write)}"
    return text if t.reliable else text + " (unreliable)"


def _ranked_table(rows: list[ConfigRow]) -> list[str]:
    out = [
        "| Rank | Configuration | Score (95% CI) | Tier | Scored runs | Status | API correctness | Median time "
        "| Tokens in / out / cache | Cost/trial | Cost/point |",
        "|---:|---|---|:-:|---:|---|---|---:|---|---:|---:|",
    ]
    prev: ConfigRow | None = None
    for row in rows:
        out.append(
            f"| {_rank(row, prev)} | {cell(row.key)} | {fmt_score(row.score)} | {cell(row.tier or '–', 8)} "
            f"| {row.scored}/{row.trials - row.infra} | {_status(row)} | {cell(row.api.verdict, 60)} "
            f"| {fmt_duration(row.median_wall_s)} | {_tokens(row)} | {fmt_money(row.cost_per_trial)} "
            f"| {fmt_money(row.cost_per_point)} |"
        )
        prev = row
    return out


def _comparisons(rows: list[ConfigRow]) -> list[str]:
    pairs = [r for r in rows if r.comparison_with_next is not None]
    if not pairs:
        return []
    out = ["", "Paired comparisons of neighbours (same task and repeat numbers; diff = upper - lower):", "",
           "| Upper | Lower | Pairs | Mean diff (95% CI) | p (sign-flip) | Separable |", "|---|---|---:|---|---:|:-:|"]
    for row in pairs:
        c = row.comparison_with_next
        assert c is not None
        diff = "–" if c.mean_diff is None else f"{c.mean_diff:+.1f}"
        if c.low is not None and c.high is not None:
            diff += f" [{c.low:+.1f}, {c.high:+.1f}]"
        p = "–" if c.p_value is None else f"{c.p_value:.3f}"
        out.append(f"| {cell(c.a)} | {cell(c.b)} | {c.pairs} | {diff} | {p} | {'yes' if c.separable else 'no'} |")
    return out


def _dimensions(rows: list[ConfigRow]) -> list[str]:
    dims = sorted({d for r in rows for d in r.dimensions})
    if not dims:
        return []
    out = ["", "### Score by dimension (mean points)", "",
           "| Configuration | " + " | ".join(cell(d, 30) for d in dims) + " |", "|---|" + "---:|" * len(dims)]
    for r in rows:
        vals = " | ".join(f"{r.dimensions[d]:.1f}" if d in r.dimensions else "–" for d in dims)
        out.append(f"| {cell(r.key)} | {vals} |")
    return out


def _group_tables(title: str, groups: list[Group], shared: str) -> list[str]:
    if not groups:
        return []
    out = ["", f"### {title}"]
    for g in groups:
        verdict = "no clear difference" if not g.separable else "a clear difference"
        spread = f"spread {g.spread:.1f} points, {verdict}" if g.spread is not None else "not enough scores"
        out += ["", f"**{cell(g.by)}** ({cell(g.task, 40)}; {spread})", "",
                f"| {shared} | Score (95% CI) | Tier | Cost/trial | Median time |", "|---|---|:-:|---:|---:|"]
        for e in g.entries:
            est = MeanEstimate(n=e.n, mean=e.score, low=e.low, high=e.high)
            label = e.agent if shared == "Agent" else e.model_id
            out.append(f"| {cell(label)} | {fmt_score(est)} | {cell(e.tier or '–', 8)} | {fmt_money(e.cost_per_trial)} "
                       f"| {fmt_duration(e.median_wall_s)} |")
    return out


def _scatter(title: str, points: list[Point], x_name: str, money: bool) -> list[str]:
    if not points:
        return []
    out = ["", f"### {title}", "", f"| Configuration | {x_name} | Score | Pareto front |", "|---|---:|---:|:-:|"]
    for p in sorted(points, key=lambda p: (not p.on_front, p.x)):
        x = fmt_money(p.x) if money else fmt_duration(p.x)
        out.append(f"| {cell(p.key)} | {x} | {p.y:.1f} | {'★' if p.on_front else ''} |")
    return out


def _views(board: Leaderboard) -> list[str]:
    v = board.views
    out = ["", "## Views"]
    out += _group_tables("Harness effect: the same model under different agents", v.harness_effect, "Agent")
    out += _group_tables("The same agent across models", v.agent_across_models, "Model")
    out += _scatter("Cost vs score", v.cost_vs_score, "Cost/trial", money=True)
    out += _scatter("Time vs score", v.time_vs_score, "Median time", money=False)
    if v.tier_distribution:
        out += ["", "### Tier distribution (trials)", "", "| Configuration | A | B | C | D |",
                "|---|---:|---:|---:|---:|"]
        for t in v.tier_distribution:
            out.append(f"| {cell(t.key)} | " + " | ".join(str(t.counts.get(x, 0)) for x in TIERS) + " |")
    if v.delegations:
        out += ["", "### Delegations to subagents", "", "| Configuration | Total | Per trial | Trials |",
                "|---|---:|---:|---:|"]
        for d in v.delegations:
            out.append(f"| {cell(d.key)} | {d.total} | {d.per_trial:.1f} | {d.trials} |")
    return out if len(out) > 2 else []


def _section(title: str, columns: list[str], rows: list[list[str]]) -> list[str]:
    """A `## title` and a table, or nothing when there are no rows."""
    if not rows:
        return []
    out = ["", f"## {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def _infra(board: Leaderboard) -> list[str]:
    rows = [[cell(t.trial_id), cell(t.key), cell(t.status, 30), cell(t.reason, 160)] for t in board.infra]
    return _section("Infrastructure failures (reported apart, not scored)",
                    ["Trial", "Configuration", "Status", "Reason"], rows)


def _contaminated(board: Leaderboard) -> list[str]:
    rows = [[cell(t.trial_id), cell(t.key), cell(", ".join(t.paths), 200)] for t in board.contaminated]
    return _section("Contaminated trials (the agent read the grading side; not ranked)",
                    ["Trial", "Configuration", "Files read"], rows)


def _imported(board: Leaderboard) -> list[str]:
    if not board.imported:
        return []
    out = ["", "## Imported history (reference harness: unaudited, not scored, not ranked)", "",
           "| Configuration | Runs | Status | Median time | Tokens in / out / cache | Cost/trial | Caveats |",
           "|---|---:|---|---:|---|---:|---|"]
    for r in board.imported:
        out.append(f"| {cell(r.key)} | {r.trials} | {_status(r)} | {fmt_duration(r.median_wall_s)} | {_tokens(r)} "
                   f"| {fmt_money(r.cost_per_trial)} | {cell('; '.join(r.notes) or '–', 200)} |")
    out += ["", "Imported rows keep the reference harness's known defects as flags: v1 opencode tokens are the "
            "last step only, v1 stores no cost, v2 Codex cost ignores cached tokens."]
    return out


def _skipped(board: Leaderboard) -> list[str]:
    if not board.skipped:
        return []
    out = ["", "## Skipped", "", "| Path | Reason |", "|---|---|"]
    out += [f"| {cell(s.path, 160)} | {cell(s.reason, 200)} |" for s in board.skipped]
    return out


def _problems(board: Leaderboard) -> list[str]:
    if not board.problems:
        return []
    out = ["", "## Trials not fully read", "",
           "A trial listed here is missing a file or has one that cannot be read; without a readable audit.json "
           "it is not scored.", "", "| Trial | File | Reason | Path |", "|---|---|---|---|"]
    out += [f"| {cell(p.trial_id, 120)} | {cell(p.file, 60)} | {cell(p.reason, 200)} | {cell(p.path, 160)} |"
            for p in board.problems]
    return out


def render_markdown(board: Leaderboard) -> str:
    t = board.totals
    out = ["# shipbench leaderboard", "",
           f"{t.get('trials', 0)} trials ({t.get('scored', 0)} scored, {t.get('infra', 0)} infrastructure failures "
           f"reported apart, {t.get('unfinished', 0)} unfinished), {t.get('configurations', 0)} configurations. "
           f"Scores are means over repeats with {board.level:.0%} bootstrap intervals; "
           "≈ marks a row not separable from the one above."]
    for task in board.tasks:
        rows = [r for r in board.rows if r.task == task]
        out += ["", f"## Task: {cell(task, 60)}", "", *_ranked_table(rows)]
        ties = [n for n in board.no_clear_winner if n.task == task]
        if ties:
            out += [""] + [f"- No clear winner between {cell(n.a)} and {cell(n.b)} ({n.reason})." for n in ties]
        out += _comparisons(rows) + _dimensions(rows)
    out += _views(board) + _infra(board) + _contaminated(board) + _imported(board) + _problems(board) + _skipped(board)
    out += ["", "## Method", ""] + [f"- **{cell(k, 40)}**: {cell(v, 300)}" for k, v in board.methods.items()]
    return "\n".join(out) + "\n"
