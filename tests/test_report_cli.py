"""`shipbench report`: outputs, exit codes, and HTML wiring."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from tests.report_helpers import write_config
from typer.testing import CliRunner

from shipbench.cli import app

runner = CliRunner()


@pytest.fixture
def results(tmp_path: Path) -> Path:
    write_config(tmp_path / "res" / "suite1", "codex", "a", [60, 70, 65])
    write_config(tmp_path / "res" / "suite1", "opencode", "b", [40, 45, 42])
    return tmp_path / "res"


def test_missing_dir_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "no such directory" in result.output and "Traceback" not in result.output


def test_missing_import_exits_2(results: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", str(results), "--import", str(tmp_path / "none.json")])
    assert result.exit_code == 2 and "--import" in result.output


def test_markdown_to_stdout_by_default(results: Path) -> None:
    result = runner.invoke(app, ["report", str(results)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# shipbench leaderboard")
    assert "| 1 | codex / a |" in result.stdout


def test_md_and_json_files(results: Path, tmp_path: Path) -> None:
    md, js = tmp_path / "out" / "board.md", tmp_path / "out" / "board.json"
    result = runner.invoke(app, ["report", str(results), "--md", str(md), "--json", str(js)])
    assert result.exit_code == 0, result.output
    assert "# shipbench leaderboard" not in result.stdout
    data = json.loads(js.read_text())
    assert [r["key"] for r in data["rows"]] == ["codex / a", "opencode / b"]
    assert data["rows"][0]["score"]["n"] == 3 and data["totals"]["trials"] == 6
    assert md.read_text().startswith("# shipbench leaderboard")
    again = tmp_path / "again.json"
    runner.invoke(app, ["report", str(results), "--json", str(again)])
    assert again.read_text() == js.read_text()  # seeded: same input, same bytes


def test_empty_results_dir_renders(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["report", str(tmp_path / "empty")])
    assert result.exit_code == 0 and "0 trials" in result.stdout


def test_html_calls_render_html(results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--html goes through shipbench.report.html.render_html(board, trials, out_dir) -> index path."""
    calls: list[tuple[object, object, Path]] = []

    class FakeHtml:
        @staticmethod
        def render_html(board: object, trials: object, out_dir: Path) -> Path:
            calls.append((board, trials, out_dir))
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "index.html").write_text("<html></html>", encoding="utf-8")
            return out_dir / "index.html"

    monkeypatch.setitem(sys.modules, "shipbench.report.html", FakeHtml)
    out = tmp_path / "html"
    result = runner.invoke(app, ["report", str(results), "--html", str(out)])
    assert result.exit_code == 0, result.output
    assert len(calls) == 1 and calls[0][2] == out and len(calls[0][1]) == 6  # type: ignore[arg-type]
    assert (out / "index.html").is_file()


def test_report_over_500_trials_under_10_seconds(tmp_path: Path) -> None:
    import time

    from tests.report_helpers import synthetic_results

    root = synthetic_results(tmp_path / "r", 500)
    start = time.perf_counter()
    out_md, out_json = tmp_path / "b.md", tmp_path / "b.json"
    result = runner.invoke(app, ["report", str(root), "--md", str(out_md), "--json", str(out_json)])
    elapsed = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    assert json.loads(out_json.read_text())["totals"]["trials"] == 500
    assert elapsed < 10, elapsed
