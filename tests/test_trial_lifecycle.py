"""Trial lifecycle with a scripted agent process, the real proxy and the real replay upstream.

Covers: phases run in order with one git commit each, proxy usage equals what the upstream reported, the
lease token is redacted from events.jsonl, a re-run skips a finished trial (trial.json untouched), an
interrupted phase is re-run from its predecessor's commit while the finished phase is kept, --force
restarts from an empty workspace, infra errors (binary missing, key missing) are recorded and retried,
crash/hang/loop/budget statuses, and no process of any trial survives a test. An unreadable or invalid
trial.json (or a deleted one beside phase output) stops only that trial, byte-for-byte untouched, exit code 1,
until --force; a resume keeps each finished phase's stored failure class.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console
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
import shipbench.runner.refusals as refusals_mod
import shipbench.runner.trial as trial_mod
from shipbench.config import SuiteConfig
from shipbench.replay.server import ReplayServer
from shipbench.replay.trajectory import load_trajectory
from shipbench.runner.command import run_command
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
    monkeypatch.setattr(refusals_mod, "get_adapter", lambda name: adapter)  # and its installed-binary check
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
    assert rec.phases[0].failure_class == rec.failure_class  # stored with the phase, for a resume to read
    # model failures are still audited; infrastructure failures are not scored at all
    assert (tmp_path / "out" / "t" / rec.trial_id / "audit.json").is_file() is not infra
    assert marked_processes(trial_marker_prefix(tmp_path / "out" / "t" / rec.trial_id)) == []
    if mode == "spend":
        assert rec.phases[0].watchdog[0].kind == "budget"
        assert load_trial(tmp_path / "out" / "t" / rec.trial_id / "trial.json").status == "budget_exceeded"


def _corrupt_and_rerun(
    tmp_path: Path, fake: FakeAdapter, corrupt: Callable[[TrialRecord], str]
) -> tuple[list[TrialRecord], str, Path]:
    """Two repeats finish; r1's trial.json is replaced by `corrupt(r1)`, r2's dir is removed; the suite runs
    again through run_command (what `shipbench run` calls): returns the first records, the output, r1's file."""
    config = _config(tmp_path, repeats=2)
    first = _run(config, tmp_path / "out")
    assert [r.status for r in first] == ["completed", "completed"]
    suite = tmp_path / "out" / "t"
    bad = suite / "tiny__fake__rp__r1" / "trial.json"
    bad.write_text(corrupt(first[0]), encoding="utf-8")
    shutil.rmtree(suite / "tiny__fake__rp__r2")
    before = {p: p.read_bytes() for p in (suite / "tiny__fake__rp__r1").rglob("*") if p.is_file()}
    out = StringIO()
    code = run_command(config, out=tmp_path / "out", console=Console(file=out, width=400))
    assert code == 1  # any infra_error: the unreadable trial did not run
    after = {p: p.read_bytes() for p in (suite / "tiny__fake__rp__r1").rglob("*") if p.is_file()}
    assert after == before  # nothing of the unreadable trial was rewritten or wiped
    assert len(fake.requests) == 6  # 2 x 2 phases, then only r2 again
    return first, out.getvalue(), bad


def test_unknown_field_in_trial_json_stops_only_that_trial(tmp_path: Path, fake: FakeAdapter) -> None:
    _, printed, bad = _corrupt_and_rerun(
        tmp_path, fake, lambda r: json.dumps(json.loads(r.model_dump_json()) | {"bogus": 1})
    )
    record = json.loads((tmp_path / "out" / "t" / "tiny__fake__rp__r2" / "trial.json").read_text())
    assert record["status"] == "completed"
    reason = (f"{bad}: invalid trial.json: bogus: Extra inputs are not permitted; the trial was left untouched: "
              "fix the file, or re-run with --force tiny__fake__rp__r1 to start it over from an empty workspace")
    assert f"\ninfra_error (not scored): tiny__fake__rp__r1: {reason}\n" in printed
    rows = {r["trial_id"]: r["status"] for r in query(SuitePaths(tmp_path / "out" / "t"))}
    assert rows == {"tiny__fake__rp__r1": "completed", "tiny__fake__rp__r2": "completed"}  # never indexed


def test_bad_json_trial_is_reported_then_force_restarts_it(tmp_path: Path, fake: FakeAdapter) -> None:
    first, printed, bad = _corrupt_and_rerun(tmp_path, fake, lambda r: "{not json")
    assert (f"infra_error (not scored): tiny__fake__rp__r1: {bad}: invalid trial.json: Invalid JSON: key must be "
            "a string at line 1 column 2; the trial was left untouched") in printed
    # an extra field beside a valid record is refused too (a newer or hand-edited trial.json)
    data = json.loads(first[0].model_dump_json())
    bad.write_text(json.dumps(data | {"extra": True}), encoding="utf-8")
    (r1, r2) = _run(_config(tmp_path, repeats=2), tmp_path / "out")
    assert (r1.status, r2.status) == ("infra_error", "completed")
    assert r1.status_reason.startswith(f"{bad}: invalid trial.json: extra: Extra inputs are not permitted;")
    (forced, _) = _run(_config(tmp_path, repeats=2), tmp_path / "out", force={"tiny__fake__rp__r1"})
    assert forced.status == "completed" and load_trial(bad).status == "completed"
    assert len(fake.requests) == 8  # only the forced trial ran again


