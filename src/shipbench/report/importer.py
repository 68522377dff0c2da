"""Import the article's reference-harness `result.json` files (v1, v2, Claude Code) as historical rows.

Invariants: imported rows are read-only history: `imported=True`, never audited, never scored or
ranked; the harness's documented defects are carried as flags and notes, never silently fixed
(v1 opencode tokens are the last step only -> `tokens_reliable=False`; v1 stores no cost -> cost None;
v2 Codex cost ignores cache -> `cost_reliable=False`; zero recorded tokens -> unreliable).
A file that cannot be read or recognised becomes a SkippedTrial, never an exception.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shipbench.agents.base import Usage
from shipbench.report.load import SkippedTrial, TrialRow, config_key

IMPORTED_SUITE = "reference-harness"
IMPORTED_TASK = "rails-chat"
_MAX_BYTES = 8 * 1024 * 1024
_V1_STATUS = {"completed": "completed", "completed_with_errors": "completed_with_errors",
              "failed": "agent_crash", "timeout": "timeout"}
UNAUDITED = "imported from the reference harness: unaudited, not scored"


def _d(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _num(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)


def _int(value: object) -> int:
    return int(_num(value))


def _s(value: object, default: str = "") -> str:
    return value if isinstance(value, str) and value else default


def _opencode_tokens(tokens: dict[str, Any]) -> Usage:
    cache = _d(tokens.get("cache"))
    return Usage(
        input_tokens=_int(tokens.get("input")), output_tokens=_int(tokens.get("output")),
        cache_read_tokens=_int(cache.get("read")), cache_write_tokens=_int(cache.get("write")),
        reasoning_tokens=_int(tokens.get("reasoning")),
    )


def detect_layout(data: dict[str, Any]) -> str | None:
    """'v1', 'v2', 'claude_code', 'v2_phase' (a per-phase file), or None."""
    if "main_model" in data or "model_usage" in data:
        return "claude_code"
    if "harness" in data and isinstance(data.get("phases"), list):
        return "v2"
    if "command_kind" in data:
        return "v2_phase"
    if isinstance(data.get("phases"), list) and ("model" in data or "preflight_error" in data):
        return "v1"
    return None


def _base(slug: str, agent: str, label: str, model: str, provider: str, path: Path, settings: str = "") -> TrialRow:
    return TrialRow(
        trial_id=f"imported__{slug}", suite=IMPORTED_SUITE, task=IMPORTED_TASK, agent=agent, model_id=label,
        model=model, provider=provider, repeat=1, settings=settings, config_key=config_key(agent, label, settings),
        status="completed", imported=True, audited=False, cost_usd=None, path=str(path), notes=[UNAUDITED],
    )


def _v1_status(data: dict[str, Any], phases: list[dict[str, Any]]) -> tuple[str, str]:
    """Worst status over phases (the top level only describes the last phase)."""
    if data.get("preflight_error"):
        return "infra_error", _s(data.get("preflight_error"))[:300]
    for p in phases or [data]:
        if p.get("timed_out"):
            return "timeout", f"{_s(p.get('phase'), 'phase')} timed out"
        if p.get("stalled"):
            reason = _s(p.get("stall_reason"))
            return ("loop" if "loop" in reason else "stalled"), reason[:300]
    statuses = [_V1_STATUS.get(_s(p.get("status")), "completed_with_errors") for p in phases or [data]]
    for worst in ("agent_crash", "completed_with_errors"):
        if worst in statuses:
            return worst, ""
    return "completed", ""


def _v1_slug(data: dict[str, Any], path: Path) -> str:
    """v1 has no slug: the run dir is the parent of paths.project_dir (results/<slug>/project)."""
    project = Path(_s(_d(data.get("paths")).get("project_dir")))
    if project.name == "project" and project.parent.name:
        return project.parent.name
    return path.parent.name if path.name == "result.json" else path.stem


def import_v1(data: dict[str, Any], path: Path) -> TrialRow:
    model = _d(data.get("model"))
    phases = [_d(p) for p in data.get("phases") or []]
    command = " ".join(str(c) for c in data.get("command") or [])
    agent = "codex" if model.get("runner_type") == "codex" or "codex exec" in command else "opencode"
    model_id = _s(model.get("id"), "unknown")
    row = _base(_v1_slug(data, path), agent, _s(model.get("label"), model_id), model_id,
                _s(model.get("provider"), "unknown"), path)
    row.status, row.status_reason = _v1_status(data, phases)
    row.infra = row.status == "infra_error"
    row.failure_class = "infra" if row.infra else "none"
    row.wall_s = _num(data.get("elapsed_seconds"))
    usage = Usage()
    for p in phases:
        usage = usage + _opencode_tokens(_d(p.get("tokens")))
    row.usage = usage
    row.notes.append("v1 stores no cost")
    if agent == "opencode":
        row.tokens_reliable = False
        row.notes.append("v1 opencode tokens are the last step only (understated 40-90x)")
    else:
        row.notes.append("v1 codex tokens: cached input not split out")
    _flag_zero_tokens(row)
    return row


def import_v2(data: dict[str, Any], path: Path) -> TrialRow:
    phases = [_d(p) for p in data.get("phases") or []]
    harness = _s(data.get("harness"), "unknown")
    agent = "codex" if harness == "codex" or any(p.get("command_kind") == "bash -lc" for p in phases) else harness
    slug = _s(data.get("slug"), path.parent.name or path.stem)
    row = _base(slug, agent, _s(data.get("label"), slug), slug, "unknown", path)
    row.wall_s = _num(data.get("elapsed_seconds_total")) or sum(_num(p.get("elapsed_seconds")) for p in phases)
    usage = Usage()
    for p in phases:
        usage = usage + _opencode_tokens(_d(p.get("tokens")))
    row.usage = usage
    cost = data.get("cost_usd_total")
    row.cost_usd = _num(cost) if isinstance(cost, int | float) else None
    if any(p.get("timed_out") for p in phases):
        row.status = "timeout"
    elif any(_num(p.get("exit_code")) != 0 for p in phases):
        row.status = "completed_with_errors"
    row.notes.append("v2 stores no status: derived from exit codes and timeouts")
    if agent == "codex":
        row.cost_reliable = False
        row.notes.append("v2 Codex cost ignores cached tokens")
    if data.get("_cost_corrected"):
        row.notes.append(f"cost corrected by the harness: {_s(data.get('_cost_corrected'))[:200]}")
    _flag_zero_tokens(row)
    return row


def import_claude_code(data: dict[str, Any], path: Path) -> TrialRow:
    main = _s(data.get("main_model"), "unknown")
    sub = _d(data.get("subagent"))
    settings = f"subagents={_s(sub.get('model'), '?')}" if sub else ""
    slug = _s(data.get("slug"), path.parent.name or path.stem)
    row = _base(slug, "claude", _s(data.get("label"), main), main, "anthropic", path, settings)
    status = _s(data.get("status"), "completed")
    if data.get("timed_out"):
        status = "timeout"
    elif data.get("stalled"):
        status = "loop" if "loop" in _s(data.get("stall_reason")) else "stalled"
    row.status = _V1_STATUS.get(status, status if status in ("stalled", "loop") else "completed_with_errors")
    row.status_reason = _s(data.get("stall_reason"))[:300]
    row.wall_s = _num(data.get("elapsed_seconds"))
    usage = Usage()
    for per_model in _d(data.get("model_usage")).values():
        m = _d(per_model)
        usage = usage + Usage(
            input_tokens=_int(m.get("inputTokens")), output_tokens=_int(m.get("outputTokens")),
            cache_read_tokens=_int(m.get("cacheReadInputTokens")),
            cache_write_tokens=_int(m.get("cacheCreationInputTokens")),
        )
    row.usage = usage
    cost = data.get("total_cost_usd")
    row.cost_usd = _num(cost) if isinstance(cost, int | float) else None
    counts = _d(data.get("subagent_invocation_counts"))
    invocations = data.get("subagent_invocations")
    row.delegations = sum(_int(v) for v in counts.values()) or (len(invocations) if isinstance(invocations, list)
                                                                  else 0)
    _flag_zero_tokens(row)
    return row


def _flag_zero_tokens(row: TrialRow) -> None:
    if row.usage.total == 0:
        row.tokens_reliable = False
        row.notes.append("harness recorded 0 tokens")


_IMPORTERS = {"v1": import_v1, "v2": import_v2, "claude_code": import_claude_code}


def import_file(path: Path) -> TrialRow | SkippedTrial:
    """One result.json -> a historical row, or the reason it was skipped."""
    try:
        if path.stat().st_size > _MAX_BYTES:
            return SkippedTrial(path=str(path), reason="file too large for a result.json")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return SkippedTrial(path=str(path), reason=f"unreadable: {type(exc).__name__}: {str(exc)[:200]}")
    if not isinstance(data, dict):
        return SkippedTrial(path=str(path), reason="not a JSON object")
    layout = detect_layout(data)
    if layout == "v2_phase":
        return SkippedTrial(path=str(path), reason="per-phase file (the run's result.json holds its phases)")
    if layout is None:
        return SkippedTrial(path=str(path), reason="unrecognised result.json layout")
    row = _IMPORTERS[layout](data, path)
    row.notes.append(f"layout: {layout}")
    return row


def import_results(paths: list[Path]) -> tuple[list[TrialRow], list[SkippedTrial]]:
    """Import result.json files, or every *result.json below the given directories."""
    rows: list[TrialRow] = []
    skipped: list[SkippedTrial] = []
    for base in paths:
        files = sorted(base.rglob("*result.json")) if base.is_dir() else [base]
        for file in files:
            loaded = import_file(file)
            if isinstance(loaded, SkippedTrial):
                skipped.append(loaded)
            else:
                rows.append(loaded)
    _dedupe_ids(rows)
    return rows, skipped


def _dedupe_ids(rows: list[TrialRow]) -> None:
    seen: dict[str, int] = {}
    for row in rows:
        n = seen.get(row.trial_id, 0)
        seen[row.trial_id] = n + 1
        if n:
            row.trial_id = f"{row.trial_id}__{n + 1}"
