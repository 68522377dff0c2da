"""Acceptance: a provider that answers 401/403 to everything is an auth infra failure for every real agent CLI.

Each agent runs through the real proxy against the replay upstream scripted to refuse every call; whatever the
agent then does (exits, retries until a watchdog fires, goes idle), the trial must be infra_error / infra with an
"auth:" reason (never a scored timeout, stall or crash), and no trial process may survive.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.test_suite_e2e import need, run_with_replay, tools_bin

from shipbench.replay.server import Fault

pytestmark = pytest.mark.slow
__all__ = ["tools_bin"]  # the autouse fixture: tools on PATH, no surviving trial process


@pytest.mark.parametrize(
    ("agent", "status"),
    [("opencode", 401), ("codex", 401), ("claude", 401), ("gemini", 401), ("codex", 403), ("claude", 403)],
)
def test_provider_refusing_every_call_is_an_auth_infra_failure(tmp_path: Path, agent: str, status: int) -> None:
    need(agent)
    limits = {"idle_s": 10, "phase_wall_s": 40, "grace_s": 2}
    fault = Fault(kind="status", status=status, times=100_000)
    record, requests = run_with_replay(tmp_path, agent, fault=fault, limits=limits)
    assert requests, "the agent never called the upstream"
    assert (record.status, record.failure_class) == ("infra_error", "infra"), record.status_reason
    assert record.status_reason.startswith("auth:") and "401/403" in record.status_reason
    phase = record.phases[0]
    assert phase.status == "infra_error" and phase.llm_calls >= 1
    assert record.audit_score is None  # never scored
