"""Audit one project directory against a task pack: files -> facts -> API verification -> checks
-> scores.

Invariants: the audit of a readable directory always returns an `AuditResult`, never raises; when
the audit could not see everything (file budget spent, a check crashed) its verdict starts with
INCOMPLETE_PREFIX and names why, facts['incomplete'] lists the reasons, and the score covers only
what was seen. The result is a pure function of the directory's contents, the task pack, the gem
sources and the file budget.
"""

from __future__ import annotations

from pathlib import Path

from shipbench import __version__
from shipbench.audit.checks import AuditContext, Hit
from shipbench.audit.facts import extract_facts
from shipbench.audit.files import MAX_FILES, ProjectFiles
from shipbench.audit.models import AuditResult, Evidence, RubricStamp
from shipbench.audit.ruby.verify import verify_project
from shipbench.audit.scoring import score_with_severity
from shipbench.tasks.pack import TaskPack, load_task

INCOMPLETE_PREFIX = "incomplete: "


class AuditInputError(Exception):
    """The path given to audit is not a directory that can be read."""


def is_incomplete(verdict: str) -> bool:
    """Whether an audit verdict says the audit did not see the whole project."""
    return verdict.startswith(INCOMPLETE_PREFIX)


def audit_project(
    project_dir: Path | str,
    task: TaskPack | str = "rails-chat",
    gem_sources: dict[str, Path] | None = None,
    max_files: int = MAX_FILES,
) -> AuditResult:
    """Audit `project_dir`; `max_files` is the file budget of the walk (see files.py)."""
    if max_files < 1:
        raise AuditInputError(f"max_files must be at least 1, got {max_files}")
    pack = task if isinstance(task, TaskPack) else load_task(task)
    root = Path(project_dir)
    if not root.exists():
        raise AuditInputError(f"{root}: no such directory")
    if not root.is_dir():
        raise AuditInputError(f"{root}: not a directory")

    files = ProjectFiles.scan(root, max_files=max_files)
    facts = extract_facts(files)
    ctx = AuditContext(project_root=root.resolve(), files=files, task=pack, facts=facts)

    check_errors: list[str] = []
    if facts.is_rails:
        _parse_sources(ctx)
        ctx.api = verify_project(ctx, gem_sources or {})
        hits = _run_checks(ctx, check_errors)
        verdict = "scored"
    else:
        ctx.api = verify_project(ctx, gem_sources or {})  # library calls are verified in any Ruby project
        hits = _no_app_hits(pack, ctx)
        verdict = (
            "empty directory: nothing to audit"
            if not files.files and not files.truncated
            else ("not a Rails project: no Gemfile declaring rails and no config/application.rb")
        )
    incomplete = _incomplete_reasons(ctx, check_errors)
    if incomplete:
        ctx.derived["incomplete"] = incomplete
        verdict = INCOMPLETE_PREFIX + "; ".join(incomplete) + ("" if verdict == "scored" else f"; {verdict}")

    dimensions, total, tier, fired = score_with_severity(pack.rubric, hits)
    ctx.derived["severity"] = fired
    if facts.is_rails:
        ctx.derived.update(_rule_facts(pack, hits))
    issues = sorted([*files.issues, *ctx.parse_issues.values()], key=lambda i: (i.path, i.status))
    return AuditResult(
        task=pack.id,
        project=root.resolve().name,
        score=total,
        tier=tier,
        verdict=verdict,
        dimensions=dimensions,
        findings=[f for d in dimensions for f in d.findings],
        api_calls=sorted(ctx.api.calls, key=lambda c: (c.path, c.line, c.call, c.verdict)),
        facts=_facts_out(ctx, check_errors),
        file_issues=issues,
        shipbench_version=__version__,
        rubric=RubricStamp(digest=pack.rubric.digest, tiers=dict(pack.rubric.tiers)),
    )


def _facts_out(ctx: AuditContext, check_errors: list[str]) -> dict[str, object]:
    """The `facts` object of the audit JSON: extracted facts, what checks derived, API sources, scan counts."""
    out: dict[str, object] = ctx.facts.model_dump(mode="json")
    out.setdefault("persistence", "none")
    out["committed_env_file"] = bool(ctx.facts.committed_env_files)
    out.update(ctx.derived)
    out["api_sources"] = [s.model_dump(mode="json") for s in ctx.api.sources]
    out["api_verified"] = ctx.api.verified
    out["files_scanned"] = len(ctx.files.files)
    out["files_truncated"] = ctx.files.truncated
    out["files_seen"] = ctx.files.seen
    out["file_budget"] = ctx.files.max_files
    if check_errors:
        out["check_errors"] = check_errors
    return dict(sorted(out.items()))


def _incomplete_reasons(ctx: AuditContext, check_errors: list[str]) -> list[str]:
    """Why the audit did not see the whole project; empty when it did."""
    files = ctx.files
    reasons: list[str] = []
    if files.truncated:
        reasons.append(
            f"file budget exhausted: stopped after {files.seen:,} files (budget {files.max_files:,}, "
            "see --max-files), the rest of the project was not read"
        )
    vanished = sorted(rel for rel, issue in ctx.parse_issues.items() if issue.status != "syntax_error")
    if vanished:
        named = ", ".join(vanished[:3]) + (", ..." if len(vanished) > 3 else "")
        reasons.append(f"{len(vanished)} file(s) changed during the audit and could not be read: {named}")
    reasons.extend(f"check {error.split(':', 1)[0]} failed" for error in check_errors)
    return reasons


def _rule_facts(pack: TaskPack, hits: list[Hit]) -> dict[str, object]:
    """The task's boolean facts that are read off which rules fired (task.toml `[facts]`)."""
    fired = {h.rule for h in hits}
    out: dict[str, object] = {}
    for name, spec in pack.spec.facts.items():
        some_fired = not spec.fired or any(r in fired for r in spec.fired)
        out[name] = some_fired and not any(r in fired for r in spec.absent)
    return out


def _parse_sources(ctx: AuditContext) -> None:
    """Parse every Ruby/ERB/JS file of the app once, so syntax errors are recorded even if no check reads them."""
    for source in ctx.app_files():
        ctx.parsed(source.rel)


def _run_checks(ctx: AuditContext, errors: list[str]) -> list[Hit]:
    hits: list[Hit] = []
    for check in ctx.task.checks:
        try:
            hits.extend(check(ctx))
        except Exception as exc:  # a bug in one check must not lose the rest of the audit
            errors.append(f"{getattr(check, '__name__', check)!s}: {exc!r}")
    return hits


def _no_app_hits(pack: TaskPack, ctx: AuditContext) -> list[Hit]:
    evidence = (Evidence(path=".", line=0, snippet="no Rails application in this directory"),)
    return [
        Hit(rule=f"{d.id}.no_app", message="No Rails application to assess.", evidence=evidence)
        for d in pack.rubric.dimensions
        if f"{d.id}.no_app" in pack.rubric.rules
    ]
