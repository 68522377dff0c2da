"""Binary discovery order, version parsing and `detect_version` against real processes."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from shipbench.agents.discovery import TOOLS_BIN_ENV, detect_version, find_binary
from shipbench.agents.registry import ADAPTERS, get_adapter

REAL_BIN_DIRS = [Path("/tmp/npmtools/bin")]


def script(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cap = ADAPTERS["codex"].capabilities
    env_dir, repo, path_dir = tmp_path / "envbin", tmp_path / "repo", tmp_path / "pathbin"
    in_path = script(path_dir, "codex", "echo path")
    monkeypatch.setenv("PATH", f"{path_dir}:/usr/bin:/bin")
    monkeypatch.delenv(TOOLS_BIN_ENV, raising=False)
    assert find_binary(cap, None, root=repo) == in_path
    in_repo = script(repo / ".tools" / "npm" / "bin", "codex", "echo repo")
    assert find_binary(cap, None, root=repo) == in_repo
    in_env = script(env_dir, "codex", "echo env")
    monkeypatch.setenv(TOOLS_BIN_ENV, str(env_dir))
    assert find_binary(cap, None, root=repo) == in_env
    override = script(tmp_path / "custom", "my-codex", "echo override")
    assert find_binary(cap, str(override), root=repo) == override
    # an explicit override that is missing (or not executable) is not replaced by another binary
    assert find_binary(cap, str(tmp_path / "nope"), root=repo) is None
    (tmp_path / "plain").write_text("x")
    assert find_binary(cap, str(tmp_path / "plain"), root=repo) is None
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv(TOOLS_BIN_ENV, str(tmp_path / "empty"))
    assert find_binary(cap, None, root=tmp_path / "norepo") is None


@pytest.mark.parametrize(("name", "output", "version"), [
    ("opencode", "1.18.33\n", "1.18.33"),
    ("codex", "codex-cli 0.169.0\n", "0.169.0"),
    ("claude", "2.1.330 (Claude Code)\n", "2.1.330"),
    ("gemini", "0.61.0\n", "0.61.0"),
    ("gemini", "0.62.0-nightly.20261120\n", "0.62.0-nightly.20261120"),
    ("codex", "WARNING: no helper\ncodex-cli 0.169.0", "0.169.0"),
    ("claude", "no version here", ""),
])
def test_parse_version_of_real_outputs(name: str, output: str, version: str) -> None:
    assert ADAPTERS[name].parse_version(output) == version


def test_detect_version_uses_a_private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-secret")
    record = tmp_path / "seen"
    binary = script(tmp_path, "codex",
                    f'echo "$HOME|$OPENROUTER_API_KEY|$1" > {record}; echo "codex-cli 0.169.0"; echo warn >&2')
    version = asyncio.run(detect_version(get_adapter("codex"), binary))
    assert version == "0.169.0"
    home, key, arg = record.read_text().strip().split("|")
    assert home != os.environ.get("HOME") and "shipbench-version-" in home
    assert not Path(home).exists()  # the throw-away HOME is removed
    assert key == "" and arg == "--version"


def test_detect_version_failures_return_none(tmp_path: Path) -> None:
    adapter = get_adapter("opencode")
    failing = script(tmp_path, "fails", "echo 1.2.3; exit 3")
    silent = script(tmp_path, "silent", "echo no version")
    assert asyncio.run(detect_version(adapter, failing)) is None
    assert asyncio.run(detect_version(adapter, silent)) is None
    assert asyncio.run(detect_version(adapter, tmp_path / "missing")) is None
    (tmp_path / "noexec").write_text("echo 1.0.0")
    assert asyncio.run(detect_version(adapter, tmp_path / "noexec")) is None


def test_detect_version_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    hanging = script(tmp_path, "hangs", f"sleep 300 & echo $! > {pidfile}; wait")
    started = time.monotonic()
    assert asyncio.run(detect_version(get_adapter("gemini"), hanging, timeout=0.5)) is None
    assert time.monotonic() - started < 5
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 3
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        stat = Path(f"/proc/{child}/stat").read_text() if Path(f"/proc/{child}/stat").exists() else ""
        if ") Z " in stat:  # a zombie awaiting its (dead) parent's reaper is gone for our purposes
            break
        time.sleep(0.05)
    stat = Path(f"/proc/{child}/stat").read_text() if Path(f"/proc/{child}/stat").exists() else ""
    assert stat == "" or ") Z " in stat, "the grandchild of a timed-out version probe survived"


def _real_binary(name: str) -> Path:
    cap = ADAPTERS[name].capabilities
    found = find_binary(cap, None)
    if found is None:
        for directory in REAL_BIN_DIRS:
            if (directory / cap.binary).exists():
                return directory / cap.binary
        pytest.skip(f"{cap.binary} not installed ({cap.npm_package}@{cap.npm_version}); run the setup script")
    return found


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_real_cli_version(name: str) -> None:
    adapter = get_adapter(name)
    version = asyncio.run(detect_version(adapter, _real_binary(name)))
    assert version == adapter.capabilities.npm_version
