"""One phase of one trial: lease the proxy, start the agent, watch it, and account for what happened.

Invariants: the proxy lease is closed on every exit path (a stale token gets 401); raw stream lines
are redacted (real key, lease token) before they are written; the stop event is set by exactly one
cause (watchdog verdict, budget, or suite shutdown), recorded in the outcome; a phase stopped by a
suite shutdown is reported as interrupted (status stays "running") so a re-run redoes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from shipbench.agents.base import AgentAdapter, Invocation, InvocationRequest, Usage
from shipbench.runner.contamination import scan_tool_inputs, trial_boundaries
from shipbench.runner.events import Redactor, StreamSummary, usage_disagreement
from shipbench.runner.plan import PhasePlan, RunEnv, TrialPlan
from shipbench.runner.process import ProcessResult, run_process
from shipbench.runner.status import phase_status
from shipbench.runner.watchdog import Verdict, Watchdog, WorkspaceActivity
from shipbench.sandbox.base import ProxyEndpoint, SandboxRequest
from shipbench.store.records import FailureClass, PhaseRecord, WatchdogEvent

if TYPE_CHECKING:
    from shipbench.proxy.types import Lease, UpstreamTarget


@dataclass
class PhaseContext:
    adapter: AgentAdapter
    binary: Path
    upstream: UpstreamTarget
    redactor: Redactor
    spent: Usage
    spent_usd: float
    continue_session: str | None


@dataclass
class PhaseOutcome:
    record: PhaseRecord
    failure_class: FailureClass
    interrupted: bool = False


@dataclass
class _Stop:
    event: asyncio.Event
    reason: str | None = None  # "shutdown" | "budget" | "watchdog"
    verdict: Verdict | None = None
    at_s: float = 0.0


def now() -> datetime:
    return datetime.now(UTC)


async def run_phase(plan: TrialPlan, env: RunEnv, phase: PhasePlan, ctx: PhaseContext) -> PhaseOutcome:
    paths = plan.paths
    paths.phase_dir(phase.n).mkdir(parents=True, exist_ok=True)
    prompt = plan.prompt(phase)
    rec = PhaseRecord(
        n=phase.n, id=phase.id, status="running", started_at=now(),
        prompt_sha256=hashlib.sha256(prompt.encode()).hexdigest(), continued_session=ctx.continue_session,
    )
    lease = env.proxy.open_lease(
        trial_id=plan.trial_id, phase=phase.n, upstream=ctx.upstream, budget=plan.suite.budget,
        calls_path=paths.llm_calls(phase.n), spent=ctx.spent, spent_usd=ctx.spent_usd,
    )
    ctx.redactor.add(lease.token)
    t0 = time.monotonic()
    summary = StreamSummary()
    stop = _Stop(asyncio.Event())
    try:
        request = InvocationRequest(
            binary=ctx.binary, workspace=paths.workspace, home=paths.home, prompt=prompt,
            model=plan.model.model, base_url=env.proxy_url, token=lease.token,
            session_id=ctx.continue_session, subagents=plan.subagents(),
            context_window=env.context_window(plan.model), max_output_tokens=plan.model.max_output_tokens,
        )
        invocation = ctx.adapter.invocation(request)
        result = await _supervise(plan, env, phase, ctx, lease, invocation, summary=summary, stop=stop, t0=t0)
    finally:
        env.proxy.close_lease(lease)
        _redact_file(paths.stderr(phase.n), ctx.redactor)
    rec.ended_at = now()
    rec.wall_s = round(time.monotonic() - t0, 3)
    _fill(rec, result, summary, lease)
    _record_reach(rec, summary, plan)
    if stop.reason == "shutdown":
        rec.status, rec.status_reason = "running", "interrupted: the suite was stopped; a re-run redoes this phase"
        return PhaseOutcome(rec, "none", interrupted=True)
    budget_reason = lease.budget_reason if lease.budget_exceeded.is_set() else None
    rec.watchdog = _watchdog_events(stop, result, summary, budget_reason)
    status, reason, failure = phase_status(
        result, terminal=summary.terminal, verdict=stop.verdict, budget_reason=budget_reason,
        provider_errors=lease.provider_errors, last_error_class=lease.last_error_class,
        error_events=summary.error_events, infra_error=None, llm_calls=lease.calls,
        auth_errors=lease.auth_errors, ok_calls=lease.ok_calls,
    )
    rec.status, rec.status_reason, rec.failure_class = status, reason, failure
    return PhaseOutcome(rec, failure)


async def _supervise(
    plan: TrialPlan, env: RunEnv, phase: PhasePlan, ctx: PhaseContext, lease: Lease, invocation: Invocation, *,
    summary: StreamSummary, stop: _Stop, t0: float,
) -> ProcessResult:
    paths = plan.paths
    watchdog = Watchdog(plan.suite.limits)
    activity = WorkspaceActivity(paths.workspace)
    with paths.events(phase.n).open("w", encoding="utf-8", buffering=1) as fh:

        def on_line(line: str) -> None:
            fh.write(ctx.redactor(line.rstrip("\r\n")) + "\n")
            for event in ctx.adapter.parse_line(line):
                summary.add(event)
                watchdog.on_event(event)
                env.progress.on_event(plan.trial_id, event)

        sandbox = SandboxRequest(workspace=paths.workspace, home=paths.home, binary=ctx.binary,
                                 path_env=invocation.env.get("PATH", ""), network=plan.suite.sandbox.network,
                                 proxy=proxy_endpoint(env))

        def wrap(argv: list[str]) -> list[str]:
            return env.sandbox.sandbox.wrap(argv, sandbox)

        monitor = asyncio.create_task(_monitor(plan, env, lease, watchdog, activity, stop, t0))
        try:
            return await run_process(
                invocation,
                cwd=paths.workspace, marker=plan.marker(phase.n), limits=plan.suite.limits,
                on_stdout_line=on_line, stderr_path=paths.stderr(phase.n), stop=stop.event, wrap=wrap,
            )
        finally:
            monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await monitor


def proxy_endpoint(env: RunEnv) -> ProxyEndpoint | None:
    """The proxy as a proxy-only sandbox reaches it (None when the proxy has no Unix socket)."""
    port = urllib.parse.urlsplit(env.proxy_url).port
    path = env.proxy.unix_path
    return ProxyEndpoint(socket=path, port=port) if path is not None and port is not None else None


async def _monitor(
    plan: TrialPlan, env: RunEnv, lease: Lease, watchdog: Watchdog, activity: WorkspaceActivity, stop: _Stop,
    t0: float,
) -> None:
    """Every monitor interval: workspace activity, proxy tokens, budget, watchdog; shutdown at once."""
    seen_out = 0
    while not stop.event.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(env.shutdown.wait(), timeout=env.monitor_interval_s)
        reason: str | None = None
        if env.shutdown.is_set():
            reason = "shutdown"
        else:
            if await asyncio.to_thread(activity.poll):
                watchdog.on_activity()
            out = lease.usage.output_tokens
            if out > seen_out:
                watchdog.on_tokens(out - seen_out)
                seen_out = out
            env.progress.on_usage(plan.trial_id, lease.usage, lease.cost_usd)
            watchdog.on_requests(lease.identical_run, lease.identical_ok)
            if lease.budget_exceeded.is_set():
                reason = "budget"
            else:
                stop.verdict = watchdog.check()
                reason = "watchdog" if stop.verdict else None
        if reason:
            stop.reason, stop.at_s = reason, round(time.monotonic() - t0, 3)
            stop.event.set()


def _fill(rec: PhaseRecord, result: ProcessResult, summary: StreamSummary, lease: Lease) -> None:
    rec.exit_code = result.exit_code
    rec.session_id = summary.session_id
    rec.proxy_usage = lease.usage.model_copy()
    rec.stream_usage = summary.usage
    rec.usage_disagreement = usage_disagreement(rec.proxy_usage, rec.stream_usage)
    rec.llm_calls = lease.calls
    rec.cost_usd = round(lease.cost_usd, 6)
    rec.unpriced_calls = lease.unpriced_calls
    rec.usage_sources = dict(lease.usage_sources)
    rec.prefill_tokens_per_s, rec.decode_tokens_per_s = lease.prefill_tokens_per_s, lease.decode_tokens_per_s
    rec.models_served = dict(lease.models_served)
    rec.tool_calls = dict(summary.tool_calls)
    rec.delegations = summary.delegations
    rec.last_tool = summary.last_tool
    rec.final_message = summary.final_message[-4000:]
    rec.stdout_bytes = result.stdout_bytes
    rec.stderr_bytes = result.stderr_bytes
    rec.output_truncated = result.truncated


def _record_reach(rec: PhaseRecord, summary: StreamSummary, plan: TrialPlan) -> None:
    """Paths the agent's tool calls named outside its workspace and HOME (see runner/contamination.py)."""
    paths = plan.paths
    bounds = trial_boundaries(paths.workspace, paths.home, paths.root.parent.parent, plan.task.root)
    found = scan_tool_inputs(summary.tool_inputs, bounds)
    rec.grading_reads, rec.grading_paths, rec.outside_paths = found.grading_count, found.grading, found.outside


