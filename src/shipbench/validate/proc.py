"""Child processes of the validation: a bounded command (`run_bounded`) and the booted app (`AppProcess`).

Invariants: every child starts in its own session with the validation's marker in its environment, under a
CPU-time rlimit and a memory watchdog over its whole tree; on every exit path (normal, timeout, exception)
its process group and every marked process are killed and reaped before the call returns; output goes to a
file, never to an unread pipe.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from shipbench.runner.killtree import MARKER_ENV, kill_marked

CPU_LIMIT_S = 900  # per process, cumulative CPU seconds
DEFAULT_MEMORY_MB = 3072  # the whole tree's resident memory
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
VALIDATION_ENV = "SHIPBENCH_VALIDATION"  # every child of one validation carries its root: how leaks are found


@dataclass
class Bounded:
    """What a bounded command did."""

    returncode: int | None  # None when it was killed (timeout or memory)
    output: str
    duration_s: float
    killed_reason: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _limits() -> None:  # runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT_S, CPU_LIMIT_S))
    with contextlib.suppress(OSError):
        os.nice(5)


class _Watchdog(threading.Thread):
    """Kills the tree of `proc` when its resident memory passes `limit_mb`."""

    def __init__(self, proc: subprocess.Popen[bytes], limit_mb: int) -> None:
        super().__init__(daemon=True, name="validate-watchdog")
        self.proc, self.limit_mb, self.reason = proc, limit_mb, ""
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.5) and self.proc.poll() is None:
            if (rss := tree_rss_mb(self.proc.pid)) > self.limit_mb:
                self.reason = f"memory limit: the process tree used {rss} MB (limit {self.limit_mb} MB)"
                kill_group(self.proc)
                return

    def stop(self) -> None:
        self._stop_event.set()


def tree_rss_mb(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total // (1024 * 1024)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _stop(proc: subprocess.Popen[bytes], marker: str, grace_s: float = 5.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace_s)
    kill_group(proc)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    kill_marked(marker)


def child_env(marker: str, extra: Mapping[str, str], home: Path) -> dict[str, str]:
    """A minimal environment: nothing of the harness's (no keys), the marker, and `extra`."""
    env = {"PATH": BASE_PATH, "HOME": str(home), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", MARKER_ENV: marker}
    env.update(extra)
    return env


def run_bounded(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log: Path,
    timeout_s: float,
    memory_mb: int = DEFAULT_MEMORY_MB,
) -> Bounded:
    """Run `argv` to completion or `timeout_s`; its output goes to `log` and is returned."""
    marker = env[MARKER_ENV]
    started = time.monotonic()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        try:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_limits,
            )
        except OSError as exc:
            return Bounded(None, f"could not start {argv[0]}: {exc}", 0.0, killed_reason=str(exc))
        watchdog = _Watchdog(proc, memory_mb)
        watchdog.start()
        reason = ""
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            reason = f"timed out after {timeout_s:.0f} s"
        finally:
            watchdog.stop()
            _stop(proc, marker, grace_s=2.0)
    reason = watchdog.reason or reason
    text = log.read_text(encoding="utf-8", errors="replace")
    code = None if reason else proc.returncode
    return Bounded(code, text, round(time.monotonic() - started, 2), killed_reason=reason)


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Health:
    ok: bool
    path: str = ""
    status: int | None = None
    reason: str = ""
    seconds: float = 0.0


def fetch(url: str, timeout: float = 5.0) -> tuple[int | None, str]:
    """GET `url` (redirects followed): (status, body) or (None, why) when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), resp.read(200_000).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read(200_000).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, str(exc)


@dataclass
class AppProcess:
    """The project's web server, started in production mode on a loopback port."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    log: Path
    port: int
    memory_mb: int = DEFAULT_MEMORY_MB
    proc: subprocess.Popen[bytes] | None = None
    _watchdog: _Watchdog | None = None
    _out: object = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = self.log.open("ab")
        self._out = out
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_limits,
        )
        self._watchdog = _Watchdog(self.proc, self.memory_mb)
        self._watchdog.start()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_healthy(self, timeout_s: float) -> Health:
        """Poll /up, else / (the first that answers 200), until `timeout_s` or the server exits."""
        started = time.monotonic()
        last = "no answer"
        while time.monotonic() - started < timeout_s:
            if not self.alive():
                why = self._watchdog.reason if self._watchdog and self._watchdog.reason else ""
                code = self.proc.returncode if self.proc else None
                return Health(
                    False,
                    reason=why or f"the server exited (code {code}) before it answered",
                    seconds=round(time.monotonic() - started, 2),
                )
            for path in ("/up", "/"):
                status, body = fetch(self.url + path, timeout=5)
                if status == 200:
                    return Health(True, path, 200, seconds=round(time.monotonic() - started, 2))
                if status is not None:
                    last = f"GET {path} answered {status}"
                    if path == "/up" and status == 404:
                        continue
                    if path == "/up":
                        break
                else:
                    last = f"GET {path}: {body}"
                    break
            time.sleep(0.3)
        return Health(
            False, reason=f"not healthy after {timeout_s:.0f} s ({last})", seconds=round(time.monotonic() - started, 2)
        )

    def worker_pids(self) -> list[int]:
        """The pids of the server's direct children (puma's workers in cluster mode)."""
        if self.proc is None:
            return []
        try:
            return [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.Error:
            return []

    def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.stop()
        if self.proc is not None:
            _stop(self.proc, self.env[MARKER_ENV])
        if self._out is not None:
            with contextlib.suppress(OSError):
                self._out.close()  # type: ignore[attr-defined]
            self._out = None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return tail(self.log.read_text(encoding="utf-8", errors="replace"), lines)
        except OSError:
            return ""
