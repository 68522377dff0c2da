"""Agents run sandboxed: a probe agent, started through the runner's spawn path, hunts for the provider key.

(a) bwrap: a real harness process, holding a fake key in its own environ and argv, starts the probe through the
codex adapter's invocation and run_process; the probe sees only its own PID namespace, finds the key in no
/proc/*/environ or cmdline and no file of HOME, workspace or /tmp, cannot list other trials, the results dir or
the checkout, and can write only its workspace, HOME and /tmp. (b) none: the same probe does find the key in the
harness's environ and cmdline, and another trial's files (so (a) can fail). (c) network = "proxy-only": the probe
gets the metering proxy's own answer at the proxy URL, but reaches no other host-loopback TCP server, no abstract
socket and no other address; with "open" the same connections succeed (so (c) can fail). Also: the [sandbox]
setting, the refusal (exit 2), old files staying valid, and (slow) a real CLI completing a replay trial in bwrap.
Tests that need bwrap skip, saying why, where it cannot run.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import shipbench.sandbox.bwrap as bwrap_mod
from shipbench.cli import app
from shipbench.config import SandboxConfig, SuiteConfig
from shipbench.sandbox.base import ProxyEndpoint, SandboxRequest
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


def _probe_run(
    tmp: Path, backend: str, network: str = "open", connect: list[list[str | int]] | None = None
) -> tuple[dict[str, object], dict[str, Path], str]:
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
        "connect": connect or [],
    }
    (ws / "probe.json").write_text(json.dumps(probe_config), encoding="utf-8")
    marker = f"test-sandbox-{uuid.uuid4().hex}"
    harness_config = {
        "backend": backend,
        "network": network,
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


def test_proxy_only_is_refused_where_it_cannot_be_enforced(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SandboxUnavailable, match=r"proxy-only.*backend 'none'"):
        resolve_sandbox(SandboxConfig(backend="none", network="proxy-only"))
    monkeypatch.setattr(bwrap_mod, "SYSTEM_PYTHON", Path("/nonexistent/python3"))
    problem = BwrapSandbox(binary=Path("/usr/bin/bwrap")).network_problem("proxy-only")
    assert problem is not None and "python3" in problem and "forwarder" in problem
    assert BwrapSandbox(binary=Path("/usr/bin/bwrap")).network_problem("open") is None
    monkeypatch.setattr(bwrap_mod, "find_bwrap", lambda: None)
    with pytest.raises(SandboxUnavailable, match=r"network = 'proxy-only' cannot be enforced by backend 'none'"):
        resolve_sandbox(SandboxConfig(backend="auto", network="proxy-only"))  # auto fell back to none


@needs_bwrap
@needs_python
@pytest.mark.parametrize("backend", ["auto", "bwrap"])
def test_bwrap_enforces_proxy_only_and_records_it(backend: str) -> None:
    resolved = resolve_sandbox(SandboxConfig(backend=backend, network="proxy-only"))  # type: ignore[arg-type]
    assert resolved.record.backend == "bwrap" and resolved.record.network == "proxy-only", resolved.record


def test_wrap_proxy_only_runs_the_agent_under_the_forwarder(tmp_path: Path) -> None:
    sandbox = BwrapSandbox(binary=Path("/usr/bin/bwrap"))
    endpoint = ProxyEndpoint(socket=tmp_path / "p.sock", port=43123)
    request = SandboxRequest(
        workspace=tmp_path / "ws",
        home=tmp_path / "home",
        binary=Path("/usr/bin/env"),
        path_env="/usr/bin:/bin",
        network="proxy-only",
        proxy=endpoint,
    )
    argv = sandbox.wrap(["/usr/bin/env", "a b"], request)
    assert "--unshare-net" in argv
    assert argv[argv.index("--") + 1 :] == [
        "/usr/bin/python3",
        "-I",
        bwrap_mod.FORWARDER_IN,
        "43123",
        bwrap_mod.SOCKET_IN,
        "/usr/bin/env",
        "a b",
    ]
    binds = {argv[i + 2]: argv[i + 1] for i, arg in enumerate(argv) if arg in ("--bind", "--ro-bind")}
    assert binds[bwrap_mod.SOCKET_IN] == str(tmp_path / "p.sock")
    assert binds[bwrap_mod.FORWARDER_IN] == str(bwrap_mod.FORWARDER)
    assert argv[argv.index(bwrap_mod.FORWARDER_IN) - 2] == "--ro-bind"
    git = sandbox.wrap(
        ["/usr/bin/git"],
        SandboxRequest(
            workspace=tmp_path / "ws",
            home=tmp_path / "home",
            binary=Path("/usr/bin/git"),
            path_env="/usr/bin",
            network="proxy-only",
        ),
    )
    assert "--unshare-net" in git and bwrap_mod.SOCKET_IN not in git and git[-2:] == ["--", "/usr/bin/git"]
    opened = sandbox.wrap(
        ["/usr/bin/env"],
        SandboxRequest(
            workspace=tmp_path / "ws",
            home=tmp_path / "home",
            binary=Path("/usr/bin/env"),
            path_env="/usr/bin",
            network="open",
            proxy=endpoint,
        ),
    )
    assert "--unshare-net" not in opened and opened[-2:] == ["--", "/usr/bin/env"]


def _run_proxy_only(tmp: Path, script: str, stop_after_s: float | None = None) -> tuple[object, float]:
    """Run `sh -c script` as an agent in a proxy-only bwrap sandbox (a listening dummy socket as the proxy)."""
    import asyncio
    import time

    from shipbench.agents.base import Invocation
    from shipbench.config import Limits
    from shipbench.runner.process import StopSignal, run_process

    (tmp / "ws").mkdir(parents=True)
    (tmp / "home").mkdir()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(tmp / "p.sock"))
    server.listen()
    request = SandboxRequest(
        workspace=tmp / "ws",
        home=tmp / "home",
        binary=Path("/bin/sh"),
        path_env="/usr/bin:/bin",
        network="proxy-only",
        proxy=ProxyEndpoint(socket=tmp / "p.sock", port=45678),
    )
    marker = f"test-fwd-{uuid.uuid4().hex}"

    async def go() -> object:
        stop = StopSignal()
        if stop_after_s is not None:
            asyncio.get_running_loop().call_later(stop_after_s, stop.request, "test")
        return await run_process(
            Invocation(argv=["/bin/sh", "-c", script], env={"PATH": "/usr/bin:/bin"}),
            cwd=tmp / "ws",
            marker=marker,
            limits=Limits(grace_s=1),
            on_stdout_line=lambda _: None,
            stderr_path=tmp / "err",
            stop=stop,
            wrap=lambda argv: BwrapSandbox().wrap(argv, request),
        )

    started = time.monotonic()
    try:
        result = asyncio.run(go())
    finally:
        server.close()
    assert not _live_with_marker(marker), "a sandboxed process survived"
    return result, time.monotonic() - started


@needs_bwrap
@needs_python
def test_the_forwarder_keeps_the_agents_exit_status_and_stop(tmp_path: Path) -> None:
    from shipbench.runner.process import ProcessResult

    done, _ = _run_proxy_only(tmp_path / "a", "exit 7")
    assert isinstance(done, ProcessResult) and done.exit_code == 7, done
    killed, _ = _run_proxy_only(tmp_path / "b", "kill -TERM $$")
    assert isinstance(killed, ProcessResult) and killed.exit_code == 128 + 15, killed  # as bwrap reports it today
    stopped, wall = _run_proxy_only(tmp_path / "c", "sleep 60", stop_after_s=0.5)
    assert isinstance(stopped, ProcessResult) and stopped.stopped and wall < 10, (stopped, wall)


def test_the_proxy_unix_socket_is_private_and_removed_on_stop() -> None:
    import asyncio
    import stat

    import aiohttp

    from shipbench.proxy.server import MeteringProxy

    async def go() -> tuple[Path, int, int, str]:
        proxy = MeteringProxy()
        await proxy.start(unix_socket=True)
        assert proxy.unix_path is not None
        path = proxy.unix_path
        mode = stat.S_IMODE(path.parent.stat().st_mode)
        try:
            async with (
                aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(path))) as session,
                session.post("http://127.0.0.1/v1/chat/completions", data=b"{}") as resp,
            ):
                status, body = resp.status, await resp.text()
        finally:
            await proxy.stop()
        return path, mode, status, body

    path, mode, status, body = asyncio.run(go())
    assert mode == 0o700
    assert status == 401 and "shipbench proxy" in body
    assert not path.parent.exists()


def _host_address() -> str | None:
    """This host's own non-loopback IPv4 address (None when it has no route out)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.1", 1))
        address = str(probe.getsockname()[0])
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") or address == "0.0.0.0" else address


