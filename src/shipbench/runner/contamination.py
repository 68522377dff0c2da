"""Which files outside its workspace an agent's tool calls name, and whether any belongs to the grading side.

Invariants: read from the tool-call inputs of the agent's own event stream (every path-like token, `~`
taken as the trial's HOME, relative paths resolved against the workspace, `..` normalised, no file
opened; inside the content of a file being written, a relative `../x` is resolved against that file's folder,
as Ruby's `File.expand_path("../Gemfile", __dir__)` means it); the
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
    """The path tokens of one tool input: per JSON string value when it parses, else of the whole text (a clipped
    input). A relative `../x` inside the content of a file being written (a multi-line value beside one file path)
    is relative to that file's folder, where code like `File.expand_path("../x", __dir__)` means it; everywhere
    else (a shell command, a script run from the workspace) it is relative to the workspace."""
    try:
        data = json.loads(text)
    except ValueError:
        yield from paths_in(text)
        return
    folder = _written_folder(data)
    for value in _strings(data):
        value, bodies = _heredocs(value)
        for body_folder, body in bodies:  # `cat > config/boot.rb <<'EOF' ... EOF`: that file's content
            yield from _content_tokens(body, body_folder)
        if folder is not None and "\n" in value:
            yield from _content_tokens(value, folder)
        else:
            yield from paths_in(value)


def _content_tokens(content: str, folder: str) -> Iterable[str]:
    """Path tokens of a file's content: a relative `../x` is relative to the file's folder."""
    for token in paths_in(content):
        yield f"{folder}/{token}" if token.startswith("..") else token


HEREDOC = re.compile(
    r""">>?\s*(?P<path>[^\s<>;&|'"]+)\s*<<-?\s*(?P<q>['"]?)(?P<tag>\w+)(?P=q)[^\n]*\n(?P<body>.*?)\n\s*(?P=tag)\b""",
    re.S,
)


def _heredocs(command: str) -> tuple[str, list[tuple[str, str]]]:
    """(the command without its heredoc bodies, [(folder of the file written, body)]) for `> FILE <<TAG` forms."""
    bodies: list[tuple[str, str]] = []

    def cut(match: re.Match[str]) -> str:
        bodies.append((str(PurePosixPath(match["path"]).parent), match["body"]))
        return match.group(0)[: match.start("body") - match.start()]

    return HEREDOC.sub(cut, command), bodies


def _written_folder(data: object) -> str | None:
    """The folder of the one file a tool input writes (a single-line value naming a file with a suffix, beside a
    multi-line value), else None."""
    if not isinstance(data, dict):
        return None
    values = [v for v in data.values() if isinstance(v, str)]
    files = [v for v in values if "\n" not in v and not any(c.isspace() for c in v) and PurePosixPath(v).suffix]
    if len(files) != 1 or not any("\n" in v for v in values):
        return None
    return str(PurePosixPath(files[0]).parent)


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
