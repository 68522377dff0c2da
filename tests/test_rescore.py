"""`shipbench rescore`: today's rubric beside the audit a trial was scored with, never over it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import FIXTURES
from tests.report_helpers import make_audit, make_record, write_trial
from typer.testing import CliRunner

from shipbench.audit.engine import audit_project
from shipbench.cli import app
from shipbench.tasks.pack import load_task

runner = CliRunner()


def test_rescore_writes_beside_the_old_audit_and_lists_failures(tmp_path: Path) -> None:
    suite = tmp_path / "res" / "s1"
    good = write_trial(suite, make_record("codex", "a", 1), make_audit(50))
    shutil.copytree(FIXTURES / "rails_chat" / "textbook_tier_a", good / "workspace")
    bare = write_trial(suite, make_record("codex", "a", 2), make_audit(40))  # its workspace is gone
    old_audit = (good / "audit.json").read_bytes()

    result = runner.invoke(app, ["rescore", str(tmp_path / "res")])
    assert result.exit_code == 1, result.output
    name = f"audit.rescored-{load_task('rails-chat').rubric.digest}.json"
    expected = audit_project(good / "workspace").score
    assert f"{good.name}: 50 -> {expected} ({name})" in result.output
    assert f"{bare.name}: 40 -> error: no workspace/ to audit" in result.output
    assert "rescored 1 of 2 trials" in result.output
    assert (good / "audit.json").read_bytes() == old_audit
    assert json.loads((good / name).read_text(encoding="utf-8"))["score"] == expected
    assert not (bare / name).exists()


def test_rescore_refuses_a_dir_with_nothing_to_rescore(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["rescore", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such results directory" in missing.output
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(app, ["rescore", str(tmp_path / "empty")])
    assert empty.exit_code == 2 and "no audited rails-chat trial to rescore" in empty.output
