"""`validate_project`: run a task pack's ladder on a copy of a project and write validation.json.

Invariants: the project directory is only read (the ladder works on a copy under `<root>/.validate-work`,
removed afterwards); every stage of the ladder gets exactly one result, in ladder order, even when the
sandbox is killed or the harness fails (a stage that never reported is `error`); validation.json is written
atomically after every stage, so a crash keeps what finished; only the sandbox's own failure to start or a
missing tool is infra.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import shipbench
from shipbench import __version__
from shipbench.tasks.pack import TaskPack
from shipbench.validate.inner import InnerSpec
from shipbench.validate.ladder import run_ladder, unmet
from shipbench.validate.models import StageResult, ValidationResult
from shipbench.validate.proc import VALIDATION_ENV
from shipbench.validate.registry import get_stage
from shipbench.validate.sandbox import sandbox_problem, wrap
from shipbench.validate.stage import Stage, StageContext, skipped

Engine = Literal["auto", "native", "docker"]
WORK = ".validate-work"
EVIDENCE = "validation"
_SKIP_COPY = {".git", "node_modules", "tmp", "log", "coverage", ".bundle", "vendor/bundle"}
MAX_COPY_FILE = 50 * 1024 * 1024
Progress = Callable[[str], None]


class ValidateInputError(Exception):
    """The project or the task cannot be validated at all (a message a user can act on)."""


def copy_project(src: Path, dest: Path) -> dict[str, list[str]]:
    """Copy the project for the ladder: no VCS, caches, installed gems, links leaving the project, special
    files or files over MAX_COPY_FILE; returns what was left out, by reason."""
    left: dict[str, list[str]] = {"link_out": [], "too_big": [], "special": []}
    src = src.resolve()
    for dirpath, dirnames, filenames in os.walk(src):
        here = Path(dirpath)
        rel_dir = here.relative_to(src)
        dirnames[:] = [
            d
            for d in dirnames
            if (rel_dir / d).as_posix() not in _SKIP_COPY and not (rel_dir == Path(".") and d in _SKIP_COPY)
        ]
        (dest / rel_dir).mkdir(parents=True, exist_ok=True)
        for name in [*filenames, *[d for d in dirnames if (here / d).is_symlink()]]:
            path, rel = here / name, (rel_dir / name).as_posix()
            target = dest / rel_dir / name
            if path.is_symlink():
                resolved = path.resolve()
                if resolved != src and src not in resolved.parents:
                    left["link_out"].append(rel)
                    continue
                target.symlink_to(os.readlink(path))
                continue
            if not path.is_file():
                left["special"].append(rel)
                continue
            if path.stat().st_size > MAX_COPY_FILE:
                left["too_big"].append(rel)
                continue
            shutil.copy2(path, target)
        dirnames[:] = [d for d in dirnames if not (here / d).is_symlink()]
    return {k: v for k, v in left.items() if v}


def _engine(requested: Engine) -> Literal["native", "docker"]:
    if requested == "docker":
        return "docker"
    return "native"


def _settings(task: TaskPack) -> dict[str, Any]:
    settings = dict(task.spec.validation.settings)
    settings.setdefault("accepted_models", list(task.spec.rubyllm.get("sonnet_models", [])))
    return settings


def _write(root: Path, result: ValidationResult) -> None:
    path = root / "validation.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(result.model_dump_json(indent=2), encoding="utf-8")
    tmp.replace(path)


def _groups(stages: list[Stage], network: bool) -> list[tuple[str, list[Stage]]]:
    """Consecutive stages that run in one place: ("host", ...), ("sandbox", ...) or ("sandbox-net", ...)."""
    groups: list[tuple[str, list[Stage]]] = []
    for stage in stages:
        where = "host" if stage.where == "host" else ("sandbox-net" if stage.wants_network and network else "sandbox")
        if groups and groups[-1][0] == where:
            groups[-1][1].append(stage)
        else:
            groups.append((where, [stage]))
    return groups


def validate_project(
    project: Path,
    task: TaskPack,
    root: Path,
    *,
    engine: Engine = "auto",
    network: bool = False,
    progress: Progress | None = None,
) -> ValidationResult:
    """Validate `project` with `task`'s ladder; validation.json and validation/ are written under `root`."""
    say = progress or (lambda _msg: None)
    if not project.is_dir():
        raise ValidateInputError(f"{project}: not a directory")
    stage_ids = task.spec.validation.stages
    if not stage_ids:
        raise ValidateInputError(f"task {task.id!r} declares no validation stages ([validation] stages)")
    stages = [get_stage(s) for s in stage_ids]
    root.mkdir(parents=True, exist_ok=True)
    evidence, work = root / EVIDENCE, root / WORK
    for old in (evidence, work):
        shutil.rmtree(old, ignore_errors=True)
    evidence.mkdir()
    started = time.monotonic()
    result = ValidationResult(
        task=task.id,
        project=str(project.resolve()),
        engine=_engine(engine),
        shipbench_version=__version__,
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        stages=[],
    )
    ctx = StageContext(
        app_dir=work / "app",
        root=root,
        evidence_dir=evidence,
        settings=_settings(task),
        network=network,
        secret_token=secrets.token_hex(16),
    )
    try:
        left = copy_project(project, ctx.app_dir)
        if left:
            (evidence / "copy-left-out.json").write_text(json.dumps(left, indent=2), encoding="utf-8")
        for where, group in _groups(stages, network):
            if where == "host":
                run_ladder(
                    group, ctx, lambda s: say(f"{s.id}: {s.title}"), lambda r: _record(root, result, ctx, r, say)
                )
            else:
                _run_sandboxed(
                    group,
                    ctx,
                    network=where == "sandbox-net",
                    on_result=lambda r: _record(root, result, ctx, r, say),
                    say=say,
                )
    finally:
        for stage in stages:  # whatever never reported
            if stage.id not in ctx.results:
                _record(
                    root,
                    result,
                    ctx,
                    StageResult(
                        id=stage.id,
                        status="error",
                        infra=True,
                        reason="the validation ended before this stage reported",
                    ),
                    say,
                )
        result.stages = [ctx.results[s.id] for s in stages]
        result.duration_s = round(time.monotonic() - started, 2)
        _write(root, result)
        shutil.rmtree(work, ignore_errors=True)
    return result


