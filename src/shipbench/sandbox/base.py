"""The one shape every sandbox backend has: typed capabilities, a self-test, and an argv wrapper.

Invariants: `problem()` says why the backend cannot run here and `network_problem()` why it cannot enforce a
network mode (None when it can); they alone may start a process (throw-away self-tests); `wrap()` is pure (no
I/O beyond resolving paths) and returns an argv ending with the agent's argv unchanged, whose exit status is the
agent's, so the keeper still sees it.
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
class ProxyEndpoint:
    """The metering proxy as a proxy-only sandbox reaches it: its Unix socket, bridged to 127.0.0.1:port inside."""

    socket: Path  # the proxy's Unix socket on the host (harness-owned, in a private 0700 directory)
    port: int  # the port of the agent's base URL (http://127.0.0.1:<port>)


@dataclass(frozen=True)
class SandboxRequest:
    """What the runner knows about one agent start."""

    workspace: Path  # writable, the cwd
    home: Path  # writable, the private HOME
    binary: Path  # the agent CLI as found (its install tree is made visible read-only)
    path_env: str  # the PATH the agent runs with (its interpreter, e.g. node, is looked up there)
    network: Network
    proxy: ProxyEndpoint | None = None  # proxy-only: the one endpoint reachable (None: no network at all, e.g. git)


class Sandbox(Protocol):
    capabilities: SandboxCapabilities

    def problem(self) -> str | None: ...

    def network_problem(self, network: Network) -> str | None: ...

    def wrap(self, argv: list[str], request: SandboxRequest) -> list[str]: ...
