"""Results in shared storage: a real S3-compatible server (moto) on 127.0.0.1, s3fs through fsspec, and memory://."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from tests.report_helpers import make_audit, make_record, write_trial
from typer.testing import CliRunner

from shipbench.cli import app
from shipbench.report.load import load_results
from shipbench.store.remote import MANIFEST_NAME, SKIPPED_NAME, RemoteResults, RemoteStoreError, is_url

SECRET = "test-secret-value-42"
runner = CliRunner()


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoint: str) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A fresh bucket on the loopback server, with the AWS environment pointing at it."""
    _aws_env(monkeypatch, tmp_path, s3_endpoint)
    name = f"shipbench-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


def _git(ws: Path, *args: str) -> None:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(ws), *args],
        check=True,
        capture_output=True,
        env=env,
    )


def build_trial(suite_dir: Path, agent: str = "codex", model_id: str = "a", score: int = 70) -> Path:
    """A realistic trial dir: trial.json, audit, validation, phase logs (one binary), a git workspace."""
    root = write_trial(suite_dir, make_record(agent, model_id, suite=suite_dir.name), make_audit(score))
    phase = root / "phases" / "1"
    (phase / "llm_calls.jsonl").write_text('{"n": 1}\n{"n": 2}\n', encoding="utf-8")
    (phase / "events.jsonl").write_text('{"type": "start"}\n', encoding="utf-8")
    (phase / "stderr.log").write_bytes(bytes(range(256)) * 4)
    (root / "validation.json").write_text('{"steps": []}', encoding="utf-8")
    (root / "audit.rescored-abc123.json").write_text(make_audit(score - 5).model_dump_json(), encoding="utf-8")
    (root / "home" / ".cache").mkdir(parents=True)
    ws = root / "workspace"
    (ws / "app" / "models").mkdir(parents=True)
    (ws / "app" / "models" / "chat.rb").write_text("class Chat < ApplicationRecord\nend\n", encoding="utf-8")
    (ws / "bin").mkdir()
    (ws / "bin" / "rails").write_text("#!/usr/bin/env ruby\n", encoding="utf-8")
    (ws / "bin" / "rails").chmod(0o755)
    subprocess.run(["git", "init", "-q", str(ws)], check=True, capture_output=True)
    _git(ws, "add", "-A")
    _git(ws, "commit", "-q", "-m", "first")
    return root


def tree(root: Path) -> tuple[dict[str, bytes], set[str]]:
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    dirs = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir()}
    return files, dirs


def remote_files(remote: RemoteResults, rel: str) -> set[str]:
    return set(remote._files_below(remote._path(rel)))


def test_is_url() -> None:
    assert is_url("s3://bucket/prefix") and is_url("file:///abs/path") and is_url("memory://x")
    assert not is_url("results") and not is_url("/abs/results") and not is_url("C:\\results")


def test_upload_then_download_is_byte_identical_with_git(bucket: str, tmp_path: Path) -> None:
    local = build_trial(tmp_path / "res" / "suite1")
    remote = RemoteResults.open(f"s3://{bucket}/results")
    report = remote.upload_trial(local, "suite1", local.name)
    assert report.uploaded[-1] == "trial.json" and not report.skipped and not report.removed
    assert any(f.startswith("workspace/.git/objects/") for f in report.uploaded)
    assert remote.trial_ids("suite1") == [local.name]
    assert remote.read_trial_json("suite1", local.name) == (local / "trial.json").read_text(encoding="utf-8")

    back = tmp_path / "back" / local.name
    assert RemoteResults.open(f"s3://{bucket}/results").download_trial("suite1", local.name, back)
    assert tree(back) == tree(local)  # files byte for byte, and the empty dirs too
    assert os.access(back / "workspace" / "bin" / "rails", os.X_OK)
    log = subprocess.run(
        ["git", "-C", str(back / "workspace"), "log", "--format=%s"], capture_output=True, text=True, check=True
    )
    assert log.stdout.strip() == "first"
    subprocess.run(["git", "-C", str(back / "workspace"), "fsck", "--strict"], check=True, capture_output=True)


