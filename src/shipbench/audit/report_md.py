"""Readable Markdown for one audit: score, dimensions, every deduction with evidence, API table.

Invariant: text from the audited project (snippets, file names, messages) is escaped for Markdown
tables and clipped, so a hostile project cannot break the report's structure.
"""

from __future__ import annotations

from shipbench.audit.models import ApiCall, AuditResult, Evidence, Finding

_SNIPPET_MAX = 120


def _cell(text: str, limit: int = _SNIPPET_MAX) -> str:
    clean = "".join(ch if ch.isprintable() else " " for ch in text)
    clean = clean.replace("\\", "\\\\").replace("|", "\\|").replace("`", "'").replace("<", "&lt;")
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def _where(e: Evidence) -> str:
    return _cell(e.path, 200) + (f":{e.line}" if e.line else "")


def render_markdown(result: AuditResult) -> str:
    out: list[str] = [
        f"# Audit: {_cell(result.project)} ({result.task})",
        "",
        f"**Score {result.score}/100, tier {result.tier}.** {_cell(result.verdict, 300)}",
        "",
        "| Dimension | Score | Max | Deductions |",
        "|---|---:|---:|---:|",
    ]
    for dim in result.dimensions:
        out.append(f"| {dim.title} | {dim.score} | {dim.max} | {len(dim.findings)} |")
    out += ["", "## Findings", ""]
    if not result.findings:
        out.append("No deductions.")
    for dim in result.dimensions:
        if not dim.findings:
            continue
        out += [f"### {dim.title} ({dim.score}/{dim.max})", ""]
        out += [line for f in dim.findings for line in _finding(f)]
        out.append("")
    out += ["", "## Library calls verified against source", ""]
    out += _api_section(result)
    out += _facts_section(result)
    return "\n".join(out).rstrip() + "\n"


def _finding(f: Finding) -> list[str]:
    lines = [f"- **{f.points}** `{f.rule}`: {_cell(f.message, 300)}"]
    for e in f.evidence[:8]:
        snippet = f" `{_cell(e.snippet)}`" if e.snippet else ""
        lines.append(f"  - {_where(e)}{snippet}")
    if len(f.evidence) > 8:
        lines.append(f"  - … and {len(f.evidence) - 8} more places")
    return lines


def _api_section(result: AuditResult) -> list[str]:
    sources = result.facts.get("api_sources") or []
    lines: list[str] = []
    if isinstance(sources, list):
        for s in sources:
            if isinstance(s, dict):
                used = s.get("used_version") or "none"
                lines.append(
                    f"- `{s.get('gem')}`: locked {s.get('locked_version') or '?'}, source used {used}"
                    + (f" ({_cell(str(s.get('note')), 200)})" if s.get("note") else "")
                )
    if not result.facts.get("api_verified"):
        lines.append("- No gem source was available: every call is `unverifiable` and costs no points.")
    if not result.api_calls:
        return [*lines, "", "No calls into verified libraries were found."]
    lines += ["", "| Where | Call | Verdict | Defined at | Detail |", "|---|---|---|---|---|"]
    for c in result.api_calls:
        lines.append(_api_row(c))
    return lines


def _api_row(c: ApiCall) -> str:
    where = f"{_cell(c.path, 200)}:{c.line}" + (" (test)" if c.in_test else "")
    definition = (
        f"{c.definition.gem} {c.definition.version} {c.definition.path}:{c.definition.line}"
        if c.definition
        else ""
    )
    detail = c.detail
    if c.suggestions:
        detail += ("; " if detail else "") + "did you mean " + ", ".join(f"'{s}'" for s in c.suggestions) + "?"
    return f"| {where} | `{_cell(c.call)}` | {c.verdict} | {_cell(definition, 200)} | {_cell(detail, 200)} |"


def _facts_section(result: AuditResult) -> list[str]:
    keys = ["persistence", "nested_app_dir", "dockerfile", "docker_compose", "readme_stock_template"]
    lines = ["", "## Facts", ""]
    for key in keys:
        if key in result.facts:
            lines.append(f"- {key}: `{_cell(str(result.facts[key]))}`")
    if result.file_issues:
        lines += ["", "## Files not audited as source", ""]
        for issue in result.file_issues[:50]:
            lines.append(f"- {_cell(issue.path, 200)}: {issue.status} {_cell(issue.detail)}")
        if len(result.file_issues) > 50:
            lines.append(f"- … and {len(result.file_issues) - 50} more")
    return lines