def _record(root: Path, result: ValidationResult, ctx: StageContext, stage: StageResult, say: Progress) -> None:
    ctx.results[stage.id] = stage
    result.stages = list(ctx.results.values())
    _write(root, result)
    infra = " (infra)" if stage.infra else ""
    say(f"{stage.id}: {stage.status}{infra}{': ' + stage.reason if stage.reason else ''} [{stage.duration_s} s]")


def _run_sandboxed(
    group: list[Stage], ctx: StageContext, *, network: bool, on_result: Callable[[StageResult], None], say: Progress
) -> None:
    runnable: list[Stage] = []
    for stage in group:  # skip up front what cannot run (saves starting a sandbox for nothing)
        why = unmet(stage, ctx.results)
        if why is not None and not any(n in {s.id for s in runnable} for n in stage.needs):
            need = ctx.results.get(stage.needs[0]) if stage.needs else None
            on_result(skipped(stage.id, why, infra=bool(need and need.infra)))
        else:
            runnable.append(stage)
    if not runnable:
        return
    problem = sandbox_problem()
    if problem is not None:
        for stage in runnable:
            on_result(skipped(stage.id, problem, infra=True))
        return
    events = ctx.app_dir.parent / f"events-{runnable[0].id}.jsonl"
    spec_path = ctx.app_dir.parent / f"spec-{runnable[0].id}.json"
    spec = InnerSpec(
        stages=[s.id for s in runnable],
        app_dir=str(ctx.app_dir),
        root=str(ctx.root),
        settings=ctx.settings,
        network=network,
        secret_token=ctx.secret_token,
        results=ctx.results,
        events=str(events),
    )
    spec_path.write_text(spec.model_dump_json(), encoding="utf-8")
    events.write_text("", encoding="utf-8")
    argv = wrap(
        [sys.executable, "-m", "shipbench.validate.inner", str(spec_path)],
        writable=[ctx.app_dir.parent, ctx.evidence_dir],
        network=network,
        cwd=ctx.app_dir,
    )
    budget = sum(s.timeout_s for s in runnable) + 60
    log = ctx.evidence_dir / f"sandbox-{runnable[0].id}.log"
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(ctx.home),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PLAYWRIGHT_BROWSERS_PATH": "0",
        VALIDATION_ENV: str(ctx.root),  # inherited by everything in the sandbox: how a leak is found
        "PYTHONPATH": str(Path(shipbench.__file__).resolve().parent.parent),  # the same shipbench as outside
    }
    seen: set[str] = set()
    current: list[str] = []
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        deadline = time.monotonic() + budget
        offset = 0
        try:
            while True:
                done = proc.poll() is not None
                offset = _read_events(events, offset, seen, current, on_result, say, runnable)
                if done:
                    break
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
            proc.wait()
        _read_events(events, offset, seen, current, on_result, say, runnable)
    tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
    for stage in runnable:
        if stage.id in seen:
            continue
        if current and current[-1] == stage.id and proc.returncode == -9:
            reason = f"did not finish within the ladder's {budget:.0f} s"
            on_result(StageResult(id=stage.id, status="failed", reason=reason))
        elif current and current[-1] == stage.id:
            on_result(
                StageResult(
                    id=stage.id,
                    status="error",
                    infra=True,
                    reason=f"the sandbox ended during this stage (exit {proc.returncode}): " + " | ".join(tail),
                    evidence=[ctx.rel(log)],
                )
            )
        elif not current:
            on_result(
                StageResult(
                    id=stage.id,
                    status="error",
                    infra=True,
                    reason=f"the sandbox did not start (exit {proc.returncode}): " + " | ".join(tail),
                    evidence=[ctx.rel(log)],
                )
            )
        else:
            on_result(skipped(stage.id, f"not reached: the sandbox ended during {current[-1]}", infra=True))


def _read_events(
    events: Path,
    offset: int,
    seen: set[str],
    current: list[str],
    on_result: Callable[[StageResult], None],
    say: Progress,
    stages: list[Stage],
) -> int:
    try:
        with events.open("rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return offset
    end = data.rfind(b"\n") + 1
    titles = {s.id: s.title for s in stages}
    for line in data[:end].splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if "started" in event:
            current.append(str(event["started"]))
            say(f"{event['started']}: {titles.get(str(event['started']), '')}")
        elif "result" in event:
            stage = StageResult.model_validate(event["result"])
            seen.add(stage.id)
            on_result(stage)
    return offset + end
