"""Find an installed gem's source at the exact locked version, and cache its `ApiIndex` on disk.

Invariants: nothing is ever downloaded; a version other than the locked one is never used for
verdicts (the `GemSource` then has `used_version=None` and a note saying what was found instead);
search roots are injectable so tests never depend on this machine's gems; a corrupt or stale cache
file is ignored and rewritten, and cache I/O failures only cost speed.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from shipbench.audit.ruby.api_index import (
    EXTRACTOR_VERSION,
    build_index,
    name_version_from_dir,
    source_files,
    version_from_source,
)
from shipbench.audit.ruby.api_model import ApiIndex
from shipbench.audit.ruby.verify_types import GemSource

INDEX_FORMAT = "1"  # bump when the extractor's output changes, to invalidate disk caches
_MEMO: dict[tuple[str, str, str | None, str], ApiIndex] = {}

_HOME_GLOBS = (
    ".local/share/mise/installs/ruby/*/lib/ruby/gems/*/gems",
    ".rbenv/versions/*/lib/ruby/gems/*/gems",
    ".asdf/installs/ruby/*/lib/ruby/gems/*/gems",
    ".rvm/gems/*/gems",
    ".rvm/rubies/*/lib/ruby/gems/*/gems",
    ".gem/ruby/*/gems",
    ".bundle/ruby/*/gems",
)
_SYSTEM_GLOBS = (
    "/usr/lib/ruby/gems/*/gems",
    "/usr/local/lib/ruby/gems/*/gems",
    "/var/lib/gems/*/gems",
    "/usr/share/rubygems-integration/all/gems",
)


def _env_roots() -> list[Path]:
    roots = []
    for var in ("GEM_HOME", "GEM_PATH"):
        for part in os.environ.get(var, "").split(os.pathsep):
            if part:
                roots.append(Path(part) / "gems")
    return roots


def _gem_env_roots(timeout: float = 5.0) -> list[Path]:
    exe = shutil.which("gem")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "env", "gempath"], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [Path(p) / "gems" for p in out.stdout.strip().split(os.pathsep) if p]


def default_roots(project_dir: Path | None = None) -> list[Path]:
    """Every place an installed gem may live, most specific first (project bundle, env, managers)."""
    roots: list[Path] = []
    if project_dir is not None:
        roots += [Path(p) for p in sorted(glob.glob(str(project_dir / "vendor/bundle/ruby/*/gems")))]
    roots += _env_roots() + _gem_env_roots()
    home = Path.home()
    for pattern in _HOME_GLOBS:
        roots += [Path(p) for p in sorted(glob.glob(str(home / pattern)))]
    for pattern in _SYSTEM_GLOBS:
        roots += [Path(p) for p in sorted(glob.glob(pattern))]
    unique: list[Path] = []
    for root in roots:
        if root not in unique:
            unique.append(root)
    return unique


def _installed_versions(name: str, roots: Sequence[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for root in roots:
        try:
            candidates = sorted(root.glob(f"{glob.escape(name)}-*"))
        except OSError:
            continue
        for path in candidates:
            dir_name, version = name_version_from_dir(path)
            if dir_name == name and version and path.is_dir():
                found.setdefault(version, path)
    return found


def installed_gem(name: str, roots: Sequence[Path] | None = None) -> dict[str, Path]:
    """The versions of `name` that discovery finds installed (version -> directory), without any explicit source."""
    return _installed_versions(name, default_roots() if roots is None else roots)


def locate_gem(
    name: str, version: str | None, explicit: dict[str, Path], roots: Sequence[Path] | None = None
) -> tuple[GemSource, Path | None]:
    """Where `name` at the locked `version` is installed, as a `GemSource` plus its directory."""
    if name in explicit:
        given = explicit[name]
        if not (given / "lib").is_dir() and _installed_versions(name, [given]):
            roots = [given]  # a folder of unpacked versions (ruby_llm-1.14.1/, ruby_llm-1.16.0/): pick the locked one
        else:
            return _explicit(name, version, given)
    found = _installed_versions(name, default_roots() if roots is None else roots)
    if version is not None and version in found:
        path = found[version]
        return GemSource(gem=name, locked_version=version, used_version=version, path=str(path)), path
    if version is None:
        note = f"{name}: no locked version; calls left unverifiable"
    elif found:
        others = ", ".join(sorted(found))
        note = f"{name} {version} not installed; found {others} only: calls left unverifiable"
    else:
        note = f"{name} {version} not installed: calls left unverifiable"
    return GemSource(gem=name, locked_version=version, used_version=None, path=None, note=note), None


def _explicit(name: str, version: str | None, path: Path) -> tuple[GemSource, Path | None]:
    if not path.is_dir():
        note = f"--gem-source {name}: {path} is not a directory"
        return GemSource(gem=name, locked_version=version, used_version=None, path=None, note=note), None
    dir_name, dir_version = name_version_from_dir(path)
    source_version = version_from_source(path, name) or (dir_version if dir_name == name else None)
    if version and source_version and source_version != version:
        # another version's API is no oracle for this lock: a method added or removed between them
        # would be a false verdict, so none is given
        note = f"--gem-source {name}: found {source_version}, locked {version}: calls left unverifiable"
        return GemSource(gem=name, locked_version=version, used_version=None, path=None, note=note), None
    note = "explicit --gem-source"
    return (
        GemSource(
            gem=name,
            locked_version=version,
            used_version=source_version or version,
            path=str(path),
            note=note,
        ),
        path,
    )


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "shipbench" / "api-index"


def source_digest(gem_dir: Path) -> str:
    """Hash of the indexed file list with sizes and mtimes: any edit changes it."""
    digest = hashlib.sha256(INDEX_FORMAT.encode())
    for path in source_files(gem_dir):
        try:
            stat = path.stat()
        except OSError:
            continue
        digest.update(f"{path.relative_to(gem_dir).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def index_cached(gem_dir: Path, gem: str, version: str | None) -> ApiIndex:
    """`build_index`, memoised in-process and on disk; keyed by the sources' digest and EXTRACTOR_VERSION
    (a changed extractor must not reuse an index an older one wrote)."""
    digest = source_digest(gem_dir)
    key = (str(gem_dir.resolve()), gem, version, digest)
    if key in _MEMO:
        return _MEMO[key]
    path = cache_dir() / f"{_safe(gem)}-{_safe(version or 'unknown')}-{digest}-x{EXTRACTOR_VERSION}.json"
    index = _read_cache(path, gem_dir)
    if index is None:
        index = build_index(gem_dir, gem, version)
        _write_cache(path, index)
    _MEMO[key] = index
    return index


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)


def _read_cache(path: Path, gem_dir: Path) -> ApiIndex | None:
    try:
        index = ApiIndex.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError):
        return None
    return index if index.root == str(gem_dir) else None


def _write_cache(path: Path, index: ApiIndex) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(index.model_dump_json(), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        return
