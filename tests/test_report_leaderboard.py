"""Loading trial dirs and aggregating them: discovery, skips, infra apart, ranking, "no clear winner", views."""

from __future__ import annotations

import json
from pathlib import Path

from tests.report_helpers import make_audit, make_record, write_config, write_trial

from shipbench.report.build import build_report
from shipbench.report.leaderboard import Leaderboard, build_leaderboard
from shipbench.report.load import load_results
from shipbench.report.views import pareto_front


def test_discovers_single_and_multi_suite_layouts(tmp_path: Path) -> None:
    write_config(tmp_path / "one", "opencode", "m1", [70, 72])
    assert len(load_results(tmp_path / "one").trials) == 2
    write_config(tmp_path / "many" / "suiteA", "opencode", "m1", [70], suite="suiteA")
    write_config(tmp_path / "many" / "suiteB", "codex", "m2", [60, 61, 62], suite="suiteB")
    loaded = load_results(tmp_path / "many")
    assert len(loaded.trials) == 4 and {t.suite for t in loaded.trials} == {"suiteA", "suiteB"}
    assert not loaded.skipped
    single = load_results(sorted((tmp_path / "one").iterdir())[0])  # a trial dir itself
    assert [t.repeat for t in single.trials] == [1]


def test_corrupt_and_partial_trials_are_skipped_with_reasons(tmp_path: Path) -> None:
    suite = tmp_path / "s"
    write_config(suite, "opencode", "m1", [70])
    (suite / "broken").mkdir()
    (suite / "broken" / "trial.json").write_text("{not json", encoding="utf-8")
    (suite / "partial" / "phases" / "1").mkdir(parents=True)
    (suite / "wrongshape").mkdir()
    (suite / "wrongshape" / "trial.json").write_text(json.dumps({"trial_id": 3}), encoding="utf-8")
    bad_audit = write_trial(suite, make_record("codex", "m2"))
    (bad_audit / "audit.json").write_text('{"score": "high"}', encoding="utf-8")
    loaded = load_results(suite)
    reasons = {Path(s.path).name: s.reason for s in loaded.skipped}
    assert set(reasons) == {"broken", "partial", "wrongshape"}
    assert "unreadable" in reasons["broken"] and "no trial.json" in reasons["partial"]
    assert "validation error" in reasons["wrongshape"]
    codex = next(t for t in loaded.trials if t.agent == "codex")
    assert codex.score is None and any("audit.json unreadable" in n for n in codex.notes)


def test_infra_failures_excluded_from_scores(tmp_path: Path) -> None:
    suite = tmp_path / "s"
    write_config(suite, "opencode", "m1", [80, 82, 84])
    infra = make_record("opencode", "m1", 4, status="infra_error", failure_class="infra", reason="DNS down")
    write_trial(suite, infra, make_audit(0))  # even an audit of an infra failure must not count
    provider = make_record("opencode", "m1", 5, status="provider_error", failure_class="infra")
    write_trial(suite, provider, make_audit(5))
    board, _ = build_report(suite)
    row = board.rows[0]
    assert row.score.n == 3 and row.score.mean == 82.0
    assert row.trials == 5 and row.infra == 2 and row.scored == 3
    assert {t.reason for t in board.infra} == {"DNS down", ""}
    assert "infra_error" not in row.status_share and row.status_share == {"completed": 1.0}
    assert board.totals["infra"] == 2 and board.totals["scored"] == 3


def test_model_failures_scored_from_their_audit_and_unfinished_not(tmp_path: Path) -> None:
    suite = tmp_path / "s"
    write_trial(suite, make_record("codex", "m", 1, status="timeout", failure_class="model"), make_audit(20))
    write_trial(suite, make_record("codex", "m", 2), make_audit(60))
    write_trial(suite, make_record("codex", "m", 3, status="running"))
    write_trial(suite, make_record("codex", "m", 4))  # completed, no audit
    board, trials = build_report(suite)
    row = board.rows[0]
    assert row.score.mean == 40.0 and row.scored == 2 and row.unfinished == 1
    assert row.status_share == {"completed": 2 / 3, "timeout": 1 / 3}
    assert any("no audit.json" in n for t in trials for n in t.notes)


