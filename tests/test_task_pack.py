"""Task packs: the built-in pack matches the seed; broken packs fail with a message naming the problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shipbench.tasks import TaskPackError, load_task
from shipbench.tasks.pack import BUILTIN_TASKS


def test_rails_chat_matches_seed() -> None:
    pack = load_task("rails-chat")
    weights = {d.id: d.weight for d in pack.rubric.dimensions}
    assert weights == {
        "deliverables": 25,
        "rubyllm": 20,
        "tests": 15,
        "errors": 10,
        "persistence": 10,
        "hotwire": 10,
        "architecture": 5,
        "production": 5,
    }
    assert pack.rubric.tiers == {"A": 80, "B": 60, "C": 40}
    assert [r.id for r in pack.spec.requirements] == [f"R{i}" for i in range(1, 16)]
    assert "OPENROUTER_API_KEY" in pack.prompt("build")
    assert pack.checks, "the built-in pack must register checks"


def test_every_rule_has_a_reason_and_valid_points() -> None:
    rubric = load_task("rails-chat").rubric
    for rule_id, rule in rubric.rules.items():
        assert rule.why.strip(), rule_id
        assert rule.cap >= rule.points, rule_id
        assert rule.cap <= rubric.dimension(rule.dimension).weight, rule_id


def _copy_pack(tmp_path: Path) -> Path:
    dest = tmp_path / "pack"
    shutil.copytree(BUILTIN_TASKS["rails-chat"], dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_user_pack_directory_loads(tmp_path: Path) -> None:
    pack_dir = _copy_pack(tmp_path)
    (pack_dir / "checks").rename(pack_dir / "checks_pkg")
    (pack_dir / "checks.py").write_text("CHECKS = []\n", encoding="utf-8")
    pack = load_task(pack_dir)
    assert pack.id == "rails-chat" and pack.checks == []


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda p: (p / "task.toml").unlink(), "task.toml: missing"),
        (lambda p: (p / "rubric.toml").write_text("tiers = [", encoding="utf-8"), "invalid TOML"),
        (
            lambda p: (p / "rubric.toml").write_text(
                (p / "rubric.toml").read_text().replace("weight = 25", "weight = 24"), encoding="utf-8"
            ),
            "add up to 99",
        ),
        (
            lambda p: (p / "rubric.toml").write_text(
                (p / "rubric.toml").read_text()
                + '\n[rules."tests.x"]\ndimension = "nope"\npoints = 1\nwhy = "w"\n',
                encoding="utf-8",
            ),
            "unknown dimension",
        ),
        (lambda p: (p / "prompts" / "build.md").unlink(), "prompt"),
        (lambda p: shutil.rmtree(p / "checks"), "checks module"),
        (lambda p: (p / "checks" / "__init__.py").write_text("import nope_not_here\n"), "failed to import"),
        (lambda p: (p / "checks" / "__init__.py").write_text("CHECKS = 3\n"), "must define CHECKS"),
    ],
)
def test_broken_pack_gives_clear_error(tmp_path: Path, mutate, needle: str) -> None:  # type: ignore[no-untyped-def]
    pack_dir = _copy_pack(tmp_path)
    mutate(pack_dir)
    with pytest.raises(TaskPackError, match=needle):
        load_task(pack_dir)


def test_unknown_task_name() -> None:
    with pytest.raises(TaskPackError, match="unknown task 'nope'"):
        load_task("nope")


def test_rails_chat_has_a_delegation_variant_for_every_phase() -> None:
    pack = load_task("rails-chat")
    for phase in pack.spec.phases:
        default = (pack.root / phase.prompt).read_text(encoding="utf-8")
        variant = (pack.root / phase.prompt).with_name(f"{phase.id}.delegate.md").read_text(encoding="utf-8")
        assert variant.startswith(default), phase.id  # same task, plus the instruction
        assert "delegate" in variant[len(default) :].lower(), phase.id
