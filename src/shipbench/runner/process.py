"""Run one agent phase as a supervised process tree: start, drain, notice exit at once, kill everything.

Invariants: the agent runs under runner/keeper.py (the session leader, a child subreaper that SIGKILLs the whole
tree when this harness process dies, however it dies) in its own session with stdin closed and the trial marker in
its environment; the keeper's exit status is the agent's and an exec failure is raised as the OSError; stdout
and stderr are drained concurrently at all times (a flood never blocks the child) through bounded buffers (a line
is cut at MAX_LINE_BYTES, a stream is kept up to limits.max_output_bytes, the rest only counted; the last stdout
line is always delivered); a sandbox (shipbench.sandbox) only rewrites the argv the keeper execs (the keeper stays
outside it, the agent inside), and a missing agent binary is still raised as the OSError; on every exit path
(normal exit, stop, error, cancellation) no process of the trial survives the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shipbench.agents.base import Invocation
from shipbench.config import Limits
from shipbench.runner import killtree

MAX_LINE_BYTES = 1024 * 1024
CHUNK_BYTES = 64 * 1024
DRAIN_TIMEOUT_S = 2.0  # after the tree is dead, how long the pipes may take to reach EOF
KEEPER = Path(__file__).with_name("keeper.py")


@dataclass
class ProcessResult:
    exit_code: int | None
    signal: int | None
    wall_s: float
    stopped: bool  # we stopped it (watchdog, budget, shutdown)
    stop_reason: str | None
    stdout_bytes: int
    stderr_bytes: int
    truncated: bool  # some output was dropped: beyond limits.max_output_bytes, or a line beyond MAX_LINE_BYTES
    survivors_killed: int  # processes of the trial still alive after the agent exited, killed by us


class StopSignal(asyncio.Event):
    """An asyncio.Event that carries why it was set; run_process reports the reason as stop_reason."""

    def __init__(self) -> None:
        super().__init__()
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        if not self.is_set():
            self.reason = reason
        self.set()


class _StdoutSink:
    """Splits a byte stream into lines with bounded memory and hands them to `emit`."""

    def __init__(self, emit: Callable[[str], None], cap: int, max_line: int = MAX_LINE_BYTES) -> None:
        self.emit, self.cap, self.max_line = emit, cap, max_line
        self.buf = bytearray()
        self.skipping = False  # inside an over-long line whose head was already delivered
        self.total = 0
        self.delivered = 0
        self.capped = False
        self.truncated = False
        self.held: bytes | None = None  # last line dropped by the cap: delivered at EOF

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        parts = chunk.split(b"\n")
        if self.capped and len(parts) > 2:  # only the last complete line can still matter
            self._end_line(parts[0])
            parts = parts[-2:]
        for piece in parts[:-1]:
            self._end_line(piece)
        self._extend(parts[-1])

    def close(self) -> None:
        if self.buf and not self.skipping:
            self._line(bytes(self.buf))
        self.buf.clear()
        if self.held is not None:
            held, self.held = self.held, None
            self.emit(_decode(held))

    def _extend(self, piece: bytes) -> None:
        if self.skipping or not piece:
            return
        room = self.max_line - len(self.buf)
        if len(piece) <= room:
            self.buf += piece
            return
        self.buf += piece[:room]
        self.truncated = self.skipping = True
        self._line(bytes(self.buf))
        self.buf.clear()

    def _end_line(self, piece: bytes) -> None:
        if self.skipping:
            self.skipping = False
            return
        room = self.max_line - len(self.buf)
        if len(piece) > room:
            self.truncated = True
            piece = piece[:room]
        line = bytes(self.buf) + piece
        self.buf.clear()
        self._line(line)

    def _line(self, line: bytes) -> None:
        if not self.capped and self.delivered + len(line) <= self.cap:
            self.delivered += len(line) + 1
            self.emit(_decode(line))
            return
        self.capped = self.truncated = True
        self.held = line


class _StderrSink:
    """Writes the first `cap` bytes of a stream to a file, counts the rest."""

    def __init__(self, fh: BinaryIO, cap: int) -> None:
        self.fh, self.cap = fh, cap
        self.total = 0
        self.truncated = False

    def feed(self, chunk: bytes) -> None:
        room = self.cap - self.total
        self.total += len(chunk)
        if room >= len(chunk):
            self.fh.write(chunk)
            return
        self.truncated = True
        if room > 0:
            self.fh.write(chunk[:room])


def _decode(line: bytes) -> str:
    return line.decode("utf-8", "replace").removesuffix("\r")


def _write_files(files: dict[Path, str]) -> None:
    """Write the adapter's files (into HOME, which the agent of an earlier phase could write): a symlink the agent
    left at one of these paths is replaced, never followed, so the harness's write stays where it was meant."""
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            path.unlink()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)


