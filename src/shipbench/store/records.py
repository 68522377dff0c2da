"""Persisted run records: trial.json (TrialRecord) and llm_calls.jsonl lines (LlmCallRecord).

Invariants: a record written to disk is complete JSON (writers go through `write_atomic`: a temp file
then rename, so a crash never leaves half a trial.json); a finished phase is never rewritten;
`status` uses one taxonomy everywhere and `failure_class` says whether a failure is the model's
(scored) or the infrastructure's (reported apart, not scored).
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shipbench.agents.base import Usage
from shipbench.serving.base import ServingInfo

TrialStatus = Literal[
    "pending",  # not started yet
    "running",  # started, not finished (a crash leaves this: resume picks it up)
    "completed",
    "completed_with_errors",
    "timeout",
    "stalled",
    "loop",
    "agent_crash",
    "provider_error",
    "budget_exceeded",
    "infra_error",
]
FINISHED: frozenset[str] = frozenset(
    {"completed", "completed_with_errors", "timeout", "stalled", "loop", "agent_crash", "provider_error",
     "budget_exceeded", "infra_error"}
)
FailureClass = Literal["none", "model", "infra"]
UsageSource = Literal["upstream", "server_tokenizer", "estimate", "none"]


class _Rec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LlmCallRecord(_Rec):
    """One call through the metering proxy."""

    trial_id: str
    phase: int
    seq: int
    started_at: datetime
    wire: str  # openai_chat | openai_responses | anthropic_messages | gemini
    path: str  # request path as the agent sent it (no query string)
    stream: bool
    model_requested: str | None = None
    model_served: str | None = None
    upstream: str  # provider name from the suite (openrouter, anthropic, replay, ...)
    upstream_provider: str | None = None  # who actually served it, when the upstream says (OpenRouter)
    status: int  # final HTTP status returned to the agent
    attempts: int = 1
    error_class: str | None = None  # see proxy/retry.py ERROR_CLASSES
    usage: Usage = Field(default_factory=Usage)
    # who counted `usage`: the upstream's own usage (None in records older than the field), the server's
    # tokenizer (the upstream sent none), an estimate (no tokenizer reachable), or nobody ("none": flagged)
    usage_source: UsageSource | None = None
    finish_reason: str | None = None  # as the upstream said it (stop, length, tool_calls, end_turn, ...)
    cost_usd: float | None = None  # our price from the dated table (+ overrides)
    upstream_cost_usd: float | None = None  # cost the upstream reported, when it does
    price_source: str | None = None  # e.g. "genai-prices 0.2.3" or "suite override"
    latency_ms: float = 0.0
    ttft_ms: float | None = None


class WatchdogEvent(_Rec):
    at_s: float
    kind: str  # timeout | idle | loop | errors | slow | budget | exit_without_terminal
    detail: str


class PhaseRecord(_Rec):
    n: int
    id: str
    status: TrialStatus = "pending"
    status_reason: str = ""
    failure_class: FailureClass | None = None  # set when the phase ends; None: unfinished, or an older record
    started_at: datetime | None = None
    ended_at: datetime | None = None
    wall_s: float = 0.0
    exit_code: int | None = None
    prompt_sha256: str = ""
    continued_session: str | None = None
    session_id: str | None = None
    proxy_usage: Usage = Field(default_factory=Usage)  # source of truth
    stream_usage: Usage = Field(default_factory=Usage)  # summed from the agent's own stream
    usage_disagreement: str | None = None  # set when proxy and stream differ
    llm_calls: int = 0
    cost_usd: float = 0.0  # the priced calls' cost; see unpriced_calls
    unpriced_calls: int = 0  # answered calls with no known price: cost_usd understates, the report says "unknown"
    usage_sources: dict[str, int] = Field(default_factory=dict)  # usage_source -> calls (see LlmCallRecord)
    prefill_tokens_per_s: float | None = None  # streamed calls: prompt tokens / time to first byte
    decode_tokens_per_s: float | None = None  # streamed calls: output tokens / (latency - time to first byte)
    models_served: dict[str, int] = Field(default_factory=dict)  # model as served -> calls
    tool_calls: dict[str, int] = Field(default_factory=dict)
    delegations: int = 0
    last_tool: str | None = None
    final_message: str = ""
    watchdog: list[WatchdogEvent] = Field(default_factory=list)
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    output_truncated: bool = False
    files_changed: list[str] = Field(default_factory=list)
    grading_reads: int = 0  # tool calls' paths into the grading side (results, task pack, shipbench)
    grading_paths: list[str] = Field(default_factory=list)  # the first of them
    outside_paths: list[str] = Field(default_factory=list)  # other paths outside workspace/HOME (system dirs left out)


class Versions(_Rec):
    shipbench: str
    agent_cli: str | None = None
    task: str
    ruby_llm_locked: str | None = None


class SandboxRecord(_Rec):
    """The sandbox the trial's agent ran in (absent in records older than the field: unsandboxed)."""

    backend: str  # bwrap | none
    requested: str = ""  # the suite's setting: auto | bwrap | none
    network: str = "open"
    reason: str = ""  # why auto chose this backend, when it fell back
    isolates_processes: bool = False
    isolates_filesystem: bool = False


class TrialRecord(_Rec):
    trial_id: str
    suite: str
    task: str
    agent: str
    model_id: str  # the suite's label for the model configuration
    model: str  # model id requested upstream
    provider: str
    repeat: int
    replay: bool = False
    sandbox: SandboxRecord | None = None
    serving: ServingInfo | None = None  # a self-hosted server: what it said about itself when the trial (re)started
    serving_warmup_s: float | None = None  # the model load before the phases, timed apart from them
    serving_events: list[str] = Field(default_factory=list)  # unloads / context drift seen between phases
    config: dict[str, object] = Field(default_factory=dict)  # snapshot of the suite entries used (no secrets)
    versions: Versions
    status: TrialStatus = "pending"
    status_reason: str = ""
    failure_class: FailureClass = "none"
    created_at: datetime
    updated_at: datetime
    phases: list[PhaseRecord] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0  # sum of the phases' priced calls; unknown when unpriced_calls > 0
    unpriced_calls: int = 0
    # calls of phase attempts that were redone (an infra failure, an interrupt): real spend, not the result's;
    # counted against the trial's budget, reported beside usage/cost, never in them
    abandoned_usage: Usage = Field(default_factory=Usage)
    abandoned_cost_usd: float = 0.0
    abandoned_calls: int = 0
    abandoned_files: list[str] = Field(default_factory=list)  # sha256 of each attempt's llm_calls.jsonl counted
    wall_s: float = 0.0
    audit_score: int | None = None
    audit_tier: str | None = None
    audit_error: str | None = None
    # the runtime ladder (validation.json): stages passed / stages run; None when it did not run
    works_passed: int | None = None
    works_run: int | None = None
    validation_error: str | None = None


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old or the new content, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_trial(path: Path, record: TrialRecord) -> None:
    write_atomic(path, record.model_dump_json(indent=2) + "\n")


def load_trial(path: Path) -> TrialRecord:
    return TrialRecord.model_validate_json(path.read_text(encoding="utf-8"))