@pytest.fixture
def host_listeners() -> Iterator[list[list[str | int]]]:
    """A TCP server on all host addresses and an abstract Unix socket, listening (the backlog accepts)."""
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("0.0.0.0", 0))
    tcp.listen(16)
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    name = f"shipbench-test-{uuid.uuid4().hex}"
    abstract.bind("\0" + name)
    abstract.listen(16)
    port = tcp.getsockname()[1]
    targets: list[list[str | int]] = [["tcp", "127.0.0.1", port], ["abstract", name]]
    address = _host_address()
    if address:
        targets.append(["tcp", address, port])
    try:
        yield targets
    finally:
        tcp.close()
        abstract.close()


def _proxy_answered(report: dict[str, object]) -> None:
    proxy = report["proxy"]
    assert isinstance(proxy, dict) and proxy["status"] == 401, proxy
    assert "shipbench proxy: unknown or expired API key" in proxy["body"], proxy


@needs_bwrap
@needs_python
def test_proxy_only_reaches_the_proxy_and_nothing_else(tmp_path: Path, host_listeners: list[list[str | int]]) -> None:
    outside = [*host_listeners, ["tcp", "10.255.255.1", 80], ["tcp", "1.1.1.1", 443]]
    report, _p, key = _probe_run(tmp_path, "bwrap", network="proxy-only", connect=outside)
    assert report["harness"]["sandbox"]["network"] == "proxy-only"
    _proxy_answered(report)
    results = report["connect"]
    assert isinstance(results, list) and len(results) == len(outside)
    for result in results:
        assert result["ok"] is False, result
        assert result["error"] in ("ECONNREFUSED", "ENETUNREACH"), result
        assert result["s"] < 1.0, result  # refused at once, never a hang until a timeout
    assert report["proc"]["environ"] == [] and key not in json.dumps(report)


