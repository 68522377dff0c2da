"""The sandboxed half of a native validation: `python -m shipbench.validate.inner SPEC.json`.

Invariants: reads one InnerSpec, runs its stages with validate/ladder.py, and appends one JSON line per
event (`{"started": id}`, then `{"result": StageResult}`) to the spec's results file, flushed at once, so
the harness keeps every finished stage even when this process is killed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from shipbench.validate.models import StageResult
from shipbench.validate.registry import get_stage
from shipbench.validate.stage import Stage, StageContext


class InnerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stages: list[str]
    app_dir: str
    root: str
    settings: dict[str, Any]
    network: bool
    secret_token: str
    results: dict[str, StageResult]
    events: str  # the JSONL file to append to


def main(argv: list[str]) -> int:
    spec = InnerSpec.model_validate_json(Path(argv[0]).read_text(encoding="utf-8"))
    root = Path(spec.root)
    ctx = StageContext(
        app_dir=Path(spec.app_dir),
        root=root,
        evidence_dir=root / "validation",
        settings=spec.settings,
        network=spec.network,
        secret_token=spec.secret_token,
        results=dict(spec.results),
    )
    events = Path(spec.events)

    def emit(payload: dict[str, Any]) -> None:
        with events.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(payload) + "\n")
            fh.flush()

    def started(stage: Stage) -> None:
        emit({"started": stage.id})

    from shipbench.validate.ladder import run_ladder

    run_ladder([get_stage(s) for s in spec.stages], ctx, started, lambda r: emit({"result": r.model_dump(mode="json")}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
