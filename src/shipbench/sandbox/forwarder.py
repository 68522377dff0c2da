"""The proxy forwarder: inside a `network = "proxy-only"` sandbox, the only way out is the metering proxy.

Run as `python3 -I forwarder.py PORT SOCKET ARGV...` (stdlib only; bwrap binds it read-only) in a new network
namespace that has only `lo`. Invariants: it listens on 127.0.0.1:PORT before the agent starts (so the agent's
proxy base URL is unchanged) and pipes each connection, bytes unchanged, to the proxy's Unix socket SOCKET; it
never writes to stdout (the agent's event stream); SIGTERM/SIGINT/SIGHUP do not stop it (the keeper's kill-tree
signals the agent itself); it exits as soon as the agent does, with the agent's status (code or signal).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time

CHUNK = 64 * 1024


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    """Copy src to dst until EOF, then half-close dst (a request body's end reaches the proxy)."""
    with contextlib.suppress(OSError):
        while data := src.recv(CHUNK):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def _serve_one(client: socket.socket, path: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(path)
    except OSError:
        client.close()
        upstream.close()
        return
    back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
    back.start()
    _pipe(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _accept_forever(listener: socket.socket, path: str) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            time.sleep(0.01)  # e.g. EMFILE: keep serving once descriptors are free again
            continue
        threading.Thread(target=_serve_one, args=(client, path), daemon=True).start()


def _listen(port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    return listener


def _exit_like(returncode: int) -> None:
    """Leave with the agent's status: the same exit code, or death by the same signal."""
    if returncode >= 0:
        os._exit(returncode)
    sig = -returncode
    with contextlib.suppress(OSError, ValueError):
        signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
    time.sleep(1)
    os._exit(128 + sig)


def main(args: list[str]) -> None:
    port, path, argv = int(args[0]), args[1], args[2:]
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)  # a handler, not SIG_IGN: the agent must not inherit "ignored"
    try:
        listener = _listen(port)
        agent = subprocess.Popen(argv, close_fds=True)
    except OSError as exc:
        print(f"shipbench forwarder: cannot start: {exc}", file=sys.stderr, flush=True)
        os._exit(126 if isinstance(exc, PermissionError) else 127)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)  # the agent's stdout reaches EOF when the agent is done, not when we are
    threading.Thread(target=_accept_forever, args=(listener, path), daemon=True).start()
    _exit_like(agent.wait())


if __name__ == "__main__":
    main(sys.argv[1:])
