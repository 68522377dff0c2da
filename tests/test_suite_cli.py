"""`shipbench run` / `shipbench demo` argument handling: bad suites exit 2, demo skips missing agents."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import shipbench.demo as demo_mod
from shipbench.cli import app
from shipbench.config import load_suite
from shipbench.runner.command import DEMO_SUITE

runner = CliRunner()


def test_run_bad_suite_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2 and "no such suite file" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[agents]]\nname = "codex"\n')
    result = runner.invoke(app, ["run", str(bad)])
    assert result.exit_code == 2 and "models" in result.output and "Traceback" not in result.output


def test_run_unknown_force_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(DEMO_SUITE), "--out", str(tmp_path), "--force", "nope"])
    assert result.exit_code == 2 and "no such trial" in result.output


def test_demo_skips_missing_agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shipbench.agents.discovery as discovery

    monkeypatch.setattr(discovery, "find_binary", lambda cap, override: None)
    config, skipped = demo_mod.installed_agents(load_suite(DEMO_SUITE))
    assert config.agents == [] and len(skipped) == 4 and "not installed" in skipped[0]
    result = runner.invoke(app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "no agent CLI is installed" in result.output
    assert not (tmp_path / "demo").exists()


def test_demo_suite_is_a_replay_suite() -> None:
    config = load_suite(DEMO_SUITE)
    assert [m.provider for m in config.models] == ["replay"] and config.models[0].pricing is not None
    assert {a.name for a in config.agents} == {"opencode", "codex", "claude", "gemini"}
