"""Agents run sandboxed: a probe agent, started through the runner's spawn path, hunts for the provider key.

(a) bwrap: a real harness process, holding a fake key in its own environ and argv, starts the probe through the
codex adapter's invocation and run_process; the probe sees only its own PID namespace, finds the key in no
/proc/*/environ or cmdline and no file of HOME, workspace or /tmp, cannot list other trials, the results dir or
the checkout, and can write only its workspace, HOME and /tmp. (b) none: the same probe does find the key in the
harness's environ and cmdline, and another trial's files (so (a) can fail). Also: the [sandbox] setting, the
refusal (exit 2), old files staying valid, and (slow) a real CLI completing a replay trial inside bwrap.
Tests that need bwrap skip, saying why, where it cannot run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

import shipbench.sandbox.bwrap as bwrap_mod
from shipbench.cli import app
from shipbench.config import SandboxConfig, SuiteConfig
from shipbench.sandbox.base import SandboxRequest
from shipbench.sandbox.bwrap import BwrapSandbox, tool_trees
from shipbench.sandbox.registry import SandboxUnavailable, resolve_sandbox
from shipbench.store.records import TrialRecord

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
SYSTEM_PYTHON = Path("/usr/bin/python3")
BWRAP_PROBLEM = BwrapSandbox().problem()
needs_bwrap = pytest.mark.skipif(BWRAP_PROBLEM is not None, reason=f"bwrap unusable here: {BWRAP_PROBLEM}")
needs_python = pytest.mark.skipif(not SYSTEM_PYTHON.is_file(), reason=f"the probe needs {SYSTEM_PYTHON}")


def _live_with_marker(marker: str) -> list[int]:
    needle = f"SHIPBENCH_TRIAL_MARKER={marker}".encode()
    found = []
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and needle in Path(f"/proc/{name}/environ").read_bytes().split(b"\0"):
                found.append(int(name))
        except OSError:
            continue
    return found


def _probe_run(tmp: Path, backend: str) -> tuple[dict[str, object], dict[str, Path], str]:
    """Lay out a results dir with two trials, run the probe as trial 1's agent; (probe report, paths, key)."""
    key = f"sk-shipbench-fakekey-{uuid.uuid4().hex}"
    suite = tmp / "out" / "suite"
    own, other = suite / "tiny__codex__rp__r1", suite / "tiny__codex__rp__r2"
    for trial in (own, other):
        (trial / "workspace").mkdir(parents=True)
        (trial / "home").mkdir()
        (trial / "phases" / "1").mkdir(parents=True)
    (other / "home" / "auth.json").write_text(json.dumps({"api_key": key}), encoding="utf-8")
    (other / "phases" / "1" / "events.jsonl").write_text(key + "\n", encoding="utf-8")
    (suite / "index.sqlite").write_text(key, encoding="utf-8")
    tools = tmp / "tools" / "bin"
    tools.mkdir(parents=True)
    probe = tools / "probe"
    probe.write_text(f"#!{SYSTEM_PYTHON}\n" + (HERE / "sandbox_probe.py").read_text(encoding="utf-8"))
    probe.chmod(0o755)
    ws, home = own / "workspace", own / "home"
    sandboxed = backend != "none"
    writes = [ws, home, Path("/tmp"), other / "workspace"]
    if sandboxed:  # unsandboxed, these writes would land on the host for real
        writes += [suite, own, REPO, tools, Path("/etc"), Path("/usr"), Path("/")]
    probe_config = {
        "grep": [str(home), str(ws), "/tmp" if sandboxed else str(suite)],
        "list": [str(suite), str(own), str(other), str(REPO), "/root", str(tmp)],
        "write": [str(p) for p in writes],
        "write_name": f"probe-write-{uuid.uuid4().hex}",
    }
    (ws / "probe.json").write_text(json.dumps(probe_config), encoding="utf-8")
    marker = f"test-sandbox-{uuid.uuid4().hex}"
    harness_config = {
        "backend": backend,
        "workspace": str(ws),
        "home": str(home),
        "probe": str(probe),
        "marker": marker,
        "stderr": str(own / "phases" / "1" / "stderr.log"),
        "token": f"tok-{uuid.uuid4().hex}",
    }
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OPENAI_API_KEY": key, "SHIPBENCH_TEST_KEY": key}
    try:
        done = subprocess.run(
            [sys.executable, str(HERE / "sandbox_harness.py"), json.dumps(harness_config), key],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        (Path("/tmp") / str(probe_config["write_name"])).unlink(missing_ok=True)  # unsandboxed, it is the host's
    assert done.returncode == 0, done.stderr
    assert not _live_with_marker(marker), "a probe process survived"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    stderr = (own / "phases" / "1" / "stderr.log").read_text(encoding="utf-8", errors="replace")
    assert result["exit_code"] == 0 and result["lines"], f"probe failed: {result} {stderr}"
    report = json.loads(result["lines"][-1])
    report["harness"] = result
    report["landed"] = sorted(str(w) for w in writes if (w / str(probe_config["write_name"])).exists())
    paths = {"suite": suite, "own": own, "other": other, "ws": ws, "home": home, "tools": tools, "tmp": tmp}
    return report, paths, key


@needs_bwrap
@needs_python
def test_bwrap_probe_cannot_reach_the_key_or_other_trials(tmp_path: Path) -> None:
    report, p, key = _probe_run(tmp_path, "bwrap")
    harness = report["harness"]
    assert harness["sandbox"]["backend"] == "bwrap"
    proc = report["proc"]
    assert proc["environ"] == [] and proc["cmdline"] == [], proc
    assert max(proc["pids"]) < 10 and harness["harness_pid"] not in proc["pids"], proc["pids"]  # own PID namespace
    assert report["self_env_has_key"] is False
    assert report["grep"] == {str(p["home"]): [], str(p["ws"]): [], "/tmp": []}
    assert (p["home"] / ".codex" / "config.toml").is_file()  # the adapter's HOME files were there to grep
    listed = report["list"]
    assert set(listed[str(p["suite"])] or []) <= {p["own"].name}  # only the mount point of its own trial
    assert set(listed[str(p["own"])] or []) <= {"workspace", "home"}  # not trial.json, not phases/
    assert listed[str(p["other"])] is None
    assert listed[str(REPO)] is None or set(listed[str(REPO)]) <= {".tools"}
    assert listed["/root"] is None
    assert set(listed[str(p["tmp"])] or []) <= {"out", "tools"}
    writes = report["write"]
    assert writes[str(p["ws"])] and writes[str(p["home"])] and writes["/tmp"]
    for path in (p["other"] / "workspace", REPO, p["tools"], Path("/etc"), Path("/usr"), Path("/")):
        assert writes[str(path)] is False, path
    # the results dir here is under /tmp, so its skeleton lies in the private tmpfs: writable, never the host's
    assert report["landed"] == sorted([str(p["ws"]), str(p["home"])]), report["landed"]
    assert key not in json.dumps(report)


@needs_python
def test_without_a_sandbox_the_same_probe_finds_the_key(tmp_path: Path) -> None:
    report, p, _key = _probe_run(tmp_path, "none")
    harness = report["harness"]
    assert harness["sandbox"]["backend"] == "none"
    assert harness["harness_pid"] in report["proc"]["environ"]
    assert harness["harness_pid"] in report["proc"]["cmdline"]
    assert report["grep"][str(p["suite"])], "another trial's files and the index are readable"
    assert report["list"][str(p["other"])] == ["home", "phases", "workspace"]
    assert report["write"][str(p["other"] / "workspace")] is True
    assert str(p["other"] / "workspace") in report["landed"]
    assert report["self_env_has_key"] is False  # the adapter's own env never carries it, sandbox or not
    assert report["grep"][str(p["home"])] == [] and report["grep"][str(p["ws"])] == []


def test_tool_trees_bind_the_npm_install_not_its_parent(tmp_path: Path) -> None:
    package = tmp_path / "npm" / "lib" / "node_modules" / "@openai" / "codex" / "bin"
    package.mkdir(parents=True)
    (package / "codex.js").write_text("//", encoding="utf-8")
    (tmp_path / "npm" / "bin").mkdir()
    (tmp_path / "npm" / "bin" / "codex").symlink_to("../lib/node_modules/@openai/codex/bin/codex.js")
    trees = tool_trees(tmp_path / "npm" / "bin" / "codex", "/usr/bin:/bin")
    assert tmp_path / "npm" / "bin" in trees and tmp_path / "npm" / "lib" / "node_modules" in trees
    assert tmp_path / "npm" not in trees and tmp_path not in trees


def test_wrap_binds_only_the_trial_and_keeps_argv_last(tmp_path: Path) -> None:
    sandbox = BwrapSandbox(binary=Path("/usr/bin/bwrap"))
    request = SandboxRequest(
        workspace=tmp_path / "ws",
        home=tmp_path / "home",
        binary=Path("/usr/bin/env"),
        path_env="/usr/bin:/bin",
        network="open",
    )
    argv = sandbox.wrap(["/usr/bin/env", "a b"], request)
    assert argv[-3:] == ["--", "/usr/bin/env", "a b"]
    writable = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--bind"]
    assert writable == [str(tmp_path / "ws"), str(tmp_path / "home")]
    for flag in ("--unshare-pid", "--die-with-parent", "--new-session", "--unshare-ipc", "--unshare-uts"):
        assert flag in argv
    assert argv[argv.index("--proc") + 1] == "/proc" and argv[argv.index("--tmpfs") + 1] == "/tmp"
    assert "/root" not in argv and "/run" not in argv and "/home" not in argv


def test_auto_falls_back_to_none_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bwrap_mod, "find_bwrap", lambda: None)
    resolved = resolve_sandbox(SandboxConfig())
    assert resolved.record.backend == "none" and resolved.record.requested == "auto"
    assert "bubblewrap is not installed" in resolved.record.reason
    with pytest.raises(SandboxUnavailable, match="cannot run here: bubblewrap is not installed"):
        resolve_sandbox(SandboxConfig(backend="bwrap"))


