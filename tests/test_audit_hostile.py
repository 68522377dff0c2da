"""Hostile project directories: FIFOs and sockets (also swapped in after the scan), undecodable file
names, junk that exhausts the file budget. The audit always finishes, records what it skipped, and
says `incomplete: ...` when it could not see the whole project."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from tests.conftest import FIXTURES, RUBY_LLM_GEM, write_tree
from typer.testing import CliRunner

from shipbench.audit import engine
from shipbench.audit.engine import audit_project
from shipbench.audit.files import ProjectFiles, UnreadableFile, read_regular
from shipbench.audit.models import AuditResult
from shipbench.audit.serialize import to_json
from shipbench.cli import app

T = TypeVar("T")
GEMS = {"ruby_llm": RUBY_LLM_GEM}
TEXTBOOK = FIXTURES / "rails_chat" / "textbook_tier_a"
HANG_S = 60.0  # far beyond what these audits take; reaching it means the audit blocked
KEY = "sk-or-v1-" + "9f3a7c21d4e8b6051a2f9c7d3e1b8a4f6c0d2e9b7a5f3c1d8e6b4a2f0c9d7e5b"


def _finishes(fn: Callable[[], T]) -> T:
    """Run `fn` in a daemon thread; fail (instead of hanging the suite) if it blocks."""
    out: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG_S)
    assert not thread.is_alive(), "audit blocked (opened a FIFO?)"
    if errors:
        raise errors[0]
    return out[0]


def _app(tmp_path: Path, name: str = "proj") -> Path:
    dest = tmp_path / name
    shutil.copytree(TEXTBOOK, dest)
    return dest


def _issues(result: AuditResult | ProjectFiles) -> dict[str, tuple[str, str]]:
    items = result.file_issues if isinstance(result, AuditResult) else result.issues
    return {i.path: (i.status, i.detail) for i in items}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> AuditResult:
    return audit_project(_app(tmp_path_factory.mktemp("base")), "rails-chat", GEMS)


# ---------------------------------------------------------------- FIFOs, sockets


def test_fifo_in_project_is_recorded_and_audit_finishes(tmp_path: Path, baseline: AuditResult) -> None:
    project = _app(tmp_path)
    os.mkfifo(project / "app/models/x.rb")
    os.mkfifo(project / "README.tmp")
    result = _finishes(lambda: audit_project(project, "rails-chat", GEMS))
    issues = _issues(result)
    assert issues["app/models/x.rb"][0] == "not_regular"
    assert "FIFO" in issues["app/models/x.rb"][1]
    assert issues["README.tmp"][0] == "not_regular"
    assert (result.verdict, result.score) == (baseline.verdict, baseline.score) == ("scored", baseline.score)


def test_socket_and_symlink_to_fifo_are_not_regular(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_tree(tmp_path, {"app/a.rb": "A = 1\n"})
    os.mkfifo(root / "pipe")
    os.symlink(root / "pipe", root / "app/link.rb")
    monkeypatch.chdir(root / "app")  # AF_UNIX paths are short: bind a relative name
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind("s.sock")
        files = _finishes(lambda: ProjectFiles.scan(root))
    finally:
        sock.close()
    issues = _issues(files)
    assert issues["app/s.sock"] == ("not_regular", "not a regular file: socket")
    assert issues["app/link.rb"] == ("not_regular", "symlink to a FIFO (named pipe)")
    assert list(files.files) == ["app/a.rb"]


def test_file_swapped_for_fifo_after_scan_is_refused_not_read(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"app/models/x.rb": "class X; end\n"})
    files = ProjectFiles.scan(root)
    source = files.get("app/models/x.rb")
    assert source is not None and source.read_text() == "class X; end\n"
    os.unlink(root / "app/models/x.rb")
    os.mkfifo(root / "app/models/x.rb")
    with pytest.raises(UnreadableFile) as caught:
        _finishes(source.read_bytes)
    assert caught.value.status == "not_regular"
    with pytest.raises(OSError):  # read_text and read_head are just as safe
        _finishes(source.read_text)
    with pytest.raises(OSError):
        _finishes(lambda: source.read_head(128))


def test_read_is_bounded(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 11)
    assert read_regular(tmp_path / "f", limit=11) == b"x" * 11
    with pytest.raises(UnreadableFile) as caught:
        read_regular(tmp_path / "f", limit=10)
    assert caught.value.status == "too_large"


def _swap_after_scan(monkeypatch: pytest.MonkeyPatch, root: Path, rels: list[str]) -> None:
    """Replace `rels` with FIFOs right after the audit's scan, before facts and checks read them."""
    real_scan = ProjectFiles.scan

    def scan_then_swap(path: Path, max_files: int) -> ProjectFiles:
        files = real_scan(path, max_files=max_files)
        for rel in rels:
            os.unlink(root / rel)
            os.mkfifo(root / rel)
        return files

    monkeypatch.setattr(engine.ProjectFiles, "scan", staticmethod(scan_then_swap))


def test_audit_survives_files_swapped_for_fifos_after_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _app(tmp_path)
    swapped = ["app/services/assistant_reply.rb", "README.md", "docker-compose.yml", "Gemfile.lock"]
    _swap_after_scan(monkeypatch, project, swapped)
    result = _finishes(lambda: audit_project(project, "rails-chat", GEMS))
    assert _issues(result)["app/services/assistant_reply.rb"][0] == "not_regular"
    assert result.verdict.startswith("incomplete: ")
    assert "changed during the audit" in result.verdict
    assert "app/services/assistant_reply.rb" in result.verdict
    assert any("README.md" in e or "docker-compose.yml" in e for e in result.facts["fact_errors"])  # type: ignore[union-attr]


