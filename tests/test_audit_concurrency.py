"""Audits are pure functions of their input: the corpus audited by 8 processes (twice) and by 8 threads
gives the same bytes as one serial pass, and the runner's audit process fails loudly, never hangs."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.conftest import FIXTURES, RUBY_LLM_GEM

from shipbench.audit.engine import audit_project
from shipbench.audit.serialize import to_json
from shipbench.runner.audit_worker import AuditWorkerError, audit_in_process
from shipbench.tasks.pack import load_task

CORPUS = sorted(p for p in (FIXTURES / "rails_chat").iterdir() if p.is_dir())
SOURCES = {"ruby_llm": RUBY_LLM_GEM}


def _audit(project: Path) -> str:
    return to_json(audit_project(project, "rails-chat", SOURCES))


def test_eight_processes_twice_and_eight_threads_match_the_serial_audit_byte_for_byte() -> None:
    serial = [_audit(p) for p in CORPUS]
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=8, mp_context=spawn) as pool:
        first = list(pool.map(_audit, CORPUS))
        second = list(pool.map(_audit, reversed(CORPUS)))[::-1]
    with ThreadPoolExecutor(max_workers=8) as threads:
        threaded = list(threads.map(_audit, CORPUS * 2))
    for i, project in enumerate(CORPUS):
        assert first[i] == serial[i], project.name
        assert second[i] == serial[i], project.name
        assert threaded[i] == threaded[i + len(CORPUS)] == serial[i], project.name


def test_the_runner_audit_process_returns_the_same_json() -> None:
    project = FIXTURES / "rails_chat" / "textbook_tier_a"
    assert audit_in_process(project, load_task("rails-chat").root, SOURCES) == _audit(project)


def test_an_audit_that_fails_or_runs_too_long_is_an_error_not_a_hang(tmp_path: Path) -> None:
    with pytest.raises(AuditWorkerError, match=r"AuditInputError: .*no such directory"):
        audit_in_process(tmp_path / "missing", load_task("rails-chat").root, {})
    started = time.monotonic()
    with pytest.raises(AuditWorkerError, match="ran past 0 s"):
        audit_in_process(FIXTURES / "rails_chat" / "textbook_tier_a", load_task("rails-chat").root, SOURCES, 0.01)
    assert time.monotonic() - started < 30