def test_resume_keeps_the_stored_failure_class(tmp_path: Path, fake: FakeAdapter) -> None:
    config = _config(tmp_path)
    fake.modes = {"Phase two": "partial-hang"}

    async def interrupted() -> list[TrialRecord]:
        shutdown = asyncio.Event()
        runner = asyncio.create_task(run_suite(config, out=tmp_path / "out", progress=NullProgress(),
                                               monitor_interval_s=0.2, handle_signals=False, environ={},
                                               shutdown=shutdown))
        partial = tmp_path / "out" / "t" / "tiny__fake__rp__r1" / "workspace" / "partial.txt"
        deadline = time.monotonic() + 60
        while not partial.is_file() and not runner.done():
            assert time.monotonic() < deadline, "phase two never started"
            await asyncio.sleep(0.1)
        shutdown.set()
        return await runner

    (stopped,) = asyncio.run(interrupted())
    assert stopped.phases[0].failure_class == "none" and stopped.phases[1].failure_class is None
    # phase one as the status table decides an error terminal after model calls: completed_with_errors, "model"
    path = tmp_path / "out" / "t" / stopped.trial_id / "trial.json"
    data = json.loads(path.read_text())
    data["phases"][0].update(status="completed_with_errors", status_reason="agent reported failure",
                             failure_class="model")
    path.write_text(json.dumps(data), encoding="utf-8")
    fake.modes = {}
    (resumed,) = _run(config, tmp_path / "out")
    assert (resumed.status, resumed.failure_class) == ("completed_with_errors", "model")  # not re-derived as "none"
    assert resumed.status_reason == "agent reported failure"


def test_deleted_trial_json_beside_phase_output_is_not_wiped(tmp_path: Path, fake: FakeAdapter) -> None:
    config = _config(tmp_path)
    (first,) = _run(config, tmp_path / "out")
    root = tmp_path / "out" / "t" / first.trial_id
    (root / "trial.json").unlink()
    events = (root / "phases" / "1" / "events.jsonl").read_bytes()
    (again,) = _run(config, tmp_path / "out")
    assert again.status == "infra_error"
    assert again.status_reason.startswith(
        f"{root / 'trial.json'}: missing, but phases/ holds output of an earlier run; the trial was left untouched"
    )
    assert (root / "phases" / "1" / "events.jsonl").read_bytes() == events and not (root / "trial.json").exists()
    assert len(fake.requests) == 2


def test_an_agent_that_reads_the_rubric_is_contaminated_and_kept_out_of_the_ranking(
    tmp_path: Path, fake: FakeAdapter
) -> None:
    from shipbench.report.build import build_report
    from shipbench.report.html import render_html
    from shipbench.report.markdown import render_markdown

    config = _config(tmp_path, repeats=2)
    rubric = tmp_path / "task" / "rubric.toml"
    fake.peek = str(rubric)
    fake.modes = {"Phase one": "peek"}
    records = _run(config, tmp_path / "out")
    assert [r.status for r in records] == ["completed", "completed"]  # reading is not a crash
    for rec in records:
        assert rec.phases[0].grading_reads == 1 and rec.phases[0].grading_paths == [str(rubric.resolve())]
        assert rec.phases[1].grading_reads == 0  # phase two only wrote its own file
    board, trials = build_report(tmp_path / "out")
    assert sorted(t.trial_id for t in board.contaminated) == sorted(r.trial_id for r in records)
    assert all(row.score.n == 0 for row in board.rows)
    assert "## Contaminated trials" in render_markdown(board) and "rubric.toml" in render_markdown(board)
    page = render_html(board, trials, tmp_path / "html").read_text(encoding="utf-8")
    assert "Contaminated trials" in page and "rubric.toml" in page and "2 contaminated" in page


def test_a_fifo_left_in_the_workspace_never_hangs_the_run(tmp_path: Path, fake: FakeAdapter) -> None:
    config = _config(tmp_path)
    fake.modes = {"Phase one": "fifo"}
    started = time.monotonic()
    (rec,) = _run(config, tmp_path / "out")
    assert time.monotonic() - started < 60
    assert rec.status == "completed", rec.status_reason
    audit = json.loads((tmp_path / "out" / "t" / rec.trial_id / "audit.json").read_text(encoding="utf-8"))
    issues = {i["path"]: i["status"] for i in audit["file_issues"]}
    assert issues.get("app/models/pipe.rb") == "not_regular"


