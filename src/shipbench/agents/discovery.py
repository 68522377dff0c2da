"""Find an agent CLI binary and read its version.

Invariants: lookup order is explicit override, $SHIPBENCH_TOOLS_BIN, <repo>/.tools/npm/bin, PATH, and
an explicit override that does not exist is not silently replaced by another binary;
`detect_version` never raises (None on any failure), runs the binary with a private throw-away HOME
and a scratch environment, and kills the binary's whole process group on timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from pathlib import Path

from shipbench.agents.base import AgentAdapter, AgentCapabilities
from shipbench.agents.common import DEFAULT_PATH

TOOLS_BIN_ENV = "SHIPBENCH_TOOLS_BIN"
VERSION_TIMEOUT_S = 20.0


def repo_root() -> Path:
    """The source checkout holding this package (src layout), else the current directory."""
    candidate = Path(__file__).resolve().parents[3]
    return candidate if (candidate / "pyproject.toml").is_file() else Path.cwd()


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_binary(cap: AgentCapabilities, override: str | None, *, root: Path | None = None) -> Path | None:
    if override:
        path = Path(override).expanduser()
        return path.resolve() if _executable(path) else None
    dirs: list[Path] = []
    tools_bin = os.environ.get(TOOLS_BIN_ENV)
    if tools_bin:
        dirs.append(Path(tools_bin).expanduser())
    dirs.append((root or repo_root()) / ".tools" / "npm" / "bin")
    for directory in dirs:
        if _executable(directory / cap.binary):
            return (directory / cap.binary).absolute()
    found = shutil.which(cap.binary)
    return Path(found).absolute() if found else None


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def _run_version(binary: Path, args: tuple[str, ...], home: str, timeout: float) -> str | None:
    env = {"PATH": os.environ.get("PATH") or DEFAULT_PATH, "HOME": home, "LANG": "C.UTF-8", "TERM": "dumb"}
    proc = await asyncio.create_subprocess_exec(
        str(binary), *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env, cwd=home, start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        _kill_group(proc)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 5)
        raise
    _kill_group(proc)  # nothing of a version probe may outlive it
    if proc.returncode != 0:
        return None
    return out.decode("utf-8", "replace") + "\n" + err.decode("utf-8", "replace")


async def detect_version(adapter: AgentAdapter, binary: Path, *, timeout: float = VERSION_TIMEOUT_S) -> str | None:
    """`binary --version` parsed by the adapter; None when it fails, times out or prints no version."""
    try:
        with tempfile.TemporaryDirectory(prefix="shipbench-version-") as home:
            output = await _run_version(binary, adapter.capabilities.version_args, home, timeout)
    except Exception:  # missing, not executable, timed out, unreadable output: no version
        return None
    if output is None:
        return None
    return adapter.parse_version(output) or None
