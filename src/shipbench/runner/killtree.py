"""Find and kill every process of one trial, and nothing else (Linux /proc).

Invariants: a process belongs to a trial iff its environment carries SHIPBENCH_TRIAL_MARKER=<marker>, or it is in
the agent's session or process group (both ids pin the agent's pid number while any member lives), or, while the
agent itself lives, it descends from the agent by /proc ppid chains. The harness and its ancestors are never
signalled, zombies are ignored, and every signal goes through a pidfd opened after re-checking the process start
time, so a recycled pid is never hit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MARKER_ENV = "SHIPBENCH_TRIAL_MARKER"
_PROC = Path("/proc")
_POLL_S = 0.05
_KILL_ROUNDS_S = 5.0


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str
    start_ticks: int  # /proc/<pid>/stat field 22: with the pid, identifies one process for its whole life


def read_stat(pid: int) -> ProcInfo | None:
    """Parse /proc/<pid>/stat; None when the process is gone or unreadable."""
    try:
        data = (_PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return ProcInfo(pid, int(fields[1]), int(fields[2]), int(fields[3]), fields[0].decode(), int(fields[19]))
    except (IndexError, ValueError):
        return None


def proc_table() -> dict[int, ProcInfo]:
    table: dict[int, ProcInfo] = {}
    for entry in os.scandir(_PROC):
        if entry.name.isdigit():
            info = read_stat(int(entry.name))
            if info is not None:
                table[info.pid] = info
    return table


def has_marker(pid: int, marker: str) -> bool:
    try:
        environ = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return False
    return f"{MARKER_ENV}={marker}".encode() in environ.split(b"\0")


def _protected(table: dict[int, ProcInfo]) -> set[int]:
    """This process and its ancestors: never ours to kill, whatever their environment says."""
    keep: set[int] = set()
    pid = os.getpid()
    while pid > 0 and pid not in keep:
        keep.add(pid)
        info = table.get(pid)
        pid = info.ppid if info else 0
    return keep


def _descendants(table: dict[int, ProcInfo], root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info.pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def trial_processes(marker: str, root_pid: int | None = None, root_alive: bool = False) -> dict[int, ProcInfo]:
    """Live processes of the trial (the agent itself included while it lives)."""
    table = proc_table()
    protected = _protected(table)
    tree = _descendants(table, root_pid) if root_pid and root_alive else set()
    found: dict[int, ProcInfo] = {}
    for pid, info in table.items():
        if pid in protected or info.state in ("Z", "X"):
            continue
        in_session = root_pid is not None and root_pid in (info.sid, info.pgid)
        if in_session or pid in tree or has_marker(pid, marker):
            found[pid] = info
    return found


def signal_process(info: ProcInfo, sig: int) -> bool:
    """Signal exactly the process `info` describes; False if it is gone (or was replaced by a recycled pid)."""
    try:
        fd = os.pidfd_open(info.pid)
    except OSError:
        return False
    try:
        now = read_stat(info.pid)
        if now is None or now.start_ticks != info.start_ticks:
            return False
        signal.pidfd_send_signal(fd, sig)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def signal_group(pgid: int, sig: int) -> None:
    """Signal a process group; only call while its leader is known alive (unreaped), so the id is ours."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def kill_now(marker: str, root_pid: int | None = None, root_alive: bool = False) -> set[int]:
    """SIGKILL the whole trial synchronously, repeating sweeps until none is left; returns the pids killed."""
    if root_pid and root_alive:
        signal_group(root_pid, signal.SIGKILL)
    killed: set[int] = set()
    deadline = time.monotonic() + _KILL_ROUNDS_S
    while time.monotonic() < deadline:
        found = trial_processes(marker, root_pid, root_alive)
        if not found:
            break
        killed.update(pid for pid, info in found.items() if signal_process(info, signal.SIGKILL))
        time.sleep(0.01)
    return killed


def kill_marked(marker: str) -> int:
    """Kill whatever still carries `marker` (e.g. left by a harness that was SIGKILLed); returns how many."""
    return len(kill_now(marker))


async def terminate_tree(root_pid: int, marker: str, grace_s: float, root_exited: Callable[[], bool]) -> int:
    """SIGTERM the trial, wait up to `grace_s`, SIGKILL what is left, sweep until empty.

    Returns how many processes other than the agent were found alive after the agent had exited.
    """
    survivors: set[int] = set()

    def scan() -> dict[int, ProcInfo]:
        exited = root_exited()
        found = trial_processes(marker, root_pid, not exited)
        if exited:
            survivors.update(pid for pid in found if pid != root_pid)
        return found

    if not root_exited():
        signal_group(root_pid, signal.SIGTERM)
        signal_group(root_pid, signal.SIGCONT)
    found = scan()
    for info in found.values():
        signal_process(info, signal.SIGTERM)
        signal_process(info, signal.SIGCONT)
    deadline = time.monotonic() + grace_s
    while found and time.monotonic() < deadline:
        await asyncio.sleep(_POLL_S)
        found = scan()
    if not root_exited():
        signal_group(root_pid, signal.SIGKILL)
    deadline = time.monotonic() + _KILL_ROUNDS_S
    while found and time.monotonic() < deadline:
        for info in found.values():
            signal_process(info, signal.SIGKILL)
        await asyncio.sleep(0.01)
        found = scan()
    return len(survivors)
