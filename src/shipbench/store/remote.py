"""Results in shared storage (any fsspec URL: s3://, gs://, file://, memory://), laid out like a local results dir.

Invariants: a remote trial is finished only when its trial.json exists: an upload deletes the old trial.json
first and writes the new one last, so a reader never sees a trial.json beside a half-uploaded trial; paths are
always built from safe components below the root; every storage error is a `RemoteStoreError` whose message is
one line naming the URL, never a traceback and never a credential.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from shipbench.store.layout import component_problem

RECORD = "trial.json"
SKIPPED_NAME = "upload-skipped.json"  # what an upload did not copy (symlinks, special files)
MANIFEST_NAME = "upload-manifest.json"  # empty dirs and executable files (object stores keep neither)
_SIDECARS = (SKIPPED_NAME, MANIFEST_NAME)
_REPORT_FILES = re.compile(r"(trial|audit|validation)\.json|audit\.rescored-[^/]+\.json|phases/[^/]+/llm_calls\.jsonl")
_MIRROR_MARK = ".shipbench-mirror"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@")
_SECRET_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_SECRET_OPTIONS = ("key", "secret", "token", "password", "aws_access_key_id", "aws_secret_access_key")
_MAX_MESSAGE = 400


class RemoteStoreError(RuntimeError):
    """A shared-storage operation failed; the message is one line naming the URL."""


def is_url(location: str) -> bool:
    """A `scheme://...` location (s3://bucket/prefix, file:///abs, memory://x); a plain path is not one."""
    return bool(_URL.match(location))


@dataclass(frozen=True)
class SkippedFile:
    path: str  # relative to the trial dir, POSIX separators
    reason: str


@dataclass
class UploadReport:
    url: str  # the remote trial dir
    uploaded: list[str] = field(default_factory=list)  # relative paths, trial.json last
    removed: list[str] = field(default_factory=list)  # stale remote files deleted (not in the local dir any more)
    skipped: list[SkippedFile] = field(default_factory=list)
    empty_dirs: list[str] = field(default_factory=list)  # recreated on download (from upload-manifest.json)
    executable: list[str] = field(default_factory=list)  # made executable again on download
    bytes: int = 0


def _display(url: str) -> str:
    return _USERINFO.sub(r"\1", url)


def _one_line(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _checked_rel(rel: str) -> str:
    """`rel` as a relative POSIX path of safe components (raises RemoteStoreError otherwise)."""
    parts = PurePosixPath(rel).parts
    if not parts or rel.startswith("/"):
        raise RemoteStoreError(f"unsafe relative path {rel!r}: it must be non-empty and relative")
    for part in parts:
        if problem := component_problem(part):
            raise RemoteStoreError(f"unsafe relative path {rel!r}: component {part!r} {problem}")
    return "/".join(parts)


@dataclass
class _Scan:
    files: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    executable: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)


def _scan(root: Path) -> _Scan:
    """Regular files, empty directories, executables and skipped entries below `root` (relative POSIX
    paths); symlinks are never followed."""
    found = _Scan()

    def walk(directory: Path, rel: str) -> None:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
        if not entries and rel:
            found.empty.append(rel)
        for entry in entries:
            child = f"{rel}/{entry.name}" if rel else entry.name
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                found.skipped.append(SkippedFile(child, f"symlink to {os.readlink(entry.path)}: not followed"))
            elif stat.S_ISDIR(mode):
                walk(Path(entry.path), child)
            elif stat.S_ISREG(mode):
                found.files.append(child)
                if mode & stat.S_IXUSR:
                    found.executable.append(child)
            else:
                found.skipped.append(SkippedFile(child, "not a regular file (socket, fifo or device)"))

    walk(root, "")
    return found


class RemoteResults:
    """A results root (`<root>/<suite>/<trial-id>/...`) on an fsspec filesystem."""

    def __init__(self, fs: Any, root: str, url: str, secrets: list[str]) -> None:
        self._fs = fs
        self._root = root.rstrip("/")
        self.url = _display(url.rstrip("/"))
        self._secrets = secrets

    @classmethod
    def open(cls, url: str, storage_options: dict[str, Any] | None = None) -> RemoteResults:
        """The results root at `url`. S3 endpoint and credentials come from the usual AWS environment
        (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...), read by s3fs/botocore; `storage_options` go to fsspec."""
        options = dict(storage_options or {})
        secrets = [os.environ[k] for k in _SECRET_ENV if os.environ.get(k)]
        secrets += [str(v) for k, v in options.items() if k in _SECRET_OPTIONS and v]
        if not is_url(url):
            raise RemoteStoreError(f"{_display(url)}: not a URL (expected scheme://..., e.g. s3://bucket/prefix)")
        try:
            import fsspec

            fs, root = fsspec.core.url_to_fs(url, skip_instance_cache=True, **options)
        except ImportError as exc:
            raise RemoteStoreError(
                f"{_display(url)}: {_one_line(str(exc), secrets)} (for s3:// install shipbench[cluster])"
            ) from None
        except Exception as exc:
            raise RemoteStoreError(f"{_display(url)}: {type(exc).__name__}: {_one_line(str(exc), secrets)}") from None
        return cls(fs, str(root), url, secrets)

    # -- helpers -------------------------------------------------------------------------------------

    @contextmanager
    def _guard(self, what: str, where: str = "") -> Iterator[None]:
        try:
            yield
        except RemoteStoreError:
            raise
        except Exception as exc:
            target = f"{self.url}/{where}" if where else self.url
            detail = _one_line(f"{type(exc).__name__}: {exc}", self._secrets)
            raise RemoteStoreError(f"{target}: {what} failed: {detail}") from None

    def _path(self, rel: str = "") -> str:
        return f"{self._root}/{_checked_rel(rel)}" if rel else self._root

    @staticmethod
    def _trial_rel(suite: str, trial_id: str) -> str:
        for what, value in (("suite name", suite), ("trial id", trial_id)):
            if problem := component_problem(value):
                raise RemoteStoreError(f"{what} {value!r} {problem}")
        return f"{suite}/{trial_id}"

    def _rel_of(self, path: str, base: str) -> str:
        """`path` (as the filesystem lists it) relative to `base`, checked safe."""
        prefix = self._fs._strip_protocol(base).rstrip("/") + "/"
        stripped = self._fs._strip_protocol(path)
        if not stripped.startswith(prefix):
            raise RemoteStoreError(f"{self.url}: listed {path!r} outside {base!r}")
        return _checked_rel(stripped[len(prefix) :])

    def _files_below(self, base: str) -> list[str]:
        """Relative paths of every file below `base` (empty when it does not exist)."""
        self._fs.invalidate_cache()
        try:
            found = self._fs.find(base)
        except FileNotFoundError:
            return []
        return sorted(self._rel_of(p, base) for p in found)

    # -- trials --------------------------------------------------------------------------------------

    def upload_trial(self, local_trial_dir: Path, suite: str, trial_id: str) -> UploadReport:
        """Copy the local trial dir (every regular file, workspace/.git included; trial.json last)."""
        rel = self._trial_rel(suite, trial_id)
        base = self._path(rel)
        report = UploadReport(url=f"{self.url}/{rel}")
        try:
            scan = _scan(local_trial_dir)
        except OSError as exc:
            raise RemoteStoreError(f"{local_trial_dir}: cannot read the trial dir: {exc.strerror or exc}") from None
        if RECORD not in scan.files:
            raise RemoteStoreError(f"{local_trial_dir}: no {RECORD}: not a finished trial dir, nothing uploaded")
        files = [f for f in scan.files if f not in _SIDECARS]
        report.skipped, report.empty_dirs = scan.skipped, scan.empty
        report.executable = [f for f in scan.executable if f in files]
        with self._guard("upload", rel):
            existing = self._files_below(base)
            if RECORD in existing:  # first: from here on no reader takes this trial as finished
                self._fs.rm_file(f"{base}/{RECORD}")
            keep = {*files, MANIFEST_NAME, *([SKIPPED_NAME] if report.skipped else [])}
            stale = [f for f in existing if f != RECORD and f not in keep]
            if stale:
                self._fs.rm([f"{base}/{f}" for f in stale])
            report.removed = stale
            body = [f for f in files if f != RECORD]
            if body:
                self._fs.put([str(local_trial_dir / f) for f in body], [f"{base}/{f}" for f in body])
            if report.skipped:
                listing = [{"path": s.path, "reason": s.reason} for s in report.skipped]
                self._fs.pipe_file(f"{base}/{SKIPPED_NAME}", json.dumps(listing, indent=2).encode())
            manifest = {"empty_dirs": report.empty_dirs, "executable": report.executable}
            self._fs.pipe_file(f"{base}/{MANIFEST_NAME}", json.dumps(manifest, indent=2).encode())
            self._fs.put_file(str(local_trial_dir / RECORD), f"{base}/{RECORD}")
            report.uploaded = [*body, RECORD]
            report.bytes = sum((local_trial_dir / f).stat().st_size for f in report.uploaded)
        return report

    def download_trial(self, suite: str, trial_id: str, local_trial_dir: Path) -> bool:
        """Replace `local_trial_dir` with the remote trial; False (local dir untouched) when it has no trial.json."""
        rel = self._trial_rel(suite, trial_id)
        base = self._path(rel)
        with self._guard("download", rel):
            record = self._cat_or_none(f"{base}/{RECORD}")
            if record is None:
                return False
            files = [f for f in self._files_below(base) if f != RECORD]
            local_trial_dir.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{local_trial_dir.name}.", dir=local_trial_dir.parent))
            try:
                body = [f for f in files if f != MANIFEST_NAME]
                for f in body:
                    (staging / f).parent.mkdir(parents=True, exist_ok=True)
                if body:
                    self._fs.get([f"{base}/{f}" for f in body], [str(staging / f) for f in body])
                if MANIFEST_NAME in files:
                    self._apply_manifest(json.loads(self._fs.cat_file(f"{base}/{MANIFEST_NAME}")), staging)
                if self._cat_or_none(f"{base}/{RECORD}") != record:
                    raise RemoteStoreError(f"{self.url}/{rel}: trial changed during the download (re-uploaded?)")
                (staging / RECORD).write_bytes(record)
                staging.chmod(0o755)  # mkdtemp's 0700 would hide the trial from the group
                if local_trial_dir.is_symlink() or local_trial_dir.is_file():
                    local_trial_dir.unlink()
                elif local_trial_dir.exists():
                    shutil.rmtree(local_trial_dir)
                staging.rename(local_trial_dir)
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)
        return True

    @staticmethod
    def _apply_manifest(manifest: object, staging: Path) -> None:
        if not isinstance(manifest, dict):
            return
        for d in manifest.get("empty_dirs", []):
            (staging / _checked_rel(str(d))).mkdir(parents=True, exist_ok=True)
        for f in manifest.get("executable", []):
            path = staging / _checked_rel(str(f))
            if path.is_file():
                path.chmod(path.stat().st_mode | 0o111)

    def _cat_or_none(self, path: str) -> bytes | None:
        try:
            data = self._fs.cat_file(path)
        except FileNotFoundError:
            return None
        return bytes(data)

    def trial_ids(self, suite: str) -> list[str]:
        """Finished trials of `suite` (those with a trial.json), sorted."""
        self._trial_rel(suite, "x")
        base = self._path(suite)
        with self._guard("listing trials", suite):
            self._fs.invalidate_cache()
            found = self._fs.glob(f"{base}/*/{RECORD}")
        ids = {self._rel_of(p, base).split("/")[0] for p in found}
        return sorted(ids)

    def read_trial_json(self, suite: str, trial_id: str) -> str | None:
        rel = self._trial_rel(suite, trial_id)
        with self._guard("reading trial.json", rel):
            data = self._cat_or_none(f"{self._path(rel)}/{RECORD}")
        return None if data is None else data.decode("utf-8")

    def upload_file(self, local: Path, remote_rel: str) -> None:
        """Copy one local file (e.g. `<suite>/index.sqlite`) to `remote_rel` below the root."""
        target = self._path(remote_rel)
        with self._guard("upload", remote_rel):
            self._fs.put_file(str(local), target)

    # -- report --------------------------------------------------------------------------------------

    def mirror_for_report(self, suite_or_root: str, cache: Path) -> Path:
        """Download what `shipbench report` and `rescore` read (trial.json, audit*.json, validation.json,
        phases/*/llm_calls.jsonl; no workspaces) of every finished trial below `suite_or_root` ("" for the
        root itself, else a relative path such as a suite name) into `cache`, laid out like a local results
        dir; returns `cache`. `cache` must be empty, missing, or an earlier mirror (whose content is replaced)."""
        base = self._path(suite_or_root.strip("/"))
        where = suite_or_root.strip("/")
        self._prepare_cache(cache)
        with self._guard("mirroring for the report", where):
            self._fs.invalidate_cache()
            try:
                self._fs.ls(base, detail=False)
            except FileNotFoundError as exc:
                target = f"{self.url}/{where}" if where else self.url
                detail = _one_line(str(exc), self._secrets)
                raise RemoteStoreError(f"{target}: no such results location ({detail})") from None
            trial_dirs = self._trial_dirs(base)
            wanted: list[str] = []
            for trial in trial_dirs:
                trial_base = base if trial == "." else f"{base}/{trial}"
                names = [self._rel_of(p, trial_base) for p in self._fs.ls(trial_base, detail=False)]
                names += [self._rel_of(p, trial_base) for p in self._fs.glob(f"{trial_base}/phases/*/llm_calls.jsonl")]
                prefix = "" if trial == "." else f"{trial}/"
                wanted += [prefix + n for n in sorted(set(names)) if _REPORT_FILES.fullmatch(n)]
            fetched = self._fs.cat([f"{base}/{w}" for w in wanted], on_error="return") if wanted else {}
            by_rel = {self._rel_of(p, base): v for p, v in fetched.items()}
        for rel in wanted:
            data = by_rel.get(rel)
            if isinstance(data, FileNotFoundError):
                continue  # removed since the listing (a re-upload): the report sees the trial as it is now
            if isinstance(data, BaseException) or data is None:
                detail = _one_line(f"{type(data).__name__}: {data}", self._secrets)
                raise RemoteStoreError(f"{self.url}/{where}: mirroring {rel} failed: {detail}")
            out_file = cache / rel
            out_file.parent.mkdir(parents=True, exist_ok=True)
            out_file.write_bytes(bytes(data))
        return cache

    def _trial_dirs(self, base: str) -> list[str]:
        """Trial dirs below `base` as report's `discover` finds them: base itself, <base>/<trial> or
        <base>/<suite>/<trial> ("." for base itself); never a trial.json inside a trial (a workspace's)."""
        if self._fs.glob(f"{base}/{RECORD}"):
            return ["."]
        level2 = [str(PurePosixPath(self._rel_of(p, base)).parent) for p in self._fs.glob(f"{base}/*/{RECORD}")]
        trials = {t for t in level2 if not t.startswith(".")}
        deeper = [str(PurePosixPath(self._rel_of(p, base)).parent) for p in self._fs.glob(f"{base}/*/*/{RECORD}")]
        trials.update(
            d
            for d in deeper
            if d.split("/")[0] not in trials and not any(part.startswith(".") for part in d.split("/"))
        )
        return sorted(trials)

    @staticmethod
    def _prepare_cache(cache: Path) -> None:
        try:
            if cache.exists():
                children = list(cache.iterdir())
                if children and not (cache / _MIRROR_MARK).is_file():
                    raise RemoteStoreError(f"{cache}: not empty and not an earlier mirror: refusing to replace it")
                for child in children:
                    if child.name == _MIRROR_MARK:
                        continue
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
            cache.mkdir(parents=True, exist_ok=True)
            (cache / _MIRROR_MARK).write_text("mirror of remote results; replaced on each mirror\n", encoding="utf-8")
        except OSError as exc:
            raise RemoteStoreError(f"{cache}: cannot prepare the mirror dir: {exc.strerror or exc}") from None
