"""The native engine's isolation: the ladder's sandbox stages run as one `python -m shipbench.validate.inner`
process inside bubblewrap, with its own PID namespace and (unless deps may download) a network namespace
holding only `lo`, so the app, the stand-in and Chromium see one another and nothing else.

Invariants: the sandbox sees the system trees and the Python running shipbench read-only, and only the
validation's work directory and evidence directory writable; it dies with the harness (--die-with-parent) and
when its first process ends the kernel kills every process left in its PID namespace, so no app process
survives the harness, even one SIGKILLed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import shipbench
from shipbench.sandbox.bwrap import find_bwrap, is_covered, isolation_args


def python_trees() -> list[Path]:
    """What the interpreter running shipbench needs: its prefixes and the installed package (an editable
    install's source tree included)."""
    candidates = [
        Path(sys.prefix),
        Path(sys.base_prefix),
        Path(sys.executable).resolve().parent.parent,
        Path(shipbench.__file__).resolve().parent.parent,
    ]
    chosen: list[Path] = []
    for path in sorted({p.resolve() for p in candidates}, key=lambda p: len(p.parts)):
        if path.is_dir() and not is_covered(path, chosen):
            chosen.append(path)
    prefix = Path(sys.prefix).absolute()  # a venv reached through a symlink: its own path must exist too
    if prefix.resolve() != prefix and not is_covered(prefix, chosen):
        chosen.append(prefix)
    return chosen


def sandbox_problem() -> str | None:
    if sys.platform != "linux":
        return f"the native engine needs Linux (this is {sys.platform})"
    if find_bwrap() is None:
        return "bubblewrap is not installed (apt-get install bubblewrap): the app cannot be run isolated"
    return None


def wrap(argv: list[str], *, writable: list[Path], network: bool, cwd: Path) -> list[str]:
    binary = find_bwrap()
    if binary is None:
        raise OSError("bubblewrap is not installed")
    args = [str(binary), *isolation_args(network=network)]
    for tree in python_trees():
        args += ["--ro-bind", str(tree), str(tree)]
    for path in writable:
        args += ["--bind", str(path.resolve()), str(path.resolve())]
    return [*args, "--chdir", str(cwd.resolve()), "--", *argv]
