"""The Ray executor on a real two-node Ray cluster (`ray start --head` plus a second `ray start --address`), all
inside a network namespace that has only loopback: the demo suite spread over both nodes with the local executor's
results, a provider limit of 1 held across nodes, the second node's raylet killed mid-suite (no trial lost, none
counted twice), the driver SIGKILLed and run again (resumed), and results in S3 (moto) reported from s3://.
Slow; skipped where namespaces cannot be made (not root) or Ray is not installed."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _cluster_report(tmp: Path) -> dict[str, Any]:
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (pip install -e '.[cluster]')")
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) for a loopback-only network namespace")
    env = {**os.environ, "SHIPBENCH_TOOLS_BIN": os.environ.get("SHIPBENCH_TOOLS_BIN", str(ROOT / ".tools/npm/bin"))}
    proc = subprocess.run([unshare, "-n", "-p", "-f", "--mount-proc", sys.executable,
                           str(ROOT / "tests" / "ray_netns_cluster.py"), str(tmp)],
                          capture_output=True, text=True, timeout=1500, env=env, cwd=ROOT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no report (rc {proc.returncode}): {proc.stdout[-3000:]} {proc.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(lines[-1])
    if report.get("ray_tmp"):  # the Ray session dir (its processes died with the namespace)
        shutil.rmtree(report["ray_tmp"], ignore_errors=True)
    assert "ray_rc" in report, f"the cluster did not start: {proc.stderr[-3000:]}"
    return report


def test_ray_executor_on_a_two_node_loopback_cluster(tmp_path: Path) -> None:
    r = _cluster_report(tmp_path)
    assert r["ray_rc"] == 0 and r["local_rc"] == 0, r.get("ray_out")
    assert len(r["nodes_used"]) == 2, r["ray_out"]  # both nodes ran trials
    assert r["ray"].keys() == r["local"].keys() and len(r["ray"]) == 4  # same trial ids
    for tid, rec in r["ray"].items():  # same statuses, audit scores and token counts as the local executor
        assert rec == r["local"][tid], (tid, rec, r["local"][tid])
        assert rec["status"] == "completed" and rec["score"] == 85 and not rec["contaminated"]
    assert r["limit_rc"] == 0 and r["limit_trials"] == 4 and r["limit_calls"] > 4
    assert r["limit_overlaps"] == 0  # provider limit 1: never two trials' calls in flight at once
    assert r["lost_killed"], r["lost_out"]
    assert len(r["lost"]) == 4 and all(v["status"] == "completed" for v in r["lost"].values()), r["lost_out"]
    assert r["lost_done_lines"] == 4  # each trial reported once: none lost, none counted twice
    assert r["restart_killed"] and any(v["status"] != "completed" for v in r["restart_before"].values())
    assert r["restart_rc"] == 0, r["restart_out"]
    assert len(r["restart_after"]) == 4 and all(v["status"] == "completed" for v in r["restart_after"].values())
    assert r["restart_lines"] == 4  # each trial once: finished ones skipped, cancelled ones resumed
    assert r["s3_rc"] == 0 and r["s3_again_rc"] == 0 and r["s3_report_rc"] == 0, r["s3_out"]
    tid = "rails-chat__claude__replay__r1"
    assert f"bench/remote/{tid}/trial.json" in r["s3_keys"] and "bench/remote/index.sqlite" in r["s3_keys"]
    assert f"bench/remote/{tid}/workspace/.git/HEAD" in r["s3_keys"]  # the whole trial dir went up
    assert r["s3_skipped"]  # the second run found the finished trial in S3 and skipped it
    assert "claude / replay | 85" in r["s3_board"], r["s3_board"]  # ranked, from the leaderboard built from s3://
