"""Provider keys leave the harness's environment before anything runs.

Invariants: `run` and `demo` re-execute themselves once, with every provider key removed from the
environment and handed over on an inherited pipe; the new process reads the keys into memory (never
into `os.environ`) and closes the pipe, so `/proc/<harness>/environ` holds no key and no child inherits
one. A key is a variable named by a provider's default (`OPENROUTER_API_KEY`, ...) or ending in `_API_KEY`;
a suite's custom `api_key_env` of another shape stays in the environment (documented).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, MutableMapping, Sequence

from shipbench.config import DEFAULT_KEY_ENV

KEY_FD = "SHIPBENCH_KEY_FD"
_held: dict[str, str] = {}  # filled once per process by held_keys(); the only copy of the keys


def key_names(environ: Mapping[str, str]) -> list[str]:
    """The provider keys set (non-empty) in `environ`."""
    known = set(DEFAULT_KEY_ENV.values())
    return sorted(n for n, v in environ.items() if v.strip() and (n in known or n.endswith("_API_KEY")))


def hand_over(environ: Mapping[str, str], exec_argv: Sequence[str]) -> None:
    """Re-execute `exec_argv` without the keys, passing them on a pipe; returns only when there is
    nothing to hand over (no key, or this process is already the re-executed one)."""
    names = key_names(environ)
    if not names or KEY_FD in environ:
        return
    payload = json.dumps({n: environ[n] for n in names}).encode("utf-8")
    if len(payload) >= 65536:  # more than a pipe buffers before the reader runs: keep them where they are
        return
    read_fd, write_fd = os.pipe()
    os.write(write_fd, payload)
    os.close(write_fd)
    os.set_inheritable(read_fd, True)
    env = {k: v for k, v in environ.items() if k not in names}
    env[KEY_FD] = str(read_fd)
    os.execve(exec_argv[0], list(exec_argv), env)


def held_keys(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """The keys handed over to this process (read from the pipe on the first call), else {}."""
    env = os.environ if environ is None else environ
    fd_text = env.pop(KEY_FD, None)
    if fd_text is not None and fd_text.isdigit():
        fd = int(fd_text)
        chunks: list[bytes] = []
        try:
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        except OSError:
            chunks = []
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
        try:
            data = json.loads(b"".join(chunks) or b"{}")
        except ValueError:
            data = {}
        if isinstance(data, dict):
            _held.update({str(k): str(v) for k, v in data.items()})
    return dict(_held)
