"""run_process and killtree against real processes: small Python scripts acting as agents.

After every test, an independent /proc scan asserts that no live process carries the test's trial marker.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipbench.agents.base import Invocation
from shipbench.config import Limits
from shipbench.runner import killtree
from shipbench.runner.process import MAX_LINE_BYTES, ProcessResult, StopSignal, run_process

REPO = Path(__file__).resolve().parents[1]


def live_with_marker(marker: str) -> list[int]:
    """Independent of killtree: every non-zombie process whose environment carries the marker."""
    needle = f"SHIPBENCH_TRIAL_MARKER={marker}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
            env = Path(f"/proc/{name}/environ").read_bytes()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2] not in "ZX" and needle in env.split(b"\0"):
            found.append(int(name))
    return found


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


@pytest.fixture
def marker() -> Iterator[str]:
    value = f"test-{uuid.uuid4().hex}"
    yield value
    leftovers = live_with_marker(value)
    for pid in leftovers:  # do not leak them into the next test, but fail this one
        os.kill(pid, signal.SIGKILL)
    assert leftovers == [], f"processes of the trial survived: {leftovers}"


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def invocation(path: Path, *args: str, files: dict[Path, str] | None = None) -> Invocation:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1"}
    return Invocation(argv=[sys.executable, str(path), *args], env=env, files=files or {})


def run(
    inv: Invocation,
    tmp_path: Path,
    marker: str,
    *,
    limits: Limits | None = None,
    stop_after: float | None = None,
    reason: str = "watchdog: idle",
    after_first_line: bool = False,
) -> tuple[ProcessResult, list[str]]:
    """Run `inv`; request a stop `stop_after` s after the start (or after the first stdout line, so a
    slow interpreter start on a loaded machine cannot race the stop)."""
    lines: list[str] = []

    async def main() -> ProcessResult:
        stop = StopSignal()
        loop = asyncio.get_running_loop()

        def on_line(line: str) -> None:
            if after_first_line and not lines and stop_after is not None:
                loop.call_later(stop_after, stop.request, reason)
            lines.append(line)

        if stop_after is not None and not after_first_line:
            loop.call_later(stop_after, stop.request, reason)
        return await run_process(
            inv,
            cwd=tmp_path,
            marker=marker,
            limits=limits or Limits(grace_s=1),
            on_stdout_line=on_line,
            stderr_path=tmp_path / "out" / "stderr.log",
            stop=stop,
        )

    return asyncio.run(main()), lines


def wait_file(path: Path, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and (text := path.read_text().strip()):
            return text
        time.sleep(0.01)
    raise AssertionError(f"{path} never written")


def test_lines_exit_code_env_files_and_closed_stdin(tmp_path: Path, marker: str) -> None:
    agent = script(
        tmp_path,
        "agent.py",
        """
        import json, os, sys
        print(json.dumps({"type": "session", "cfg": open(sys.argv[1]).read()}))
        print(json.dumps({"type": "env", "marker": os.environ["SHIPBENCH_TRIAL_MARKER"], "stdin": sys.stdin.read()}))
        print("no newline at the end", end="")
        sys.stderr.write("warn: something\\n")
        sys.exit(3)
        """,
    )
    cfg = tmp_path / "home" / ".config" / "agent.json"
    result, lines = run(invocation(agent, str(cfg), files={cfg: '{"k": 1}'}), tmp_path, marker)
    assert [json.loads(line)["type"] for line in lines[:2]] == ["session", "env"]
    assert json.loads(lines[0])["cfg"] == '{"k": 1}'
    assert json.loads(lines[1]) == {"type": "env", "marker": marker, "stdin": ""}
    assert lines[2] == "no newline at the end"
    assert (result.exit_code, result.signal, result.stopped, result.stop_reason) == (3, None, False, None)
    assert result.stdout_bytes == sum(len(line) + 1 for line in lines) - 1
    assert (tmp_path / "out" / "stderr.log").read_text() == "warn: something\n"
    assert result.stderr_bytes == len("warn: something\n")
    assert (result.truncated, result.survivors_killed) == (False, 0)


def test_exit_seen_at_once_while_grandchild_holds_the_pipes(tmp_path: Path, marker: str) -> None:
    agent = script(
        tmp_path,
        "agent.py",
        """
        import subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open(sys.argv[1], "w").write(str(child.pid))
        print('{"type": "text"}')
        """,
    )
    pidfile = tmp_path / "grandchild.pid"
    result, lines = run(invocation(agent, str(pidfile)), tmp_path, marker)
    assert result.wall_s < 10  # the grandchild sleeps 600 s with the pipes open: exit was seen at once
    assert lines == ['{"type": "text"}']
    assert (result.exit_code, result.stopped) == (0, False)
    assert result.survivors_killed == 1
    assert not pid_alive(int(pidfile.read_text()))


def test_double_forked_setsid_daemon_is_swept_by_marker(tmp_path: Path, marker: str) -> None:
    agent = script(
        tmp_path,
        "agent.py",
        """
        import os, sys, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() > 0:
                os._exit(0)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            open(sys.argv[1], "w").write(str(os.getpid()))
            time.sleep(600)
            os._exit(0)
        os.wait()
        while not (os.path.exists(sys.argv[1]) and open(sys.argv[1]).read()):
            time.sleep(0.01)
        print('{"type": "result"}')
        """,
    )
    pidfile = tmp_path / "daemon.pid"
    result, _ = run(invocation(agent, str(pidfile)), tmp_path, marker)
    daemon = int(pidfile.read_text())
    assert result.exit_code == 0
    assert result.survivors_killed == 1
    assert not pid_alive(daemon)


def test_stop_kills_descendant_that_escaped_group_and_marker(tmp_path: Path, marker: str) -> None:
    # the agent's child starts a grandchild in a new session with an empty environment: only the ppid chain
    # (read while the tree is frozen) ties it to the trial
    agent = script(
        tmp_path,
        "agent.py",
        """
        import subprocess, sys, time
        code = (
            "import subprocess, sys, time; "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], "
            "start_new_session=True, env={}); "
            "open(sys.argv[1], 'w').write(str(p.pid)); time.sleep(600)"
        )
        subprocess.Popen([sys.executable, "-c", code, sys.argv[1]])
        print('{"type": "session"}')
        time.sleep(600)
        """,
    )
    pidfile = tmp_path / "escaped.pid"

    async def main() -> ProcessResult:
        stop = StopSignal()

        async def stopper() -> None:
            await asyncio.to_thread(wait_file, pidfile)
            stop.request("budget: 10 tokens > 5")

        task = asyncio.create_task(stopper())
        result = await run_process(
            invocation(agent, str(pidfile)),
            cwd=tmp_path,
            marker=marker,
            limits=Limits(grace_s=1),
            on_stdout_line=lambda _: None,
            stderr_path=tmp_path / "err.log",
            stop=stop,
        )
        await task
        return result

    result = asyncio.run(main())
    escaped = int(pidfile.read_text())
    assert (result.stopped, result.stop_reason) == (True, "budget: 10 tokens > 5")
    assert result.signal == signal.SIGTERM
    assert not pid_alive(escaped)


def test_stop_terminates_hanging_agent_with_sigterm(tmp_path: Path, marker: str) -> None:
    agent = script(tmp_path, "hang.py", 'import time\nprint(\'{"type": "session"}\')\ntime.sleep(600)\n')
    t0 = time.monotonic()
    result, lines = run(
        invocation(agent), tmp_path, marker, stop_after=0.5, reason="watchdog: idle", after_first_line=True
    )
    assert time.monotonic() - t0 < 15  # far from the agent's own 600 s: the stop ended it
    assert lines == ['{"type": "session"}']
    assert (result.stopped, result.stop_reason, result.exit_code, result.signal) == (
        True,
        "watchdog: idle",
        None,
        signal.SIGTERM,
    )
    assert result.wall_s >= 0.5


def test_plain_event_stop_has_a_default_reason(tmp_path: Path, marker: str) -> None:
    agent = script(tmp_path, "hang.py", "import time\ntime.sleep(600)\n")

    async def main() -> ProcessResult:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.2, stop.set)
        return await run_process(
            invocation(agent),
            cwd=tmp_path,
            marker=marker,
            limits=Limits(grace_s=1),
            on_stdout_line=lambda _: None,
            stderr_path=tmp_path / "err.log",
            stop=stop,
        )

    result = asyncio.run(main())
    assert (result.stopped, result.stop_reason) == (True, "stop requested")


def test_sigterm_ignored_gets_sigkill_after_grace(tmp_path: Path, marker: str) -> None:
    agent = script(
        tmp_path,
        "stubborn.py",
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        while True:
            time.sleep(1)
        """,
    )
    result, _ = run(
        invocation(agent), tmp_path, marker, limits=Limits(grace_s=0.6), stop_after=0.4, after_first_line=True
    )
    assert result.signal == signal.SIGKILL
    assert result.wall_s >= 0.4 + 0.6 - 0.05


