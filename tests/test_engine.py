"""Engine: verdicts for empty / non-Rails directories, crashing checks recorded, deterministic output."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.conftest import write_tree

from shipbench.audit.engine import AuditInputError, audit_project
from shipbench.audit.serialize import to_json
from shipbench.tasks import load_task
from shipbench.tasks.pack import BUILTIN_TASKS


def test_empty_directory_scores_zero_with_a_reason(tmp_path: Path) -> None:
    result = audit_project(tmp_path)
    assert (result.score, result.tier) == (0, "D")
    assert result.verdict.startswith("empty directory")
    assert {f.rule for f in result.findings} == {f"{d.id}.no_app" for d in result.dimensions}
    assert sum(-f.points for f in result.findings) == 100


def test_non_rails_directory(tmp_path: Path) -> None:
    write_tree(tmp_path, {"main.py": "print('hi')\n", "README.md": "# hi\n"})
    result = audit_project(tmp_path)
    assert result.score == 0
    assert result.verdict.startswith("not a Rails project")


def test_missing_path_raises_input_error(tmp_path: Path) -> None:
    with pytest.raises(AuditInputError, match="no such directory"):
        audit_project(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(AuditInputError, match="not a directory"):
        audit_project(tmp_path / "file")


def _pack_with_checks(tmp_path: Path, source: str) -> Path:
    dest = tmp_path / "pack"
    shutil.copytree(BUILTIN_TASKS["rails-chat"], dest, ignore=shutil.ignore_patterns("__pycache__", "checks"))
    (dest / "checks.py").write_text(source, encoding="utf-8")
    return dest


def test_crashing_check_is_recorded_not_raised(tmp_path: Path) -> None:
    pack = _pack_with_checks(
        tmp_path,
        "from shipbench.audit.checks import Hit\n"
        "from shipbench.audit.models import Evidence\n"
        "def boom(ctx):\n    raise RuntimeError('kaboom')\n"
        "def fine(ctx):\n    yield Hit('deliverables.compose_missing', 'no compose', (ctx.absent('compose'),))\n"
        "CHECKS = [boom, fine]\n",
    )
    project = write_tree(tmp_path / "proj", {"Gemfile": 'gem "rails"\n', "config/application.rb": "module X; end\n"})
    result = audit_project(project, load_task(pack))
    assert result.facts["check_errors"] == ["boom: RuntimeError('kaboom')"]
    assert [f.rule for f in result.findings] == ["deliverables.compose_missing"]
    assert result.score == 100 - load_task(pack).rubric.rules["deliverables.compose_missing"].points
    assert result.verdict == "incomplete: check boom failed"  # never full marks silently
    assert result.facts["incomplete"] == ["check boom failed"]


def test_raising_check_in_a_copy_of_the_real_pack_makes_the_audit_incomplete(tmp_path: Path) -> None:
    dest = tmp_path / "pack"
    shutil.copytree(BUILTIN_TASKS["rails-chat"], dest, ignore=shutil.ignore_patterns("__pycache__"))
    with (dest / "checks" / "__init__.py").open("a", encoding="utf-8") as fh:
        fh.write("\n\ndef check_exploding(ctx):\n    raise ValueError('bad tree')\n\n\n")
        fh.write("CHECKS = [*CHECKS[:3], check_exploding, *CHECKS[3:]]\n")
    real, pack = load_task("rails-chat"), load_task(dest)
    assert len(pack.checks) == len(real.checks) + 1
    project = write_tree(tmp_path / "proj", {"Gemfile": 'gem "rails"\n', "config/application.rb": "module X; end\n"})
    clean = audit_project(project, real)
    broken = audit_project(project, pack)
    assert clean.verdict == "scored" and "check_errors" not in clean.facts
    assert broken.verdict == "incomplete: check check_exploding failed"
    assert broken.facts["check_errors"] == ["check_exploding: ValueError('bad tree')"]
    assert broken.score == clean.score  # the other checks still ran


def test_unparsable_ruby_is_recorded(tmp_path: Path) -> None:
    project = write_tree(
        tmp_path,
        {
            "Gemfile": 'gem "rails"\n',
            "config/application.rb": "module X; end\n",
            "app/models/broken.rb": "class Broken\n  def x(\nend end end\n",
        },
    )
    result = audit_project(project)
    assert ("app/models/broken.rb", "syntax_error") in {(i.path, i.status) for i in result.file_issues}


def test_same_input_gives_byte_identical_json(tmp_path: Path) -> None:
    project = write_tree(
        tmp_path,
        {
            "Gemfile": 'gem "rails"\ngem "ruby_llm"\n',
            "config/application.rb": "module X; end\n",
            "b.rb": "x\n",
        },
    )
    assert to_json(audit_project(project)) == to_json(audit_project(project))
