"""Synthetic trial dirs for the report tests and benchmark, built from the real pydantic records."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from shipbench.agents.base import Usage
from shipbench.audit.models import ApiCall, AuditResult, DimensionScore
from shipbench.store.layout import trial_id
from shipbench.store.records import PhaseRecord, TrialRecord, Versions, save_trial

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
DIMS = (("deliverables", 25), ("rubyllm", 20), ("tests", 15), ("errors", 10), ("persistence", 10),
        ("hotwire", 10), ("architecture", 5), ("production", 5))


def tier_for(score: int) -> str:
    return "A" if score >= 80 else "B" if score >= 60 else "C" if score >= 40 else "D"


def make_record(
    agent: str = "opencode", model_id: str = "m1", repeat: int = 1, *, suite: str = "s1", task: str = "rails-chat",
    status: str = "completed", failure_class: str = "none", cost: float = 1.0, wall_s: float = 600.0,
    delegations: int = 0, reason: str = "", subagents: Sequence[str] = (),
) -> TrialRecord:
    usage = Usage(input_tokens=1000 * repeat, output_tokens=200, cache_read_tokens=5000)
    config: dict[str, object] = {
        "suite": suite, "task": task, "agent": {"name": agent},
        "model": {"id": model_id, "subagents": [{"name": s, "model": s} for s in subagents]},
    }
    phase = PhaseRecord(n=1, id="build", status=status, wall_s=wall_s, proxy_usage=usage, cost_usd=cost,
                        delegations=delegations, llm_calls=3)
    return TrialRecord(
        trial_id=trial_id(task, agent, model_id, repeat), suite=suite, task=task, agent=agent, model_id=model_id,
        model=f"vendor/{model_id}", provider="openrouter", repeat=repeat, config=config,
        versions=Versions(shipbench="0.1.0", task=task), status=status, status_reason=reason,
        failure_class=failure_class, created_at=NOW, updated_at=NOW, phases=[phase],
        usage=usage, cost_usd=cost, wall_s=wall_s,
    )


def make_audit(score: int, *, project: str = "workspace", missing: int = 0, ok: int = 2) -> AuditResult:
    dims = []
    remaining = 100 - score
    for dim_id, weight in DIMS:
        lost = min(weight, remaining)
        remaining -= lost
        dims.append(DimensionScore(id=dim_id, title=dim_id.title(), score=weight - lost, max=weight, findings=[]))
    calls = [ApiCall(path="app/x.rb", line=i + 1, call="RubyLLM.chat", verdict="ok") for i in range(ok)]
    calls += [ApiCall(path="app/y.rb", line=i + 1, call="Chat#nope", verdict="missing") for i in range(missing)]
    return AuditResult(
        task="rails-chat", project=project, score=score, tier=tier_for(score), verdict="scored", dimensions=dims,
        findings=[], api_calls=calls, facts={}, shipbench_version="0.1.0",
    )


def write_trial(suite_dir: Path, record: TrialRecord, audit: AuditResult | None = None) -> Path:
    root = suite_dir / record.trial_id
    save_trial(root / "trial.json", record)
    (root / "phases" / "1").mkdir(parents=True, exist_ok=True)
    if audit is not None:
        (root / "audit.json").write_text(audit.model_dump_json(indent=2), encoding="utf-8")
    return root


def write_config(
    suite_dir: Path, agent: str, model_id: str, scores: Sequence[int], *, cost: float = 1.0, **kw: object
) -> list[Path]:
    """One configuration with one audited, completed trial per score (repeats 1..n)."""
    return [
        write_trial(suite_dir, make_record(agent, model_id, i, cost=cost, **kw), make_audit(s))
        for i, s in enumerate(scores, 1)
    ]


def synthetic_results(root: Path, trials: int, *, configs: int = 50, seed: int = 7) -> Path:
    """`trials` audited trials over `configs` configurations (benchmark data), a few infra failures among them."""
    rng = random.Random(seed)
    agents = ("opencode", "codex", "claude", "gemini")
    suite = root / "bench"
    for i in range(trials):
        c = i % configs
        agent, model_id, repeat = agents[c % 4], f"model-{c // 4}", i // configs + 1
        if i % 97 == 5:
            write_trial(suite, make_record(agent, model_id, repeat, status="infra_error", failure_class="infra"))
            continue
        score = max(0, min(100, round(rng.gauss(40 + c, 8))))
        record = make_record(agent, model_id, repeat, cost=rng.uniform(0.2, 5), wall_s=rng.uniform(100, 3000))
        write_trial(suite, record, make_audit(score, missing=rng.randint(0, 2)))
    return root
