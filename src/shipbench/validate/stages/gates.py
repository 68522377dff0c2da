"""gates: the CI gates the task asks for: RuboCop (offenses by cop), Brakeman (warnings by type) and
bundle-audit, each run when it is installed, with the project's suppressions listed beside the counts.

Invariants: a gate whose tool is not on this machine is a skipped check marked infra, never a failure; a
gate fails on what it reports (offenses, warnings, vulnerabilities) or when it cannot read the project;
suppressions (rubocop:disable comments, .rubocop.yml exclusions, brakeman.ignore) are facts, not verdicts.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from shipbench.validate.models import StageResult
from shipbench.validate.proc import run_bounded, tail
from shipbench.validate.stage import Stage, StageBuilder, StageContext
from shipbench.validate.stages.deps import bundle_binary, installed_versions

_DISABLE = re.compile(r"#\s*rubocop:(?:disable|todo)\s+([\w/, ]+)")
_SKIP_DIRS = {"vendor", "node_modules", "tmp", "log", "coverage", ".git"}


def _ruby_files(app: Path) -> list[Path]:
    return [p for p in app.rglob("*.rb") if not (set(p.relative_to(app).parts[:-1]) & _SKIP_DIRS)]


def suppressions(app: Path) -> dict[str, Any]:
    """Where the project silences its gates."""
    inline: list[str] = []
    for path in _ruby_files(app):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if m := _DISABLE.search(line):
                inline.append(f"{path.relative_to(app).as_posix()}:{n}: {m.group(1).strip()}")
    excluded: list[str] = []
    config = app / ".rubocop.yml"
    if config.is_file():
        in_exclude = False
        for line in config.read_text(encoding="utf-8", errors="replace").splitlines():
            stripped = line.strip()
            if stripped.startswith("Exclude:"):
                in_exclude = True
            elif in_exclude and stripped.startswith("- "):
                excluded.append(stripped[2:].strip().strip("'\""))
            elif stripped and not stripped.startswith("#"):
                in_exclude = False
    ignore = app / "config" / "brakeman.ignore"
    ignored = 0
    if ignore.is_file():
        try:
            ignored = len(json.loads(ignore.read_text(encoding="utf-8")).get("ignored_warnings", []))
        except (OSError, ValueError, AttributeError):
            ignored = -1
    return {"rubocop_disable": inline, "rubocop_exclude": excluded, "brakeman_ignored": ignored}


def _tool(ctx: StageContext, gem: str, binary: str) -> list[str] | None:
    """How to run a gate: through bundler when the project locks the gem, else the machine's binary."""
    lock = ctx.app_dir / "Gemfile.lock"
    bundle = bundle_binary()
    if bundle and lock.is_file() and gem in installed_versions(lock.read_text(encoding="utf-8", errors="replace")):
        return [bundle, "exec", binary]
    found = shutil.which(binary, path="/usr/local/bin:/usr/bin:/bin")
    return [found] if found else None


def _json_tail(text: str) -> Any:
    start = text.find("{")
    while start != -1:
        try:
            return json.loads(text[start:])
        except ValueError:
            start = text.find("{", start + 1)
    return None


def _rubocop(ctx: StageContext, b: StageBuilder) -> None:
    tool = _tool(ctx, "rubocop", "rubocop")
    if tool is None:
        b.check("gates.rubocop", None, "infra: rubocop is not installed", skipped=True)
        return
    log = ctx.stage_dir("gates") / "rubocop.json"
    done = run_bounded(
        [*tool, "--format", "json", "--no-color", "--cache", "false"],
        cwd=ctx.app_dir,
        env=ctx.env("rubocop", ctx.bundle_env()),
        log=log,
        timeout_s=300,
    )
    data = _json_tail(done.output)
    if not isinstance(data, dict) or "summary" not in data:
        b.check(
            "gates.rubocop",
            False,
            f"rubocop gave no report (exit {done.returncode}): {tail(done.output, 3)}",
            [ctx.rel(log)],
        )
        return
    cops = Counter(o.get("cop_name", "?") for f in data.get("files", []) for o in f.get("offenses", []))
    count = int(data["summary"].get("offense_count", sum(cops.values())))
    b.facts["rubocop"] = {
        "offenses": count,
        "by_cop": dict(cops.most_common()),
        "files": int(data["summary"].get("inspected_file_count", 0)),
    }
    b.check(
        "gates.rubocop",
        count == 0,
        f"{count} offenses" + (f" (top: {cops.most_common(3)})" if count else ""),
        [ctx.rel(log)],
    )


def _brakeman(ctx: StageContext, b: StageBuilder) -> None:
    tool = _tool(ctx, "brakeman", "brakeman")
    if tool is None:
        b.check("gates.brakeman", None, "infra: brakeman is not installed", skipped=True)
        return
    log = ctx.stage_dir("gates") / "brakeman.json"
    done = run_bounded(
        [*tool, "--format", "json", "--no-pager", "--quiet", "--no-exit-on-warn"],
        cwd=ctx.app_dir,
        env=ctx.env("brakeman", ctx.bundle_env()),
        log=log,
        timeout_s=300,
    )
    data = _json_tail(done.output)
    if not isinstance(data, dict) or "warnings" not in data:
        b.check("gates.brakeman", False, f"brakeman gave no report (exit {done.returncode})", [ctx.rel(log)])
        return
    kinds = Counter(w.get("warning_type", "?") for w in data["warnings"])
    b.facts["brakeman"] = {"warnings": sum(kinds.values()), "by_type": dict(kinds.most_common())}
    b.check(
        "gates.brakeman",
        not kinds,
        f"{sum(kinds.values())} warnings {dict(kinds)}" if kinds else "0 warnings",
        [ctx.rel(log)],
    )


def _bundle_audit(ctx: StageContext, b: StageBuilder) -> None:
    tool = _tool(ctx, "bundler-audit", "bundle-audit")
    if tool is None:
        b.check("gates.bundle_audit", None, "infra: bundle-audit is not installed", skipped=True)
        return
    log = ctx.stage_dir("gates") / "bundle-audit.txt"
    done = run_bounded(
        [*tool, "check", "--no-update"], cwd=ctx.app_dir, env=ctx.env("audit", ctx.bundle_env()), log=log, timeout_s=120
    )
    if "No vulnerabilities found" in done.output:
        b.check("gates.bundle_audit", True, "no vulnerabilities found", [ctx.rel(log)])
    elif "ruby-advisory-db" in done.output or ("advisory" in done.output.lower() and done.returncode != 1):
        b.check(
            "gates.bundle_audit",
            None,
            "infra: the advisory database is not available offline",
            [ctx.rel(log)],
            skipped=True,
        )
    else:
        b.check("gates.bundle_audit", False, tail(done.output, 3) or f"exit {done.returncode}", [ctx.rel(log)])


def _run(ctx: StageContext) -> StageResult:
    b = StageBuilder("gates")
    b.facts["suppressions"] = suppressions(ctx.app_dir)
    for gate in (_rubocop, _brakeman, _bundle_audit):
        gate(ctx, b)
    return b.result()


STAGE = Stage(id="gates", title="RuboCop, Brakeman and bundle-audit", run=_run, needs=("deps",), timeout_s=900)