def test_proxy_only_network_is_refused_until_enforced() -> None:
    for backend in ("auto", "bwrap", "none"):
        with pytest.raises(SandboxUnavailable, match="proxy-only"):
            resolve_sandbox(SandboxConfig(backend=backend, network="proxy-only"))


def test_run_refuses_bwrap_when_unusable_with_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bwrap_mod, "find_bwrap", lambda: None)
    suite = tmp_path / "suite.toml"
    suite.write_text(
        'name = "s"\n[sandbox]\nbackend = "bwrap"\n[[agents]]\nname = "codex"\nbinary = "/usr/bin/true"\n'
        '[[models]]\nid = "rp"\nmodel = "replay-model"\nprovider = "replay"\nreplay_script = "hello"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["run", str(suite), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1].startswith(
        "error: [sandbox]: sandbox backend 'bwrap' cannot run here: bubblewrap is not installed"
    ), result.output
    assert not (tmp_path / "out" / "s").exists()


def test_old_suites_and_trial_files_stay_valid() -> None:
    suite = SuiteConfig.model_validate(
        {"name": "s", "agents": [{"name": "codex"}], "models": [{"id": "m", "model": "m", "provider": "replay"}]}
    )
    assert (suite.sandbox.backend, suite.sandbox.network) == ("auto", "open")
    old = {
        "trial_id": "t",
        "suite": "s",
        "task": "x",
        "agent": "codex",
        "model_id": "m",
        "model": "m",
        "provider": "replay",
        "repeat": 1,
        "versions": {"shipbench": "0", "task": "x"},
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }
    assert TrialRecord.model_validate(old).sandbox is None


