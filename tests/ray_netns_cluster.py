"""Run inside a new network namespace that has only loopback (`unshare -n`): a real two-node Ray cluster, the
demo suite on it and on the local executor, a node killed mid-suite, a provider limit; prints one JSON line.

Not a test module: tests/test_cluster_ray.py runs it as PID 1 of a new PID namespace too (`unshare -n -p -f
--mount-proc`), so every Ray process is gone when it exits. Ray resolves 127.0.0.1 to the machine's routable
address unless the machine has none: the network namespace is what keeps every Ray socket on loopback.
"""

from __future__ import annotations

import json
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
RAY = str(VENV / "ray")
SHIPBENCH = str(VENV / "shipbench")
PORT = "26391"
ADDRESS = f"127.0.0.1:{PORT}"


def sh(*argv: str, timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env or os.environ.copy())


def start_cluster(tmp: Path, report: dict[str, object]) -> None:
    short = tempfile.mkdtemp(prefix="sbray-", dir="/tmp")  # Ray's Unix sockets live here: keep the path short
    report["ray_tmp"] = short
    head = sh(RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={PORT}", "--num-cpus=1",
              "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={short}",
              '--resources={"head_node": 1}')
    assert head.returncode == 0, head.stdout + head.stderr
    start_second()


def start_second() -> None:
    node = sh(RAY, "start", f"--address={ADDRESS}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
              "--disable-usage-stats", '--resources={"second_node": 1}')
    assert node.returncode == 0, node.stdout + node.stderr


