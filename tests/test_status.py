"""phase_status: one test per row of the decision table in shipbench.runner.status."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from shipbench.agents.base import AgentEvent
from shipbench.runner.process import ProcessResult
from shipbench.runner.status import phase_status
from shipbench.runner.watchdog import Verdict, VerdictKind

OK = AgentEvent(kind="terminal", is_error=False, text="done")
FAILED = AgentEvent(kind="terminal", is_error=True, text="error_max_turns")


def result(
    exit_code: int | None = 0, sig: int | None = None, stopped: bool = False, reason: str | None = None
) -> ProcessResult:
    return ProcessResult(
        exit_code=exit_code,
        signal=sig,
        wall_s=12.0,
        stopped=stopped,
        stop_reason=reason,
        stdout_bytes=100,
        stderr_bytes=0,
        truncated=False,
        survivors_killed=0,
    )


KILLED = result(None, signal.SIGTERM, stopped=True, reason="watchdog")


def decide(res: ProcessResult | None = None, **kw: Any) -> tuple[str, str, str]:
    args: dict[str, Any] = {
        "terminal": None,
        "verdict": None,
        "budget_reason": None,
        "provider_errors": 0,
        "last_error_class": None,
        "error_events": 0,
        "infra_error": None,
    }
    args.update(kw)
    return phase_status(res or result(), **args)


def test_row1_infra_error_wins_over_everything() -> None:
    got = decide(KILLED, infra_error="proxy down", budget_reason="tokens", verdict=Verdict("loop", "x"), terminal=OK)
    assert got == ("infra_error", "proxy down", "infra")


def test_row2_budget_reason() -> None:
    got = decide(KILLED, budget_reason="tokens 1200 > 1000", verdict=Verdict("idle", "quiet"))
    assert got == ("budget_exceeded", "tokens 1200 > 1000", "model")


def test_row2_budget_refusal_by_the_proxy() -> None:
    status, _, cls = decide(result(1), provider_errors=1, last_error_class="budget")
    assert (status, cls) == ("budget_exceeded", "model")
    assert decide(terminal=OK, provider_errors=1, last_error_class="budget")[0] == "completed"


@pytest.mark.parametrize("kind", ["idle", "timeout", "slow"])
def test_row3_finished_but_did_not_exit(kind: VerdictKind) -> None:
    status, reason, cls = decide(KILLED, terminal=OK, verdict=Verdict(kind, "d"))
    assert (status, cls) == ("completed_with_errors", "none")
    assert "did not exit" in reason


@pytest.mark.parametrize("kind", ["idle", "errors"])
def test_row4_stall_while_the_provider_failed(kind: VerdictKind) -> None:
    status, reason, cls = decide(
        KILLED,
        verdict=Verdict(kind, "d"),
        provider_errors=4,
        last_error_class="server_error",
    )
    assert (status, cls) == ("provider_error", "infra")
    assert "4 provider error(s), last: server_error" in reason


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("timeout", "timeout"), ("idle", "stalled"), ("loop", "loop"), ("errors", "stalled"), ("slow", "stalled")],
)
def test_row5_verdicts(kind: VerdictKind, expected: str) -> None:
    status, reason, cls = decide(KILLED, verdict=Verdict(kind, "detail here"))
    assert (status, cls) == (expected, "model")
    assert reason == f"{kind}: detail here"


def test_row5_loop_stays_the_models_even_with_provider_errors() -> None:
    got = decide(KILLED, verdict=Verdict("loop", "d"), provider_errors=2, last_error_class="rate_limited")
    assert got[0] == "loop"


def test_row6_stopped_by_the_harness() -> None:
    got = decide(result(None, signal.SIGTERM, stopped=True, reason="shutdown (SIGINT)"))
    assert got == ("infra_error", "stopped by the harness: shutdown (SIGINT)", "infra")


def test_row7_completed() -> None:
    assert decide(terminal=OK) == ("completed", "completed", "none")


def test_row7_completed_with_error_events_or_nonzero_exit() -> None:
    status, reason, cls = decide(terminal=OK, error_events=2, provider_errors=3, last_error_class="rate_limited")
    assert (status, cls) == ("completed_with_errors", "none") and "2 error event(s)" in reason
    status, reason, cls = decide(result(1), terminal=OK)
    assert (status, cls) == ("completed_with_errors", "none") and "exit code 1" in reason


@pytest.mark.parametrize("klass", ["server_error", "rate_limited", "auth", "timeout", "network"])
def test_row8_provider_failure_ended_the_run(klass: str) -> None:
    status, reason, cls = decide(result(1), terminal=FAILED, provider_errors=5, last_error_class=klass)
    assert (status, cls) == ("provider_error", "infra")
    assert klass in reason and "exit code 1" in reason
    assert decide(result(1), provider_errors=5, last_error_class=klass)[0] == "provider_error"  # no terminal


def test_row9_bad_request_is_the_models() -> None:
    status, reason, cls = decide(result(1), provider_errors=1, last_error_class="bad_request")
    assert (status, cls) == ("provider_error", "model")
    assert "rejected the agent's request" in reason


@pytest.mark.parametrize("terminal", [None, FAILED])
def test_row10_failure_before_any_model_call_is_infra(terminal: AgentEvent | None) -> None:
    status, reason, cls = decide(result(41), terminal=terminal, llm_calls=0)
    assert (status, cls) == ("infra_error", "infra")
    assert "before its first model call (exit code 41" in reason
    # with calls made, or unknown, the same failure stays the model's
    assert decide(result(41), terminal=terminal, llm_calls=3)[2] == "model"
    assert decide(result(41), terminal=terminal)[2] == "model"


def test_row10_a_clean_finish_without_calls_is_not_an_error() -> None:
    assert decide(result(0), terminal=OK, llm_calls=0)[0] == "completed"


def test_row11_error_terminal() -> None:
    status, reason, cls = decide(result(1), terminal=FAILED)
    assert (status, cls) == ("completed_with_errors", "model")
    assert "error_max_turns" in reason


@pytest.mark.parametrize("code", [126, 127])
def test_row12_launcher_failure_is_infra(code: int) -> None:
    status, reason, cls = decide(result(code))
    assert (status, cls) == ("infra_error", "infra") and f"exit code {code}" in reason


@pytest.mark.parametrize(
    ("res", "text"),
    [(result(0), "exit code 0"), (result(2), "exit code 2"), (result(None, signal.SIGSEGV), "killed by SIGSEGV")],
)
def test_row13_no_terminal_event_is_a_crash(res: ProcessResult, text: str) -> None:
    status, reason, cls = decide(res)
    assert (status, cls) == ("agent_crash", "model")
    assert reason == f"no terminal event; {text}"


@pytest.mark.parametrize(
    ("res", "kw"),
    [
        (KILLED, {"verdict": Verdict("timeout", "phase wall 5400 s")}),  # a retry storm until the wall clock
        (KILLED, {"verdict": Verdict("loop", "same call 6x")}),
        (KILLED, {"verdict": Verdict("idle", "quiet 360 s")}),
        (result(1), {"terminal": FAILED}),
        (result(0), {}),  # exited quietly without a terminal event
        (result(0), {"terminal": OK}),  # claimed success without a single answered call
        (result(None, signal.SIGSEGV), {"budget_reason": "tokens"}),
    ],
)
def test_row1a_upstream_auth_refusals_are_infra_whatever_the_agent_did(res: ProcessResult, kw: dict[str, Any]) -> None:
    status, reason, cls = decide(
        res, provider_errors=40, last_error_class="auth", llm_calls=40, auth_errors=40, ok_calls=0, **kw
    )
    assert (status, cls) == ("infra_error", "infra")
    assert reason.startswith("auth:") and "401/403" in reason and "40 call(s)" in reason


def test_row1a_auth_after_successes_is_infra_unless_the_agent_finished() -> None:
    got = decide(KILLED, verdict=Verdict("timeout", "t"), provider_errors=9, last_error_class="auth",
                 auth_errors=9, ok_calls=3)
    assert got[0] == "infra_error" and got[1].startswith("auth:")
    # one refused call among successes, then a finished phase: the agent's result stands
    assert decide(terminal=OK, provider_errors=1, last_error_class="auth", auth_errors=1, ok_calls=5)[0] == "completed"
    # an auth error long ago, the run then failed on something else: not an auth failure
    got = decide(KILLED, verdict=Verdict("loop", "x"), provider_errors=2, last_error_class="server_error",
                 auth_errors=1, ok_calls=5)
    assert got == ("loop", "loop: x", "model")


def test_row1a_needs_the_upstream_not_the_proxy_refusal() -> None:
    # the proxy's own 401 (stale lease token) is never recorded: no auth_errors, the old rows decide
    got = decide(KILLED, verdict=Verdict("timeout", "t"), llm_calls=0, auth_errors=0, ok_calls=0)
    assert got == ("timeout", "timeout: t", "model")
