"""The "agent" of tests/test_sandbox.py: looks for the provider key everywhere an agent could, reports JSON.

Run (through the runner's spawn path, as an agent CLI) with its cwd the trial workspace, where probe.json says
what to look at and connect to (`proxy_url` holds the metering proxy's base URL, which it POSTs to). This file
never holds the key: it looks for a prefix assembled at run time, so a grep that finds this file finds no key.
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import socket
import time
import urllib.parse
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


def connect(target: list[str | int]) -> dict[str, object]:
    """Try one connection: ["tcp", host, port] or ["abstract", name] (a Linux abstract Unix socket)."""
    started = time.monotonic()
    family = socket.AF_INET if target[0] == "tcp" else socket.AF_UNIX
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(3)
    try:
        sock.connect((str(target[1]), int(target[2])) if target[0] == "tcp" else "\0" + str(target[1]))
        error = None
    except OSError as exc:
        error = errno.errorcode.get(exc.errno or 0, "timeout" if isinstance(exc, TimeoutError) else repr(exc))
    finally:
        sock.close()
    return {"target": target, "ok": error is None, "error": error, "s": round(time.monotonic() - started, 3)}


def ask_proxy() -> dict[str, object]:
    """POST a chat call with a bogus token to the proxy URL: the proxy itself answers (401)."""
    url = urllib.parse.urlsplit(Path("proxy_url").read_text(encoding="utf-8").strip())
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        conn.request("POST", "/v1/chat/completions", body=b"{}", headers={"Authorization": "Bearer not-a-lease"})
        resp = conn.getresponse()
        return {"status": resp.status, "body": resp.read(2000).decode("utf-8", "replace")}
    except OSError as exc:
        return {"status": None, "body": repr(exc)}
    finally:
        conn.close()


def main() -> None:
    config = json.loads(Path("probe.json").read_text(encoding="utf-8"))
    report = {
        "proc": scan_proc(),
        "self_env_has_key": any(NEEDLE in v.encode() for v in os.environ.values()),
        "grep": {root: grep(root) for root in config["grep"]},
        "list": {path: listing(path) for path in config["list"]},
        "write": {path: can_write(path, config["write_name"]) for path in config["write"]},
        "connect": [connect(target) for target in config.get("connect", [])],
        "proxy": ask_proxy() if Path("proxy_url").is_file() else None,
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
