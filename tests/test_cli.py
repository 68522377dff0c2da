"""CLI: audit writes JSON/Markdown, user errors exit 2 with one line and no traceback."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import write_tree
from typer.testing import CliRunner

from shipbench.cli import app

runner = CliRunner()


def test_audit_json_to_stdout(tmp_path: Path) -> None:
    result = runner.invoke(app, ["audit", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) >= {"task", "project", "score", "tier", "dimensions", "findings", "api_calls", "facts"}
    assert data["task"] == "rails-chat"


def test_audit_json_and_md_files(tmp_path: Path) -> None:
    project = write_tree(
        tmp_path / "p", {"Gemfile": 'gem "rails"\n', "config/application.rb": "module A; end\n"}
    )
    out_json, out_md = tmp_path / "out" / "a.json", tmp_path / "out" / "a.md"
    result = runner.invoke(app, ["audit", str(project), "--json", str(out_json), "--md", str(out_md)])
    assert result.exit_code == 0, result.output
    assert json.loads(out_json.read_text())["project"] == "p"
    assert out_md.read_text().startswith("# Audit: p (rails-chat)")


def test_missing_dir_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["audit", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "no such directory" in result.output
    assert "Traceback" not in result.output


def test_bad_gem_source_exits_2(tmp_path: Path) -> None:
    for value in ["ruby_llm", f"ruby_llm={tmp_path / 'missing'}"]:
        result = runner.invoke(app, ["audit", str(tmp_path), "--gem-source", value])
        assert result.exit_code == 2, value
        assert "--gem-source" in result.output


def test_unknown_task_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["audit", str(tmp_path), "--task", "nope"])
    assert result.exit_code == 2
    assert "unknown task" in result.output


def test_audit_says_when_calls_could_not_be_verified(tmp_path: Path) -> None:
    project = write_tree(
        tmp_path / "p",
        {
            "Gemfile": 'gem "rails"\ngem "ruby_llm"\n',
            "Gemfile.lock": "GEM\n  specs:\n    ruby_llm (1.14.1)\n",
            "config/application.rb": "module A; end\n",
            "app/services/s.rb": "class S\n  def go = RubyLLM.chat.ask('x').content\nend\n",
        },
    )
    result = runner.invoke(app, ["audit", str(project), "--json", str(tmp_path / "a.json")])
    assert result.exit_code == 0, result.output
    assert "ruby_llm calls not verified" in result.output
    assert "--gem-source ruby_llm=DIR" in result.output
    verdicts = {c["verdict"] for c in json.loads((tmp_path / "a.json").read_text())["api_calls"]}
    assert verdicts == {"unverifiable"}
