"""Provider keys leave the harness's environment before anything runs.

Invariants: `run` and `demo` re-execute themselves once, with every provider key removed from the
environment and handed over on an inherited pipe; the new process reads the keys into memory (never
into `os.environ`) and closes the pipe, so `/proc/<harness>/environ` holds no key and no child inherits
one. A key is a variable named by a provider's default (`OPENROUTER_API_KEY`, ...), ending in `_API_KEY`, or
named by an `api_key_env` of the suite file on the command line (read before the suite is validated; a file
that cannot be read adds nothing, the run reports it).
"""

from __future__ import annotations

import contextlib
import json
import os
import tomllib
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from pathlib import Path

from shipbench.config import DEFAULT_KEY_ENV

KEY_FD = "SHIPBENCH_KEY_FD"
_held: dict[str, str] = {}  # filled once per process by held_keys(); the only copy of the keys


def key_names(environ: Mapping[str, str], extra: Iterable[str] = ()) -> list[str]:
    """The provider keys set (non-empty) in `environ`; `extra` names more (a suite's custom api_key_env)."""
    known = set(DEFAULT_KEY_ENV.values()) | set(extra)
    return sorted(n for n, v in environ.items() if v.strip() and (n in known or n.endswith("_API_KEY")))


def suite_key_envs(argv: Sequence[str]) -> set[str]:
    """The `api_key_env` names of the suite files among `argv` (best effort: a file that does not parse adds
    nothing here; the run itself reports it)."""
    names: set[str] = set()
    for arg in argv:
        if not arg.endswith(".toml") or arg.startswith("-"):
            continue
        try:
            data = tomllib.loads(Path(arg).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        models = data.get("models")
        for model in models if isinstance(models, list) else []:
            env = model.get("api_key_env") if isinstance(model, dict) else None
            if isinstance(env, str) and env:
                names.add(env)
    return names


def hand_over(environ: Mapping[str, str], exec_argv: Sequence[str]) -> None:
    """Re-execute `exec_argv` without the keys, passing them on a pipe; returns only when there is
    nothing to hand over (no key, or this process is already the re-executed one)."""
    names = key_names(environ, suite_key_envs(exec_argv))
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


def absorb(environ: MutableMapping[str, str] | None = None) -> None:
    """Move the provider keys of this process's environment into memory (a Ray worker is started by its node with
    the node's environment): from here on no child inherits them and held_keys() returns them."""
    env = os.environ if environ is None else environ
    for name in key_names(env):
        _held[name] = env.pop(name)
