"""Production code never reads the test tree: `run` and `demo` verify library calls only against a gem source
given with --gem-source or one that discovery finds installed; otherwise the calls are `unverifiable` and the CLI
says how to give a source. `demo --audit-examples` needs --examples (there is no implicit corpus).
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest
from tests.conftest import FIXTURES, REAL_RUBY_LLM, REPO, need_real_gem
from typer.testing import CliRunner

from shipbench.audit.ruby import gem_sources, verify
from shipbench.cli import app
from shipbench.demo import gem_source_hints
from shipbench.runner.command import DEMO_SUITE

runner = CliRunner()
SRC = REPO / "src" / "shipbench"
PROJECT = FIXTURES / "rails_chat" / "novel_hallucinations"  # locks ruby_llm 1.14.1 and calls it


def _test_tree_paths(path: Path, root: Path = REPO) -> set[str]:
    """`x / "tests"` joins, literals naming tests/ paths and imports of tests, as file:line."""
    hits: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.right, ast.Constant):
            if node.right.value in ("tests", "fixtures"):
                hits.add(f"{path.relative_to(root)}:{node.lineno}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value.startswith(("tests/", "tests\\")) or "/tests/fixtures" in node.value:
                hits.add(f"{path.relative_to(root)}:{node.lineno}")
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            if any(n == "tests" or n.startswith("tests.") for n in names):
                hits.add(f"{path.relative_to(root)}:{node.lineno}")
    return hits


def test_no_source_module_imports_or_joins_a_path_into_tests() -> None:
    hits = sorted(hit for py in sorted(SRC.rglob("*.py")) for hit in _test_tree_paths(py))
    assert hits == []


def test_scanner_catches_the_old_implicit_mirror(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        'from pathlib import Path\nROOT = Path(".")\nG = ROOT / "tests" / "fixtures" / "gems"\n'
        'import tests.conftest\nX = "tests/fixtures/rails_chat"\n'
    )
    assert _test_tree_paths(bad, tmp_path) == {"bad.py:3", "bad.py:4", "bad.py:5"}


@pytest.fixture
def no_installed_gems(monkeypatch: pytest.MonkeyPatch) -> None:
    """Discovery finds nothing on this machine (the project dir's own vendor/bundle is still searched)."""
    monkeypatch.setattr(gem_sources, "default_roots", lambda project_dir=None: [])
    monkeypatch.setattr(verify, "default_roots", lambda project_dir=None: [])


def test_hint_only_when_neither_given_nor_installed(tmp_path: Path) -> None:
    (hint,) = gem_source_hints({}, roots=[tmp_path])
    assert "--gem-source ruby_llm=DIR" in hint and "unverifiable" in hint
    assert gem_source_hints({"ruby_llm": tmp_path}, roots=[tmp_path]) == []
    (tmp_path / "ruby_llm-1.14.1" / "lib").mkdir(parents=True)  # an installed gem, found by discovery
    assert gem_source_hints({}, roots=[tmp_path]) == []


def _examples(tmp_path: Path) -> Path:
    examples = tmp_path / "examples"
    shutil.copytree(PROJECT, examples / PROJECT.name)
    return examples


def _verdicts(out: Path) -> set[str]:
    data = json.loads((out / f"{PROJECT.name}.audit.json").read_text())
    return {c["verdict"] for c in data["api_calls"] if not c.get("in_test")}


def test_demo_examples_without_a_source_are_unverifiable_with_a_hint(tmp_path: Path, no_installed_gems: None) -> None:
    out = tmp_path / "audits"
    result = runner.invoke(app, ["demo", "--audit-examples", "--examples", str(_examples(tmp_path)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "--gem-source ruby_llm=DIR" in result.stderr
    assert _verdicts(out) == {"unverifiable"}
    data = json.loads((out / f"{PROJECT.name}.audit.json").read_text())
    assert all(s.get("path") is None for s in data["facts"]["api_sources"])  # nothing labelled as a source


def test_demo_examples_with_the_real_gem_are_verified(tmp_path: Path, no_installed_gems: None) -> None:
    need_real_gem()
    out = tmp_path / "audits"
    result = runner.invoke(
        app,
        [
            "demo",
            "--audit-examples",
            "--examples",
            str(_examples(tmp_path)),
            "--out",
            str(out),
            "--gem-source",
            f"ruby_llm={REAL_RUBY_LLM}",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "--gem-source ruby_llm=DIR" not in result.stderr
    assert "ok" in _verdicts(out) and "unverifiable" not in _verdicts(out)


def test_demo_audit_examples_needs_examples() -> None:
    result = runner.invoke(app, ["demo", "--audit-examples"])
    assert result.exit_code == 2 and "--examples DIR" in result.output and "Traceback" not in result.output


def test_run_without_a_source_says_how_to_give_one(tmp_path: Path, no_installed_gems: None) -> None:
    result = runner.invoke(app, ["run", str(DEMO_SUITE), "--out", str(tmp_path), "--force", "nope"])
    assert result.exit_code == 2 and "no such trial" in result.output  # refused before any trial
    assert "--gem-source ruby_llm=DIR" in result.stderr
    result = runner.invoke(
        app, ["run", str(DEMO_SUITE), "--out", str(tmp_path), "--force", "nope", "--gem-source", f"ruby_llm={tmp_path}"]
    )
    assert "--gem-source ruby_llm=DIR" not in result.stderr
