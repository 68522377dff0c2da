"""What the metering proxy is told (UpstreamTarget) and what it keeps per trial phase (Lease).

Invariants: a Lease's totals only grow, and only from calls recorded in its calls_path (so the phase's
llm_calls.jsonl and the lease agree); the budget is per trial (earlier phases' spend is passed in as
`spent`/`spent_usd`), reached means `>=` the limit, and once reached `budget_exceeded` stays set;
`auth_errors` counts only upstream 401/403 answers (a stale lease token is refused before any record).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from shipbench.agents.base import Usage
from shipbench.config import Budget, Pricing
from shipbench.store.records import LlmCallRecord

# error classes that are the agent's own doing or ours, not a provider failure
NOT_PROVIDER_ERRORS: frozenset[str] = frozenset({"budget", "client_closed"})


@dataclass(frozen=True)
class UpstreamTarget:
    """Where a lease's calls go. `api_key` is the REAL key: never logged, never written anywhere."""

    provider: str  # openrouter|openai|anthropic|google|openai_compatible|replay
    base_url: str  # root without the API version, e.g. https://openrouter.ai/api, http://127.0.0.1:PORT
    api_key: str | None = field(default=None, repr=False)
    pricing: Pricing | None = None  # suite override, wins over the price table
    model_override: str | None = None  # replaces the model of every request when set
    extra_headers: dict[str, str] = field(default_factory=dict)  # added to every upstream request
    serving_kind: str | None = None  # a self-hosted server's kind (config ServingKind): the proxy may ask it to count


@dataclass(eq=False)
class Lease:
    """One trial phase's right to use the proxy; the agent's API key is `token`."""

    token: str = field(repr=False)
    trial_id: str
    phase: int
    upstream: UpstreamTarget
    budget: Budget
    calls_path: Path
    spent: Usage = field(default_factory=Usage)  # earlier phases of the same trial
    spent_usd: float = 0.0
    limiter: asyncio.Semaphore | None = None  # per-provider concurrency, held during each upstream attempt
    usage: Usage = field(default_factory=Usage)  # this phase's running totals
    cost_usd: float = 0.0
    calls: int = 0  # records written to calls_path (forwarded or refused)
    models_served: dict[str, int] = field(default_factory=dict)
    budget_exceeded: asyncio.Event = field(default_factory=asyncio.Event)
    budget_reason: str = ""
    provider_errors: int = 0  # calls that ended in a provider error after retries
    last_error_class: str | None = None
    auth_errors: int = 0  # calls the upstream itself refused with 401/403 (the proxy's own 401s are never recorded)
    ok_calls: int = 0  # calls the upstream answered with success
    closed: bool = False
    seq: int = 0  # last call sequence number handed out
    unpriced_calls: int = 0  # answered calls without a known price (cost unknown, never $0)
    usage_sources: dict[str, int] = field(default_factory=dict)
    last_request_digest: str = ""
    identical_run: int = 0  # consecutive metered requests with the same body (1 = the last one was new)
    identical_ok: int = 0  # of that run, calls the upstream answered with success
    prefill: list[float] = field(default_factory=lambda: [0.0, 0.0])  # streamed calls: prompt tokens, seconds
    decode: list[float] = field(default_factory=lambda: [0.0, 0.0])  # streamed calls: output tokens, seconds

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def check_budget(self) -> str | None:
        """The reason the trial's budget is reached (and the event set), else None."""
        reason = self._over_budget()
        if reason is not None and not self.budget_exceeded.is_set():
            self.budget_reason = reason
            self.budget_exceeded.set()
        if not self.budget_exceeded.is_set():
            return None
        return self.budget_reason or "budget reached"

    def _over_budget(self) -> str | None:
        tokens = (self.spent + self.usage).total
        usd = self.spent_usd + self.cost_usd
        if self.budget.max_tokens is not None and tokens >= self.budget.max_tokens:
            return f"token budget reached: {tokens} >= {self.budget.max_tokens} tokens (trial total)"
        if self.budget.max_usd is not None and usd >= self.budget.max_usd:
            return f"cost budget reached: ${usd:.6f} >= ${self.budget.max_usd:.6f} (trial total)"
        return None

    def note_request(self, digest: str) -> None:
        """Track runs of identical requests (an agent re-sending the same body is stuck, see the loop watchdog)."""
        if digest == self.last_request_digest:
            self.identical_run += 1
        else:
            self.last_request_digest, self.identical_run, self.identical_ok = digest, 1, 0

    def add(self, record: LlmCallRecord) -> None:
        """Account one recorded call, then re-check the budget."""
        self.calls += 1
        if record.usage_source is not None:
            self.usage_sources[record.usage_source] = self.usage_sources.get(record.usage_source, 0) + 1
        self.usage = self.usage + record.usage
        cost = record.cost_usd if record.cost_usd is not None else record.upstream_cost_usd
        self.cost_usd += cost or 0.0
        if record.status < 300 and record.error_class is None:
            self.ok_calls += 1
            self.identical_ok += 1
            if cost is None and record.upstream != "replay":
                self.unpriced_calls += 1
            self._throughput(record)
            model = record.model_served or record.model_requested or "unknown"
            self.models_served[model] = self.models_served.get(model, 0) + 1
        if record.error_class is not None and record.error_class not in NOT_PROVIDER_ERRORS:
            self.provider_errors += 1
            self.last_error_class = record.error_class
        if record.error_class == "auth":
            self.auth_errors += 1
        self.check_budget()

    def _throughput(self, record: LlmCallRecord) -> None:
        if not record.stream or record.ttft_ms is None:
            return
        u = record.usage
        self.prefill[0] += u.input_tokens + u.cache_read_tokens + u.cache_write_tokens
        self.prefill[1] += record.ttft_ms / 1000.0
        self.decode[0] += u.output_tokens
        self.decode[1] += max(0.0, record.latency_ms - record.ttft_ms) / 1000.0

    @staticmethod
    def _rate(pair: list[float]) -> float | None:
        return round(pair[0] / pair[1], 1) if pair[0] > 0 and pair[1] > 0 else None

    @property
    def prefill_tokens_per_s(self) -> float | None:
        return self._rate(self.prefill)

    @property
    def decode_tokens_per_s(self) -> float | None:
        return self._rate(self.decode)