@pytest.mark.slow
@needs_bwrap
@pytest.mark.parametrize("agent", ["codex", "opencode"])
def test_real_cli_completes_a_replay_trial_inside_bwrap(tmp_path: Path, agent: str) -> None:
    from tests.test_suite_e2e import need, run_with_replay

    need(agent)
    record, _requests = run_with_replay(tmp_path, agent, sandbox={"backend": "bwrap"})
    assert record.status == "completed", record.status_reason
    assert record.sandbox is not None and record.sandbox.backend == "bwrap" and record.sandbox.isolates_processes
    root = tmp_path / "out" / record.suite / record.trial_id
    assert (root / "workspace" / "hello.txt").read_text() == "hello from the shipbench replay\n"
    saved = json.loads((root / "trial.json").read_text(encoding="utf-8"))
    assert saved["sandbox"]["backend"] == "bwrap"
    assert shutil.which("bwrap") or bwrap_mod.DEFAULT_BINARY.exists()


@needs_bwrap
@pytest.mark.parametrize("backend", ["bwrap", "none"])
def test_a_git_filter_planted_by_the_agent_runs_inside_the_sandbox(tmp_path: Path, backend: str) -> None:
    """The harness commits the workspace after each phase; a clean filter the agent wrote into .git/config
    runs then. Under bwrap it sees only the trial (no escape file outside it); unsandboxed it could write anywhere."""
    import asyncio

    from shipbench.runner.workspace import commit_phase, init_workspace

    ws, home, outside = tmp_path / "trial" / "workspace", tmp_path / "trial" / "home", tmp_path / "outside"
    outside.mkdir()
    resolved = resolve_sandbox(SandboxConfig(backend=backend))  # type: ignore[arg-type]
    request = SandboxRequest(
        workspace=ws, home=home, binary=Path("/usr/bin/git"), path_env="/usr/bin:/bin", network="open"
    )

    def wrap(argv: list[str]) -> list[str]:
        return resolved.sandbox.wrap(argv, request)

    async def go() -> list[str]:
        await init_workspace(ws, home, wrap)
        (ws / ".gitattributes").write_text("*.txt filter=probe\n", encoding="utf-8")
        with (ws / ".git" / "config").open("a", encoding="utf-8") as fh:
            fh.write(f'[filter "probe"]\n\tclean = "sh -c \'ls /proc > {ws}/procs; touch {outside}/escaped; cat\'"\n')
        (ws / "a.txt").write_text("hello\n", encoding="utf-8")
        return await commit_phase(ws, home, 1, "build", wrap)

    changed = asyncio.run(go())
    assert "a.txt" in changed
    pids = [int(n) for n in (ws / "procs").read_text(encoding="utf-8").split() if n.isdigit()]
    if backend == "bwrap":
        assert not (outside / "escaped").exists() and max(pids) < 10
    else:
        assert (outside / "escaped").exists()  # what the sandbox prevents


