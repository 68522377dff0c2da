"""Benchmark the Ray executor: N replay trials of the demo suite on a 1-node vs a 2-node loopback cluster.

Usage (as root: it re-executes itself in a loopback-only network and PID namespace):
    .venv/bin/python benchmarks/bench_cluster.py [--repeats 4] [--cpus-per-node 1]
Each node gets `--cpus-per-node` CPUs and each trial asks for 1, so a node runs that many trials at once. The
demo suite (4 agent CLIs x the replay model) with `--repeats` gives 4 x repeats trials. Prints wall times and
the speed-up; results go to a temporary directory. Needs the agent CLIs and Ray (`.[cluster]`); no network.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent
PORT = "26395"


def _sh(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=3600)


def _suite(tmp: Path, name: str, repeats: int) -> Path:
    text = (ROOT / "src" / "shipbench" / "suites" / "demo.toml").read_text()
    text = re.sub(r'^name = "demo"', f'name = "{name}"', text, flags=re.M)
    text = re.sub(r"^repeats = \d+", f"repeats = {repeats}", text, flags=re.M)
    path = tmp / f"{name}.toml"
    path.write_text(text)
    return path


def _run(tmp: Path, nodes: int, repeats: int, cpus: int) -> float:
    ray = str(VENV / "ray")
    session = tempfile.mkdtemp(prefix="sbbench-", dir="/tmp")
    head = _sh(ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={PORT}", f"--num-cpus={cpus}",
               "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={session}")
    assert head.returncode == 0, head.stderr
    for _ in range(nodes - 1):
        node = _sh(ray, "start", f"--address=127.0.0.1:{PORT}", "--node-ip-address=127.0.0.1",
                   f"--num-cpus={cpus}", "--disable-usage-stats")
        assert node.returncode == 0, node.stderr
    suite = _suite(tmp, f"bench{nodes}", repeats)
    start = time.monotonic()
    run = _sh(str(VENV / "shipbench"), "run", str(suite), "--out", str(tmp / "out"), "--no-preflight",
              "--executor", "ray", "--ray-address", f"127.0.0.1:{PORT}")
    wall = time.monotonic() - start
    _stop_everything_else()
    done = len(re.findall(r"^\[ray done\] .*: completed", run.stdout, flags=re.M))
    print(f"{nodes} node(s): {done}/{4 * repeats} trials completed in {wall:.1f} s (rc {run.returncode})", flush=True)
    return wall


def _stop_everything_else() -> None:
    """Kill every other process of this PID namespace (the Ray nodes) and reap them: this script is its PID 1, so
    `ray stop` would wait on zombies nobody else reaps."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != me:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--cpus-per-node", type=int, default=1)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.inside:
        argv = ["unshare", "-n", "-p", "-f", "--mount-proc", sys.executable, __file__, "--inside",
                "--repeats", str(args.repeats), "--cpus-per-node", str(args.cpus_per_node)]
        sys.exit(subprocess.call(argv))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    with tempfile.TemporaryDirectory(prefix="sbbench-") as tmp:
        one = _run(Path(tmp), 1, args.repeats, args.cpus_per_node)
        two = _run(Path(tmp), 2, args.repeats, args.cpus_per_node)
    print(f"speed-up 2 nodes vs 1: {one / two:.2f}x")


if __name__ == "__main__":
    main()
