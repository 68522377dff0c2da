"""The one shape every sandbox backend has: typed capabilities, a self-test, and an argv wrapper.

Invariants: `problem()` says why the backend cannot run here (None when it can) and is the only place that
may start a process (a throw-away self-test); `wrap()` is pure (no I/O beyond resolving paths) and returns an
argv whose last elements are the agent's argv unchanged, so the keeper still sees the agent's exit status.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

Network = Literal["open", "proxy-only"]


@dataclass(frozen=True)
class SandboxCapabilities:
    """What a backend isolates, as data (the refusals and the report read this)."""

    name: str
    isolates_processes: bool  # own PID namespace and /proc: the harness's and other trials' processes unseen
    isolates_filesystem: bool  # only the trial's workspace and HOME (writable) and read-only system/tool trees
    private_tmp: bool  # /tmp is private to the phase
    networks: frozenset[Network]  # network modes this backend can enforce
    platforms: frozenset[str]  # sys.platform values it can run on


@dataclass(frozen=True)
class SandboxRequest:
    """What the runner knows about one agent start."""

    workspace: Path  # writable, the cwd
    home: Path  # writable, the private HOME
    binary: Path  # the agent CLI as found (its install tree is made visible read-only)
    path_env: str  # the PATH the agent runs with (its interpreter, e.g. node, is looked up there)
    network: Network


class Sandbox(Protocol):
    capabilities: SandboxCapabilities

    def problem(self) -> str | None: ...

    def wrap(self, argv: list[str], request: SandboxRequest) -> list[str]: ...
