"""`shipbench rescore`: audit finished trials' workspaces again with today's rubric and checks, beside
the audit they were scored with.

Invariants: the original audit.json is never touched; each new audit is written as
`audit.rescored-<rubric digest>.json` in the trial dir (re-running with the same rubric rewrites only
that file); a trial that cannot be rescored is listed with the reason and never stops the others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from shipbench.audit.engine import AuditInputError, audit_project
from shipbench.audit.serialize import to_json
from shipbench.report.load import discover
from shipbench.tasks.pack import TaskPack


@dataclass(frozen=True)
class Rescored:
    trial_dir: Path
    old_score: int | None  # from audit.json; None when it is missing or unreadable
    new_score: int | None  # None when the rescore failed
    path: Path | None  # the new audit file
    error: str = ""


def rescored_name(pack: TaskPack) -> str:
    return f"audit.rescored-{pack.rubric.digest}.json"


def _json_field(path: Path, key: str) -> object:
    """`key` of the JSON object in `path`; None when the file is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get(key) if isinstance(data, dict) else None


def _old_score(trial_dir: Path) -> int | None:
    score = _json_field(trial_dir / "audit.json", "score")
    return score if isinstance(score, int) else None


def rescore_trial(trial_dir: Path, pack: TaskPack, gem_sources: dict[str, Path]) -> Rescored:
    workspace = trial_dir / "workspace"
    old = _old_score(trial_dir)
    if not workspace.is_dir():
        return Rescored(trial_dir, old, None, None, "no workspace/ to audit")
    try:
        result = audit_project(workspace, pack, gem_sources)
    except (AuditInputError, OSError) as exc:
        return Rescored(trial_dir, old, None, None, str(exc))
    target = trial_dir / rescored_name(pack)
    target.write_text(to_json(result), encoding="utf-8")
    return Rescored(trial_dir, old, result.score, target)


def _task_of(trial_dir: Path) -> str | None:
    task = _json_field(trial_dir / "trial.json", "task")
    return task if isinstance(task, str) else None


def rescore_results(root: Path, pack: TaskPack, gem_sources: dict[str, Path]) -> list[Rescored]:
    """Every trial dir under `root` (one suite or many) that was audited for `pack`'s task."""
    trial_dirs, _ = discover(root)
    chosen = [d for d in trial_dirs if (d / "audit.json").exists() and _task_of(d) == pack.id]
    return [rescore_trial(d, pack, gem_sources) for d in chosen]