def test_ranking_order_and_no_clear_winner(tmp_path: Path) -> None:
    suite = tmp_path / "s"
    write_config(suite, "claude", "top", [90, 92, 91, 93, 89], cost=4.0)
    write_config(suite, "codex", "mid-a", [70, 75, 65, 72, 68])
    write_config(suite, "opencode", "mid-b", [69, 74, 66, 71, 67])
    write_config(suite, "gemini", "low", [30, 32, 31, 29, 33], cost=0.5)
    write_config(suite, "opencode", "single", [10])
    board, _ = build_report(suite)
    keys = [r.key for r in board.rows]
    assert keys == ["claude / top", "codex / mid-a", "opencode / mid-b", "gemini / low", "opencode / single"]
    assert [r.rank for r in board.rows] == [1, 2, 3, 4, 5]
    top, mid_a, mid_b, low, single = board.rows
    assert top.separable_from_next is True and mid_a.separable_from_next is False
    assert mid_b.separable_from_next is True and low.separable_from_next is False  # single run: no interval
    pairs = {(n.a, n.b): n.reason for n in board.no_clear_winner}
    assert pairs == {("codex / mid-a", "opencode / mid-b"): "intervals overlap",
                     ("gemini / low", "opencode / single"): "too few runs for an interval"}
    assert (mid_a.rank_low, mid_a.rank_high) == (2, 3) and (top.rank_low, top.rank_high) == (1, 1)
    assert single.score.note == "single run: no interval" and single.score.low is None
    assert mid_a.comparison_with_next is not None and not mid_a.comparison_with_next.separable
    # 5 pairs: the exact sign-flip test cannot go below p = 2/32, so even a 21-point gap is not "separable"
    assert top.comparison_with_next is not None and top.comparison_with_next.p_value == 2 / 32
    assert not top.comparison_with_next.separable and "too few pairs" in top.comparison_with_next.note
    assert top.tier == "A" and low.tier == "D" and top.tier_counts == {"A": 5}
    assert top.cost_per_trial == 4.0 and top.cost_per_point is not None
    assert abs(top.cost_per_point - 4.0 / 91.0) < 1e-9


def test_per_dimension_api_time_and_tokens(tmp_path: Path) -> None:
    suite = tmp_path / "s"
    write_trial(suite, make_record("codex", "m", 1, wall_s=100), make_audit(80, missing=1))
    write_trial(suite, make_record("codex", "m", 2, wall_s=300), make_audit(90))
    write_trial(suite, make_record("codex", "m", 3, wall_s=200), make_audit(100))
    row = build_report(suite)[0].rows[0]
    assert row.dimensions["deliverables"] == (5 + 15 + 25) / 3 and row.dimensions["production"] == 5
    assert row.api.trials_audited == 3 and row.api.trials_clean == 2 and row.api.missing == 1
    assert row.api.verdict == "2/3 clean, 1 bad calls"
    assert row.median_wall_s == 200 and row.tokens.input == 2000 and row.tokens.cache_read == 5000


