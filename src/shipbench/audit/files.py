"""The audited project's files, walked once, safely.

Invariants: nothing outside the project root is ever read (symlinks are resolved and checked,
never followed out); vendor/, node_modules/, tmp/, log/, .git/ and friends are skipped; a binary,
huge (> MAX_FILE_BYTES) or unreadable file is recorded as a `FileIssue` and never raises.
Paths are POSIX strings relative to the project root, sorted, so every consumer sees one order.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from shipbench.audit.models import FileIssue

MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_FILES = 20_000
SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "vendor",
        "node_modules",
        "tmp",
        "log",
        "coverage",
        ".bundle",
        "storage",
        ".cache",
        ".yarn",
        "public/assets",
        "public/packs",
        ".mise",
        ".venv",
        "__pycache__",
    }
)
TEXT_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class SourceFile:
    """A readable text file of the project."""

    rel: str
    abs_path: Path
    size: int

    def read_bytes(self) -> bytes:
        return self.abs_path.read_bytes()

    def read_text(self) -> str:
        return self.abs_path.read_bytes().decode("utf-8", errors="replace")

    @property
    def name(self) -> str:
        return self.rel.rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        name = self.name
        return name[name.rfind(".") :].lower() if "." in name else ""


@dataclass
class ProjectFiles:
    """Every readable text file under a root, plus the ones that could not be read."""

    root: Path
    files: dict[str, SourceFile] = field(default_factory=dict)
    issues: list[FileIssue] = field(default_factory=list)
    truncated: bool = False

    @classmethod
    def scan(cls, root: Path) -> ProjectFiles:
        root = root.resolve()
        project = cls(root=root)
        for rel, path in _walk(root, project):
            project._admit(rel, path)
            if len(project.files) >= MAX_FILES:
                project.truncated = True
                break
        project.files = dict(sorted(project.files.items()))
        project.issues.sort(key=lambda i: (i.path, i.status))
        return project

    def _admit(self, rel: str, path: Path) -> None:
        try:
            size = path.stat().st_size
        except OSError as exc:
            self.issues.append(FileIssue(path=rel, status="unreadable", detail=str(exc)))
            return
        if size > MAX_FILE_BYTES:
            self.issues.append(FileIssue(path=rel, status="too_large", detail=f"{size} bytes"))
            return
        try:
            with path.open("rb") as fh:
                head = fh.read(TEXT_SNIFF_BYTES)
        except OSError as exc:
            self.issues.append(FileIssue(path=rel, status="unreadable", detail=str(exc)))
            return
        if b"\x00" in head:
            self.issues.append(FileIssue(path=rel, status="binary"))
            return
        self.files[rel] = SourceFile(rel=rel, abs_path=path, size=size)

    def get(self, rel: str) -> SourceFile | None:
        return self.files.get(rel)

    def under(self, prefix: str, *suffixes: str) -> list[SourceFile]:
        """Files whose path starts with `prefix` ('' for all), optionally filtered by suffix."""
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        return [
            f
            for rel, f in self.files.items()
            if rel.startswith(prefix) and (not suffixes or any(rel.endswith(s) for s in suffixes))
        ]

    def exists(self, rel: str) -> bool:
        return rel in self.files


def _walk(root: Path, project: ProjectFiles) -> Iterator[tuple[str, Path]]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        rel_dir = base.relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        kept: list[str] = []
        for d in sorted(dirnames):
            rel = f"{rel_dir}/{d}" if rel_dir else d
            if d in SKIP_DIRS or rel in SKIP_DIRS:
                continue
            full = base / d
            if full.is_symlink():
                _record_link(root, full, rel, project, is_dir=True)
                continue
            kept.append(d)
        dirnames[:] = kept
        for name in sorted(filenames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            full = base / name
            if full.is_symlink():
                target = _record_link(root, full, rel, project, is_dir=False)
                if target is not None:
                    yield rel, target
                continue
            yield rel, full


def _record_link(root: Path, link: Path, rel: str, project: ProjectFiles, *, is_dir: bool) -> Path | None:
    """Resolve a symlink; return its target when it stays inside the root and is a file."""
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        project.issues.append(FileIssue(path=rel, status="unreadable", detail=f"broken symlink: {exc}"))
        return None
    if not target.is_relative_to(root):
        project.issues.append(
            FileIssue(path=rel, status="symlink_outside", detail="symlink points outside the project")
        )
        return None
    if is_dir or not target.is_file():
        return None  # in-tree directory links are skipped: their target is walked on its own
    return target
