"""Metamorphic tests: renaming the app's own classes and instance variables (consistently, in every
file) and moving service/model files must not change the audit's verdict.

The verdict is the score, the tier, the set of rules that fired and the severity classes.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from tests.conftest import FIXTURES

from shipbench.audit.engine import audit_project
from shipbench.audit.models import AuditResult

GEMS = Path(__file__).resolve().parent.parent.parent / "shared" / "reference" / "gems"
PROJECTS = [
    FIXTURES / "calibration" / "tuned" / "gpt_5_4",
    FIXTURES / "calibration" / "tuned" / "sonnet_4_6",
    FIXTURES / "calibration" / "tuned" / "qwen_3_5_122b",
    FIXTURES / "rails_chat" / "hallucinated_client",
    FIXTURES / "rails_chat" / "invented_fluent_dsl",
]
TEXT_SUFFIXES = (".rb", ".erb", ".js", ".rake", ".ru")
CLASS_DEF = re.compile(r"^\s*(?:class|module)\s+([A-Z]\w*)", re.M)
IVAR = re.compile(r"@([a-z_]\w*)")
MOVABLE = ("app/services", "app/models", "lib")


def _verdict(result: AuditResult) -> tuple[int, str, list[str], object]:
    return result.score, result.tier, sorted({f.rule for f in result.findings}), result.facts.get("severity")


def _audit(project: Path) -> AuditResult:
    return audit_project(project, "rails-chat", {"ruby_llm": GEMS / "ruby_llm-1.14.1"})


def _app_classes(root: Path) -> set[str]:
    names: set[str] = set()
    for path in root.rglob("*.rb"):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(MOVABLE):
            names.update(CLASS_DEF.findall(path.read_text(encoding="utf-8")))
    return names - {"ApplicationRecord", "ApplicationController", "Application"}


def _rewrite(root: Path, mapping: dict[str, str], ivars: bool) -> None:
    # a library's own constants that share a name (RubyLLM::Error) are not the app's to rename
    alternatives = "|".join(map(re.escape, sorted(mapping, key=len, reverse=True)))
    pattern = re.compile(r"(?<!RubyLLM::)\b(" + alternatives + r")\b")
    for path in root.rglob("*"):
        if not path.is_file() or not path.name.endswith(TEXT_SUFFIXES):
            continue
        text = path.read_text(encoding="utf-8")
        if mapping:
            text = pattern.sub(lambda m: mapping[m.group(1)], text)
        if ivars:
            text = IVAR.sub(lambda m: f"@v{len(m.group(1))}_{m.group(1)[::-1]}", text)
        path.write_text(text, encoding="utf-8")


def _move_files(root: Path) -> None:
    """Move service/model files into another folder under a new name (the auditor must not care)."""
    for folder in MOVABLE:
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.rb")):
            target = root / "app" / "domain" / f"moved_{path.stem}_{len(path.parts)}.rb"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), target)


@pytest.mark.skipif(not GEMS.is_dir(), reason="needs ../shared/reference/gems beside the checkout")
@pytest.mark.parametrize("project", PROJECTS, ids=[p.name for p in PROJECTS])
@pytest.mark.parametrize("change", ["rename-classes", "rename-ivars", "move-files"])
def test_renaming_and_moving_code_keeps_the_verdict(tmp_path: Path, project: Path, change: str) -> None:
    if not project.is_dir():
        pytest.skip(f"{project.name} not in this checkout")
    copy = tmp_path / project.name
    shutil.copytree(project, copy)
    if change == "rename-classes":
        classes = _app_classes(copy)
        assert classes, "the project defines classes of its own"
        _rewrite(copy, {c: f"Qx{c[::-1].capitalize()}" for c in classes}, ivars=False)
    elif change == "rename-ivars":
        _rewrite(copy, {}, ivars=True)
    else:
        _move_files(copy)
    assert _verdict(_audit(copy)) == _verdict(_audit(project))
