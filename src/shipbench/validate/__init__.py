"""Runtime validation: boot what the agent built and prove what it does (`shipbench validate`).

Public API: `validate_project` runs a task's ladder and writes validation.json; `ValidationResult` is what
it writes. Everything else (stages, the stand-in, the sandbox) is implementation.
"""

from pathlib import Path

from shipbench.validate.engine import ValidateInputError, validate_project
from shipbench.validate.models import CheckResult, StageResult, ValidationResult


def default_out(project: Path) -> Path:
    """Where validation.json goes by default: the trial dir of a trial's workspace, else
    ./shipbench-validate/<project name>."""
    resolved = project.resolve()
    if resolved.name == "workspace" and (resolved.parent / "trial.json").is_file():
        return resolved.parent
    return Path("shipbench-validate") / resolved.name


__all__ = ["CheckResult", "StageResult", "ValidateInputError", "ValidationResult", "default_out", "validate_project"]
