"""The audited project's files, walked once, safely, within a file budget.

Invariants: only regular files are opened (O_NONBLOCK, fstat on the fd, at most MAX_FILE_BYTES+1 bytes
read), so a FIFO or device, even one swapped in after the scan, is a `FileIssue`, never a hang; nothing
outside the root is read; undecodable name bytes are `\\xNN`-escaped in every path (`display_path`).
Paths are POSIX, relative to the root, sorted; vendor/, node_modules/, .git/ and friends are skipped.
The walk takes the app's own source first and stops after `max_files` entries, setting `truncated`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from shipbench.audit.models import FileIssue, FileStatus

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
# Visited first, at every depth: the app's own source and deliverables (see `_rank`).
PRIORITY_DIRS = frozenset(
    {
        "app",
        "config",
        "lib",
        "test",
        "spec",
        "db",
        "bin",
        "models",
        "controllers",
        "views",
        "services",
        "jobs",
        "helpers",
        "channels",
        "javascript",
        "initializers",
        "environments",
        "migrate",
    }
)
PRIORITY_FILE_PREFIXES = (
    "gemfile",
    "dockerfile",
    "docker-compose",
    "compose.",
    "readme",
    "rakefile",
    "config.ru",
    "procfile",
    "package.json",
    ".env",
    ".ruby-version",
    ".tool-versions",
    "mise.toml",
    ".mise.toml",
    ".dockerignore",
)
APP_MARKERS = ("Gemfile", "config/application.rb")  # a directory holding one is a (nested) app root
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_KINDS = (
    (stat.S_ISFIFO, "FIFO (named pipe)"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISDIR, "directory"),
    (stat.S_ISLNK, "symlink"),
)


class UnreadableFile(OSError):
    """A project file that cannot be read as source now: not a regular file, too large, or gone."""

    def __init__(self, status: FileStatus, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def display_path(rel: str) -> str:
    """`rel` as text that any UTF-8 sink accepts: bytes that are not UTF-8 become `\\xNN` escapes."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(rel).decode("utf-8", errors="backslashreplace")
    return rel


def file_kind(mode: int) -> str:
    """What a non-regular file is, for a FileIssue's detail."""
    return next((name for test, name in _KINDS if test(mode)), f"special file (mode {stat.S_IFMT(mode):o})")