def test_a_provider_outage_ends_as_infra_and_the_next_run_redoes_it(tmp_path: Path, fake: FakeAdapter) -> None:
    """A server that is down or failing is not a result: the trial (any status, failure class infra) re-runs."""
    from shipbench.proxy.retry import RetryPolicy
    from shipbench.replay.server import Fault

    async def go() -> tuple[TrialRecord, TrialRecord]:
        server = ReplayServer(load_trajectory(BUNDLED_REPLAY_DIR / "hello.json"),
                              fault=Fault(kind="status", status=503, times=1000))
        url = await server.start()
        try:
            config = _config(tmp_path, {"one": "Phase one. FILE=one.txt"}, models=[
                {"id": "rp", "model": "replay-model", "provider": "replay", "base_url": url}])
            fake.modes = {"Phase one": "crash"}  # the agent gives up after the failed call
            kw = dict(out=tmp_path / "out", progress=NullProgress(), monitor_interval_s=0.2, handle_signals=False,
                      environ={}, retry=RetryPolicy(max_retries=0))
            (first,) = await run_suite(config, **kw)  # type: ignore[arg-type]
            server.fault = None
            fake.modes = {}
            (second,) = await run_suite(config, **kw)  # type: ignore[arg-type]
        finally:
            await server.stop()
        return first, second

    first, second = asyncio.run(go())
    assert (first.status, first.failure_class) == ("provider_error", "infra")
    assert first.abandoned_calls == 0 and first.phases[0].llm_calls >= 1
    # the outage attempt's calls are kept as abandoned spend when the phase is redone, never in the result
    assert second.abandoned_calls == first.phases[0].llm_calls and second.abandoned_usage.total == 0
    assert not trial_mod.is_done(first) and not trial_mod.phase_done(first.phases[0])
    assert (second.status, second.failure_class) == ("completed", "none")  # re-run by default, no --force
    assert second.phases[0].status == "completed" and second.phases[0].llm_calls >= 1


def test_a_self_hosted_server_is_described_warmed_and_checked_between_phases(
    tmp_path: Path, fake: FakeAdapter
) -> None:
    """Ollama persona: the trial loads the model before phase one (timed apart, no per-request options), records
    the server, and a model the server unloaded between phases is reloaded (recorded), never charged to the model;
    a server that serves another context than num_ctx is a configuration problem, said before any phase runs."""
    from shipbench.replay.server import ReplayServer as Server

    async def go(served_ctx: int) -> tuple[TrialRecord, list[dict[str, object]]]:
        server = Server(load_trajectory(BUNDLED_REPLAY_DIR / "hello.json"), persona="ollama", n_ctx=served_ctx,
                        native_ctx=40960, served_models=["replay-model"])
        url = await server.start()
        out = tmp_path / f"out-{served_ctx}"

        async def unload_after_phase_one() -> None:  # an idle unload between the phases
            # phase one's agent writes one.txt after its last call; the harness then reaps it and commits the
            # workspace before checking the server for phase two: a fine poll of that one path lands in between
            while not any(out.glob("*/*/workspace/one.txt")):
                await asyncio.sleep(0.002)
            server.loaded.clear()

        watcher = asyncio.create_task(unload_after_phase_one())
        try:
            serving = {"kind": "ollama", "num_ctx": 32768}
            config = _config(tmp_path, models=[{"id": "ol", "model": "replay-model", "provider": "openai_compatible",
                                                "base_url": url, "serving": serving}])
            (record,) = await run_suite(config, out=out, progress=NullProgress(), monitor_interval_s=0.2,
                                        handle_signals=False, environ={})
        finally:
            watcher.cancel()
            await server.stop()
        return record, server.requests

    record, requests = asyncio.run(go(32768))  # the server is started with OLLAMA_CONTEXT_LENGTH=32768
    assert record.status == "completed", record.status_reason
    assert record.serving is not None and record.serving.kind == "ollama" and record.serving.native_context == 40960
    assert record.serving_warmup_s is not None and record.serving_warmup_s >= 0
    warmups = [r for r in requests if r.get("path") == "/api/chat"]
    assert len(warmups) == 2  # before phase one, and the reload before phase two
    [event] = record.serving_events
    assert event.startswith("before phase 2:") and "not loaded" in event and "reloaded" in event
    assert all(p.failure_class == "none" for p in record.phases)

    wrong, requests = asyncio.run(go(4096))  # Ollama's default context: num_ctx cannot be set per request
    assert (wrong.status, wrong.failure_class) == ("infra_error", "infra")
    assert "4096-token context, not num_ctx 32768" in wrong.status_reason
    assert "OLLAMA_CONTEXT_LENGTH=32768" in wrong.status_reason and not wrong.phases  # no phase ran
