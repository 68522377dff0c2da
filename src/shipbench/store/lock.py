"""An exclusive lock on a results directory (`<out>/.shipbench-run.lock`), so two runs never share one.

Invariants: the lock is an fcntl.flock on an open file, so it dies with the process (exit, crash, SIGKILL,
Ctrl-C); the holder's pid, host and start time are written into the file once the lock is held and
cleared on release; a second run never waits: it is refused at once with the holder's details.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

LOCK_NAME = ".shipbench-run.lock"


class ResultsLocked(Exception):
    """Another process holds the results directory; the message says who."""


def lock_path(out: Path) -> Path:
    return out / LOCK_NAME


@contextlib.contextmanager
def results_lock(out: Path) -> Iterator[Path]:
    """Hold the exclusive lock on `out` (created if missing) for the duration of the block.

    Raises ResultsLocked when another process holds it, OSError when `out` cannot be created or written.
    """
    out.mkdir(parents=True, exist_ok=True)
    path = lock_path(out)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children (PEP 446)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ResultsLocked(
                f"{out} is in use by another shipbench run ({holder(path)}); wait for it to finish or use another --out"
            ) from None
        _write(
            fd,
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                }
            )
            + "\n",
        )
        try:
            yield path
        finally:
            _write(fd, "")
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def holder(path: Path) -> str:
    """The holder as written in the lock file: `pid N on host H since T`, or why it is unknown."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {data['pid']} on host {data['host']} since {data['started_at']}"
    except (OSError, ValueError, KeyError, TypeError):
        return f"holder unknown: {path} holds no details yet"


def _write(fd: int, text: str) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode("utf-8"), 0)
    os.fsync(fd)