def read_regular(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """At most `limit` bytes of the regular file at `path`; raises `UnreadableFile` otherwise.

    Opened non-blocking and checked on the open descriptor, so a FIFO or device never blocks, whatever
    the path held when it was scanned; a file grown beyond `limit` is refused, not cut.
    """
    data = _read_fd(path, limit + 1)
    if len(data) > limit:
        raise UnreadableFile("too_large", f"more than {limit} bytes")
    return data


@contextmanager
def _regular_fd(path: Path) -> Iterator[tuple[int, os.stat_result]]:
    """A non-blocking descriptor of `path`, checked to be a regular file; every error is UnreadableFile."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise UnreadableFile("unreadable", str(exc)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableFile("not_regular", f"not a regular file: {file_kind(st.st_mode)}")
        yield fd, st
    except UnreadableFile:
        raise
    except OSError as exc:
        raise UnreadableFile("unreadable", str(exc)) from None
    finally:
        os.close(fd)


def _read_fd(path: Path, limit: int) -> bytes:
    with _regular_fd(path) as (fd, _):
        chunks: list[bytes] = []
        left = limit
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)


def _sniff(path: Path) -> tuple[int, bytes]:
    """(size, first bytes) of a regular file, from one non-blocking open."""
    with _regular_fd(path) as (fd, st):
        return st.st_size, os.read(fd, TEXT_SNIFF_BYTES)


@dataclass(frozen=True)
class SourceFile:
    """A readable text file of the project. `rel` is the display path; `abs_path` the real one."""

    rel: str
    abs_path: Path
    size: int

    def read_bytes(self) -> bytes:
        """The file's bytes; `UnreadableFile` (an OSError) if it is no longer a regular file under the limit."""
        return read_regular(self.abs_path)

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8", errors="replace")

    def read_head(self, n: int) -> bytes:
        """At most the first `n` bytes, read as safely as `read_bytes`."""
        return _read_fd(self.abs_path, n)

    @property
    def name(self) -> str:
        return self.rel.rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        name = self.name
        return name[name.rfind(".") :].lower() if "." in name else ""


@dataclass
class ProjectFiles:
    """Every readable text file under a root, plus the ones that could not be read.

    `seen` counts the file entries the walk took in (files, links, FIFOs...); `truncated` says the walk
    stopped at `max_files` of them, with more left unread.
    """

    root: Path
    files: dict[str, SourceFile] = field(default_factory=dict)
    issues: list[FileIssue] = field(default_factory=list)
    truncated: bool = False
    max_files: int = MAX_FILES
    seen: int = 0

    @classmethod
    def scan(cls, root: Path, max_files: int = MAX_FILES) -> ProjectFiles:
        if max_files < 1:
            raise ValueError(f"max_files must be at least 1, got {max_files}")
        root = root.resolve()
        project = cls(root=root, max_files=max_files)
        for rel, path in _walk(root, project):
            project._admit(rel, path)
        project.files = dict(sorted(project.files.items()))
        project.issues.sort(key=lambda i: (i.path, i.status))
        return project

    def take(self) -> bool:
        """Count one more file entry; False (and `truncated`) once the budget is spent."""
        if self.seen >= self.max_files:
            self.truncated = True
            return False
        self.seen += 1
        return True

    def record(self, rel: str, status: FileStatus, detail: str = "") -> None:
        self.issues.append(FileIssue(path=rel, status=status, detail=detail))

    def _admit(self, rel: str, path: Path) -> None:
        try:
            size, head = _sniff(path)
        except UnreadableFile as exc:
            self.record(rel, exc.status, exc.detail)
            return
        if size > MAX_FILE_BYTES:
            self.record(rel, "too_large", f"{size} bytes")
        elif b"\x00" in head:
            self.record(rel, "binary")
        elif rel in self.files:
            self.record(rel, "unreadable", "another file has the same escaped name")
        else:
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


def _rank(entry: os.DirEntry[str], is_dir: bool) -> int:
    """Walk order within a directory: deliverable files, nested app roots, source dirs, the rest."""
    lower = entry.name.lower()
    if not is_dir:
        return 0 if lower.startswith(PRIORITY_FILE_PREFIXES) else 3
    if any(os.path.lexists(os.path.join(entry.path, marker)) for marker in APP_MARKERS):
        return 1
    return 2 if entry.name in PRIORITY_DIRS else 4


def _listing(path: Path, project: ProjectFiles, rel_dir: str) -> list[tuple[int, str, os.DirEntry[str], bool]]:
    """The directory's entries in walk order; unreadable directories are recorded and yield nothing."""
    out: list[tuple[int, str, os.DirEntry[str], bool]] = []
    try:
        with os.scandir(path) as it:
            for entry in it:
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    is_dir = False
                out.append((_rank(entry, is_dir), entry.name, entry, is_dir))
    except OSError as exc:
        project.record(display_path(rel_dir or "."), "unreadable", f"directory not listed: {exc}")
    out.sort(key=lambda t: (t[0], t[1]))
    return out


def _walk(root: Path, project: ProjectFiles) -> Iterator[tuple[str, Path]]:
    """(display rel, real path) of every file entry worth sniffing, depth first in `_rank` order."""
    stack = [(root, "", iter(_listing(root, project, "")))]
    dirs = 1
    while stack:
        base, rel_dir, entries = stack[-1]
        item = next(entries, None)
        if item is None:
            stack.pop()
            continue
        _, name, entry, is_dir = item
        raw_rel = f"{rel_dir}/{name}" if rel_dir else name
        full = base / name
        if is_dir:
            if name in SKIP_DIRS or raw_rel in SKIP_DIRS:
                continue
            dirs += 1
            if dirs > project.max_files:  # a forest of empty folders is bounded too
                project.truncated = True
                return
            stack.append((full, raw_rel, iter(_listing(full, project, raw_rel))))
            continue
        if not project.take():
            return
        rel = display_path(raw_rel)
        if entry.is_symlink():
            target = _record_link(root, full, rel, project)
            if target is not None:
                yield rel, target
        elif entry.is_file(follow_symlinks=False):
            yield rel, full
        else:
            _record_special(full, rel, project)


def _record_special(path: Path, rel: str, project: ProjectFiles) -> None:
    try:
        kind = file_kind(os.lstat(path).st_mode)
    except OSError as exc:
        project.record(rel, "unreadable", str(exc))
        return
    project.record(rel, "not_regular", f"not a regular file: {kind}")


def _record_link(root: Path, link: Path, rel: str, project: ProjectFiles) -> Path | None:
    """Resolve a symlink; return its target when it stays inside the root and is a regular file."""
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        project.record(rel, "unreadable", f"broken symlink: {exc}")
        return None
    if not target.is_relative_to(root):
        project.record(rel, "symlink_outside", "symlink points outside the project")
        return None
    try:
        mode = os.stat(target).st_mode
    except OSError as exc:
        project.record(rel, "unreadable", f"broken symlink: {exc}")
        return None
    if stat.S_ISDIR(mode):
        return None  # in-tree directory links are skipped: their target is walked on its own
    if not stat.S_ISREG(mode):
        project.record(rel, "not_regular", f"symlink to a {file_kind(mode)}")
        return None
    return target
