"""tests: the project's own suite (`bin/rails test`, or RSpec when that is what it has), parsed to runs,
assertions, failures, errors and skips, with SimpleCov's line and branch coverage when it wrote a result set.

Invariants: a project with no test files is skipped with the reason (not failed); a suite that does not
finish in time or prints no summary fails; coverage is read from the result set the run just wrote (an old
coverage/ directory of the agent's is removed first).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from shipbench.validate.models import StageResult
from shipbench.validate.proc import run_bounded, tail
from shipbench.validate.stage import Stage, StageBuilder, StageContext, skipped
from shipbench.validate.stages.deps import bundle_binary

_MINITEST = re.compile(r"(\d+) (?:runs|tests), (\d+) assertions, (\d+) failures, (\d+) errors(?:, (\d+) skips)?")
_RSPEC = re.compile(r"(\d+) examples?, (\d+) failures?(?:, (\d+) pending)?")


def parse_summary(output: str) -> dict[str, int] | None:
    """The last Minitest (or RSpec) summary line's counts, or None when there is none."""
    found = list(_MINITEST.finditer(output))
    if found:
        runs, assertions, failures, errors, skips = (int(g or 0) for g in found[-1].groups())
        return {"runs": runs, "assertions": assertions, "failures": failures, "errors": errors, "skips": skips}
    rspec = list(_RSPEC.finditer(output))
    if rspec:
        examples, failures, pending = (int(g or 0) for g in rspec[-1].groups())
        return {"runs": examples, "assertions": 0, "failures": failures, "errors": 0, "skips": pending}
    return None


def coverage(resultset: Path) -> dict[str, Any] | None:
    """Line and branch coverage (percent) merged over every command of a SimpleCov .resultset.json."""
    try:
        data = json.loads(resultset.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    lines: dict[str, list[int | None]] = {}
    branches: dict[str, dict[str, int]] = {}
    for run in data.values() if isinstance(data, dict) else []:
        for path, cov in (run.get("coverage") or {}).items():
            line_counts = cov.get("lines") if isinstance(cov, dict) else cov
            if isinstance(line_counts, list):
                merged = lines.setdefault(path, [None] * len(line_counts))
                for i, n in enumerate(line_counts[: len(merged)]):
                    if isinstance(n, int):
                        merged[i] = (merged[i] or 0) + n
            for cond, arms in ((cov.get("branches") or {}) if isinstance(cov, dict) else {}).items():
                for arm, n in (arms or {}).items():
                    key = f"{path}:{cond}:{arm}"
                    branches.setdefault(path, {})[key] = branches.get(path, {}).get(key, 0) + int(n or 0)
    relevant = [n for counts in lines.values() for n in counts if n is not None]
    arms = [n for per in branches.values() for n in per.values()]
    result: dict[str, Any] = {"files": len(lines)}
    result["line_percent"] = round(100 * sum(n > 0 for n in relevant) / len(relevant), 1) if relevant else None
    result["branch_percent"] = round(100 * sum(n > 0 for n in arms) / len(arms), 1) if arms else None
    return result


def _suite_command(app: Path, bundle: str) -> tuple[list[str], str] | None:
    if any((app / "test").rglob("*_test.rb")):
        runner = [str(app / "bin" / "rails")] if (app / "bin" / "rails").is_file() else [bundle, "exec", "rails"]
        if runner[0].endswith("bin/rails"):
            runner = ["ruby", *runner]
        return [*runner, "test"], "minitest"
    if any((app / "spec").rglob("*_spec.rb")):
        return [bundle, "exec", "rspec"], "rspec"
    return None


def _run(ctx: StageContext) -> StageResult:
    bundle = bundle_binary()
    suite = _suite_command(ctx.app_dir, bundle or "bundle")
    if suite is None:
        return skipped("tests", "no tests: no test/**/*_test.rb nor spec/**/*_spec.rb")
    argv, kind = suite
    b = StageBuilder("tests")
    b.facts["framework"] = kind
    shutil.rmtree(ctx.app_dir / "coverage", ignore_errors=True)
    log = ctx.stage_dir("tests") / "output.txt"
    env = ctx.env(
        "tests",
        {
            **ctx.bundle_env(),
            "RAILS_ENV": "test",
            "CI": "true",
            "NO_COLOR": "1",
            "OPENROUTER_API_KEY": ctx.secret_token,
        },
    )
    done = run_bounded(
        argv, cwd=ctx.app_dir, env=env, log=log, timeout_s=float(ctx.settings.get("tests_timeout_s", 300))
    )
    b.evidence.append(ctx.rel(log))
    summary = parse_summary(done.output)
    b.facts["summary"] = summary
    cov = coverage(ctx.app_dir / "coverage" / ".resultset.json")
    if cov is not None:
        b.facts["coverage"] = cov
        dest = ctx.stage_dir("tests") / "resultset.json"
        shutil.copyfile(ctx.app_dir / "coverage" / ".resultset.json", dest)
        b.evidence.append(ctx.rel(dest))
    b.check(
        "tests.coverage",
        None if cov is None else True,
        "no SimpleCov result set was written"
        if cov is None
        else f"lines {cov['line_percent']}%, branches {cov['branch_percent']}%",
        skipped=cov is None,
    )
    if done.killed_reason:
        b.check("tests.suite", False, f"the suite did not finish: {done.killed_reason}", [ctx.rel(log)])
    elif summary is None:
        b.check(
            "tests.suite", False, f"no test summary (exit {done.returncode}): {tail(done.output, 3)}", [ctx.rel(log)]
        )
    else:
        bad = summary["failures"] + summary["errors"]
        text = (
            f"{summary['runs']} runs, {summary['assertions']} assertions, {summary['failures']} failures, "
            f"{summary['errors']} errors, {summary['skips']} skips"
        )
        ok = bad == 0 and summary["runs"] > 0 and done.returncode == 0
        b.check("tests.suite", ok, text if ok or bad else f"{text} (exit {done.returncode})", [ctx.rel(log)])
    return b.result()


STAGE = Stage(id="tests", title="The project's own test suite", run=_run, needs=("deps",), timeout_s=600)