def test_cancellation_kills_the_tree_and_reraises(tmp_path: Path, marker: str) -> None:
    agent = script(
        tmp_path,
        "agent.py",
        """
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
        open(sys.argv[1], "w").write(str(child.pid))
        time.sleep(600)
        """,
    )
    pidfile = tmp_path / "child.pid"

    async def main() -> float:
        task = asyncio.create_task(
            run_process(
                invocation(agent, str(pidfile)),
                cwd=tmp_path,
                marker=marker,
                limits=Limits(grace_s=5),
                on_stdout_line=lambda _: None,
                stderr_path=tmp_path / "err.log",
                stop=asyncio.Event(),
            )
        )
        await asyncio.to_thread(wait_file, pidfile)
        cancelled_at = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - cancelled_at

    cleanup_s = asyncio.run(main())
    assert cleanup_s < 4  # below the 5 s grace: no SIGTERM wait on cancellation, SIGKILL at once
    assert not pid_alive(int(pidfile.read_text()))


def test_callback_error_stops_the_run_and_is_raised(tmp_path: Path, marker: str) -> None:
    agent = script(tmp_path, "agent.py", "import time\nprint('boom', flush=True)\ntime.sleep(600)\n")

    def explode(line: str) -> None:
        raise RuntimeError(f"parser failed on {line}")

    async def main() -> None:
        await run_process(
            invocation(agent),
            cwd=tmp_path,
            marker=marker,
            limits=Limits(grace_s=1),
            on_stdout_line=explode,
            stderr_path=tmp_path / "err.log",
            stop=asyncio.Event(),
        )

    with pytest.raises(RuntimeError, match="parser failed on boom"):
        asyncio.run(main())


