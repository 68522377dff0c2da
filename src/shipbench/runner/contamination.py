"""Which files outside its workspace an agent's tool calls name, and whether any belongs to the grading side.

Invariants: read from the tool-call inputs of the agent's own event stream (every path-like token, `~`
taken as the trial's HOME, relative paths resolved against the workspace, `..` normalised, no file
opened; inside a multi-line value, the content of a file being written, only absolute and `~` paths count: a
relative `../x` there is relative to that file, e.g. Ruby's `File.expand_path("../Gemfile", __dir__)`); the
workspace, the trial's HOME and /tmp are the agent's own (the grading side wins over /tmp);
the grading side is the results
directory (other trials, reports, this trial's records), the task pack (rubric, checks, prompts) and
shipbench's own source. Lists are capped; the verdict never depends on the cap.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import shipbench

PATH_TOKEN = re.compile(r"""(?<![\w.$:/-])(?:~(?=/)|\.\.(?=/)|/)[^\s"'`;|&<>(){}\[\],=*?\\]*""")
AGENT_OWN = ("/tmp", "/dev/null", "/dev/stdin", "/dev/stdout", "/dev/stderr")
MAX_LISTED = 50


@dataclass(frozen=True)
class Boundaries:
    """Where a trial's agent may work, and what it must never read."""

    workspace: str
    home: str
    grading: tuple[str, ...]  # results dir, task pack, shipbench source (and its checkout)
    allowed: tuple[str, ...] = ()  # inside a grading root but the agent's to use (its own CLI's install)


@dataclass
class Contamination:
    grading: list[str] = field(default_factory=list)  # grading-side paths named, capped
    outside: list[str] = field(default_factory=list)  # other paths outside the workspace/HOME, capped
    grading_count: int = 0

    @property
    def contaminated(self) -> bool:
        return self.grading_count > 0


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _absolute(token: str, bounds: Boundaries) -> str:
    if token.startswith("~"):
        token = bounds.home + token[1:]
    elif not token.startswith("/"):
        token = f"{bounds.workspace}/{token}"
    return os.path.normpath(token)


def paths_in(text: str) -> Iterable[str]:
    """Path-like tokens of one tool input: `/abs/path`, `~/x`, `../x` (JSON escapes undone first)."""
    for match in PATH_TOKEN.finditer(text.replace("\\/", "/")):
        token = match.group(0).rstrip(".:")
        if token not in ("/", "~", ".."):
            yield token


def _tokens(text: str) -> Iterable[str]:
    """The path tokens of one tool input: per JSON string value when it parses (a multi-line value is file
    content, whose relative paths are not the workspace's), else of the whole text (a clipped input)."""
    try:
        values = list(_strings(json.loads(text)))
    except ValueError:
        yield from paths_in(text)
        return
    for value in values:
        content = "\n" in value
        for token in paths_in(value):
            if not (content and token.startswith("..")):
                yield token


def _strings(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def scan_tool_inputs(inputs: Iterable[str], bounds: Boundaries) -> Contamination:
    found = Contamination()
    own = (bounds.workspace, bounds.home, *bounds.allowed)
    seen: set[str] = set()
    for text in inputs:
        for token in _tokens(text):
            path = _absolute(token, bounds)
            if path in seen or any(_inside(path, root) for root in own):
                continue
            seen.add(path)
            if any(_inside(path, root) for root in bounds.grading):  # before /tmp: a results dir may live there
                found.grading_count += 1
                if len(found.grading) < MAX_LISTED:
                    found.grading.append(path)
            elif any(_inside(path, root) for root in AGENT_OWN):
                continue
            elif len(found.outside) < MAX_LISTED and not _system(path):
                found.outside.append(path)
    return found


def _system(path: str) -> bool:
    """Read-only system places every build touches (interpreters, headers, certificates): not worth listing."""
    top = PurePosixPath(path).parts[1:2]
    return bool(top) and top[0] in ("usr", "bin", "sbin", "lib", "lib64", "etc", "proc", "sys", "dev", "opt", "var")


def trial_boundaries(workspace: Path, home: Path, results_root: Path, task_root: Path) -> Boundaries:
    """The boundaries of one trial: shipbench's package (and, for a source checkout, the whole checkout
    but its `.tools/` agent installs) is grading side, beside the results dir and the task pack."""
    package = Path(shipbench.__file__).resolve().parent
    grading = [results_root.resolve(), task_root.resolve(), package]
    allowed: list[str] = []
    checkout = package.parent.parent
    if (checkout / "pyproject.toml").is_file() and package.parent.name == "src":
        grading.append(checkout)
        allowed.append(str(checkout / ".tools"))
    return Boundaries(
        workspace=str(workspace.resolve()),
        home=str(home.resolve()),
        grading=tuple(str(g) for g in grading),
        allowed=tuple(allowed),
    )
