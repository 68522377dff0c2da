"""Trial layout: every derived path is absolute, even from a relative --out (agents run with cwd=workspace)."""

from __future__ import annotations

import os
from pathlib import Path

from shipbench.store.layout import SuitePaths, TrialPaths, trial_id


def test_relative_roots_become_absolute(tmp_path: Path) -> None:
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        suite = SuitePaths(Path("results") / "demo")
        trial = suite.trial("t1")
        assert suite.root == tmp_path / "results" / "demo"
        for path in (trial.root, trial.home, trial.workspace, trial.events(1), TrialPaths(Path("x")).record):
            assert path.is_absolute(), path
        assert trial.home == tmp_path / "results" / "demo" / "t1" / "home"
    finally:
        os.chdir(cwd)


def test_trial_id_is_filesystem_safe_and_stable() -> None:
    tid = trial_id("rails-chat", "open code", "anthropic/claude-sonnet-4.5", 2)
    assert tid == "rails-chat__open-code__anthropic-claude-sonnet-4.5__r2"
    assert "/" not in tid and " " not in tid
