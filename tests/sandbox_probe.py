"""The "agent" of tests/test_sandbox.py: looks for the provider key everywhere an agent could, reports JSON.

Run (through the runner's spawn path, as an agent CLI) with its cwd the trial workspace, where probe.json says
what to look at. This file never holds the key: it looks for a prefix assembled at run time, so a grep that
finds this file finds no key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

NEEDLE = ("sk-" + "shipbench-" + "fakekey-").encode()
MAX_FILES = 20000
MAX_BYTES = 4 * 1024 * 1024


def scan_proc() -> dict[str, list[int]]:
    """Every pid this process can see, and those whose environ or cmdline holds the key."""
    found: dict[str, list[int]] = {"pids": [], "environ": [], "cmdline": [], "unreadable": []}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        found["pids"].append(int(name))
        for kind in ("environ", "cmdline"):
            try:
                data = Path(f"/proc/{name}/{kind}").read_bytes()
            except OSError:
                found["unreadable"].append(int(name))
                continue
            if NEEDLE in data:
                found[kind].append(int(name))
    return found


def grep(root: str) -> list[str]:
    hits: list[str] = []
    seen = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            seen += 1
            if seen > MAX_FILES:
                return hits
            path = os.path.join(dirpath, name)
            try:
                with open(path, "rb") as fh:
                    if NEEDLE in fh.read(MAX_BYTES):
                        hits.append(path)
            except OSError:
                continue
    return hits


def listing(path: str) -> list[str] | None:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return None


def can_write(directory: str, name: str) -> bool:
    """Create `name` in `directory` and leave it there (the test looks for it on the host side)."""
    try:
        with open(os.path.join(directory, name), "w", encoding="utf-8") as fh:
            fh.write("x")
    except OSError:
        return False
    return True


def main() -> None:
    config = json.loads(Path("probe.json").read_text(encoding="utf-8"))
    report = {
        "proc": scan_proc(),
        "self_env_has_key": any(NEEDLE in v.encode() for v in os.environ.values()),
        "grep": {root: grep(root) for root in config["grep"]},
        "list": {path: listing(path) for path in config["list"]},
        "write": {path: can_write(path, config["write_name"]) for path in config["write"]},
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