@needs_bwrap
@needs_python
def test_open_network_reaches_the_same_host_servers(tmp_path: Path, host_listeners: list[list[str | int]]) -> None:
    report, _p, _key = _probe_run(tmp_path, "bwrap", network="open", connect=host_listeners)
    assert report["harness"]["sandbox"]["network"] == "open"
    _proxy_answered(report)
    results = report["connect"]
    assert isinstance(results, list) and [r["ok"] for r in results] == [True] * len(host_listeners), results


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
@pytest.mark.parametrize("network", ["open", "proxy-only"])
@pytest.mark.parametrize("agent", ["codex", "opencode"])
def test_real_cli_completes_a_replay_trial_inside_bwrap(tmp_path: Path, agent: str, network: str) -> None:
    from tests.test_suite_e2e import need, run_with_replay

    need(agent)
    if network == "proxy-only" and not SYSTEM_PYTHON.is_file():
        pytest.skip(f"proxy-only needs {SYSTEM_PYTHON}")
    record, _requests = run_with_replay(tmp_path, agent, sandbox={"backend": "bwrap", "network": network})
    assert record.status == "completed", record.status_reason
    assert record.sandbox is not None and record.sandbox.backend == "bwrap" and record.sandbox.isolates_processes
    assert record.sandbox.network == network
    root = tmp_path / "out" / record.suite / record.trial_id
    assert (root / "workspace" / "hello.txt").read_text() == "hello from the shipbench replay\n"
    saved = json.loads((root / "trial.json").read_text(encoding="utf-8"))
    assert saved["sandbox"]["backend"] == "bwrap" and saved["sandbox"]["network"] == network
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
