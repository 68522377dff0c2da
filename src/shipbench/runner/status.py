"""Decide a phase's status, reason and failure class from what was observed. One table, first matching row wins.

Invariants: the decision is a pure function of its inputs; every status of the taxonomy except pending/running can
come out; failure class "infra" marks what is not the agent's or model's doing (reported apart, never scored),
"model" marks a failure of the system under test (the agent CLI + model as served), "none" a phase that finished
on its own with a successful terminal event.

Rows (condition -> status / failure class):
 1. infra_error given (harness failure, binary missing, proxy down, upstream unreachable) -> infra_error / infra
 1a. the upstream refused calls with 401/403 (recorded by the proxy) and either no call succeeded, or the last
    provider error was auth and there is no ok terminal event -> infra_error / infra, reason "auth: ...",
    whatever the agent did afterwards (retried until a watchdog fired, went idle, exited, claimed success)
 2. budget_reason, or the proxy refused a call for budget (error class "budget") without an ok terminal event
    -> budget_exceeded / model
 3. ok terminal event seen, then an idle/timeout/slow verdict (finished but did not exit)
    -> completed_with_errors / none
 4. idle or errors verdict while provider errors of a PROVIDER_FAULTS class happened -> provider_error / infra
 5. verdict timeout / idle / loop / errors / slow -> timeout / stalled / loop / stalled / stalled, all model
 6. stopped by the harness without verdict or budget (shutdown) -> infra_error / infra
 7. ok terminal event: exit 0 and no error events -> completed / none; otherwise completed_with_errors / none
 8. run failed (error terminal, no terminal) with provider errors of a PROVIDER_FAULTS class
    -> provider_error / infra
 9. run failed and the last provider error was bad_request -> provider_error / model
10. the agent failed (error terminal or none) before making a single model call -> infra_error / infra
    (nothing the model did can cause it: a broken install, config or environment)
11. error terminal event -> completed_with_errors / model
12. no terminal event and exit 126/127 (the launcher could not run the agent, e.g. node missing) -> infra_error / infra
13. no terminal event (exit 0, nonzero exit, or a signal) -> agent_crash / model

Choices: a consecutive-errors verdict means the agent stopped making progress before finishing, so it is "stalled"
(completed_* is reserved for phases that ended on their own with a terminal event). Throughput too low ("slow") is
a property of the model as served by the chosen provider, which is what is benchmarked, so it is "model". Provider
outages, rate limits, auth failures, timeouts, network errors, a 404 (the server lacks the route or the model: a
wire it does not serve) and answers that are empty or cut off are the provider's (infra); a 400 is the request
the agent built (usually a context overflow), so it is the model's.
"""

from __future__ import annotations

from shipbench.agents.base import AgentEvent
from shipbench.runner.process import ProcessResult, signal_name
from shipbench.runner.watchdog import Verdict
from shipbench.store.records import FailureClass, TrialStatus

PROVIDER_FAULTS: frozenset[str] = frozenset(
    {"rate_limited", "server_error", "auth", "timeout", "network", "not_found", "empty_stream", "truncated_stream"}
)
MODEL_REQUEST_FAULTS: frozenset[str] = frozenset({"bad_request"})
_VERDICT_STATUS: dict[str, TrialStatus] = {
    "timeout": "timeout",
    "idle": "stalled",
    "loop": "loop",
    "errors": "stalled",
    "slow": "stalled",
}
_LAUNCHER_EXITS = {126: "the launcher could not execute the agent", 127: "the launcher could not find a program"}

Decision = tuple[TrialStatus, str, FailureClass]


def _exit_text(result: ProcessResult) -> str:
    if result.signal is not None:
        return f"killed by {signal_name(result.signal)}"
    return f"exit code {result.exit_code}"


def _provider_text(provider_errors: int, last_error_class: str | None) -> str:
    return f"{provider_errors} provider error(s), last: {last_error_class}"


def _auth_text(auth_errors: int, ok_calls: int | None, result: ProcessResult, verdict: Verdict | None) -> str:
    succeeded = "none succeeded" if ok_calls == 0 else "the last provider error was auth"
    then = f"{verdict.kind} verdict" if verdict is not None else _exit_text(result)
    return (
        f"auth: the provider refused {auth_errors} call(s) with 401/403 ({succeeded}); check the API key and its "
        f"permissions (the agent then ended with: {then}); not the model's doing"
    )


