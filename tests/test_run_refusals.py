"""`shipbench run` refuses, with exit code 2 and one exact line, what it cannot run as asked, before writing.

Covers: unsafe names (suite, model, agent variant, subagent) and the layout's own containment check, suite
files that are not UTF-8 / not readable / not TOML, --agent and --model matching nothing, an agent CLI that
is not installed, a max_usd budget for a model with no price, and the exclusive lock on --out between real
processes (a real `shipbench run` holding it, one SIGKILLed holder; released on Ctrl-C and on a crash).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.test_trial_support import write_task
from typer.testing import CliRunner

import shipbench.runner.refusals as refusals_mod
from shipbench.agents.registry import get_adapter
from shipbench.cli import app
from shipbench.config import ConfigError, ModelConfig, Pricing, load_suite
from shipbench.runner.command import DEMO_SUITE
from shipbench.runner.suite import run_suite
from shipbench.store.layout import SuitePaths, UnsafePathError, checked_suite_paths
from shipbench.store.lock import LOCK_NAME, holder, results_lock

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
SEP = "contains a path separator ('/' or '\\')"


def _suite(tmp: Path, name: str = "s", *, agent: str = 'name = "codex"', model: str = "", extra: str = "") -> Path:
    path = tmp / "suite.toml"
    path.write_text(
        f'name = {json.dumps(name)}\n{extra}\n[[agents]]\n{agent}\n\n[[models]]\nid = "rp"\nmodel = "replay-model"\n'
        f'provider = "replay"\nreplay_script = "hello"\n{model}\n',
        encoding="utf-8",
    )
    return path


def _only_error(output: str) -> str:
    """The one error line of an output; all that may precede it are gem-source `note:` hints."""
    *before, last = output.splitlines()
    assert all(line.startswith("note: ") for line in before), output
    return last


def _refused(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["run", *args])
    assert (result.exit_code, _only_error(result.output)) == (2, f"error: {message}"), result.output


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("..", "is empty, '.' or '..'"),
        (".", "is empty, '.' or '..'"),
        ("", "is empty, '.' or '..'"),
        ("-rf", "starts with '-'"),
        ("a/b", SEP),
        ("..\\x", SEP),
        ("a\x00b", "contains a NUL or control character"),
    ],
)
def test_unsafe_suite_name_is_refused_and_nothing_is_written(tmp_path: Path, name: str, problem: str) -> None:
    suite = _suite(tmp_path, name)
    _refused(
        [str(suite), "--out", str(tmp_path / "out")],
        f"{suite}: name: {name!r} is not a safe path component (it {problem})",
    )
    assert sorted(tmp_path.iterdir()) == [suite]  # no results, no index.sqlite, no lock file anywhere


def test_suite_name_outside_the_safe_charset_is_refused(tmp_path: Path) -> None:
    suite = _suite(tmp_path, "my suite")
    _refused([str(suite)], f"{suite}: name: 'my suite' may only use letters, digits, '.', '_' and '-'")


@pytest.mark.parametrize(
    ("agent", "model", "message"),
    [
        ('name = "codex"', "", None),  # the model id is replaced below
        (
            'name = "codex"\nprompt_variant = "../x"',
            "",
            f"agents.0.prompt_variant: '../x' is not a safe path component (it {SEP})",
        ),
        ('name = "-codex"', "", "agents.0.name: '-codex' is not a safe path component (it starts with '-')"),
        (
            'name = "claude"',
            '[[models.subagents]]\nname = "../../evil"\nmodel = "m"',
            f"models.0.subagents.0.name: '../../evil' is not a safe path component (it {SEP})",
        ),
    ],
)
def test_unsafe_ids_are_refused_naming_the_field(tmp_path: Path, agent: str, model: str, message: str | None) -> None:
    suite = _suite(tmp_path, agent=agent, model=model)
    if message is None:
        suite.write_text(suite.read_text().replace('id = "rp"', 'id = "../rp"'), encoding="utf-8")
        message = f"models.0.id: '../rp' is not a safe path component (it {SEP})"
    _refused([str(suite), "--out", str(tmp_path / "out")], f"{suite}: {message}")
    assert not (tmp_path / "out").exists()


def test_layout_refuses_paths_leaving_out(tmp_path: Path) -> None:
    with pytest.raises(
        UnsafePathError,
        match=r"^suite name '\.\.' is empty, '\.' or '\.\.': it must be a single "
        r"directory name$",
    ):
        checked_suite_paths(tmp_path, "..")
    with pytest.raises(UnsafePathError, match=r"^trial id '\.\./x' contains a path separator"):
        SuitePaths(tmp_path / "s").trial("../x")
    assert checked_suite_paths(tmp_path, "s").trial("t").root == (tmp_path / "s" / "t").absolute()
    # a config that skipped validation still cannot make run_suite write outside --out
    config = load_suite(DEMO_SUITE).model_copy(update={"name": ".."})
    with pytest.raises(ConfigError, match=r"^suite name '\.\.' is empty"):
        asyncio.run(run_suite(config, out=tmp_path / "out", handle_signals=False))
    assert list(tmp_path.iterdir()) == []


def test_suite_file_not_utf8_unreadable_or_not_toml(tmp_path: Path) -> None:
    latin = tmp_path / "latin1.toml"
    latin.write_bytes(b'name = "caf\xe9"\n')
    _refused([str(latin)], f"{latin}: not valid UTF-8 (byte 0xe9 at offset 11); save it as UTF-8")
    _refused([str(tmp_path)], f"{tmp_path}: is a directory, not a suite file")
    (tmp_path / "file").write_text("x")
    _refused(
        [str(tmp_path / "file" / "suite.toml")],
        f"{tmp_path / 'file' / 'suite.toml'}: cannot read the suite file: Not a directory",
    )
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "x"\nrepeats = \n', encoding="utf-8")
    _refused([str(broken)], f"{broken}: invalid TOML: Invalid value (at line 2, column 11)")


def test_filters_matching_nothing_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    agents = "(agents: opencode, codex, claude, gemini)"
    _refused(
        [str(DEMO_SUITE), "--out", str(out), "--agent", "nope"],
        f"--agent 'nope' matches no agent of suite 'demo' {agents}",
    )
    _refused(
        [str(DEMO_SUITE), "--out", str(out), "--model", "nope"],
        "--model 'nope' matches no model of suite 'demo' (models: replay)",
    )
    _refused(
        [str(DEMO_SUITE), "--out", str(out), "--agent", "x", "--model", "y"],
        f"--agent 'x' matches no agent of suite 'demo' {agents}; "
        "--model 'y' matches no model of suite 'demo' (models: replay)",
    )
    assert not out.exists()


def test_agent_not_installed_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = _suite(tmp_path, agent='name = "codex"\nbinary = "/nonexistent/codex"')
    _refused(
        [str(suite), "--out", str(tmp_path / "out")],
        "agent 'codex': binary /nonexistent/codex is not an executable file",
    )
    monkeypatch.setattr(refusals_mod, "find_binary", lambda cap, override: None)
    cap = get_adapter("gemini").capabilities
    _refused(
        [str(DEMO_SUITE), "--out", str(tmp_path / "out"), "--agent", "gemini"],
        f"agent 'gemini': `{cap.binary}` is not installed (npm {cap.npm_package}@{cap.npm_version}; "
        "scripts/setup.sh installs it into .tools/npm)",
    )
    assert not (tmp_path / "out").exists()


def test_cost_budget_without_a_price_is_refused(tmp_path: Path) -> None:
    suite = _suite(tmp_path, agent='name = "codex"\nbinary = "/bin/true"', extra="[budget]\nmax_usd = 2.5\n")
    _refused(
        [str(suite), "--out", str(tmp_path / "out")],
        "budget max_usd = 2.5 cannot be enforced for model 'rp' (replay-model, provider replay): the price "
        "table does not know it; give its price in the suite (models.pricing: input_per_mtok, "
        "output_per_mtok) or drop max_usd",
    )
    assert not (tmp_path / "out").exists()
    priced = ModelConfig(
        id="rp", model="replay-model", provider="replay", pricing=Pricing(input_per_mtok=1, output_per_mtok=2)
    )
    known = ModelConfig(id="s", model="anthropic/claude-sonnet-4.5", provider="openrouter")
    assert refusals_mod.unpriced(priced, 2.5) is None and refusals_mod.unpriced(known, 2.5) is None


FAKE_CODEX = """#!/bin/sh
case "$1" in --version) echo "codex-cli 0.50.0"; exit 0;; esac
exec sleep 120
"""


def _shipbench(*args: str) -> list[str]:
    return [sys.executable, "-m", "shipbench", "run", *args]


def _wait_for_holder(lock: Path, pid: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while f"pid {pid} " not in holder(lock):
        assert proc.poll() is None, proc.communicate()[0].decode(errors="replace")
        assert time.monotonic() < deadline, "the first process never took the lock"
        time.sleep(0.1)


def _assert_refused_by(suite: Path, out: Path, pid: int) -> None:
    second = subprocess.run(
        _shipbench(str(suite), "--out", str(out)),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        cwd=REPO,
    )
    assert second.returncode == 2, second.stdout + second.stderr
    pattern = (
        rf"error: {re.escape(str(out))} is in use by another shipbench run \(pid {pid} on host "
        rf"{re.escape(socket.gethostname())} since \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00\); wait for it to "
        r"finish or use another --out"
    )
    assert re.fullmatch(pattern, _only_error(second.stderr)), second.stderr
    assert "shipbench run: suite" not in second.stdout  # refused before doing anything


def _lock_is_free(lock: Path) -> bool:
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_second_run_on_a_held_out_is_refused_and_ctrl_c_releases(tmp_path: Path) -> None:
    codex = tmp_path / "codex"
    codex.write_text(FAKE_CODEX)
    codex.chmod(0o755)
    task = write_task(tmp_path / "task", {"one": "Phase one."})
    suite = _suite(
        tmp_path,
        agent=f'name = "codex"\nbinary = "{codex}"',
        extra=f'task = "{task}"\n[limits]\nidle_s = 120\nphase_wall_s = 120\ngrace_s = 1\n',
    )
    out = tmp_path / "out"
    first = subprocess.Popen(
        _shipbench(str(suite), "--out", str(out)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    try:
        _wait_for_holder(out / LOCK_NAME, first.pid, first)
        _assert_refused_by(suite, out, first.pid)
        events = out / "s" / "tiny__codex__rp__r1" / "phases" / "1" / "events.jsonl"
        deadline = time.monotonic() + 60
        while not events.is_file():  # the agent runs: Ctrl-C now goes to the run's own handler
            assert first.poll() is None and time.monotonic() < deadline, "the agent never started"
            time.sleep(0.1)
        first.send_signal(signal.SIGINT)
        output = first.communicate(timeout=60)[0].decode(errors="replace")
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 130, output  # interrupted: the trial resumes on the next run
    assert (out / LOCK_NAME).read_text() == "" and _lock_is_free(out / LOCK_NAME)


def test_lock_dies_with_a_killed_holder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    hold = (
        "import sys, time; from pathlib import Path; from shipbench.store.lock import results_lock\n"
        "with results_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(600)\n"
    )
    holder_proc = subprocess.Popen([sys.executable, "-c", hold, str(out)], stdout=subprocess.PIPE, cwd=REPO)
    try:
        assert holder_proc.stdout is not None and holder_proc.stdout.readline() == b"held\n"
        _assert_refused_by(_suite(tmp_path, agent='name = "codex"\nbinary = "/bin/true"'), out, holder_proc.pid)
    finally:
        holder_proc.kill()  # SIGKILL: no finally runs, the stale details stay in the file
        holder_proc.wait()
    assert f"pid {holder_proc.pid} " in holder(out / LOCK_NAME) and _lock_is_free(out / LOCK_NAME)
    with results_lock(out):
        assert f"pid {os.getpid()} " in holder(out / LOCK_NAME)
    assert (out / LOCK_NAME).read_text() == ""


def test_task_pack_not_utf8_is_refused(tmp_path: Path) -> None:
    task = write_task(tmp_path / "task", {"one": "Phase one."})
    (task / "task.toml").write_bytes(b'id = "caf\xe9"\n')
    suite = _suite(tmp_path, extra=f'task = "{task}"')
    _refused(
        [str(suite), "--out", str(tmp_path / "out")],
        f"task '{task}': cannot read the task pack: 'utf-8' codec can't decode byte 0xe9 in position 9: "
        "invalid continuation byte",
    )


def test_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "results"
    out.write_text("not a directory")
    suite = _suite(tmp_path, agent='name = "codex"\nbinary = "/bin/true"')
    _refused(
        [str(suite), "--out", str(out)],
        f"--out {out}: cannot create or lock the results directory: [Errno 17] File exists: '{out}'",
    )
