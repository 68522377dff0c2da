"""Dockerfile facts: which file, whether it is a placeholder, and what hadolint says about it.

Invariants: instructions are parsed here (parser directives, `# escape=`, line continuations,
comment lines inside continuations, BuildKit heredocs); each instruction carries the 1-based line it
starts on. hadolint runs isolated from the project's own and the user's config (neutral cwd and
HOME), with a 20 s timeout, and never raises: when it cannot run, `hadolint_available` stays False.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from shipbench.audit.facts.model import LintIssue
from shipbench.audit.files import ProjectFiles, SourceFile

HADOLINT_TIMEOUT_S = 20.0
INSTRUCTIONS = frozenset(
    {
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    }
)
_DIRECTIVE_RE = re.compile(r"^#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$")
_HEREDOC_RE = re.compile(r"<<-?\s*([\"']?)([A-Za-z_][A-Za-z0-9_]*)\1")
_BUNDLE_INSTALL_RE = re.compile(r"\bbundle\s+(?:(?:--?[\w-]+(?:=\S+)?|_[\d.]+_)\s+)*install\b")

NO_FROM = "no FROM instruction"
NO_INSTALL = "no dependency install (bundle install)"
NO_START = "no CMD or ENTRYPOINT"
TOO_FEW = "fewer than 3 instructions"
ONLY_COMMENTS = "only comments / TODO"
UNREADABLE = "not a readable text file"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper-cased; may be an unknown word (e.g. TODO) that Docker would reject
    args: str
    line: int


@dataclass
class DockerFacts:
    path: str | None = None
    placeholder_reasons: list[str] | None = None
    hadolint: list[LintIssue] | None = None
    hadolint_available: bool = False
    healthcheck_line: int | None = None  # line of a HEALTHCHECK that is not `HEALTHCHECK NONE`


def find_dockerfile(files: ProjectFiles, roots: list[str]) -> str | None:
    """`Dockerfile`, then `docker/Dockerfile`, then `Dockerfile.*` (alphabetical), per root in order.

    Paths of unreadable (binary/huge) files count too: they exist, they are just not usable.
    """
    present = set(files.files) | {issue.path for issue in files.issues}
    for root in roots:
        prefix = f"{root}/" if root else ""
        for name in ("Dockerfile", "docker/Dockerfile"):
            if prefix + name in present:
                return prefix + name
        variants = sorted(
            p
            for p in present
            if p.startswith(prefix + "Dockerfile.") and "/" not in p[len(prefix) :] and not p.endswith(".dockerignore")
        )
        if variants:
            return variants[0]
    return None


def parse_instructions(text: str) -> list[Instruction]:
    lines = text.lstrip("\ufeff").splitlines()
    escape = _escape_char(lines)
    out: list[Instruction] = []
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start = i
        parts = [_drop_escape(stripped, escape)]
        while stripped.endswith(escape) and i + 1 < len(lines):
            i += 1
            nxt = lines[i].strip()
            if not nxt or nxt.startswith("#"):
                continue  # blank and comment lines inside a continuation are dropped; it goes on
            stripped = nxt
            parts.append(_drop_escape(stripped, escape))
        logical = " ".join(p for p in parts if p)
        i = _skip_heredocs(lines, i, logical)
        keyword, _, args = logical.partition(" ")
        out.append(Instruction(keyword=keyword.upper(), args=args.strip(), line=start + 1))
        i += 1
    return out


def _escape_char(lines: list[str]) -> str:
    """`# escape=`` ` directive at the top (before any other line) changes the continuation char."""
    for line in lines:
        match = _DIRECTIVE_RE.match(line.strip())
        if match is None:
            break
        if match.group(1).lower() == "escape" and match.group(2) in ("`", "\\"):
            return match.group(2)
    return "\\"


def _drop_escape(line: str, escape: str) -> str:
    return line[: -len(escape)].rstrip() if line.endswith(escape) else line


def _skip_heredocs(lines: list[str], i: int, logical: str) -> int:
    """Advance past the bodies of `<<EOF` heredocs opened on this instruction."""
    for match in _HEREDOC_RE.finditer(logical):
        word = match.group(2)
        while i + 1 < len(lines):
            i += 1
            if lines[i].strip() == word:
                break
    return i


def placeholder_reasons(instructions: list[Instruction]) -> list[str]:
    known = [ins for ins in instructions if ins.keyword in INSTRUCTIONS]
    if not known:
        return [ONLY_COMMENTS, NO_FROM, NO_INSTALL, NO_START, TOO_FEW]
    reasons: list[str] = []
    keywords = {ins.keyword for ins in known}
    if "FROM" not in keywords:
        reasons.append(NO_FROM)
    if not any(ins.keyword == "RUN" and _BUNDLE_INSTALL_RE.search(ins.args) for ins in known):
        reasons.append(NO_INSTALL)
    if not keywords & {"CMD", "ENTRYPOINT"}:
        reasons.append(NO_START)
    if len(known) < 3:
        reasons.append(TOO_FEW)
    return reasons


def docker_facts(files: ProjectFiles, roots: list[str], errors: list[str]) -> DockerFacts:
    path = find_dockerfile(files, roots)
    if path is None:
        return DockerFacts()
    source = files.get(path)
    if source is None:
        return DockerFacts(path=path, placeholder_reasons=[UNREADABLE], hadolint=[])
    try:
        text = source.read_text()
    except OSError as exc:
        errors.append(f"{path}: unreadable ({exc})"[:200])
        return DockerFacts(path=path, placeholder_reasons=[UNREADABLE], hadolint=[])
    issues, available = run_hadolint(source, errors)
    instructions = parse_instructions(text)
    return DockerFacts(
        path=path,
        placeholder_reasons=placeholder_reasons(instructions),
        hadolint=issues,
        hadolint_available=available,
        healthcheck_line=healthcheck_line(instructions),
    )


def healthcheck_line(instructions: list[Instruction]) -> int | None:
    """The last HEALTHCHECK wins in Docker; `HEALTHCHECK NONE` disables an inherited one."""
    checks = [i for i in instructions if i.keyword == "HEALTHCHECK"]
    if not checks or checks[-1].args.strip().upper() == "NONE":
        return None
    return checks[-1].line


def hadolint_binary() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("hadolint")


def run_hadolint(source: SourceFile, errors: list[str]) -> tuple[list[LintIssue], bool]:
    if os.environ.get("SHIPBENCH_NO_EXTERNAL_LINTERS"):
        errors.append("hadolint: skipped (SHIPBENCH_NO_EXTERNAL_LINTERS is set)")
        return [], False
    binary = hadolint_binary()
    if binary is None:
        errors.append("hadolint: binary not found")
        return [], False
    try:
        with tempfile.TemporaryDirectory(prefix="shipbench-hadolint-") as neutral:
            env = {"PATH": os.environ.get("PATH", ""), "HOME": neutral, "XDG_CONFIG_HOME": neutral}
            proc = subprocess.run(
                [binary, "-f", "json", "--no-fail", str(source.abs_path)],
                cwd=neutral,
                env=env,
                capture_output=True,
                timeout=HADOLINT_TIMEOUT_S,
                check=False,
            )
        raw = json.loads(proc.stdout.decode("utf-8", errors="replace") or "null")
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        errors.append(f"hadolint: {type(exc).__name__}: {exc}"[:200])
        return [], False
    if proc.returncode != 0 or not isinstance(raw, list):
        errors.append(f"hadolint: exit {proc.returncode}: {proc.stderr.decode(errors='replace')[:150]}")
        return [], False
    return [issue for item in raw if (issue := _lint_issue(source.rel, item)) is not None], True


def _lint_issue(rel: str, item: object) -> LintIssue | None:
    if not isinstance(item, dict):
        return None
    line = item.get("line")
    return LintIssue(
        path=rel,
        line=line if isinstance(line, int) and line > 0 else 0,
        code=str(item.get("code", "")),
        level=str(item.get("level", "")),
        message=str(item.get("message", "")).splitlines()[0][:300] if item.get("message") else "",
    )
