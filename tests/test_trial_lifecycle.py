"""Trial lifecycle with a scripted agent process, the real proxy and the real replay upstream.

Covers: phases run in order with one git commit each, proxy usage equals what the upstream reported, the
lease token is redacted from events.jsonl, a re-run skips a finished trial (trial.json untouched), an
interrupted phase is re-run from its predecessor's commit while the finished phase is kept, --force
restarts from an empty workspace, infra errors (binary missing, key missing) are recorded and retried,
crash/hang/loop/budget statuses, and no process of any trial survives a test.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.test_trial_support import (
    FakeAdapter,
    marked_processes,
    reported_usage,
    script_file,
    suite_config,
    trial_marker_prefix,
    write_task,
)

import shipbench.runner.plan as plan_mod
import shipbench.runner.trial as trial_mod
from shipbench.config import SuiteConfig
from shipbench.replay.server import ReplayServer
from shipbench.replay.trajectory import load_trajectory
from shipbench.runner.plan import NullProgress
from shipbench.runner.suite import BUNDLED_REPLAY_DIR, run_suite
from shipbench.store.index import query
from shipbench.store.layout import SuitePaths
from shipbench.store.records import TrialRecord, load_trial

PHASES = {"one": "Phase one. FILE=one.txt", "two": "Phase two. FILE=two.txt"}


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAdapter]:
    adapter = FakeAdapter(script_file(tmp_path), {})

    async def version(_adapter: object, _binary: Path) -> str:
        return "fake 1.0.0"

    monkeypatch.setattr(trial_mod, "get_adapter", lambda name: adapter)
    monkeypatch.setattr(plan_mod, "get_adapter", lambda name: adapter)  # the suite's up-front pair check
    monkeypatch.setattr(trial_mod, "find_binary", lambda cap, override: Path("/usr/bin/python3"))
    monkeypatch.setattr(trial_mod, "detect_version", version)
    yield adapter
    leftovers = [p for p in marked_processes() if _in_tmp(p, tmp_path)]
    assert leftovers == [], f"trial processes survived: {leftovers}"


def _in_tmp(pid: int, tmp: Path) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/cwd").startswith(str(tmp))
    except OSError:
        return False


def _run(config: SuiteConfig, out: Path, **kw: object) -> list[TrialRecord]:
    return asyncio.run(
        run_suite(config, out=out, progress=NullProgress(), monitor_interval_s=0.2, handle_signals=False,
                  environ=kw.pop("environ", {}), **kw)  # type: ignore[arg-type]
    )


def _config(tmp: Path, phases: dict[str, str] = PHASES, **extra: object) -> SuiteConfig:
    task = write_task(tmp / "task", phases)
    extra.setdefault("models", [{"id": "rp", "model": "replay-model", "provider": "replay", "replay_script": "hello"}])
    return suite_config(task, **extra)


def test_two_phases_complete_with_exact_usage_and_redaction(tmp_path: Path, fake: FakeAdapter) -> None:
    async def go() -> tuple[list[TrialRecord], list[dict[str, object]]]:
        server = ReplayServer(load_trajectory(BUNDLED_REPLAY_DIR / "hello.json"))
        url = await server.start()
        try:
            config = _config(tmp_path, models=[{"id": "rp", "model": "m", "provider": "replay", "base_url": url}])
            recs = await run_suite(config, out=tmp_path / "out", progress=NullProgress(), monitor_interval_s=0.2,
                                   handle_signals=False, environ={})
        finally:
            await server.stop()
        return recs, server.requests

    (record,), requests = asyncio.run(go())
    assert record.status == "completed", record.status_reason
    assert [p.id for p in record.phases] == ["one", "two"]
    assert [p.files_changed for p in record.phases] == [["one.txt"], ["two.txt"]]
    assert all(p.llm_calls == 1 and p.status == "completed" for p in record.phases)
    upstream_in = sum(u["input_tokens"] for u in reported_usage(requests))
    upstream_out = sum(u["output_tokens"] for u in reported_usage(requests))
    assert (record.usage.input_tokens, record.usage.output_tokens) == (upstream_in, upstream_out)
    assert record.phases[0].usage_disagreement is None  # the scripted agent reports what the upstream said
    assert record.phases[1].continued_session == "sess-1"
    trial_dir = tmp_path / "out" / "t" / record.trial_id
    events = (trial_dir / "phases" / "1" / "events.jsonl").read_text()
    assert "[REDACTED]" in events and fake.requests[0].token not in events
    calls = [json.loads(line) for line in (trial_dir / "phases" / "1" / "llm_calls.jsonl").read_text().splitlines()]
    assert len(calls) == 1 and calls[0]["trial_id"] == record.trial_id
    assert (trial_dir / "audit.json").is_file() and record.audit_score is not None
    assert record.versions.agent_cli == "fake 1.0.0"
    assert query(SuitePaths(tmp_path / "out" / "t"))[0]["status"] == "completed"


def test_rerun_skips_finished_trial(tmp_path: Path, fake: FakeAdapter) -> None:
    config = _config(tmp_path)
    (first,) = _run(config, tmp_path / "out")
    path = tmp_path / "out" / "t" / first.trial_id / "trial.json"
    before = (path.stat().st_mtime_ns, path.read_bytes())
    (again,) = _run(config, tmp_path / "out")
    assert again == first
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before
    assert len(fake.requests) == 2  # no agent started on the re-run


def test_interrupted_phase_resumes_and_finished_phase_is_kept(tmp_path: Path, fake: FakeAdapter) -> None:
    config = _config(tmp_path)
    fake.modes = {"Phase two": "partial-hang"}

    async def interrupted() -> list[TrialRecord]:
        shutdown = asyncio.Event()
        runner = asyncio.create_task(run_suite(config, out=tmp_path / "out", progress=NullProgress(),
                                               monitor_interval_s=0.2, handle_signals=False, environ={},
                                               shutdown=shutdown))
        deadline = time.monotonic() + 60
        while not (tmp_path / "out" / "t" / "tiny__fake__rp__r1" / "workspace" / "partial.txt").is_file():
            if runner.done():
                await runner  # the run ended early: surface its error instead of waiting forever
                raise AssertionError("the run finished before the interrupted phase wrote its file")
            assert time.monotonic() < deadline, "phase two never started"
            await asyncio.sleep(0.1)
        shutdown.set()
        return await runner

    (stopped,) = asyncio.run(interrupted())
    assert stopped.status == "running"
    assert [p.status for p in stopped.phases] == ["completed", "running"]
    ws = tmp_path / "out" / "t" / stopped.trial_id / "workspace"
    assert (ws / "partial.txt").is_file()
    phase1 = stopped.phases[0]

    fake.modes = {}
    (resumed,) = _run(config, tmp_path / "out")
    assert resumed.status == "completed"
    assert resumed.phases[0] == phase1  # the finished phase is neither re-run nor rewritten
    assert resumed.phases[1].files_changed == ["two.txt"]
    assert not (ws / "partial.txt").exists()  # the interrupted attempt's changes were thrown away
    assert len(fake.requests) == 3


def test_force_restarts_from_empty_workspace(tmp_path: Path, fake: FakeAdapter) -> None:
    config = _config(tmp_path)
    (first,) = _run(config, tmp_path / "out")
    stray = tmp_path / "out" / "t" / first.trial_id / "workspace" / "stray.txt"
    stray.write_text("left over")
    (forced,) = _run(config, tmp_path / "out", force={first.trial_id})
    assert forced.status == "completed" and forced.created_at > first.created_at
    assert not stray.exists()
    with pytest.raises(Exception, match="no such trial"):
        _run(config, tmp_path / "out", force={"nope"})


def test_binary_missing_is_infra_error_and_retried(
    tmp_path: Path, fake: FakeAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path)
    monkeypatch.setattr(trial_mod, "find_binary", lambda cap, override: None)
    (rec,) = _run(config, tmp_path / "out")
    assert (rec.status, rec.failure_class) == ("infra_error", "infra")
    assert "python3 not found" in rec.status_reason
    monkeypatch.setattr(trial_mod, "find_binary", lambda cap, override: Path("/usr/bin/python3"))
    (again,) = _run(config, tmp_path / "out")
    assert again.status == "completed"


def test_missing_key_only_fails_that_model(tmp_path: Path, fake: FakeAdapter) -> None:
    models = [
        {"id": "rp", "model": "m", "provider": "replay", "replay_script": "hello"},
        {"id": "cloud", "model": "x/y", "provider": "openrouter", "api_key_env": "SHIPBENCH_TEST_NO_SUCH_KEY"},
    ]
    config = _config(tmp_path, models=models)
    recs = _run(config, tmp_path / "out")
    assert [r.status for r in recs] == ["completed", "infra_error"]
    assert "SHIPBENCH_TEST_NO_SUCH_KEY is not set" in recs[1].status_reason


@pytest.mark.parametrize(
    ("mode", "limits", "budget", "status"),
    [
        ("crash", {}, {}, "agent_crash"),
        ("crash-before-calling", {}, {}, "infra_error"),
        ("hang", {"idle_s": 1.0}, {}, "stalled"),
        ("loop", {"loop_repeats": 4}, {}, "loop"),
        ("spend", {}, {"max_tokens": 60}, "budget_exceeded"),
    ],
)
def test_failing_phase_ends_trial(
    tmp_path: Path, fake: FakeAdapter, mode: str, limits: dict[str, float], budget: dict[str, int], status: str
) -> None:
    base = {"idle_s": 30, "phase_wall_s": 60, "grace_s": 1, "loop_repeats": 4} | limits
    config = _config(tmp_path, limits=base, budget=budget)
    fake.modes = {"Phase one": mode}
    (rec,) = _run(config, tmp_path / "out")
    assert rec.status == status, rec.status_reason
    assert [p.id for p in rec.phases] == ["one"]  # phase two never ran
    infra = status == "infra_error"  # the agent died before any model call: not the model's failure
    assert rec.failure_class == ("infra" if infra else "model")
    # model failures are still audited; infrastructure failures are not scored at all
    assert (tmp_path / "out" / "t" / rec.trial_id / "audit.json").is_file() is not infra
    assert marked_processes(trial_marker_prefix(tmp_path / "out" / "t" / rec.trial_id)) == []
    if mode == "spend":
        assert rec.phases[0].watchdog[0].kind == "budget"
        assert load_trial(tmp_path / "out" / "t" / rec.trial_id / "trial.json").status == "budget_exceeded"
