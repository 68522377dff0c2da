"""The keeper: a tiny stdlib-only process between the harness and one agent, so the agent dies with the harness.

Run as `python -I keeper.py LIFELINE_FD REPORT_FD HARNESS_PID ARGV...` (by runner/process.py, in the agent's new
session). It becomes a child subreaper (so every orphaned descendant of the agent is re-parented to it, whatever
session, group or environment it chose), starts the agent, writes `ok <pid>` or `err <errno>` to REPORT_FD, and
then waits. Invariants: when the agent exits, the keeper exits with the agent's status (same code, or killed by
the same signal); when the harness dies (LIFELINE_FD reaches EOF: the harness held the only write end, closed by
the kernel however it died, SIGKILL included; or the parent pid changes), it SIGKILLs every descendant within
about a second and exits. PR_SET_PDEATHSIG is not used: it fires on death of the forking *thread*, not process.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import resource
import select
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
_POLL_S = 0.5
_KILL_ROUNDS_S = 3.0


def _subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _spawn(argv: list[str], report_fd: int, lifeline_fd: int) -> int:
    """Fork and exec the agent; returns its pid, or exits 127 after reporting the exec errno."""
    err_r, err_w = os.pipe()  # both close-on-exec: EOF without data means the exec succeeded
    pid = os.fork()
    if pid == 0:
        try:
            os.close(err_r)
            os.close(report_fd)
            os.close(lifeline_fd)
            os.execvpe(argv[0], argv, os.environ)
        except OSError as exc:
            os.write(err_w, str(exc.errno or errno.ENOENT).encode())
        except BaseException:
            os.write(err_w, str(errno.EINVAL).encode())
        finally:
            os._exit(127)
    os.close(err_w)
    data = b""
    while chunk := os.read(err_r, 64):
        data += chunk
    os.close(err_r)
    if data:
        os.waitpid(pid, 0)
        os.write(report_fd, b"err " + data + b"\n")
        os._exit(127)
    os.write(report_fd, f"ok {pid}\n".encode())
    os.close(report_fd)
    return pid


def _children() -> list[int]:
    """Pids of every descendant of this process (read from /proc, so even a reparented orphan is seen)."""
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2 :].split()
        if len(fields) > 1 and fields[0] not in (b"Z", b"X"):
            kids.setdefault(int(fields[1]), []).append(int(name))
    found: list[int] = []
    todo = [os.getpid()]
    while todo:
        for child in kids.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _reap() -> list[tuple[int, int]]:
    reaped: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append((pid, status))


def _kill_all() -> None:
    """SIGKILL every descendant, round after round, until none is left (orphans come back to us as subreaper)."""
    deadline = time.monotonic() + _KILL_ROUNDS_S
    while time.monotonic() < deadline:
        found = _children()
        if not found:
            return
        for pid in found:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
        _reap()


def _exit_like(status: int) -> None:
    """Leave with the agent's wait status: the same exit code, or death by the same signal."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        with contextlib.suppress(OSError, ValueError):  # SIGKILL cannot be caught anyway
            signal.signal(sig, signal.SIG_DFL)
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file of ours for the agent's crash
        os.kill(os.getpid(), sig)
        time.sleep(1)
        os._exit(128 + sig)
    os._exit(os.waitstatus_to_exitcode(status))


def _lifeline_closed(lifeline_fd: int) -> bool:
    try:
        return os.read(lifeline_fd, 1) == b""  # the harness never writes: readable means EOF
    except OSError:
        return True


def main(args: list[str]) -> None:
    lifeline_fd, report_fd, harness_pid = int(args[0]), int(args[1]), int(args[2])
    argv = args[3:]
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)  # a handler, not SIG_IGN: the agent must not inherit "ignored"
    _subreaper()
    agent = _spawn(argv, report_fd, lifeline_fd)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (1, 2):
        os.dup2(null, fd)  # the agent's pipes reach EOF when the agent's tree is done, not when we are
    agent_fd = os.pidfd_open(agent)
    while True:
        readable, _, _ = select.select([agent_fd, lifeline_fd], [], [], _POLL_S)
        if (lifeline_fd in readable and _lifeline_closed(lifeline_fd)) or os.getppid() != harness_pid:
            _kill_all()
            os._exit(137)
        for pid, status in _reap():
            if pid == agent:
                _exit_like(status)


if __name__ == "__main__":
    main(sys.argv[1:])