async def _open_reader(fd: int) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=4 * CHUNK_BYTES, loop=loop)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(fd, "rb", buffering=0)
    )
    return reader, transport


async def _pump(reader: asyncio.StreamReader, feed: Callable[[bytes], None]) -> None:
    while chunk := await reader.read(CHUNK_BYTES):
        feed(chunk)


class _Failure:
    """First exception raised by the stdout callback; the run stops and it is re-raised after cleanup."""

    def __init__(self) -> None:
        self.exc: BaseException | None = None
        self.event = asyncio.Event()

    def guard(self, emit: Callable[[str], None]) -> Callable[[str], None]:
        def call(line: str) -> None:
            if self.exc is not None:
                return
            try:
                emit(line)
            except Exception as exc:
                self.exc = exc
                self.event.set()

        return call


async def run_process(
    invocation: Invocation,
    *,
    cwd: Path,
    marker: str,
    limits: Limits,
    on_stdout_line: Callable[[str], None],
    stderr_path: Path,
    stop: asyncio.Event,
    wrap: Callable[[list[str]], list[str]] | None = None,
) -> ProcessResult:
    """Run the agent until it exits or `stop` is set; raises OSError if it cannot be started at all.

    `wrap` turns the agent's argv into the sandbox's (`bwrap ... -- argv`); the keeper runs that argv."""
    _write_files(invocation.files)
    env = {**invocation.env, killtree.MARKER_ENV: marker}
    argv = invocation.argv
    if wrap is not None:
        _check_program(argv[0], env.get("PATH", ""))  # inside the sandbox an exec error is only an exit code
        argv = wrap(argv)
    stderr_path.parent.mkdir(parents=True, exist_ok=True)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    rep_r, rep_w = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *_keeper_argv(argv, rep_w),
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out_w,
            stderr=err_w,
            start_new_session=True,
            pass_fds=(_lifeline(), rep_w),
        )
    except BaseException:
        for fd in (out_r, err_r, rep_r):
            os.close(fd)
        raise
    finally:
        for fd in (out_w, err_w, rep_w):
            os.close(fd)
    try:
        await _started(proc, rep_r, invocation.argv[0], marker)
    except BaseException:
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    with stderr_path.open("wb") as err_fh:
        return await _supervise(proc, out_r, err_r, err_fh, marker, limits, on_stdout_line, stop)


def _check_program(program: str, path_env: str) -> None:
    """Raise the OSError an exec of `program` would raise when it is missing or not executable."""
    found = program if "/" in program else shutil.which(program, path=path_env)
    if found is None or not os.path.isfile(found):
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    if not os.access(found, os.X_OK):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), program)


_LIFELINE: tuple[int, int] | None = None  # (pid of the harness that made it, read end)


def _lifeline() -> int:
    """Read end of this harness's lifeline: its write end stays open (and non-inheritable) in this process only,
    so it reaches EOF in every keeper exactly when the harness dies, however it dies."""
    global _LIFELINE
    if _LIFELINE is None or _LIFELINE[0] != os.getpid():  # a forked copy of the harness needs its own
        read_end, _write_end = os.pipe()  # the write end is never closed: it lives as long as the process
        _LIFELINE = (os.getpid(), read_end)
    return _LIFELINE[1]


def _keeper_argv(argv: list[str], report_fd: int) -> list[str]:
    return [sys.executable, "-I", str(KEEPER), str(_lifeline()), str(report_fd), str(os.getpid()), *argv]


