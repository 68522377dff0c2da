"""Acceptance: the REAL agent CLIs through the real proxy against the replay upstream, via run_suite.

(a) per agent: hello.txt written, events parsed, proxy token counts EXACTLY equal to what the upstream
reported, cost computed from the pricing override, audit.json present; (b) the real key appears nowhere in
the trial directory; (c) upstream faults map to statuses; after every test no process carrying a trial
marker survives (/proc). Skipped cleanly when the CLIs are not installed.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.test_trial_support import marked_processes, reported_usage, trial_marker_prefix, write_task

from shipbench.agents.discovery import find_binary
from shipbench.agents.registry import get_adapter
from shipbench.config import SuiteConfig
from shipbench.proxy.retry import RetryPolicy
from shipbench.replay.server import Fault, ReplayServer
from shipbench.replay.trajectory import load_trajectory
from shipbench.runner.plan import NullProgress
from shipbench.runner.suite import BUNDLED_REPLAY_DIR, run_suite
from shipbench.store.records import TrialRecord

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
CANDIDATE_BINS = [REPO / ".tools" / "npm" / "bin", Path("/tmp/npmtools/bin")]
HELLO_PROMPT = "Create a file named hello.txt in the current directory with a short greeting in it."
PRICING = {"input_per_mtok": 3.0, "output_per_mtok": 15.0, "cache_read_per_mtok": 0.3, "cache_write_per_mtok": 3.75}
FAST_RETRY = RetryPolicy(max_retries=2, base_delay_s=0.05, max_delay_s=0.5)


@pytest.fixture(autouse=True)
def tools_bin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    if not os.environ.get("SHIPBENCH_TOOLS_BIN"):
        for candidate in CANDIDATE_BINS:
            if candidate.is_dir():
                monkeypatch.setenv("SHIPBENCH_TOOLS_BIN", str(candidate))
                break
    yield
    # only this test's trials: other shipbench runs on the machine carry markers of their own
    leftovers = [
        pid for record in tmp_path.rglob("trial.json") for pid in marked_processes(trial_marker_prefix(record.parent))
    ]
    assert not leftovers, f"trial processes survived the test: {sorted(leftovers)}"


def need(agent: str) -> None:
    if find_binary(get_adapter(agent).capabilities, None) is None:
        pytest.skip(f"{agent} CLI not installed (scripts/setup.sh installs it into .tools/npm)")


def hello_suite(tmp: Path, agent: str, model: dict[str, object], **extra: object) -> SuiteConfig:
    task = write_task(tmp / "task", {"hello": HELLO_PROMPT})
    data: dict[str, object] = {
        "name": "e2e", "task": str(task), "agents": [{"name": agent}], "models": [model],
        "limits": {"idle_s": 60, "phase_wall_s": 120, "grace_s": 2},
    }
    data.update(extra)
    return SuiteConfig.model_validate(data)


def run_with_replay(
    tmp: Path, agent: str, *, fault: Fault | None = None, model: dict[str, object] | None = None,
    environ: dict[str, str] | None = None, **extra: object,
) -> tuple[TrialRecord, list[dict[str, object]]]:
    async def go() -> tuple[TrialRecord, list[dict[str, object]]]:
        server = ReplayServer(load_trajectory(BUNDLED_REPLAY_DIR / "hello.json"), fault=fault)
        url = await server.start()
        try:
            spec: dict[str, object] = {
                "id": "rp", "model": "replay-model", "provider": "replay", "base_url": url, "pricing": PRICING,
            }
            spec.update(model or {})
            if spec["base_url"] == "URL":
                spec["base_url"] = url
            config = hello_suite(tmp, agent, spec, **extra)
            (record,) = await run_suite(config, out=tmp / "out", progress=NullProgress(), environ=environ or {},
                                        retry=FAST_RETRY, monitor_interval_s=0.25, handle_signals=False)
        finally:
            await server.stop()
        return record, server.requests

    return asyncio.run(go())


def trial_dir(tmp: Path, record: TrialRecord) -> Path:
    return tmp / "out" / record.suite / record.trial_id


@pytest.mark.parametrize("agent", ["opencode", "codex", "claude", "gemini"])
def test_e2e_hello_through_proxy(tmp_path: Path, agent: str) -> None:
    need(agent)
    record, requests = run_with_replay(tmp_path, agent)
    assert record.status == "completed", record.status_reason
    root = trial_dir(tmp_path, record)
    assert (root / "workspace" / "hello.txt").read_text() == "hello from the shipbench replay\n"
    (phase,) = record.phases
    assert phase.files_changed == ["hello.txt"]
    assert sum(phase.tool_calls.values()) >= 1 and phase.session_id
    assert phase.final_message
    reported = reported_usage(requests)
    assert len(reported) == phase.llm_calls
    for field in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"):
        assert getattr(record.usage, field) == sum(u[field] for u in reported), field
    u = record.usage
    expected = (u.input_tokens * 3 + u.output_tokens * 15 + u.cache_read_tokens * 0.3) / 1e6
    assert record.cost_usd == pytest.approx(expected, rel=1e-6, abs=1e-6) and record.cost_usd > 0
    calls = [json.loads(line) for line in (root / "phases" / "1" / "llm_calls.jsonl").read_text().splitlines()]
    assert len(calls) == phase.llm_calls and all(c["price_source"] for c in calls)
    assert (root / "phases" / "1" / "events.jsonl").stat().st_size > 0
    audit = json.loads((root / "audit.json").read_text())
    assert audit["score"] == record.audit_score and record.audit_tier
    assert record.versions.agent_cli and record.versions.agent_cli[0].isdigit()


def test_real_key_never_written(tmp_path: Path) -> None:
    need("codex")
    key = "sk-shipbench-e2e-" + os.urandom(12).hex()
    model: dict[str, object] = {"id": "compat", "model": "gpt-test", "provider": "openai_compatible", "base_url": "URL",
             "api_key_env": "SHIPBENCH_E2E_KEY"}
    record, requests = run_with_replay(tmp_path, "codex", model=model, environ={"SHIPBENCH_E2E_KEY": key})
    assert record.status == "completed", record.status_reason
    assert record.phases[0].llm_calls >= 1 and requests
    hits = [p for p in trial_dir(tmp_path, record).rglob("*") if p.is_file() and key.encode() in p.read_bytes()]
    assert hits == []
    assert key not in record.model_dump_json()


@pytest.mark.parametrize(
    ("agent", "fault", "limits", "budget", "status"),
    [
        ("claude", Fault(kind="hang"), {"idle_s": 4}, {}, "stalled"),
        ("codex", Fault(kind="loop"), {"loop_repeats": 3}, {}, "loop"),
        ("codex", Fault(kind="status", status=500, times=1000), {}, {}, "provider_error"),
        ("codex", None, {}, {"max_tokens": 500}, "budget_exceeded"),
    ],
    ids=["hang", "loop", "500-storm", "budget"],
)
def test_upstream_faults(
    tmp_path: Path, agent: str, fault: Fault | None, limits: dict[str, float], budget: dict[str, int], status: str
) -> None:
    need(agent)
    base = {"idle_s": 60, "phase_wall_s": 120, "grace_s": 2} | limits
    record, _ = run_with_replay(tmp_path, agent, fault=fault, limits=base, budget=budget)
    assert record.status == status, record.status_reason
    if status in ("stalled", "loop"):
        assert record.phases[0].watchdog and record.phases[0].watchdog[0].kind in ("idle", "loop")


def test_429_with_retry_after_then_success(tmp_path: Path) -> None:
    need("claude")
    fault = Fault(kind="status", status=429, times=1, retry_after=0.2)
    record, _ = run_with_replay(tmp_path, "claude", fault=fault)
    assert record.status == "completed", record.status_reason
    calls = [json.loads(line) for line in (trial_dir(tmp_path, record) / "phases/1/llm_calls.jsonl").open()]
    assert any(c["attempts"] > 1 and c["status"] == 200 for c in calls)
    assert (trial_dir(tmp_path, record) / "workspace" / "hello.txt").is_file()


def test_opencode_against_a_server_whose_context_is_too_small_gets_its_error_not_a_hot_loop(tmp_path: Path) -> None:
    """llama-cpp-python answers a streamed prompt longer than n_ctx with HTTP 200 and an empty body; opencode took
    that for "continue" and re-sent it ~141 times in 120 s, all recorded as successes. Now the proxy asks the server
    the same request whole and hands the agent the server's own 400 (as without streaming): no call counts as an
    answer, no hot loop. (Preflight refuses this server before any trial: tests/test_preflight.py.)"""
    need("opencode")

    async def go() -> tuple[TrialRecord, list[dict[str, object]]]:
        server = ReplayServer(load_trajectory(BUNDLED_REPLAY_DIR / "hello.json"), persona="llama-cpp-python",
                              n_ctx=512)
        url = await server.start()
        try:
            config = hello_suite(tmp_path, "opencode", {
                "id": "tiny", "model": "replay-model", "provider": "openai_compatible", "base_url": url,
                "serving": {"kind": "llama-cpp-python", "warmup": False}, "context_window": 512})
            (record,) = await run_suite(config, out=tmp_path / "out", progress=NullProgress(), environ={},
                                        retry=FAST_RETRY, monitor_interval_s=0.25, handle_signals=False)
        finally:
            await server.stop()
        return record, server.requests

    record, requests = asyncio.run(go())
    phase = record.phases[0]
    assert record.status in ("provider_error", "completed_with_errors", "stalled"), record.status_reason
    calls_file = next((tmp_path / "out").rglob("llm_calls.jsonl"))
    calls = [json.loads(line) for line in calls_file.read_text().splitlines()]
    assert calls and all(c["status"] == 400 and c["error_class"] == "bad_request" for c in calls)
    assert phase.usage_sources == {} and phase.proxy_usage.total == 0  # nothing answered, nothing counted
    assert len(requests) < 60, f"{len(requests)} requests: a hot loop"