def test_missing_binary_raises_oserror(tmp_path: Path, marker: str) -> None:
    inv = Invocation(argv=[str(tmp_path / "no-such-agent")], env={})
    with pytest.raises(FileNotFoundError):
        run(inv, tmp_path, marker)


def test_long_line_is_cut_and_the_rest_skipped(tmp_path: Path, marker: str) -> None:
    agent = script(
        tmp_path,
        "agent.py",
        """
        import sys
        sys.stdout.write("x" * (3 * 1024 * 1024) + "\\n")
        sys.stdout.write('{"type": "after"}\\n')
        """,
    )
    result, lines = run(invocation(agent), tmp_path, marker)
    assert [len(line) for line in lines] == [MAX_LINE_BYTES, len('{"type": "after"}')]
    assert lines[1] == '{"type": "after"}'
    assert result.truncated
    assert result.stdout_bytes == 3 * 1024 * 1024 + 1 + len('{"type": "after"}') + 1


def test_output_cap_drops_lines_but_keeps_the_last(tmp_path: Path, marker: str) -> None:
    agent = script(
        tmp_path,
        "agent.py",
        """
        import sys
        for i in range(5000):
            print(f'{{"type": "text", "i": {i}}}')
            sys.stderr.write("e" * 99 + "\\n")
        print('{"type": "result"}')
        """,
    )
    result, lines = run(invocation(agent), tmp_path, marker, limits=Limits(grace_s=1, max_output_bytes=10_000))
    assert result.truncated
    assert sum(len(line) + 1 for line in lines[:-1]) <= 10_000
    assert json.loads(lines[0])["i"] == 0 and lines[-1] == '{"type": "result"}'
    assert json.loads(lines[-2])["i"] == len(lines) - 2  # delivered lines are a prefix, then the tail
    assert (tmp_path / "out" / "stderr.log").stat().st_size == 10_000
    assert result.stderr_bytes == 5000 * 100