def test_views_harness_effect_pareto_and_delegations(tmp_path: Path) -> None:
    suite = tmp_path / "s"
    write_config(suite, "claude", "sonnet", [80, 82, 81], cost=3.0)
    write_config(suite, "opencode", "sonnet", [60, 62, 61], cost=1.0)
    write_config(suite, "opencode", "cheap", [50, 52, 51], cost=2.0)
    write_config(suite, "claude", "opus", [70, 71, 72], cost=5.0, delegations=4, subagents=("sonnet",))
    board, _ = build_report(suite)
    harness = {g.by: g for g in board.views.harness_effect}
    assert set(harness) == {"vendor/sonnet"}
    assert [e.agent for e in harness["vendor/sonnet"].entries] == ["claude", "opencode"]
    assert harness["vendor/sonnet"].separable and harness["vendor/sonnet"].spread == 20
    across = {g.by: [e.model_id for e in g.entries] for g in board.views.agent_across_models}
    assert across == {"claude": ["sonnet", "opus"], "opencode": ["sonnet", "cheap"]}
    front = {p.key for p in board.views.cost_vs_score if p.on_front}
    assert front == {"claude / sonnet", "opencode / sonnet"}
    assert [d.key for d in board.views.delegations] == ["claude / opus [subagents=sonnet]"]
    assert board.views.delegations[0].total == 12 and board.views.delegations[0].per_trial == 4


def test_pareto_front_helper() -> None:
    assert pareto_front([(1, 50), (2, 60), (3, 55), (1, 50)]) == [True, True, False, True]


def test_json_roundtrip_and_determinism(tmp_path: Path) -> None:
    suite = tmp_path / "s"
    write_config(suite, "codex", "a", [60, 70, 65])
    write_config(suite, "opencode", "b", [50, 55, 52])
    one = build_report(suite)[0].model_dump_json()
    two = build_report(suite)[0].model_dump_json()
    assert one == two
    data = json.loads(one)
    assert data["rows"][0]["key"] == "codex / a" and "low" in data["rows"][0]["score"]
    assert data["rows"][0]["api"]["verdict"] == "3/3 clean"
    assert Leaderboard.model_validate_json(one).model_dump_json() == one  # the JSON reloads losslessly


def test_imported_rows_never_ranked(tmp_path: Path) -> None:
    suite = tmp_path / "s"
    write_config(suite, "codex", "a", [60])
    rows = load_results(suite).trials
    hist = rows[0].model_copy(update={"imported": True, "trial_id": "imported__x", "score": None})
    board = build_leaderboard(rows, imported=[hist])
    assert len(board.rows) == 1 and len(board.imported) == 1 and board.imported[0].rank is None


def _restamp(trial_dir: Path, digest: str, tiers: dict[str, int]) -> None:
    data = json.loads((trial_dir / "audit.json").read_text(encoding="utf-8"))
    data["rubric"] = {"digest": digest, "tiers": tiers}
    (trial_dir / "audit.json").write_text(json.dumps(data), encoding="utf-8")


def test_tiers_come_from_the_rubric_each_trial_was_scored_with(tmp_path: Path) -> None:
    suite = tmp_path / "res" / "s1"
    for trial in write_config(suite, "codex", "a", [75, 77]):
        _restamp(trial, "old", {"A": 70, "B": 50, "C": 30})  # scored when A started at 70
    write_config(suite, "claude", "b", [75, 77])  # unstamped (older audits): today's built-in rubric, A >= 80
    mixed = write_config(suite, "gemini", "c", [75, 77])
    _restamp(mixed[0], "old", {"A": 70, "B": 50, "C": 30})
    _restamp(mixed[1], "new", {"A": 90, "B": 60, "C": 40})
    board, _ = build_report(tmp_path / "res")
    tiers = {r.key: r.tier for r in board.rows}
    assert tiers["codex / a"] == "A"  # 76 under the rubric that scored it
    assert tiers["claude / b"] == "B"  # 76 under today's rubric
    assert tiers["gemini / c"] == "B"  # rubrics differ: the trials' own tiers decide (both B here)


def test_a_fresh_audit_records_its_rubric() -> None:
    from tests.conftest import FIXTURES

    from shipbench.audit.engine import audit_project
    from shipbench.tasks.pack import load_task

    result = audit_project(FIXTURES / "rails_chat" / "textbook_tier_a")
    rubric = load_task("rails-chat").rubric
    assert result.rubric is not None and result.rubric.tiers == {"A": 80, "B": 60, "C": 40}
    assert result.rubric.digest == rubric.digest and len(rubric.digest) == 16
