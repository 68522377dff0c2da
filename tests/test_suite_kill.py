"""Acceptance: `shipbench run` SIGKILLed mid-suite, then re-run: nothing finished is redone, nothing is lost.

The harness runs as a subprocess (jobs=1, two trials of the real codex CLI) against a slowed replay upstream
served from a thread of this test; it is SIGKILLed as soon as the first trial is finished. The re-run must leave
the first trial.json byte-identical with the same mtime, complete the second, and no trial process may survive.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.test_suite_e2e import CANDIDATE_BINS, HELLO_PROMPT, need
from tests.test_trial_support import marked_processes, trial_marker_prefix, write_task

from shipbench.replay.server import Fault, ReplayServer
from shipbench.replay.trajectory import load_trajectory
from shipbench.runner.suite import BUNDLED_REPLAY_DIR
from shipbench.store.index import query
from shipbench.store.layout import SuitePaths

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
FINISHED = {"completed", "completed_with_errors", "timeout", "stalled", "loop", "agent_crash", "provider_error",
            "budget_exceeded"}


@contextmanager
def replay_in_thread(fault: Fault) -> Iterator[str]:
    loop = asyncio.new_event_loop()
    server = ReplayServer(load_trajectory(BUNDLED_REPLAY_DIR / "hello.json"), fault=fault)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    url = asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    try:
        yield url
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _harness(suite: Path, out: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.setdefault("SHIPBENCH_TOOLS_BIN", str(next((b for b in CANDIDATE_BINS if b.is_dir()), "")))
    return subprocess.Popen(
        [sys.executable, "-m", "shipbench", "run", str(suite), "--out", str(out), "--jobs", "1"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def _status(path: Path) -> str | None:
    try:
        return str(json.loads(path.read_text())["status"])
    except (OSError, ValueError, KeyError):
        return None


def test_sigkilled_harness_resumes_without_redoing(tmp_path: Path) -> None:
    need("codex")
    task = write_task(tmp_path / "task", {"hello": HELLO_PROMPT})
    out = tmp_path / "out"
    with replay_in_thread(Fault(kind="slow", delay_s=0.15)) as url:
        suite = tmp_path / "suite.toml"
        suite.write_text(
            f'name = "kill"\ntask = "{task}"\nrepeats = 2\njobs = 1\n[[agents]]\nname = "codex"\n'
            f'[[models]]\nid = "rp"\nmodel = "replay-model"\nprovider = "replay"\nbase_url = "{url}"\n'
            '[limits]\nidle_s = 60\nphase_wall_s = 120\ngrace_s = 1\n'
        )
        first = out / "kill" / "tiny__codex__rp__r1" / "trial.json"
        second = out / "kill" / "tiny__codex__rp__r2" / "trial.json"
        harness = _harness(suite, out)
        deadline = time.monotonic() + 120
        while _status(first) not in FINISHED and time.monotonic() < deadline and harness.poll() is None:
            time.sleep(0.05)
        harness.send_signal(signal.SIGKILL)
        harness.wait(10)
        assert _status(first) == "completed"
        assert _status(second) != "completed"  # killed before the second trial could finish
        before = (first.stat().st_mtime_ns, first.read_bytes())

        rerun = _harness(suite, out)
        output, _ = rerun.communicate(timeout=180)
        assert rerun.returncode == 0, output.decode(errors="replace")[-3000:]
    assert (first.stat().st_mtime_ns, first.read_bytes()) == before
    assert _status(second) == "completed"
    rows = query(SuitePaths(out / "kill"))
    assert [(r["repeat"], r["status"]) for r in rows] == [(1, "completed"), (2, "completed")]
    for trial in ("tiny__codex__rp__r1", "tiny__codex__rp__r2"):
        assert marked_processes(trial_marker_prefix(out / "kill" / trial)) == []


def test_sigterm_stops_gracefully_and_resumes(tmp_path: Path) -> None:
    need("codex")
    task = write_task(tmp_path / "task", {"hello": HELLO_PROMPT})
    out = tmp_path / "out"
    with replay_in_thread(Fault(kind="slow", delay_s=0.3)) as url:
        suite = tmp_path / "suite.toml"
        suite.write_text(
            f'name = "term"\ntask = "{task}"\n[[agents]]\nname = "codex"\n'
            f'[[models]]\nid = "rp"\nmodel = "replay-model"\nprovider = "replay"\nbase_url = "{url}"\n'
        )
        trial = out / "term" / "tiny__codex__rp__r1"
        harness = _harness(suite, out)
        deadline = time.monotonic() + 60
        while not (trial / "phases" / "1" / "events.jsonl").is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        harness.send_signal(signal.SIGTERM)
        output, _ = harness.communicate(timeout=30)
        assert harness.returncode == 130, output.decode(errors="replace")[-2000:]
        assert _status(trial / "trial.json") == "running"
        assert marked_processes(trial_marker_prefix(trial)) == []
        rerun = _harness(suite, out)
        output, _ = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, output.decode(errors="replace")[-2000:]
    assert _status(trial / "trial.json") == "completed"
    assert (trial / "workspace" / "hello.txt").is_file()


@pytest.mark.parametrize("agent", ["codex", "claude", "gemini", "opencode"])
def test_agent_dies_within_5s_of_a_sigkilled_harness(tmp_path: Path, agent: str) -> None:
    """A real agent CLI (node, and what it spawns) must not outlive a SIGKILLed harness by more than 5 s, even while
    it waits on a model call that never answers (nothing on its stdout to fail on)."""
    need(agent)
    task = write_task(tmp_path / "task", {"hello": HELLO_PROMPT})
    out = tmp_path / "out"
    with replay_in_thread(Fault(kind="hang", times=1000)) as url:
        suite = tmp_path / "suite.toml"
        suite.write_text(
            f'name = "orphan"\ntask = "{task}"\n[[agents]]\nname = "{agent}"\n'
            f'[[models]]\nid = "rp"\nmodel = "replay-model"\nprovider = "replay"\nbase_url = "{url}"\n'
        )
        trial = out / "orphan" / f"tiny__{agent}__rp__r1"
        prefix = trial_marker_prefix(trial)
        harness = _harness(suite, out)
        deadline = time.monotonic() + 60
        while not marked_processes(prefix) and time.monotonic() < deadline and harness.poll() is None:
            time.sleep(0.05)
        time.sleep(0.5)
        running = marked_processes(prefix)
        assert running, "the agent never started"
        harness.send_signal(signal.SIGKILL)
        harness.wait(10)
        deadline = time.monotonic() + 5
        while marked_processes(prefix) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = marked_processes(prefix)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert left == [], f"agent processes outlived the harness by 5 s: {left} (of {running})"