FLOOD_DRIVER = """
import asyncio, json, resource, sys
from pathlib import Path
from shipbench.agents.base import Invocation
from shipbench.config import Limits
from shipbench.runner.process import run_process

agent, marker, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
seen = {"lines": 0, "last": None}

def on_line(line):
    seen["lines"] += 1
    seen["last"] = line

async def main():
    inv = Invocation(argv=[sys.executable, agent], env={"PATH": "/usr/bin:/bin"})
    return await run_process(inv, cwd=out, marker=marker, limits=Limits(max_output_bytes=1 << 20, grace_s=1),
                             on_stdout_line=on_line, stderr_path=out / "stderr.log", stop=asyncio.Event())

base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
res = asyncio.run(main())
print(json.dumps({"base_kb": base, "exit": res.exit_code, "out": res.stdout_bytes, "err": res.stderr_bytes,
                  "trunc": res.truncated, "wall": res.wall_s, "last": seen["last"], "lines": seen["lines"],
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

FLOOD_AGENT = """
import os, sys
block = (b"y" * 1023 + b"\\n") * 1024  # 1 MiB of 1 KiB lines
for _ in range(200):
    sys.stdout.buffer.write(block)
    sys.stderr.buffer.write(block)
sys.stdout.buffer.write(b'{"type": "result"}\\n')
sys.stdout.flush()
open(sys.argv[0] + ".done", "w").write("all writes finished")
"""


def test_flood_of_200mb_per_stream_neither_blocks_nor_grows_memory(tmp_path: Path, marker: str) -> None:
    agent = script(tmp_path, "flood.py", FLOOD_AGENT)
    driver = script(tmp_path, "driver.py", FLOOD_DRIVER)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, str(driver), str(agent), marker, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    total = 200 * 1024 * 1024
    assert report["exit"] == 0  # it exited on its own: its writes were never blocked
    assert Path(str(agent) + ".done").read_text() == "all writes finished"
    assert (report["out"], report["err"]) == (total + len('{"type": "result"}\n'), total)
    assert report["trunc"] is True
    assert report["last"] == '{"type": "result"}'
    assert report["lines"] <= 1024 + 1
    assert (tmp_path / "stderr.log").stat().st_size == 1 << 20
    # 400 MB went through the harness; a reader that buffered a stream would have grown by hundreds of MB
    assert report["maxrss_kb"] - report["base_kb"] < 32 * 1024, report


def test_killtree_never_signals_unrelated_processes(tmp_path: Path, marker: str) -> None:
    ours = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"],
        env={**os.environ, killtree.MARKER_ENV: marker},
        start_new_session=True,
    )
    other_marker = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"],
        env={**os.environ, killtree.MARKER_ENV: marker + "-other"},
        start_new_session=True,
    )
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while ours.pid not in killtree.trial_processes(marker) and time.monotonic() < deadline:
            time.sleep(0.01)
        found = killtree.trial_processes(marker)
        assert set(found) == {ours.pid}
        assert os.getpid() not in found
        assert killtree.kill_marked(marker) == 1
        assert ours.wait(timeout=5) == -signal.SIGKILL
        assert other_marker.poll() is None and stranger.poll() is None
    finally:
        for proc in (ours, other_marker, stranger):
            proc.kill()
            proc.wait()


def test_signal_process_refuses_a_recycled_pid(marker: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        info = killtree.read_stat(proc.pid)
        assert info is not None
        forged = killtree.ProcInfo(info.pid, info.ppid, info.pgid, info.sid, info.state, info.start_ticks + 1)
        assert killtree.signal_process(forged, signal.SIGKILL) is False
        assert proc.poll() is None
        assert killtree.signal_process(info, signal.SIGKILL) is True
        assert proc.wait(timeout=5) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()


HARNESS = """
import asyncio, sys
from pathlib import Path
from shipbench.agents.base import Invocation
from shipbench.config import Limits
from shipbench.runner.process import StopSignal, run_process