def raylet_pids() -> list[int]:
    """Raylets by the resources they were started with: [head, second]."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "raylet" in cmd.split(" ")[0]:
            found["second" if "second_node" in cmd else "head"] = int(entry.name)
    return [found.get("head", 0), found.get("second", 0)]


def start_s3() -> None:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="testing",
                      AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1", AWS_MAX_ATTEMPTS="2")
    import boto3

    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(Bucket="results")


def s3_keys(bucket: str, prefix: str) -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def write_suite(tmp: Path, name: str, extra: str = "") -> Path:
    text = (ROOT / "src" / "shipbench" / "suites" / "demo.toml").read_text()
    text = re.sub(r'^name = "demo"', f'name = "{name}"', text, flags=re.M)
    path = tmp / f"{name}.toml"
    path.write_text(text + "\n" + extra)
    return path


def run_suite(suite: Path, out: Path | str, *ray_args: str) -> subprocess.CompletedProcess[str]:
    target = out if isinstance(out, str) else str(out)
    return sh(SHIPBENCH, "run", str(suite), "--out", target, "--no-preflight", *ray_args, timeout=900)


def results(out: Path, name: str) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}
    for path in sorted((out / name).glob("*/trial.json")):
        rec = json.loads(path.read_text())
        found[rec["trial_id"]] = {"status": rec["status"], "score": rec["audit_score"], "usage": rec["usage"],
                                  "contaminated": any(p["grading_paths"] for p in rec["phases"])}
    return found


def call_spans(out: Path, name: str) -> list[tuple[str, float, float]]:
    from datetime import datetime

    spans = []
    for path in (out / name).glob("*/phases/*/llm_calls.jsonl"):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            start = datetime.fromisoformat(rec["started_at"]).timestamp()
            spans.append((rec["trial_id"], start, start + rec["latency_ms"] / 1000.0))
    return spans


def main() -> None:
    tmp = Path(sys.argv[1])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    report: dict[str, object] = {}
    try:
        start_s3()  # before the nodes: their workers inherit the AWS environment
        start_cluster(tmp, report)
        # 1. the demo on two nodes, and on the local executor
        suite = write_suite(tmp, "demo")
        # equal-length results paths: the replay upstream counts tokens of requests that name the workspace
        ray_run = run_suite(suite, tmp / "ray", "--executor", "ray", "--ray-address", ADDRESS)
        local_run = run_suite(suite, tmp / "loc")
        report["ray_rc"], report["local_rc"] = ray_run.returncode, local_run.returncode
        report["ray_out"] = ray_run.stdout[-3000:] + ray_run.stderr[-2000:]
        report["nodes_used"] = sorted(set(re.findall(r"\[ray done\] \S+ on node (\S+):", ray_run.stdout)))
        report["ray"], report["local"] = results(tmp / "ray", "demo"), results(tmp / "loc", "demo")
        # 2. a provider limit of 1 across the cluster: never two calls in flight
        limited = write_suite(tmp, "limited", '[provider_concurrency]\nreplay = 1\n')
        limit_run = run_suite(limited, tmp / "ray", "--executor", "ray", "--ray-address", ADDRESS)
        spans = sorted(call_spans(tmp / "ray", "limited"), key=lambda s: s[1])
        overlaps, ends = 0, {}  # a call that starts before another trial's call ended: two in flight at once
        for trial, start, end in spans:
            overlaps += any(t != trial and e > start for t, e in ends.items())
            ends[trial] = max(end, ends.get(trial, end))
        report["limit_rc"], report["limit_overlaps"], report["limit_calls"] = limit_run.returncode, overlaps, len(spans)
        report["limit_trials"] = len(results(tmp / "ray", "limited"))
        # 3. the second node's raylet killed mid-suite: no trial lost, none counted twice
        lost = write_suite(tmp, "lost")
        driver = subprocess.Popen([SHIPBENCH, "run", str(lost), "--out", str(tmp / "ray"), "--no-preflight",
                                   "--executor", "ray", "--ray-address", ADDRESS],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        killed = False
        while time.monotonic() < deadline and driver.poll() is None:
            started = list((tmp / "ray" / "lost").glob("*/phases/1/events.jsonl"))
            if len(started) >= 2:
                pid = raylet_pids()[1]
                if pid:
                    os.kill(pid, signal.SIGKILL)
                    killed = True
                break
            time.sleep(0.2)
        out, _ = driver.communicate(timeout=900)
        report["lost_rc"], report["lost_killed"] = driver.returncode, killed
        report["lost"] = results(tmp / "ray", "lost")
        report["lost_done_lines"] = len(re.findall(r"^\[ray done\]", out, flags=re.M))
        report["lost_out"] = out[-3000:]
        # 4. the driver SIGKILLed mid-suite, then run again: the cancelled trials resume, nothing is lost or doubled
        restart = write_suite(tmp, "restart")
        driver = subprocess.Popen([SHIPBENCH, "run", str(restart), "--out", str(tmp / "ray"), "--no-preflight",
                                   "--executor", "ray", "--ray-address", ADDRESS],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and driver.poll() is None:
            if len(list((tmp / "ray" / "restart").glob("*/phases/1/events.jsonl"))) >= 2:
                driver.kill()
                break
            time.sleep(0.2)
        driver.wait(timeout=60)
        report["restart_killed"] = driver.returncode == -signal.SIGKILL
        report["restart_before"] = results(tmp / "ray", "restart")
        again = run_suite(restart, tmp / "ray", "--executor", "ray", "--ray-address", ADDRESS)
        report["restart_rc"], report["restart_after"] = again.returncode, results(tmp / "ray", "restart")
        report["restart_lines"] = len(re.findall(r"^\[ray (?:done|skip)\]", again.stdout, flags=re.M))
        report["restart_out"] = again.stdout[-2000:]
        # 5. results in S3 (moto on loopback): nodes upload, a re-run skips what is there, report reads it back
        remote = write_suite(tmp, "remote")
        url = "s3://results/bench"
        first = run_suite(remote, url, "--executor", "ray", "--ray-address", ADDRESS, "--agent", "claude")
        again = run_suite(remote, url, "--executor", "ray", "--ray-address", ADDRESS, "--agent", "claude")
        board = sh(SHIPBENCH, "report", url, "--md", str(tmp / "board" / "leaderboard.md"))
        report["s3_rc"], report["s3_again_rc"] = first.returncode, again.returncode
        report["s3_report_rc"] = board.returncode
        report["s3_out"] = first.stdout[-2000:] + first.stderr[-2000:] + board.stdout[-1000:] + board.stderr[-1000:]
        report["s3_skipped"] = "[ray skip]" in again.stdout
        board_md = tmp / "board" / "leaderboard.md"
        report["s3_board"] = board_md.read_text() if board_md.is_file() else ""
        report["s3_keys"] = s3_keys("results", "bench/remote/")
    finally:
        print(json.dumps(report), flush=True)
    # this script is PID 1 of its own PID namespace: when it exits, every Ray process it started is killed


if __name__ == "__main__":
    main()
