"""Where a suite's results live on disk: the trial directory is the source of truth.

```
<out>/<suite>/
  index.sqlite                  rebuildable index of every trial.json below
  <trial-id>/
    trial.json                  TrialRecord: config snapshot, versions, status, timings, tokens, cost
    home/                       the agent's private HOME (configs, caches); never holds the real key
    workspace/                  what the agent built (a fresh `git init`)
    phases/<n>/events.jsonl     the agent's raw stream, one JSON line per line read, secrets redacted
    phases/<n>/llm_calls.jsonl  one LlmCallRecord per proxied call
    phases/<n>/stderr.log       the agent's stderr (clipped)
    validation.json             ladder verdicts (validation issue)
    audit.json                  the audit of workspace/
```
Invariants: paths are derived, never stored, and always absolute (an agent runs with its workspace as
cwd, so a relative HOME or workspace would point somewhere else); a trial id is filesystem-safe and
stable for the same (task, agent, model, repeat); phase numbers start at 1; a suite name and a trial id
are single safe path components (`component_problem`), so nothing is ever written outside `<out>`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UnsafePathError(ValueError):
    """A name that would not be a single path component inside the results directory."""


def component_problem(value: str) -> str | None:
    """Why `value` is not a single safe path component (None when it is one)."""
    if value in ("", ".", ".."):
        return "is empty, '.' or '..'"
    if "/" in value or "\\" in value:
        return "contains a path separator ('/' or '\\')"
    if _CONTROL.search(value):
        return "contains a NUL or control character"
    if value.startswith("-"):
        return "starts with '-'"
    return None


def checked_suite_paths(out: Path, suite: str) -> SuitePaths:
    """`<out>/<suite>`, refusing a suite name that is not one safe component or would leave `out`."""
    problem = component_problem(suite)
    if problem:
        raise UnsafePathError(f"suite name {suite!r} {problem}: it must be a single directory name")
    paths = SuitePaths(out / suite)
    _check_inside(Path(os.path.abspath(out)), paths.root, f"suite name {suite!r}")
    return paths


def _check_inside(parent: Path, child: Path, what: str) -> None:
    """Lexical containment (symlinked results directories stay allowed): `child` is directly below `parent`."""
    if Path(os.path.normpath(child)).parent != Path(os.path.normpath(parent)):
        raise UnsafePathError(f"{what} would write outside {parent}: {child}")


def safe_part(text: str) -> str:
    cleaned = _UNSAFE.sub("-", text).strip("-.")
    return cleaned or "x"


def trial_id(task: str, agent: str, model: str, repeat: int) -> str:
    return "__".join((safe_part(task), safe_part(agent), safe_part(model), f"r{repeat}"))


@dataclass(frozen=True)
class SuitePaths:
    root: Path  # <out>/<suite>

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", self.root.absolute())

    @property
    def index(self) -> Path:
        return self.root / "index.sqlite"

    def trial(self, trial: str) -> TrialPaths:
        problem = component_problem(trial)
        if problem:
            raise UnsafePathError(f"trial id {trial!r} {problem}")
        paths = TrialPaths(self.root / trial)
        _check_inside(self.root, paths.root, f"trial id {trial!r}")
        return paths

    def trials(self) -> list[TrialPaths]:
        if not self.root.is_dir():
            return []
        return [TrialPaths(p) for p in sorted(self.root.iterdir()) if (p / "trial.json").is_file()]


@dataclass(frozen=True)
class TrialPaths:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", self.root.absolute())

    @property
    def record(self) -> Path:
        return self.root / "trial.json"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    def phase_dir(self, n: int) -> Path:
        return self.root / "phases" / str(n)

    def events(self, n: int) -> Path:
        return self.phase_dir(n) / "events.jsonl"

    def llm_calls(self, n: int) -> Path:
        return self.phase_dir(n) / "llm_calls.jsonl"

    def stderr(self, n: int) -> Path:
        return self.phase_dir(n) / "stderr.log"

    @property
    def validation(self) -> Path:
        return self.root / "validation.json"

    @property
    def audit(self) -> Path:
        return self.root / "audit.json"
