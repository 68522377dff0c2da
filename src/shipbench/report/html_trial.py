"""Context for one trial page: record + audit -> cleaned tables, findings with linked evidence, phase timeline.

Invariants: reads only the TrialRow (and its embedded TrialRecord / AuditResult) plus file existence under the
trial's workspace for evidence links; every string shown is passed through `clean`/`one_line`; a row without a
record or audit (imported, unaudited, partial) still renders, saying what is missing.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from shipbench.audit.models import ApiCall, AuditResult, Evidence, Finding
from shipbench.report import svg
from shipbench.report.html_tables import Column, Table, num, text
from shipbench.report.html_text import clean, fmt_secs, fmt_usd, one_line, workspace_href
from shipbench.report.load import TrialRow
from shipbench.store.records import PhaseRecord, SandboxRecord, TrialRecord

SNIPPET_LINES = 12
MESSAGE_LINES = 200


def _workspace(row: TrialRow) -> Path | None:
    if not row.path:
        return None
    ws = Path(row.path) / "workspace"
    return ws if ws.is_dir() else None


def _location(ws: Path | None, page_dir: Path, path: str, line: int) -> dict[str, Any]:
    label = one_line(path, 160) + (f":{line}" if line > 0 else "")
    return {"label": label, "href": workspace_href(ws, path, page_dir, line)}


def _evidence(ev: Evidence, ws: Path | None, page_dir: Path) -> dict[str, Any]:
    return {"loc": _location(ws, page_dir, ev.path, ev.line), "snippet": clean(ev.snippet, max_lines=SNIPPET_LINES)}


def _finding(f: Finding, ws: Path | None, page_dir: Path) -> dict[str, Any]:
    return {"rule": one_line(f.rule, 80), "dimension": one_line(f.dimension, 40), "points": f.points,
            "message": clean(f.message, max_lines=20), "evidence": [_evidence(e, ws, page_dir) for e in f.evidence]}


def _api_row(c: ApiCall, ws: Path | None, page_dir: Path) -> dict[str, Any]:
    d = c.definition
    definition = f"{d.gem} {d.version}: {d.path}:{d.line}" if d else ""
    return {"loc": _location(ws, page_dir, c.path, c.line), "call": one_line(c.call, 100), "verdict": c.verdict,
            "definition": one_line(definition, 200), "detail": one_line(c.detail, 300),
            "suggestions": one_line(", ".join(c.suggestions), 200), "in_test": c.in_test}


def audit_context(audit: AuditResult | None, ws: Path | None, page_dir: Path) -> dict[str, Any]:
    if audit is None:
        return {"audit": None}
    dims = Table("dimensions", [Column("Dimension"), Column("Score", num=True), Column("Max", num=True),
                                Column("Findings", num=True)], sortable=False)
    dims.rows = [[text(d.title or d.id), num(d.score), num(d.max), num(len(d.findings))] for d in audit.dimensions]
    issues = [{"path": one_line(i.path, 160), "status": i.status, "detail": one_line(i.detail, 200)}
              for i in audit.file_issues]
    return {
        "audit": {"score": audit.score, "tier": audit.tier, "verdict": one_line(audit.verdict, 200),
                  "version": one_line(audit.shipbench_version, 40)},
        "dimensions": dims,
        "findings": [_finding(f, ws, page_dir) for f in audit.findings],
        "api_calls": [_api_row(c, ws, page_dir) for c in audit.api_calls],
        "api_summary": dict(Counter(c.verdict for c in audit.api_calls)),
        "file_issues": issues,
    }


def _usage_check(p: PhaseRecord) -> str:
    if p.usage_disagreement:
        return p.usage_disagreement
    return "proxy = stream" if p.llm_calls else "–"


def phase_table(phases: list[PhaseRecord]) -> Table:
    cols = ["Phase", "Status", "Reason", "Wall", "Input", "Output", "Cache read", "Cache write", "Reasoning",
            "Calls", "Cost", "Exit", "Usage check"]
    table = Table("phases", [Column(c, num=c in {"Wall", "Input", "Output", "Cache read", "Cache write",
                                                  "Reasoning", "Calls", "Cost", "Exit"}) for c in cols],
                  sortable=False)
    for p in phases:
        u = p.proxy_usage
        table.rows.append([
            text(f"{p.n}. {p.id}"), text(p.status, kind="status"), text(p.status_reason, 160),
            num(p.wall_s, fmt_secs(p.wall_s)), num(u.input_tokens), num(u.output_tokens),
            num(u.cache_read_tokens), num(u.cache_write_tokens), num(u.reasoning_tokens), num(p.llm_calls),
            num(p.cost_usd, fmt_usd(p.cost_usd)), num(p.exit_code),
            text(_usage_check(p), 200),
        ])
    return table


def tool_table(phases: list[PhaseRecord]) -> Table:
    tools = sorted({t for p in phases for t in p.tool_calls})
    cols = [Column("Tool")] + [Column(f"Phase {p.n}", num=True) for p in phases] + [Column("Total", num=True)]
    table = Table("tools", cols, caption="Tool calls per phase (as parsed from the agent's stream)",
                  empty="No tool calls recorded.")
    for tool in tools:
        counts = [p.tool_calls.get(tool, 0) for p in phases]
        table.rows.append([text(tool, 80, kind="code")] + [num(c) for c in counts] + [num(sum(counts))])
    return table


def sandbox_text(sandbox: SandboxRecord | None) -> str:
    """Where the agent ran, for the trial page: `none` says what it could reach."""
    if sandbox is None:
        return "not recorded (a run before sandboxes: unsandboxed)"
    text = f"{sandbox.backend} (requested {sandbox.requested or '?'}, network {sandbox.network})"
    if sandbox.backend == "none":
        text += ": unsandboxed, the agent could read the harness's environment and other trials"
    return text + (f"; {sandbox.reason}" if sandbox.reason else "")


def record_context(record: TrialRecord | None) -> dict[str, Any]:
    if record is None:
        return {"record": None, "versions": []}
    phases = record.phases
    spans, t = [], 0.0
    for p in phases:
        spans.append(svg.Span(f"{p.n}. {p.id}", t, t + p.wall_s, p.status))
        t += p.wall_s
    watchdog = [{"phase": p.n, "at": f"{w.at_s:.1f} s", "kind": one_line(w.kind, 40), "detail": clean(w.detail, 200, 8)}
                for p in phases for w in p.watchdog]
    final = next((p.final_message for p in reversed(phases) if p.final_message), "")
    served = Counter[str]()
    for p in phases:
        served.update(p.models_served)
    v = record.versions
    versions = [("shipbench (run)", v.shipbench), ("agent CLI", v.agent_cli), ("task", v.task),
                ("ruby_llm (locked in project)", v.ruby_llm_locked),
                ("models served", ", ".join(f"{m} ({n} calls)" for m, n in served.most_common()))]
    versions.append(("sandbox", sandbox_text(record.sandbox)))
    return {
        "record": record,
        "phases": phase_table(phases),
        "timeline": svg.timeline(spans) if phases else "",
        "tools": tool_table(phases),
        "delegations": sum(p.delegations for p in phases),
        "watchdog": watchdog,
        "files_changed": [{"phase": f"{p.n}. {one_line(p.id, 40)}",
                           "files": [one_line(f, 200) for f in p.files_changed]} for p in phases],
        "final_message": clean(final, max_lines=MESSAGE_LINES),
        "phase_messages": [{"phase": f"{p.n}. {one_line(p.id, 40)}", "text": clean(p.final_message, max_lines=60)}
                           for p in phases if p.final_message],
        "versions": [(k, one_line(val, 200)) for k, val in versions if val],
        "status_reason": clean(record.status_reason, max_lines=10),
    }


def trial_context(row: TrialRow, page_dir: Path) -> dict[str, Any]:
    ws = _workspace(row)
    audit = row.audit
    ctx: dict[str, Any] = {
        "row": row, "title": one_line(row.trial_id, 120), "workspace_linked": ws is not None,
        "summary": [("configuration", one_line(row.config_key, 160)), ("agent", one_line(row.agent, 60)),
                    ("model", one_line(f"{row.model_id} ({row.model} via {row.provider})", 160)),
                    ("task", one_line(row.task, 60)), ("repeat", str(row.repeat)), ("suite", one_line(row.suite, 80)),
                    ("wall time", fmt_secs(row.wall_s)), ("cost", fmt_usd(row.cost_usd)),
                    ("tokens in / out / cache read / cache write",
                     " / ".join(f"{n:,}" for n in (row.usage.input_tokens, row.usage.output_tokens,
                                                    row.usage.cache_read_tokens, row.usage.cache_write_tokens))
                     + ("" if row.tokens_reliable else " (unreliable)")),
                    ("LLM calls", f"{row.llm_calls:,}"), ("delegations to subagents", str(row.delegations))],
        "notes": [clean(n, 200, 5) for n in row.notes],
        "status_reason": clean(row.status_reason, max_lines=10),
    }
    ctx.update(record_context(row.record))
    ctx.update(audit_context(audit, ws, page_dir))
    if audit is not None:
        ctx["versions"] = [*ctx.get("versions", []), ("shipbench (audit)", one_line(audit.shipbench_version, 40))]
        gems = sorted({f"{c.definition.gem} {c.definition.version}" for c in audit.api_calls if c.definition})
        if gems:
            ctx["versions"].append(("library source verified against", ", ".join(gems)))
    return ctx
