"""Run a list of stages in order against one StageContext (inside the sandbox, or on the host).

Invariants: a stage whose `needs` did not all pass is skipped naming the one that did not; a stage that
raises is recorded as `error` (infra: a harness bug, never the project's fault) and the ladder goes on;
each result is handed to `on_result` as soon as it exists; the context's cleanups run on every exit path.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Callable, Sequence

from shipbench.validate.models import StageResult
from shipbench.validate.stage import Stage, StageContext, skipped


def unmet(stage: Stage, results: dict[str, StageResult]) -> str | None:
    """Why `stage` cannot run yet (None: every stage it needs passed)."""
    for need in stage.needs:
        found = results.get(need)
        if found is None:
            return f"needs {need}, which is not in the ladder"
        if found.status != "passed":
            return f"needs {need}, which {found.status}" + (" (infra)" if found.infra else "")
    return None


def run_stage(stage: Stage, ctx: StageContext) -> StageResult:
    why = unmet(stage, ctx.results)
    if why is not None:
        need = ctx.results.get(stage.needs[0]) if stage.needs else None
        return skipped(stage.id, why, infra=bool(need and need.infra))
    try:
        result = stage.run(ctx)
    except Exception as exc:  # a harness bug must not lose the ladder
        trace = traceback.format_exc()
        ctx.write(stage.id, "harness-error.txt", trace)
        result = StageResult(
            id=stage.id,
            status="error",
            infra=True,
            reason=f"harness error: {type(exc).__name__}: {exc}",
            evidence=[ctx.rel(ctx.stage_dir(stage.id) / "harness-error.txt")],
        )
    return result


def run_ladder(
    stages: Sequence[Stage],
    ctx: StageContext,
    on_start: Callable[[Stage], None],
    on_result: Callable[[StageResult], None],
) -> None:
    try:
        for stage in stages:
            on_start(stage)
            result = run_stage(stage, ctx)
            ctx.results[stage.id] = result
            on_result(result)
    finally:
        for cleanup in reversed(ctx.cleanups):
            with contextlib.suppress(Exception):
                cleanup()
        ctx.cleanups.clear()
