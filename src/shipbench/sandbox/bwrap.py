"""The `bwrap` backend (bubblewrap, Linux): a fresh mount, PID, IPC and UTS namespace per agent start.

Invariants: the agent sees its own /proc (PID namespace: the harness's /proc/<pid>/environ and cmdline, and
other trials' processes, are not there), a minimal /dev, a private tmpfs /tmp, the system trees read-only
(SYSTEM_TREES), the agent's install tree and its interpreter read-only, its workspace and HOME writable, and
nothing else of the host filesystem (the root is a read-only tmpfs: no results dir, no other trial, no
checkout, no /root, no /run). It dies with its keeper (--die-with-parent) and runs in a new session.
`network = "open"` keeps the host network namespace. `proxy-only` gives a new one with only `lo`: the agent
runs under sandbox/forwarder.py, which serves 127.0.0.1:<proxy port> from the proxy's Unix socket, bound in at
SOCKET_IN; nothing else (host loopback, abstract sockets, other hosts) is reachable. Without a proxy endpoint
(the harness's git commands) proxy-only means no network at all.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from shipbench.sandbox.base import Network, ProxyEndpoint, SandboxCapabilities, SandboxRequest

DEFAULT_BINARY = Path("/usr/bin/bwrap")
# Read-only system trees (a symlink such as /bin -> usr/bin is recreated as the same symlink).
SYSTEM_TREES = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/var/lib/gems")
SELF_TEST_TIMEOUT_S = 15.0
SYSTEM_PYTHON = Path("/usr/bin/python3")  # runs the forwarder (proxy-only); under /usr, so visible inside
FORWARDER = Path(__file__).with_name("forwarder.py")
FORWARDER_IN = "/run/shipbench/forwarder.py"  # where the sandbox sees it (read-only)
SOCKET_IN = "/run/shipbench/proxy.sock"  # where the sandbox sees the proxy's Unix socket
# Inside a fresh network namespace: python runs and 127.0.0.1 can be listened on (bwrap brought `lo` up).
_NET_PROBE = "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()"

CAPABILITIES = SandboxCapabilities(
    name="bwrap",
    isolates_processes=True,
    isolates_filesystem=True,
    private_tmp=True,
    networks=frozenset({"open", "proxy-only"}),
    platforms=frozenset({"linux"}),
)


def find_bwrap() -> Path | None:
    if os.access(DEFAULT_BINARY, os.X_OK):
        return DEFAULT_BINARY
    found = shutil.which("bwrap")
    return Path(found) if found else None


@functools.cache
def _self_test(binary: Path) -> str | None:
    """Why `binary` cannot build the sandbox here (None: a `true` ran inside one)."""
    true = shutil.which("true", path="/usr/bin:/bin") or "/bin/true"
    return _run_test(binary, [str(binary), *_namespace_args(), *_system_args(), "--", true])


@functools.cache
def _net_self_test(binary: Path) -> str | None:
    """Why `binary` cannot build a proxy-only sandbox here (None: python listened on 127.0.0.1 inside one)."""
    args = [str(binary), *_namespace_args(), "--unshare-net", *_system_args()]
    return _run_test(binary, [*args, "--", str(SYSTEM_PYTHON), "-I", "-c", _NET_PROBE])


def _run_test(binary: Path, argv: list[str]) -> str | None:
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=SELF_TEST_TIMEOUT_S,
            env={"PATH": "/usr/bin:/bin"},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{binary} self-test failed: {exc}"
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"{binary} self-test failed (exit {done.returncode}): {detail[-1] if detail else 'no message'}"
    return None


def _namespace_args() -> list[str]:
    return [
        "--die-with-parent",
        "--new-session",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "shipbench-sandbox",
    ]


def _system_args() -> list[str]:
    args: list[str] = []
    for tree in SYSTEM_TREES:
        path = Path(tree)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), tree]
        elif path.is_dir():
            args += ["--ro-bind", tree, tree]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    resolv = Path("/etc/resolv.conf")
    if resolv.is_symlink():  # e.g. -> /run/systemd/resolve/stub-resolv.conf: DNS must keep working
        target = resolv.resolve()
        if not _covered(target, []):
            args += ["--ro-bind-try", str(target), str(target)]
    return args


def isolation_args(*, network: bool) -> list[str]:
    """The namespaces and read-only system trees of a sandbox (no writable path, no command yet), with a
    network namespace of its own (only `lo`) unless `network`: for other users of bwrap (validate/)."""
    return [*_namespace_args(), *([] if network else ["--unshare-net"]), *_system_args()]


def is_covered(path: Path, extra: list[Path]) -> bool:
    """`path` is already visible inside isolation_args()'s sandbox, or inside one of `extra`."""
    return _covered(path, extra)