async def _started(proc: asyncio.subprocess.Process, report_r: int, program: str, marker: str) -> None:
    """Wait for the keeper's report; raise the OSError of a failed exec (as if the agent were spawned directly)."""
    try:
        reader, transport = await _open_reader(report_r)
    except BaseException:
        os.close(report_r)
        killtree.kill_now(marker, proc.pid, proc.returncode is None)
        raise
    try:
        report = (await reader.read()).decode(errors="replace").split()
    except BaseException:
        killtree.kill_now(marker, proc.pid, proc.returncode is None)
        raise
    finally:
        transport.close()
    if report[:1] == ["ok"]:
        return
    await proc.wait()
    if report[:1] == ["err"] and report[1:2] and report[1].isdigit():
        code = int(report[1])
        raise OSError(code, os.strerror(code), program)
    raise OSError(f"the process keeper failed to start {program} (exit {proc.returncode})")


async def _supervise(
    proc: asyncio.subprocess.Process,
    out_r: int,
    err_r: int,
    err_fh: BinaryIO,
    marker: str,
    limits: Limits,
    on_stdout_line: Callable[[str], None],
    stop: asyncio.Event,
) -> ProcessResult:
    started = time.monotonic()
    exited_at: list[float] = []
    failure = _Failure()
    out = _StdoutSink(failure.guard(on_stdout_line), limits.max_output_bytes)
    err = _StderrSink(err_fh, limits.max_output_bytes)
    unopened = [out_r, err_r]
    transports: list[asyncio.BaseTransport] = []
    tasks: list[asyncio.Task[None]] = []
    waited = asyncio.create_task(proc.wait())
    waited.add_done_callback(lambda _: exited_at.append(time.monotonic()))
    try:
        for fd, feed in ((out_r, out.feed), (err_r, err.feed)):
            reader, transport = await _open_reader(fd)
            unopened.remove(fd)
            transports.append(transport)
            tasks.append(asyncio.create_task(_pump(reader, feed)))
        stopped = await _until_exit_or_stop(waited, stop, failure.event)
        survivors = await killtree.terminate_tree(
            proc.pid, marker, limits.grace_s, root_exited=lambda: proc.returncode is not None
        )
        await asyncio.wait_for(asyncio.shield(waited), timeout=killtree.KILL_ROUNDS_S)
        await _drain(tasks)
    except BaseException:
        killtree.kill_now(marker, proc.pid, proc.returncode is None)
        raise
    finally:
        for task in [*tasks, waited]:
            task.cancel()
        for transport in transports:
            transport.close()
        for fd in unopened:
            os.close(fd)
        out.close()
    wall_s = (exited_at[0] if exited_at else time.monotonic()) - started
    if failure.exc is not None:
        raise failure.exc
    return _result(proc.returncode, wall_s, stopped, stop, out, err, survivors)


async def _until_exit_or_stop(waited: asyncio.Task[int], stop: asyncio.Event, failed: asyncio.Event) -> bool:
    """Wait for the agent to exit (polled via the child watcher, not the pipes) or a stop; True if stopped."""
    stop_task = asyncio.create_task(stop.wait())
    fail_task = asyncio.create_task(failed.wait())
    try:
        await asyncio.wait({waited, stop_task, fail_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop_task.cancel()
        fail_task.cancel()
    return not waited.done()


async def _drain(pumps: list[asyncio.Task[None]]) -> None:
    """Let the pipes reach EOF (every writer is dead now); a pipe held by a stranger is abandoned, not waited on."""
    _, pending = await asyncio.wait(pumps, timeout=DRAIN_TIMEOUT_S)
    for task in pending:
        task.cancel()
    for task in pumps:
        if task.done() and not task.cancelled():
            task.result()  # surface a reader crash (a bug), never silently


def _result(
    returncode: int | None,
    wall_s: float,
    stopped: bool,
    stop: asyncio.Event,
    out: _StdoutSink,
    err: _StderrSink,
    survivors: int,
) -> ProcessResult:
    sig = -returncode if returncode is not None and returncode < 0 else None
    reason: str | None = None
    if stopped:
        reason = getattr(stop, "reason", None) or "stop requested"
    return ProcessResult(
        exit_code=returncode if sig is None else None,
        signal=sig,
        wall_s=wall_s,
        stopped=stopped,
        stop_reason=reason,
        stdout_bytes=out.total,
        stderr_bytes=err.total,
        truncated=out.truncated or err.truncated,
        survivors_killed=survivors,
    )


def signal_name(sig: int | None) -> str | None:
    """SIGTERM for 15, etc.; for status texts."""
    if sig is None:
        return None
    with contextlib.suppress(ValueError):
        return signal.Signals(sig).name
    return f"signal {sig}"
