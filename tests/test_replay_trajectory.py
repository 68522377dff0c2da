"""Trajectory files: JSON and TOML, write_tree expansion, validation errors, and the shipped trajectories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipbench.audit.engine import audit_project
from shipbench.replay.trajectory import HELLO_TRAJECTORY, TrajectoryError, load_trajectory

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "shipbench"
RAILS = PACKAGE / "tasks" / "rails_chat"
RUBY_LLM_GEM = Path(__file__).resolve().parent / "fixtures" / "gems" / "ruby_llm-1.14.1"


def test_write_tree_expands_sorted_relative_writes(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    for rel, text in {"b.txt": "B", "a/z.rb": "Z", "a/b/c.md": "C"}.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    steps = [{"action": "write_tree", "dir": "tree"}, {"action": "text", "text": "end"}]
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"name": "t", "phases": [{"match": "x", "steps": steps}]}))
    traj = load_trajectory(path)
    writes = [(s.action, s.path, s.content) for s in traj.phases[0].steps]
    assert writes == [
        ("write", "a/b/c.md", "C"),
        ("write", "a/z.rb", "Z"),
        ("write", "b.txt", "B"),
        ("text", None, None),
    ]


def test_toml_trajectory(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('name = "t"\n[[phases]]\nmatch = "go"\n[[phases.steps]]\naction = "shell"\ncommand = "ls"\n')
    traj = load_trajectory(path)
    assert traj.phases[0].steps[0].command == "ls"
    assert traj.phase_for("please go") is traj.phases[0] and traj.phase_for("stop") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid"),
        ('{"name": "t", "phases": [{"match": "x", "steps": [{"action": "write", "path": "a"}]}]}', "needs content"),
        (
            '{"name": "t", "phases": [{"match": "x", "steps": [{"action": "write_tree", "dir": "nope"}]}]}',
            "does not exist",
        ),
        ('{"name": "t", "phases": [{"match": "x", "steps": [{"action": "dance"}]}]}', "action"),
        ('{"name": "t"}', "list of phases"),
    ],
)
def test_bad_trajectories_raise_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(text)
    with pytest.raises(TrajectoryError, match=message):
        load_trajectory(path)


def test_hello_trajectory_writes_hello_txt() -> None:
    traj = load_trajectory(HELLO_TRAJECTORY)
    steps = traj.phases[0].steps
    assert (steps[0].action, steps[0].path, steps[-1].action) == ("write", "hello.txt", "text")


def test_rails_chat_trajectory_matches_the_task_prompts() -> None:
    traj = load_trajectory(RAILS / "replay" / "trajectory.json")
    build, validate = ((RAILS / "prompts" / f"{p}.md").read_text() for p in ("build", "validate"))
    assert traj.phase_for(build) is traj.phases[0] and traj.phase_for(validate) is traj.phases[1]
    actions = [s.action for s in traj.phases[0].steps]
    assert actions[-2:] == ["shell", "text"] and 15 <= actions.count("write") <= 30
    assert [s.action for s in traj.phases[1].steps] == ["shell", "text"]
    paths = {s.path for s in traj.phases[0].steps if s.path}
    assert {"Gemfile", "Gemfile.lock", "Dockerfile", "docker-compose.yml", "README.md", "config/routes.rb"} <= paths


def test_demo_app_audits_well_but_not_perfectly() -> None:
    result = audit_project(RAILS / "replay" / "app", "rails-chat", {"ruby_llm": RUBY_LLM_GEM})
    assert 75 <= result.score < 100
    assert len(result.findings) >= 3
    assert result.facts["persistence"] == "session_cookie"
    assert result.facts["nested_app_dir"] is False