def _covered(path: Path, extra: list[Path]) -> bool:
    """`path` is already visible: inside a bound system tree or one of `extra`."""
    roots = [Path(t).resolve() for t in SYSTEM_TREES if Path(t).is_dir() and not Path(t).is_symlink()]
    return any(path == root or root in path.parents for root in [*roots, *extra])


def tool_trees(binary: Path, path_env: str) -> list[Path]:
    """The read-only trees an agent CLI needs: the directory it was found in (its symlinks kept), the
    package tree its real path lies in (the whole node_modules for an npm install), and its interpreter's
    (node's) install prefix when that is not a system tree."""
    candidates = [binary.absolute().parent, _package_root(binary.resolve())]
    interpreter = shutil.which("node", path=path_env)
    if interpreter:
        found = Path(interpreter).absolute()
        real = found.resolve()
        candidates += [found.parent, real.parent.parent if real.parent.name == "bin" else real.parent]
    chosen: list[Path] = []
    for path in sorted(set(candidates), key=lambda p: len(p.parts)):
        if path.is_dir() and not _covered(path, chosen):
            chosen.append(path)
    return chosen


def _package_root(real: Path) -> Path:
    parts = real.parts
    if "node_modules" in parts:
        return Path(*parts[: parts.index("node_modules") + 1])
    return real.parent


class BwrapSandbox:
    capabilities = CAPABILITIES

    def __init__(self, binary: Path | None = None) -> None:
        self.binary = binary or find_bwrap()

    def problem(self) -> str | None:
        if sys.platform not in CAPABILITIES.platforms:
            return f"bwrap runs on Linux only (this is {sys.platform})"
        if self.binary is None:
            return f"bubblewrap is not installed ({DEFAULT_BINARY} not found; apt-get install bubblewrap)"
        return _self_test(self.binary)

    def network_problem(self, network: Network) -> str | None:
        if network == "open":
            return None
        if self.binary is None:
            return f"bubblewrap is not installed ({DEFAULT_BINARY} not found)"
        if not os.access(SYSTEM_PYTHON, os.X_OK):
            return f"{SYSTEM_PYTHON} (it runs the proxy forwarder inside the sandbox) is not installed"
        return _net_self_test(self.binary)

    def wrap(self, argv: list[str], request: SandboxRequest) -> list[str]:
        if self.binary is None:
            raise OSError(f"bubblewrap is not installed ({DEFAULT_BINARY} not found)")
        args = [str(self.binary), *_namespace_args(), *_system_args()]
        for tree in tool_trees(request.binary, request.path_env):
            args += ["--ro-bind", str(tree), str(tree)]
        for writable in (request.workspace.absolute(), request.home.absolute()):
            args += ["--bind", str(writable), str(writable)]
        if request.network == "proxy-only":
            args += ["--unshare-net"]
            if request.proxy is not None:
                args += _forwarder_binds(request.proxy)
                argv = _forwarder_argv(request.proxy, argv)
        args += ["--remount-ro", "/", "--chdir", str(request.workspace.absolute()), "--", *argv]
        return args


def _forwarder_binds(proxy: ProxyEndpoint) -> list[str]:
    return ["--ro-bind", str(FORWARDER), FORWARDER_IN, "--bind", str(proxy.socket), SOCKET_IN]


def _forwarder_argv(proxy: ProxyEndpoint, argv: list[str]) -> list[str]:
    """The agent's argv run under the forwarder (it exits with the agent's status)."""
    return [str(SYSTEM_PYTHON), "-I", FORWARDER_IN, str(proxy.port), SOCKET_IN, *argv]
