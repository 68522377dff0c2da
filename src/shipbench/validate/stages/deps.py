"""deps: install the project's gems (`bundle install`, offline first) and record the versions installed.

Invariants: a project without a Gemfile is skipped (not a Ruby project), never failed; gems that are not
on this machine when downloads are not allowed, or a Ruby the Gemfile does not accept, are infra (the
machine's cause); only a Gemfile bundler cannot read fails the stage.
"""

from __future__ import annotations

import re
import shutil

from shipbench.validate.models import StageResult
from shipbench.validate.proc import run_bounded, tail
from shipbench.validate.stage import Stage, StageBuilder, StageContext, skipped

_SPEC = re.compile(r"^ {4}([A-Za-z0-9_.\-]+) \(([^)]+)\)$")
# The project's own fault: a Gemfile that is not valid Ruby. Anything else bundler refuses here (gems or a Ruby
# this machine lacks, a platform or lockfile format newer than its bundler, no network) is the machine's.
_PROJECT_FAULTS = ("SyntaxError", "syntax error", "unexpected end-of-input", "unterminated string")
_WHY = ("[!]", "Could not find", "Your Ruby version", "Could not reach", "could not", "error", "Error")


def installed_versions(lock_text: str) -> dict[str, str]:
    """name -> version of every gem a Gemfile.lock's specs list (platform suffixes kept)."""
    return {m.group(1): m.group(2) for line in lock_text.splitlines() if (m := _SPEC.match(line))}


def first_error(output: str) -> str:
    """The line of bundler's output that says what went wrong (shortened)."""
    for needle in _WHY:
        for line in output.splitlines():
            if needle in line:
                return line.strip()[:240]
    return tail(output, 1).strip()[:240]


def bundle_binary() -> str | None:
    return shutil.which("bundle", path="/usr/local/bin:/usr/bin:/bin")


def _run(ctx: StageContext) -> StageResult:
    gemfile = ctx.app_dir / "Gemfile"
    if not gemfile.is_file():
        return skipped("deps", "no Gemfile: not a Ruby project")
    bundle = bundle_binary()
    if bundle is None:
        return skipped("deps", "bundler is not installed on this machine", infra=True)
    out = ctx.stage_dir("deps")
    b = StageBuilder("deps")
    local = run_bounded(
        [bundle, "install", "--local"],
        cwd=ctx.app_dir,
        env=ctx.env("deps", ctx.bundle_env()),
        log=out / "bundle-local.txt",
        timeout_s=300,
    )
    b.evidence.append(ctx.rel(out / "bundle-local.txt"))
    attempt = local
    b.facts["bundle_env"] = {}
    if not local.ok and ctx.network:  # download what is missing into a path of the validation's own
        b.facts["bundle_env"] = {"BUNDLE_PATH": str(ctx.app_dir.parent / "bundle")}
        attempt = run_bounded(
            [bundle, "install"],
            cwd=ctx.app_dir,
            env=ctx.env("deps", {**ctx.bundle_env(), **b.facts["bundle_env"]}),
            log=out / "bundle-network.txt",
            timeout_s=900,
        )
        b.evidence.append(ctx.rel(out / "bundle-network.txt"))
    b.facts["offline"] = local.ok
    if not attempt.ok:
        why = attempt.killed_reason or first_error(attempt.output) or f"exit {attempt.returncode}"
        if any(fault in attempt.output for fault in _PROJECT_FAULTS):
            return b.result("failed", f"bundler cannot read the Gemfile: {why}")
        hint = "" if ctx.network else " (downloads are off: `shipbench validate --network` allows them)"
        return b.result("skipped", f"the gems could not be installed on this machine{hint}: {why}", infra=True)
    lock = ctx.app_dir / "Gemfile.lock"
    versions = installed_versions(lock.read_text(encoding="utf-8", errors="replace")) if lock.is_file() else {}
    b.facts["gems"] = versions
    b.check("deps.installed", True, f"{len(versions)} gems resolved", b.evidence[-1:])
    return b.result()


STAGE = Stage(id="deps", title="Install the locked gems", run=_run, wants_network=True, timeout_s=1200)