def _watchdog_events(
    stop: _Stop, result: ProcessResult, summary: StreamSummary, budget_reason: str | None
) -> list[WatchdogEvent]:
    events: list[WatchdogEvent] = []
    if stop.verdict is not None:
        events.append(WatchdogEvent(at_s=stop.at_s, kind=stop.verdict.kind, detail=stop.verdict.detail))
    if budget_reason:
        events.append(WatchdogEvent(at_s=stop.at_s or result.wall_s, kind="budget", detail=budget_reason))
    if not result.stopped and summary.terminal is None:
        code = f"exit code {result.exit_code}" if result.signal is None else f"signal {result.signal}"
        events.append(WatchdogEvent(at_s=result.wall_s, kind="exit_without_terminal", detail=code))
    if result.survivors_killed:
        events.append(
            WatchdogEvent(at_s=result.wall_s, kind="survivors_killed", detail=f"{result.survivors_killed} processes")
        )
    return events


def _redact_file(path: Path, redactor: Redactor) -> None:
    """Redact secrets the agent echoed to stderr (the log is clipped, so reading it whole is bounded)."""
    if not path.is_file() or not redactor.secrets:
        return
    data = path.read_bytes()
    clean = redactor(data.decode("utf-8", errors="surrogateescape")).encode("utf-8", errors="surrogateescape")
    if clean != data:
        path.write_bytes(clean)