def _ok_terminal(terminal: AgentEvent | None) -> bool:
    return terminal is not None and not terminal.is_error


def _from_verdict(
    verdict: Verdict, terminal: AgentEvent | None, provider_errors: int, last_error_class: str | None
) -> Decision:
    if _ok_terminal(terminal) and verdict.kind in ("idle", "timeout", "slow"):
        return "completed_with_errors", f"finished but did not exit: {verdict.kind}: {verdict.detail}", "none"
    provider_fault = provider_errors > 0 and last_error_class in PROVIDER_FAULTS
    if provider_fault and verdict.kind in ("idle", "errors"):
        reason = f"{verdict.kind} while the provider failed: {_provider_text(provider_errors, last_error_class)}"
        return "provider_error", reason, "infra"
    return _VERDICT_STATUS[verdict.kind], f"{verdict.kind}: {verdict.detail}", "model"


def _from_exit(
    result: ProcessResult,
    terminal: AgentEvent | None,
    provider_errors: int,
    last_error_class: str | None,
    error_events: int,
    llm_calls: int | None,
) -> Decision:
    exit_text = _exit_text(result)
    if _ok_terminal(terminal):
        if result.exit_code != 0:
            return "completed_with_errors", f"terminal event ok but {exit_text}", "none"
        if error_events:
            return "completed_with_errors", f"completed with {error_events} error event(s)", "none"
        return "completed", "completed", "none"
    if provider_errors > 0 and last_error_class in PROVIDER_FAULTS:
        return "provider_error", f"{_provider_text(provider_errors, last_error_class)}; agent {exit_text}", "infra"
    if provider_errors > 0 and last_error_class in MODEL_REQUEST_FAULTS:
        reason = f"provider rejected the agent's request: {_provider_text(provider_errors, last_error_class)}"
        return "provider_error", reason, "model"
    detail = f": {terminal.text[:200]}" if terminal is not None and terminal.text else ""
    if llm_calls == 0:
        reason = f"the agent failed before its first model call ({exit_text}{detail}): setup, not the model"
        return "infra_error", reason, "infra"
    if terminal is not None:
        return "completed_with_errors", f"agent reported failure ({exit_text}){detail}", "model"
    if result.exit_code in _LAUNCHER_EXITS:
        return "infra_error", f"{_LAUNCHER_EXITS[result.exit_code]} ({exit_text})", "infra"
    return "agent_crash", f"no terminal event; {exit_text}", "model"


def phase_status(
    result: ProcessResult,
    *,
    terminal: AgentEvent | None,
    verdict: Verdict | None,
    budget_reason: str | None,
    provider_errors: int,
    last_error_class: str | None,
    error_events: int,
    infra_error: str | None,
    llm_calls: int | None = None,
    auth_errors: int = 0,
    ok_calls: int | None = None,
) -> tuple[TrialStatus, str, FailureClass]:
    """Status, human reason and failure class of one phase (see the table in the module docstring).

    `llm_calls`: calls the proxy recorded for this phase (None when unknown: row 10 is then skipped);
    `auth_errors`/`ok_calls`: calls the upstream refused with 401/403 / answered with success (row 1a)."""
    if infra_error:
        return "infra_error", infra_error, "infra"
    if auth_errors and (ok_calls == 0 or (last_error_class == "auth" and not _ok_terminal(terminal))):
        return "infra_error", _auth_text(auth_errors, ok_calls, result, verdict), "infra"
    if budget_reason:
        return "budget_exceeded", budget_reason, "model"
    if last_error_class == "budget" and not _ok_terminal(terminal):
        return "budget_exceeded", "the proxy refused a call: budget exhausted", "model"
    if verdict is not None:
        return _from_verdict(verdict, terminal, provider_errors, last_error_class)
    if result.stopped:
        return "infra_error", f"stopped by the harness: {result.stop_reason or 'stop requested'}", "infra"
    return _from_exit(result, terminal, provider_errors, last_error_class, error_events, llm_calls)