def test_adapter_files_replace_a_planted_symlink_instead_of_following_it(tmp_path: Path) -> None:
    """Phase 2's config write into HOME must not land in another trial through a link phase 1's agent left."""
    import asyncio

    from shipbench.agents.base import Invocation
    from shipbench.config import Limits
    from shipbench.runner.process import StopSignal, run_process

    victim = tmp_path / "other-trial" / "workspace" / "app.rb"
    victim.parent.mkdir(parents=True)
    victim.write_text("theirs\n", encoding="utf-8")
    home = tmp_path / "home"
    (home / ".codex").mkdir(parents=True)
    (home / ".codex" / "config.toml").symlink_to(victim)
    invocation = Invocation(
        argv=["/bin/true"], env={"PATH": "/usr/bin:/bin"}, files={home / ".codex" / "config.toml": "model = 'm'\n"}
    )
    result = asyncio.run(
        run_process(
            invocation,
            cwd=tmp_path,
            marker=f"test-{uuid.uuid4().hex}",
            limits=Limits(),
            on_stdout_line=lambda _: None,
            stderr_path=tmp_path / "err",
            stop=StopSignal(),
        )
    )
    assert result.exit_code == 0
    assert victim.read_text(encoding="utf-8") == "theirs\n"
    assert not (home / ".codex" / "config.toml").is_symlink()
    assert (home / ".codex" / "config.toml").read_text(encoding="utf-8") == "model = 'm'\n"
