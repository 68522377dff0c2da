"""Find and kill every process of one trial, and nothing else (Linux /proc).

Invariants: a process belongs to a trial iff its environment carries SHIPBENCH_TRIAL_MARKER=<marker>, or it is in
the root's session or process group (the root is the keeper that runs the agent, see keeper.py; both ids pin its
pid number while any member lives), or, while the root lives, it descends from it by /proc ppid chains (the group
is SIGSTOPped before the tree is read, and every process once found stays tracked after it is orphaned). The
harness and its ancestors are never signalled, zombies are ignored, and every signal goes through a pidfd opened
after re-checking the process start time, so a recycled pid is never hit.
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
KILL_ROUNDS_S = 5.0


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


def _alive(info: ProcInfo) -> bool:
    now = read_stat(info.pid)
    return now is not None and now.start_ticks == info.start_ticks and now.state not in ("Z", "X")


class _Sweep:
    """Remembers every trial process ever found, so one seen by its ppid chain stays known once orphaned."""

    def __init__(self, marker: str, root_pid: int | None, root_exited: Callable[[], bool]) -> None:
        self.marker, self.root_pid, self.root_exited = marker, root_pid, root_exited
        self.known: dict[int, ProcInfo] = {}
        self.survivors: set[int] = set()

    def scan(self) -> dict[int, ProcInfo]:
        exited = self.root_exited()
        fresh = trial_processes(self.marker, self.root_pid, not exited)
        self.known = {pid: info for pid, info in self.known.items() if pid not in fresh and _alive(info)}
        self.known.update(fresh)
        if exited:
            self.survivors.update(pid for pid in self.known if pid != self.root_pid)
        return dict(self.known)

    def freeze(self) -> dict[int, ProcInfo]:
        """Stop the agent's group before looking, so nothing forks or gets orphaned while the tree is read."""
        if self.root_pid and not self.root_exited():
            signal_group(self.root_pid, signal.SIGSTOP)
        return self.scan()

    def signal_all(self, found: dict[int, ProcInfo], sig: int) -> set[int]:
        if self.root_pid and not self.root_exited():
            signal_group(self.root_pid, sig)
        hit = {pid for pid, info in found.items() if signal_process(info, sig)}
        if sig != signal.SIGKILL:
            if self.root_pid and not self.root_exited():
                signal_group(self.root_pid, signal.SIGCONT)
            for info in found.values():
                signal_process(info, signal.SIGCONT)
        return hit


def kill_now(marker: str, root_pid: int | None = None, root_alive: bool = False) -> set[int]:
    """SIGKILL the whole trial synchronously, repeating sweeps until none is left; returns the pids killed."""
    sweep = _Sweep(marker, root_pid, lambda: not root_alive)
    found = sweep.freeze()
    killed: set[int] = set()
    deadline = time.monotonic() + KILL_ROUNDS_S
    while found and time.monotonic() < deadline:
        killed |= sweep.signal_all(found, signal.SIGKILL)
        time.sleep(0.01)
        found = sweep.scan()
    return killed


def kill_marked(marker: str) -> int:
    """Kill whatever still carries `marker` (e.g. left by a harness that was SIGKILLed); returns how many."""
    return len(kill_now(marker))


async def terminate_tree(root_pid: int, marker: str, grace_s: float, root_exited: Callable[[], bool]) -> int:
    """Freeze and read the tree, SIGTERM it, wait up to `grace_s`, SIGKILL what is left, sweep until empty.

    Returns how many processes other than the agent were found alive after the agent had exited.
    """
    sweep = _Sweep(marker, root_pid, root_exited)
    found = sweep.freeze()
    sweep.signal_all(found, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while found and time.monotonic() < deadline:
        await asyncio.sleep(_POLL_S)
        found = sweep.scan()
    deadline = time.monotonic() + KILL_ROUNDS_S
    while found and time.monotonic() < deadline:
        sweep.signal_all(found, signal.SIGKILL)
        await asyncio.sleep(0.01)
        found = sweep.scan()
    return len(sweep.survivors)
