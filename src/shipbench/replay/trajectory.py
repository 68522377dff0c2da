"""A recorded agent trajectory: per phase, the tool calls and the final text the replay upstream plays back.

Invariants: a loaded Trajectory holds only concrete steps (write, shell, text); a `write_tree` step in the
file is expanded at load time into one `write` per file under its directory, sorted by relative POSIX path,
with paths relative to that directory. Files are JSON (`.json`) or TOML (`.toml`).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator


class TrajectoryError(ValueError):
    """The trajectory file is missing, malformed or refers to files that do not exist."""


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["write", "shell", "text"]
    path: str | None = None
    content: str | None = None
    command: str | None = None
    text: str | None = None

    @model_validator(mode="after")
    def _fields_for_action(self) -> Step:
        needed = {"write": ("path", "content"), "shell": ("command",), "text": ("text",)}[self.action]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"step {self.action!r} needs {', '.join(missing)}")
        return self


class PhaseScript(BaseModel):
    model_config = ConfigDict(extra="forbid")

    match: str  # a substring of the phase prompt; selects this script
    steps: list[Step]


class Trajectory(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    phases: list[PhaseScript]

    def phase_for(self, prompt: str) -> PhaseScript | None:
        """The first phase script whose `match` occurs in `prompt`."""
        return next((p for p in self.phases if p.match and p.match in prompt), None)


def _read_raw(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TrajectoryError(f"cannot read trajectory {path}: {exc}") from exc
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TrajectoryError(f"trajectory {path} is not valid {path.suffix[1:] or 'JSON'}: {exc}") from exc
    if not isinstance(data, dict):
        raise TrajectoryError(f"trajectory {path} must be an object with name and phases")
    return data


def _expand_tree(base: Path, raw_dir: object) -> list[dict[str, Any]]:
    if not isinstance(raw_dir, str) or not raw_dir:
        raise TrajectoryError("a write_tree step needs a 'dir'")
    root = (base / raw_dir).resolve()
    if not root.is_dir():
        raise TrajectoryError(f"write_tree dir {root} does not exist")
    files = sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix())
    return [
        {"action": "write", "path": f.relative_to(root).as_posix(), "content": f.read_text(encoding="utf-8")}
        for f in files
    ]


def _expand_steps(base: Path, steps: object) -> list[Any]:
    if not isinstance(steps, list):
        raise TrajectoryError("a phase needs a list of steps")
    out: list[Any] = []
    for step in steps:
        if isinstance(step, dict) and step.get("action") == "write_tree":
            out.extend(_expand_tree(base, step.get("dir")))
        else:
            out.append(step)
    return out


def load_trajectory(path: Path) -> Trajectory:
    """Load a trajectory file, expanding write_tree steps relative to the file's directory."""
    data = _read_raw(path)
    phases = data.get("phases")
    if not isinstance(phases, list):
        raise TrajectoryError(f"trajectory {path} needs a list of phases")
    for phase in phases:
        if isinstance(phase, dict):
            phase["steps"] = _expand_steps(path.parent, phase.get("steps"))
    try:
        return Trajectory.model_validate(data)
    except ValidationError as exc:
        raise TrajectoryError(f"trajectory {path}: {exc}") from exc


HELLO_TRAJECTORY = Path(__file__).with_name("hello.json")