def test_download_of_unknown_trial_is_false_and_leaves_local(bucket: str, tmp_path: Path) -> None:
    keep = tmp_path / "t"
    keep.mkdir()
    (keep / "mine.txt").write_text("x")
    assert not RemoteResults.open(f"s3://{bucket}/r").download_trial("suite1", "nope", keep)
    assert [p.name for p in keep.iterdir()] == ["mine.txt"]


def _record_calls(fs: Any, monkeypatch: pytest.MonkeyPatch, record_path: str) -> list[tuple[str, str, bool]]:
    """Wrap the filesystem's writes: (method, first target, whether trial.json existed at that moment)."""
    calls: list[tuple[str, str, bool]] = []
    for name in ("put", "put_file", "pipe_file", "rm", "rm_file"):
        original: Callable[..., Any] = getattr(fs, name)

        def wrapper(*args: Any, _name: str = name, _original: Callable[..., Any] = original, **kw: Any) -> Any:
            target = args[1] if _name.startswith("put") else args[0]
            first = target[0] if isinstance(target, list) else target
            fs.invalidate_cache()
            calls.append((_name, str(first), bool(fs.exists(record_path))))
            return _original(*args, **kw)

        monkeypatch.setattr(fs, name, wrapper)
    return calls


def test_reupload_deletes_old_trial_json_first_and_writes_it_last(
    bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = build_trial(tmp_path / "suite1")
    remote = RemoteResults.open(f"s3://{bucket}/res")
    remote.upload_trial(local, "suite1", local.name)
    (local / "phases" / "1" / "stderr.log").unlink()  # a re-run phase deleted its old log
    (local / "phases" / "2").mkdir()
    (local / "phases" / "2" / "events.jsonl").write_text("{}\n")
    record_path = f"{bucket}/res/suite1/{local.name}/trial.json"
    calls = _record_calls(remote._fs, monkeypatch, record_path)
    report = remote.upload_trial(local, "suite1", local.name)

    assert calls[0][0] == "rm_file" and calls[0][1].endswith("/trial.json")
    assert calls[-1][0] == "put_file" and calls[-1][1].endswith("/trial.json")
    assert all(not existed for _, _, existed in calls[1:])  # no new file ever written beside the old trial.json
    assert report.removed == ["phases/1/stderr.log"]
    expected = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()} | {MANIFEST_NAME}
    assert remote_files(remote, f"suite1/{local.name}") == expected


