"""The ladder stages shipbench knows, by id (a task pack's task.toml lists the ones it runs, in order).

Invariants: adding a stage is one module under validate/stages/ exposing STAGE plus one entry here; ids are
stable (validation.json and the audit's runtime rules refer to them).
"""

from __future__ import annotations

from shipbench.validate.stage import Stage
from shipbench.validate.stages import boot, chat, deps, docker, gates, tests

STAGES: dict[str, Stage] = {
    s.id: s for s in (deps.STAGE, tests.STAGE, gates.STAGE, boot.STAGE, chat.STAGE, docker.STAGE)
}


class UnknownStageError(KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.message = f"unknown validation stage {name!r}; known stages: {', '.join(STAGES)}"

    def __str__(self) -> str:
        return self.message


def get_stage(name: str) -> Stage:
    try:
        return STAGES[name]
    except KeyError:
        raise UnknownStageError(name) from None