agent, pidfile, marker, tmp = sys.argv[1:5]
inv = Invocation(argv=[sys.executable, agent, pidfile], env={"PATH": "/usr/bin:/bin"})
asyncio.run(run_process(inv, cwd=Path(tmp), marker=marker, limits=Limits(grace_s=1), on_stdout_line=print,
                        stderr_path=Path(tmp) / "err.log", stop=StopSignal()))
"""

TREE_AGENT = """
import os, subprocess, sys, time
child_code = (
    "import subprocess, sys, time; "
    "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True, env={}); "
    "open(sys.argv[1] + '.g', 'w').write(str(g.pid)); time.sleep(600)"
)
child = subprocess.Popen([sys.executable, "-c", child_code, sys.argv[1]])
while not (os.path.exists(sys.argv[1] + ".g") and open(sys.argv[1] + ".g").read()):
    time.sleep(0.01)
open(sys.argv[1], "w").write(" ".join(map(str, (os.getppid(), os.getpid(), child.pid))))
time.sleep(600)
"""


def test_sigkilled_harness_takes_every_descendant_with_it(tmp_path: Path, marker: str) -> None:
    """The harness process is SIGKILLed mid-run: within 5 s nothing it started lives on, not even a grandchild
    that left the agent's session and environment (it is tied to the trial only by the keeper, its subreaper)."""
    harness_py = script(tmp_path, "harness.py", HARNESS)
    agent = script(tmp_path, "agent.py", TREE_AGENT)
    pidfile = tmp_path / "tree.pids"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    harness = subprocess.Popen(
        [sys.executable, str(harness_py), str(agent), str(pidfile), marker, str(tmp_path)],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
    )
    try:
        keeper, agent_pid, child = (int(p) for p in wait_file(pidfile, 30).split())
        grandchild = int((tmp_path / "tree.pids.g").read_text())
        tree = [keeper, agent_pid, child, grandchild]
        assert all(pid_alive(p) for p in tree)
        assert Path(f"/proc/{keeper}/stat").read_text().split(") ")[1].split()[1] == str(harness.pid)
    finally:
        harness.kill()
        harness.wait(10)
    deadline = time.monotonic() + 5
    while any(pid_alive(p) for p in tree) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [p for p in tree if pid_alive(p)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert survivors == [], f"survived the harness by 5 s: {survivors} of {tree}"


def test_agent_killed_by_a_signal_is_reported_as_that_signal(tmp_path: Path, marker: str) -> None:
    agent = script(tmp_path, "agent.py", "import os, signal\nos.kill(os.getpid(), signal.SIGABRT)\n")
    result, _ = run(invocation(agent), tmp_path, marker)
    assert (result.exit_code, result.signal) == (None, signal.SIGABRT)