def test_crash_before_the_last_step_leaves_no_finished_trial(
    bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = build_trial(tmp_path / "suite1")
    remote = RemoteResults.open(f"s3://{bucket}/res")
    remote.upload_trial(local, "suite1", local.name)  # an earlier, complete upload

    def crash(*args: Any, **kw: Any) -> None:
        raise ConnectionResetError("simulated crash")

    monkeypatch.setattr(remote._fs, "put_file", crash)  # only trial.json goes through put_file
    with pytest.raises(RemoteStoreError, match="simulated crash"):
        remote.upload_trial(local, "suite1", local.name)

    reader = RemoteResults.open(f"s3://{bucket}/res")
    assert reader.trial_ids("suite1") == [] and reader.read_trial_json("suite1", local.name) is None
    assert "workspace/app/models/chat.rb" in remote_files(reader, f"suite1/{local.name}")  # half-uploaded
    assert not reader.download_trial("suite1", local.name, tmp_path / "back")
    mirror = reader.mirror_for_report("", tmp_path / "cache")
    assert load_results(mirror).trials == []


def test_symlinks_and_fifos_are_skipped_and_listed(bucket: str, tmp_path: Path) -> None:
    local = build_trial(tmp_path / "suite1")
    outside = tmp_path / "outside-secret.txt"
    outside.write_text("not to be uploaded")
    (local / "workspace" / "link.txt").symlink_to(outside)
    (local / "home" / "dirlink").symlink_to(tmp_path)
    os.mkfifo(local / "workspace" / "pipe")
    remote = RemoteResults.open(f"s3://{bucket}/res")
    report = remote.upload_trial(local, "suite1", local.name)
    assert {s.path for s in report.skipped} == {"workspace/link.txt", "home/dirlink", "workspace/pipe"}
    assert any("symlink" in s.reason for s in report.skipped)
    listed = remote._fs.cat_file(f"{bucket}/res/suite1/{local.name}/{SKIPPED_NAME}").decode()
    assert "workspace/link.txt" in listed and "workspace/pipe" in listed

    back = tmp_path / "back"
    assert remote.download_trial("suite1", local.name, back)
    assert not (back / "workspace" / "link.txt").exists() and not (back / "home" / "dirlink").exists()
    assert b"not to be uploaded" not in b"".join(tree(back)[0].values())

    for p in (local / "workspace" / "link.txt", local / "home" / "dirlink", local / "workspace" / "pipe"):
        p.unlink()
    assert not remote.upload_trial(local, "suite1", local.name).skipped
    assert SKIPPED_NAME not in remote_files(remote, f"suite1/{local.name}")


def test_download_replaces_local_content(bucket: str, tmp_path: Path) -> None:
    local = build_trial(tmp_path / "suite1")
    remote = RemoteResults.open(f"s3://{bucket}/res")
    remote.upload_trial(local, "suite1", local.name)
    back = tmp_path / "back"
    (back / "phases" / "9").mkdir(parents=True)
    (back / "phases" / "9" / "old.log").write_text("stale")
    assert remote.download_trial("suite1", local.name, back)
    assert not (back / "phases" / "9").exists() and (back / "trial.json").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging dir left behind


def _two_trial_results(tmp_path: Path) -> tuple[Path, Path]:
    suite = tmp_path / "res" / "suite1"
    return build_trial(suite, "codex", "a", 70), build_trial(suite, "opencode", "b", 40)


def test_mirror_for_report_with_the_real_loader(bucket: str, tmp_path: Path) -> None:
    first, second = _two_trial_results(tmp_path)
    remote = RemoteResults.open(f"s3://{bucket}/results")
    for trial in (first, second):
        remote.upload_trial(trial, "suite1", trial.name)
    index = tmp_path / "index.sqlite"
    index.write_bytes(b"SQLite format 3\x00")
    remote.upload_file(index, "suite1/index.sqlite")
    assert remote._fs.cat_file(f"{bucket}/results/suite1/index.sqlite") == index.read_bytes()

    mirror = remote.mirror_for_report("", tmp_path / "cache")
    files = {p.relative_to(mirror).as_posix() for p in mirror.rglob("*") if p.is_file()}
    for trial in (first, second):
        prefix = f"suite1/{trial.name}/"
        assert {
            f"{prefix}trial.json",
            f"{prefix}audit.json",
            f"{prefix}validation.json",
            f"{prefix}audit.rescored-abc123.json",
            f"{prefix}phases/1/llm_calls.jsonl",
        } <= files
    assert not any("/workspace/" in f or "events.jsonl" in f or "/home/" in f for f in files)
    result = load_results(mirror)
    assert sorted((r.config_key, r.score) for r in result.trials) == [("codex / a", 70.0), ("opencode / b", 40.0)]
    assert not result.problems and not result.skipped

    again = remote.mirror_for_report("", tmp_path / "cache")  # an earlier mirror is replaced, not merged
    assert again == mirror and len(load_results(again).trials) == 2
    suite_only = RemoteResults.open(f"s3://{bucket}/results/suite1").mirror_for_report("", tmp_path / "c2")
    assert len(load_results(suite_only).trials) == 2
    by_name = remote.mirror_for_report("suite1", tmp_path / "c3")
    assert len(load_results(by_name).trials) == 2
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(RemoteStoreError, match="refusing"):
        remote.mirror_for_report("", foreign)
    assert (foreign / "keep.txt").read_text() == "mine"


def test_cli_report_from_s3_url(bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for trial in _two_trial_results(tmp_path):
        RemoteResults.open(f"s3://{bucket}/prefix").upload_trial(trial, "suite1", trial.name)
    md = tmp_path / "out" / "leaderboard.md"
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    result = runner.invoke(app, ["report", f"s3://{bucket}/prefix", "--md", str(md)])
    assert result.exit_code == 0, result.output
    assert list(temp.iterdir()) == []  # the temporary mirror is removed when the command ends
    text = md.read_text()
    assert text.startswith("# shipbench leaderboard") and "codex / a" in text and "opencode / b" in text
    cache = tmp_path / "cache"
    result = runner.invoke(app, ["report", f"s3://{bucket}/prefix", "--cache", str(cache)])
    assert result.exit_code == 0 and "| 1 | codex / a |" in result.stdout
    assert (cache / "suite1").is_dir()


def _one_line_error(result: Any) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and SECRET not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return str(lines[0])


def test_missing_bucket_is_one_clear_line(bucket: str, tmp_path: Path) -> None:
    line = _one_line_error(runner.invoke(app, ["report", "s3://no-such-bucket-here/prefix"]))
    assert "s3://no-such-bucket-here/prefix" in line and "bucket does not exist" in line
    with pytest.raises(RemoteStoreError, match=r"^s3://no-such-bucket-here/r/suite1/") as info:
        RemoteResults.open("s3://no-such-bucket-here/r").upload_trial(build_trial(tmp_path / "s"), "suite1", "t1")
    assert "\n" not in str(info.value) and SECRET not in str(info.value)


def test_missing_prefix_is_one_clear_line(bucket: str) -> None:
    line = _one_line_error(runner.invoke(app, ["report", f"s3://{bucket}/nothing-here"]))
    assert "no such results location" in line


def test_unreachable_endpoint_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    _aws_env(monkeypatch, tmp_path, f"http://127.0.0.1:{port}")
    line = _one_line_error(runner.invoke(app, ["report", "s3://some-bucket/prefix"]))
    assert "s3://some-bucket/prefix" in line and f"127.0.0.1:{port}" in line
    with pytest.raises(RemoteStoreError, match=r"^s3://some-bucket/prefix/s1: listing trials failed"):
        RemoteResults.open("s3://some-bucket/prefix").trial_ids("s1")


def test_unsafe_names_are_refused(bucket: str, tmp_path: Path) -> None:
    remote = RemoteResults.open(f"s3://{bucket}/r")
    local = build_trial(tmp_path / "s")
    for suite, trial in (("..", "t"), ("s", "a/b"), ("s", "")):
        with pytest.raises(RemoteStoreError, match=r"suite name|trial id"):
            remote.upload_trial(local, suite, trial)
    with pytest.raises(RemoteStoreError, match="unsafe"):
        remote.upload_file(local / "trial.json", "../escape.json")


def test_memory_filesystem_roundtrip(tmp_path: Path) -> None:
    url = f"memory://shipbench-{uuid.uuid4().hex[:8]}/results"
    local = build_trial(tmp_path / "res" / "suite1")
    remote = RemoteResults.open(url)
    try:
        assert remote.trial_ids("suite1") == []
        remote.upload_trial(local, "suite1", local.name)
        assert remote.trial_ids("suite1") == [local.name]
        back = tmp_path / "back"
        assert remote.download_trial("suite1", local.name, back)
        assert tree(back) == tree(local)
        assert [r.score for r in load_results(remote.mirror_for_report("", tmp_path / "cache")).trials] == [70.0]
        with pytest.raises(RemoteStoreError, match="no such results location"):
            remote.mirror_for_report("other-suite", tmp_path / "c2")
    finally:
        remote._fs.rm(remote._root, recursive=True)


def test_no_trial_json_locally_uploads_nothing(tmp_path: Path) -> None:
    url = f"memory://shipbench-{uuid.uuid4().hex[:8]}"
    partial = tmp_path / "partial"
    (partial / "phases" / "1").mkdir(parents=True)
    (partial / "phases" / "1" / "events.jsonl").write_text("{}")
    remote = RemoteResults.open(url)
    with pytest.raises(RemoteStoreError, match=r"no trial\.json"):
        remote.upload_trial(partial, "s", "t")
    assert remote_files(remote, "s/t") == set()


def test_not_a_url_or_unknown_scheme() -> None:
    with pytest.raises(RemoteStoreError, match="not a URL"):
        RemoteResults.open("results/suite1")
    with pytest.raises(RemoteStoreError, match=r"^nosuchscheme://x"):
        RemoteResults.open("nosuchscheme://x")
