"""Importer of the reference harness's result.json files, on the real anchor samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.report_helpers import write_config

from shipbench.report.build import build_report
from shipbench.report.importer import detect_layout, import_file, import_results
from shipbench.report.load import SkippedTrial, TrialRow

ANCHORS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "anchor-results"
pytestmark = pytest.mark.skipif(not ANCHORS.is_dir(), reason="reference anchor samples not present")


def _row(name: str) -> TrialRow:
    row = import_file(ANCHORS / name)
    assert isinstance(row, TrialRow), row
    return row


def test_v1_opencode_tokens_flagged_unreliable_and_no_cost() -> None:
    row = _row("results_claude_opus_4_7_result.json")
    assert row.imported and not row.audited and row.score is None
    assert (row.agent, row.model, row.provider) == ("opencode", "openrouter/anthropic/claude-opus-4.7", "openrouter")
    assert row.trial_id == "imported__claude_opus_4_7" and row.model_id == "Claude Opus 4.7"
    assert row.wall_s == pytest.approx(1091.67)  # elapsed_seconds at the top level is the sum of phases
    # both phases summed (each phase's `tokens` is the last step only, so still understated)
    assert row.usage.output_tokens == 927 + 895 and row.usage.cache_read_tokens == 90024 + 116824
    assert not row.tokens_reliable and row.cost_usd is None
    assert any("last step only" in n for n in row.notes) and any("no cost" in n for n in row.notes)


def test_v1_codex_detected_from_command() -> None:
    row = _row("results_gpt_5_5_codex_result.json")
    assert row.agent == "codex" and row.model == "gpt-5.5" and row.tokens_reliable
    assert row.usage.input_tokens == 4875197 and row.cost_usd is None and row.status == "completed"


def test_v2_cost_and_summed_phase_tokens() -> None:
    row = _row("results-v2_v2_kimi_k2_6_result.json")
    assert detect_layout(json.loads((ANCHORS / "results-v2_v2_kimi_k2_6_result.json").read_text())) == "v2"
    assert row.agent == "opencode" and row.cost_usd == pytest.approx(2.6433) and row.cost_reliable
    assert row.usage.input_tokens == 223677 + 289523 + 61804
    assert row.usage.cache_read_tokens == 12874384 + 5315632 + 583936
    assert row.usage.total == 19433269  # equals the file's own tokens_total
    assert row.wall_s == pytest.approx(2011.84) and any("cost corrected" in n for n in row.notes)


def test_v2_codex_cost_flagged(tmp_path: Path) -> None:
    data = json.loads((ANCHORS / "results-v2_v2_kimi_k2_6_result.json").read_text())
    data["harness"] = "codex"
    data["phases"][1]["timed_out"] = True
    path = tmp_path / "result.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    row = import_file(path)
    assert isinstance(row, TrialRow)
    assert row.agent == "codex" and not row.cost_reliable and row.status == "timeout"
    assert any("ignores cached tokens" in n for n in row.notes)


def test_claude_code_layout_sums_model_usage() -> None:
    row = _row("results-claude-code_claude_opus_sonnet_result.json")
    assert row.agent == "claude" and row.model == "claude-opus-4-7"
    assert row.settings == "subagents=claude-sonnet-4-6"
    assert row.usage.input_tokens == 116 + 890 and row.usage.cache_write_tokens == 134030
    assert row.cost_usd == pytest.approx(5.13094) and row.status == "completed"


def test_phase_files_and_garbage_skipped(tmp_path: Path) -> None:
    skipped = import_file(ANCHORS / "results-v2_v2_kimi_k2_6_phase1.result.json")
    assert isinstance(skipped, SkippedTrial) and "per-phase" in skipped.reason
    (tmp_path / "a_result.json").write_text("[1, 2]", encoding="utf-8")
    (tmp_path / "b_result.json").write_text("{oops", encoding="utf-8")
    (tmp_path / "c_result.json").write_text('{"hello": 1}', encoding="utf-8")
    rows, skips = import_results([tmp_path])
    assert rows == [] and len(skips) == 3


def test_zero_token_runs_flagged(tmp_path: Path) -> None:
    data = {"harness": "agy", "slug": "grok", "phases": [{"tokens": {"input": 0, "output": 0}, "exit_code": 0}]}
    path = tmp_path / "result.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    row = import_file(path)
    assert isinstance(row, TrialRow) and not row.tokens_reliable and "harness recorded 0 tokens" in row.notes


def test_imported_rows_in_their_own_section(tmp_path: Path) -> None:
    write_config(tmp_path / "s", "codex", "a", [60, 70])
    board, trials = build_report(tmp_path / "s", [ANCHORS])
    assert [r.key for r in board.rows] == ["codex / a"]
    assert len(board.imported) == 5 and all(r.imported and r.rank is None for r in board.imported)
    assert board.totals["imported"] == 5 and board.totals["trials"] == 2
    assert any("per-phase" in s.reason for s in board.skipped)
    opus = next(r for r in board.imported if r.model_id == "Claude Opus 4.7")
    assert not opus.tokens.reliable and opus.cost_per_trial is None
    assert sum(t.imported for t in trials) == 5