# ---------------------------------------------------------------- undecodable names


def _write_bytes_name(root: Path, rel: bytes, data: bytes) -> None:
    fd = os.open(os.fsencode(root) + b"/" + rel, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def test_undecodable_file_name_is_escaped_and_json_written(tmp_path: Path) -> None:
    project = _app(tmp_path)
    _write_bytes_name(project, b"app/models/\xff.rb", f'class Leak\n  KEY = "{KEY}"\nend\n'.encode())
    _write_bytes_name(project, b"\xfe\xfd.env", f"OPENROUTER_API_KEY={KEY}\n".encode())
    out = tmp_path / "out" / "audit.json"
    md = tmp_path / "out" / "audit.md"
    cli = CliRunner().invoke(
        app, ["audit", str(project), "--gem-source", f"ruby_llm={RUBY_LLM_GEM}", "--json", str(out), "--md", str(md)]
    )
    assert cli.exit_code == 0, cli.output
    text = out.read_text(encoding="utf-8")
    data = json.loads(text)
    assert "\\xff" in md.read_text(encoding="utf-8")
    evidence = {e["path"] for f in data["findings"] for e in f["evidence"]}
    assert "app/models/\\xff.rb" in evidence  # the real file was read: its secret was found
    assert "\\xfe\\xfd.env" in evidence
    assert "\udcff" not in text and "\ufffd" not in text


def test_to_json_never_emits_invalid_utf8(baseline: AuditResult) -> None:
    broken = baseline.model_copy(update={"project": "p\udcff"})
    text = to_json(broken)
    text.encode("utf-8")
    assert json.loads(text)["project"] == "p\udcff"


# ---------------------------------------------------------------- file budget


def _junk(root: Path, folder: str, n: int) -> None:
    (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / folder / f"j{i:05d}.txt").write_text("junk\n", encoding="utf-8")


def test_junk_cannot_crowd_out_the_app(tmp_path: Path, baseline: AuditResult) -> None:
    project = _app(tmp_path)
    _junk(project, "aaa", 150)  # sorts before app/
    _junk(project, "", 150)  # beside the Gemfile
    result = audit_project(project, "rails-chat", GEMS, max_files=100)
    assert result.score == baseline.score
    assert result.verdict == (
        "incomplete: file budget exhausted: stopped after 100 files (budget 100, see --max-files), "
        "the rest of the project was not read"
    )
    facts = result.facts
    assert (facts["files_truncated"], facts["files_seen"], facts["file_budget"]) == (True, 100, 100)
    assert facts["incomplete"] == [result.verdict.removeprefix("incomplete: ")]
    full = audit_project(project, "rails-chat", GEMS, max_files=1000)
    assert (full.verdict, full.facts["files_truncated"], full.facts["files_seen"]) == ("scored", False, 331)


def test_a_few_thousand_junk_files_in_one_folder(tmp_path: Path, baseline: AuditResult) -> None:
    project = _app(tmp_path)
    _junk(project, "data", 3000)
    result = audit_project(project, "rails-chat", GEMS, max_files=2000)
    assert result.score == baseline.score
    assert result.verdict.startswith("incomplete: file budget exhausted: stopped after 2,000 files")
    app_files = {p.relative_to(TEXTBOOK).as_posix() for p in TEXTBOOK.rglob("*") if p.is_file()}
    scanned = ProjectFiles.scan(project, max_files=2000)
    assert app_files <= set(scanned.files)
    assert len(scanned.files) == 2000


def test_budget_exhausted_without_rails_files_says_incomplete(tmp_path: Path) -> None:
    _junk(tmp_path, "", 20)
    result = audit_project(tmp_path, max_files=5)
    assert result.verdict.startswith("incomplete: file budget exhausted")
    assert result.verdict.endswith("not a Rails project: no Gemfile declaring rails and no config/application.rb")


def test_empty_folders_are_bounded_too(tmp_path: Path) -> None:
    for i in range(30):
        (tmp_path / f"d{i:02d}").mkdir()
    files = ProjectFiles.scan(tmp_path, max_files=10)
    assert files.truncated and files.seen == 0


def test_cli_max_files_says_incomplete(tmp_path: Path) -> None:
    project = _app(tmp_path)
    _junk(project, "aaa", 40)
    out = tmp_path / "a.json"
    cli = CliRunner().invoke(app, ["audit", str(project), "--max-files", "30", "--json", str(out)])
    assert cli.exit_code == 0, cli.output
    assert "warning: incomplete audit" in cli.stderr
    assert "stopped after 30 files (budget 30" in cli.stderr
    assert json.loads(out.read_text())["verdict"].startswith("incomplete: file budget exhausted")
    refused = CliRunner().invoke(app, ["audit", str(project), "--max-files", "0"])
    assert refused.exit_code == 2


def test_walk_visits_app_source_first(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {"aaa/x.txt": "", "zz.txt": "", "Gemfile": "", "app/m.rb": "", "config/c.rb": "", "chat/Gemfile": ""},
    )
    files = ProjectFiles.scan(root, max_files=4)
    assert set(files.files) == {"Gemfile", "chat/Gemfile", "app/m.rb", "config/c.rb"}
    assert files.truncated and files.seen == 4
    assert ProjectFiles.scan(root).truncated is False
