"""`shipbench validate` on real Rails apps (Debian's Rails 6.1, puma, Chromium, bubblewrap): the working fixture
passes every stage it can run here, each seeded defect is caught by the check meant to catch it, a project
that is not a Rails app gets skip reasons, and no process of a validation outlives it, even SIGKILLed.

The apps are under tests/fixtures/validate/ (written blind from the task's description, see its README).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shipbench.tasks.pack import load_task
from shipbench.validate import validate_project
from shipbench.validate.models import ValidationResult
from shipbench.validate.proc import VALIDATION_ENV
from shipbench.validate.stages.chat import CHECK_IDS

FIXTURES = Path(__file__).parent / "fixtures" / "validate"
DEFECTS = sorted(p.name for p in (FIXTURES / "apps" / "defects").iterdir() if p.is_dir())
_NEEDS = {"ruby": shutil.which("ruby"), "bundle": shutil.which("bundle"), "puma": shutil.which("puma"),
          "chromium": shutil.which("chromium") or (Path("/usr/bin/chromium").exists() or None),
          "bwrap": shutil.which("bwrap")}
pytestmark = pytest.mark.skipif(not all(_NEEDS.values()), reason="needs " + ", ".join(
    k for k, v in _NEEDS.items() if not v) + " (scripts/setup.sh installs them)")


def materialize(name: str, dest: Path) -> Path:
    subprocess.run(["bash", str(FIXTURES / "materialize.sh"), name, str(dest)], check=True)
    return dest


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def live_in(root: Path) -> list[int]:
    """Independent of the harness: live processes whose environment names this validation."""
    needle = f"{VALIDATION_ENV}={root}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
            env = Path(f"/proc/{name}/environ").read_bytes()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2] not in "ZX" and needle in env.split(b"\0"):
            found.append(int(name))
    return found


def statuses(result: ValidationResult) -> dict[str, str]:
    return {c.id: c.status for c in result.checks().values()}


@pytest.fixture(scope="module")
def working(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, ValidationResult, str, str]:
    base = tmp_path_factory.mktemp("working")
    app = materialize("working", base / "project")
    before = tree_digest(app)
    result = validate_project(app, load_task("rails-chat"), base / "out")
    return app, base / "out", result, before, tree_digest(app)


def test_working_app_passes_every_stage_that_can_run_here(working: tuple[Path, Path, ValidationResult, str, str]
                                                         ) -> None:
    _, out, result, _, _ = working
    by_stage = {s.id: s for s in result.stages}
    assert [s.id for s in result.stages] == ["deps", "tests", "gates", "boot", "chat", "docker"]
    for stage_id in ("deps", "tests", "gates", "boot", "chat"):
        assert by_stage[stage_id].status == "passed", (stage_id, by_stage[stage_id].reason)
    docker = by_stage["docker"]
    assert docker.status == "passed" or (docker.status == "skipped" and docker.infra), docker.reason
    checks = statuses(result)
    for check_id in CHECK_IDS:
        assert checks[check_id] in ("passed", "skipped" if check_id == "chat.two_workers" else "passed"), check_id
    assert checks["tests.suite"] == "passed" and by_stage["tests"].facts["summary"]["runs"] > 0
    assert by_stage["tests"].facts["coverage"]["line_percent"] > 50
    assert by_stage["chat"].facts["model_slug"] == "anthropic/claude-sonnet-4"
    assert result.works[0] == result.works[1] >= 5
    on_disk = ValidationResult.model_validate_json((out / "validation.json").read_text())
    assert on_disk.stages == result.stages
    for check in result.checks().values():  # every evidence path exists, relative to validation.json
        for rel in check.evidence:
            assert (out / rel).is_file(), rel


def test_captured_payloads_are_the_evidence(working: tuple[Path, Path, ValidationResult, str, str]) -> None:
    _, out, result, _, _ = working
    turn2 = json.loads((out / "validation" / "chat" / "turn2.json").read_text())
    messages = turn2["llm_requests"][-1]["body"]["messages"]
    roles = [m["role"] for m in messages]
    assert roles[0] == "system" and roles[-3:] == ["user", "assistant", "user"]
    requests = [json.loads(line) for line in (out / "validation" / "llm_requests.jsonl").read_text().splitlines()]
    assert len(requests) == result.stage("chat").facts["llm_requests"] > 30  # type: ignore[union-attr]
    assert {r["reply_status"] for r in requests} >= {200, 429, 500}
    assert list((out / "validation" / "chat").glob("*.png")), "screenshots are kept"


def test_the_agents_workspace_is_never_modified_and_nothing_survives(
        working: tuple[Path, Path, ValidationResult, str, str]) -> None:
    app, out, _, before, after = working
    assert before == after
    assert not (app / "config" / "initializers" / "zzzz_shipbench_validate.rb").exists()
    assert not (out / ".validate-work").exists()
    assert live_in(out) == []


def test_a_project_that_is_not_rails_gets_skip_reasons(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "README.md").write_text("# nothing here\n")
    result = validate_project(tmp_path / "project", load_task("rails-chat"), tmp_path / "out")
    by_stage = {s.id: s for s in result.stages}
    assert by_stage["deps"].status == "skipped" and "no Gemfile" in by_stage["deps"].reason
    for stage_id in ("tests", "gates", "boot"):
        assert by_stage[stage_id].status == "skipped" and by_stage[stage_id].reason == "needs deps, which skipped"
    assert by_stage["chat"].reason == "needs boot, which skipped"
    assert by_stage["docker"].status == "skipped"
    assert result.works == (0, 0)


def test_an_app_without_tests_or_dockerfile_says_so(tmp_path: Path) -> None:
    app = materialize("working", tmp_path / "project")
    shutil.rmtree(app / "test")
    (app / "Dockerfile").unlink()
    task = load_task("rails-chat")
    result = validate_project(app, task, tmp_path / "out")
    tests = result.stage("tests")
    assert tests is not None and tests.status == "skipped" and tests.reason.startswith("no tests")
    docker = result.stage("docker")
    assert docker is not None and docker.status == "skipped"
    assert docker.reason in ("no Dockerfile in the project", "no docker engine")
    assert result.stage("boot").status == "passed"  # type: ignore[union-attr]


@pytest.mark.slow
@pytest.mark.parametrize("defect", DEFECTS)
def test_each_seeded_defect_is_caught_by_its_check(defect: str, tmp_path: Path) -> None:
    expected = json.loads((FIXTURES / "apps" / "defects" / defect / "expected.json").read_text())
    app = materialize(defect, tmp_path / "project")
    result = validate_project(app, load_task("rails-chat"), tmp_path / "out")
    checks = result.checks()
    for check_id in expected["caught_by"]:
        assert checks[check_id].status == "failed", (check_id, checks[check_id].reason)
        assert checks[check_id].evidence, f"{check_id} failed without evidence"
        for rel in checks[check_id].evidence:
            assert (tmp_path / "out" / rel).is_file()
    chat = result.stage("chat")
    assert chat is not None and chat.status == "failed"
    collateral = {c.id for c in checks.values() if c.status == "failed"} - set(expected["caught_by"])
    assert collateral <= set(expected.get("also_fails", [])), f"{defect} also failed {collateral}"
    assert live_in(tmp_path / "out") == []


@pytest.mark.slow
def test_sigkill_mid_stage_leaves_nothing_and_a_rerun_completes(tmp_path: Path) -> None:
    app = materialize("working", tmp_path / "project")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "shipbench", "validate", str(app), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill it while Chromium and the app are running
        if (out / "validation" / "chat" / "turn1.json").exists():
            break
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.2)
    assert live_in(out), "the chat stage should be running now"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while live_in(out) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert live_in(out) == []
    result = validate_project(app, load_task("rails-chat"), out)
    assert result.stage("chat").status == "passed"  # type: ignore[union-attr]
    assert live_in(out) == []
