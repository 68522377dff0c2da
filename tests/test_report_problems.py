"""`shipbench report` lists every trial it could not fully read, with the reason, and scores none without an audit.

Trial dirs are written with the real records (tests/report_helpers.py), then damaged the way a disk, a user or a
crashed run damages them: audit.json deleted or truncated, validation.json garbled, trial.json garbled.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.report_helpers import make_audit, make_record, write_config, write_trial
from typer.testing import CliRunner

from shipbench.cli import app
from shipbench.report.build import build_report
from shipbench.report.html import render_html
from shipbench.report.load import load_results
from shipbench.report.markdown import cell, render_markdown

runner = CliRunner()


def damaged_results(root: Path) -> dict[str, Path]:
    suite = root / "s1"
    good, deleted, garbled = write_config(suite, "codex", "a", [60, 90, 30])
    (deleted / "audit.json").unlink()
    (garbled / "audit.json").write_text('{"score": 30, "tier"', encoding="utf-8")
    (good / "validation.json").write_text("not json", encoding="utf-8")
    unaudited = write_trial(suite, make_record("opencode", "b", 1))  # finished, never audited
    running = write_trial(suite, make_record("opencode", "b", 2, status="running"))  # no audit expected yet
    broken = write_trial(suite, make_record("opencode", "b", 3), make_audit(50))
    (broken / "trial.json").write_text("{", encoding="utf-8")
    return {
        "good": good,
        "deleted": deleted,
        "garbled": garbled,
        "unaudited": unaudited,
        "running": running,
        "broken": broken,
    }


def record_score(path: Path, score: int) -> None:
    data = json.loads((path / "trial.json").read_text())
    data["audit_score"], data["audit_tier"] = score, "A"
    (path / "trial.json").write_text(json.dumps(data), encoding="utf-8")


def test_every_unreadable_file_is_a_listed_problem_and_no_audit_means_no_score(tmp_path: Path) -> None:
    dirs = damaged_results(tmp_path / "res")
    record_score(dirs["deleted"], 90)  # what the run wrote into trial.json before audit.json was deleted
    loaded = load_results(tmp_path / "res")
    problems = {(Path(p.path).name, p.file): p.reason for p in loaded.problems}
    name = {k: v.name for k, v in dirs.items()}
    assert set(problems) == {
        (name["deleted"], "audit.json"),
        (name["garbled"], "audit.json"),
        (name["good"], "validation.json"),
        (name["unaudited"], "audit.json"),
    }
    assert "missing" in problems[(name["deleted"], "audit.json")] and "90" in problems[(name["deleted"], "audit.json")]
    assert "unreadable" in problems[(name["garbled"], "audit.json")]
    assert [s.path for s in loaded.skipped] == [str(dirs["broken"])]
    rows = {r.trial_id: r for r in loaded.trials}
    assert rows[name["deleted"]].score is None and rows[name["deleted"]].dimensions == {}
    assert rows[name["garbled"]].score is None
    assert rows[name["good"]].score == 60  # a garbled validation.json is listed but does not cost the audit

    board, _ = build_report(tmp_path / "res")
    (codex,) = [r for r in board.rows if r.key == "codex / a"]
    assert codex.score.n == 1 and codex.score.mean == 60  # the deleted audit's 90 does not count
    assert board.totals["problems"] == 4 and board.totals["skipped"] == 1


def test_problems_appear_in_markdown_html_and_on_the_console(tmp_path: Path) -> None:
    dirs = damaged_results(tmp_path / "res")
    board, trials = build_report(tmp_path / "res")
    md = render_markdown(board)
    section = md.split("## Trials not fully read", 1)[1].split("\n## ", 1)[0]
    for key in ("deleted", "garbled", "unaudited"):
        assert f"| {cell(dirs[key].name)} | audit.json |" in section
    assert f"| {cell(dirs['good'].name)} | validation.json |" in section
    assert cell(dirs["running"].name) not in section
    index = render_html(board, trials, tmp_path / "html")
    html = index.read_text(encoding="utf-8")
    problems_html = html.split("Trials not fully read", 1)[1].split("<h2>", 1)[0]
    for key in ("deleted", "garbled", "unaudited", "good"):
        assert dirs[key].name in problems_html
    assert "4 not fully read" in html

    result = runner.invoke(app, ["report", str(tmp_path / "res"), "--md", str(tmp_path / "b.md")])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    for key in ("deleted", "garbled", "unaudited"):
        assert any(line.startswith(f"not fully read: {dirs[key].name}: audit.json: ") for line in lines), lines
    assert any(line.startswith(f"skipped: {dirs['broken']}: trial.json unreadable") for line in lines), lines
    assert "4 not fully read" in result.stderr


def test_a_clean_results_dir_lists_no_problem(tmp_path: Path) -> None:
    write_config(tmp_path / "res" / "s1", "codex", "a", [60, 70])
    board, _ = build_report(tmp_path / "res")
    assert board.problems == [] and board.totals["problems"] == 0
    assert "Trials not fully read" not in render_markdown(board)


def test_an_incomplete_audit_is_listed_and_never_ranked(tmp_path: Path) -> None:
    suite = tmp_path / "res" / "s1"
    _whole, partial = write_config(suite, "codex", "a", [80, 40])
    data = json.loads((partial / "audit.json").read_text(encoding="utf-8"))
    data["verdict"] = "incomplete: stopped after 20000 files (budget 20000, see --max-files)"
    (partial / "audit.json").write_text(json.dumps(data), encoding="utf-8")
    loaded = load_results(tmp_path / "res")
    problems = {(Path(p.path).name, p.file): p.reason for p in loaded.problems}
    assert problems == {(partial.name, "audit.json"): f"audit {data['verdict']}"}
    rows = {r.trial_id: r for r in loaded.trials}
    assert rows[partial.name].score is None and any("incomplete" in n for n in rows[partial.name].notes)
    board, _ = build_report(tmp_path / "res")
    (codex,) = [r for r in board.rows if r.key == "codex / a"]
    assert codex.score.n == 1 and codex.score.mean == 80
