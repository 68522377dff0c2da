"""Discover trial directories under a results dir and flatten each into a `TrialRow`.

Invariants: loading never raises for a bad trial: a corrupt or partial trial dir becomes a
`SkippedTrial` with a reason, and a loaded trial with a missing or unreadable per-trial file becomes a
`TrialProblem` naming the file; infra failures and unfinished trials are loaded but never scored;
a row's score comes only from a readable audit.json (never from the copy recorded in trial.json).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shipbench.agents.base import Usage
from shipbench.audit.engine import is_incomplete
from shipbench.audit.models import AuditResult
from shipbench.store.records import FINISHED, TrialRecord

ScoreSource = Literal["audit", "none"]
_TRIAL_HINTS = ("phases", "workspace", "home", "audit.json", "validation.json")
_MAX_REASON = 300


class SkippedTrial(BaseModel):
    """A directory that looked like a trial but could not be loaded."""

    model_config = ConfigDict(extra="forbid")

    path: str
    reason: str


class TrialProblem(BaseModel):
    """A loaded trial with a per-trial file that is missing or could not be read."""

    model_config = ConfigDict(extra="forbid")

    trial_id: str
    file: str  # relative to the trial dir: audit.json, validation.json, ...
    reason: str
    path: str


class TrialRow(BaseModel):
    """One trial, flattened for aggregation; `record`/`audit` keep the full documents for trial pages."""

    model_config = ConfigDict(extra="forbid")

    trial_id: str
    suite: str
    task: str
    agent: str
    model_id: str  # the suite's label for the model configuration
    model: str  # model id requested upstream
    provider: str
    repeat: int
    settings: str = ""  # what else distinguishes the configuration (prompt variant, subagents, ...)
    config_key: str  # agent x model x settings: one leaderboard row per key (and task)
    status: str
    status_reason: str = ""
    failure_class: str = "none"
    finished: bool = True
    infra: bool = False  # infrastructure failure: reported apart, never scored
    contaminated: list[str] = Field(default_factory=list)  # grading-side paths the agent read: never scored
    score: float | None = None  # None: not scored (infra, unfinished, not audited, imported)
    score_source: ScoreSource = "none"
    tier: str | None = None
    dimensions: dict[str, float] = Field(default_factory=dict)  # dimension id -> points
    dimension_max: dict[str, int] = Field(default_factory=dict)
    api_verdicts: dict[str, int] = Field(default_factory=dict)  # verdict -> calls (non-test code)
    wall_s: float = 0.0
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float | None = None  # None: unknown (imported v1 rows)
    llm_calls: int = 0
    delegations: int = 0
    tokens_reliable: bool = True
    cost_reliable: bool = True
    imported: bool = False  # historical row from the reference harness: unaudited, read-only
    audited: bool = False
    notes: list[str] = Field(default_factory=list)
    problems: list[TrialProblem] = Field(default_factory=list)  # per-trial files missing or unreadable
    path: str | None = None
    record: TrialRecord | None = None
    audit: AuditResult | None = None

    @property
    def scored(self) -> bool:
        return self.score is not None


class LoadResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: str
    trials: list[TrialRow] = Field(default_factory=list)
    skipped: list[SkippedTrial] = Field(default_factory=list)
    problems: list[TrialProblem] = Field(default_factory=list)


def settings_of(config: dict[str, object]) -> str:
    """A short, stable description of the settings in a config snapshot beyond agent and model."""
    parts: list[str] = []
    agent = config.get("agent")
    if isinstance(agent, dict):
        if agent.get("prompt_variant"):
            parts.append(f"variant={agent['prompt_variant']}")
        if agent.get("continue_session") is False:
            parts.append("no-continue")
    model = config.get("model")
    if isinstance(model, dict):
        subs = model.get("subagents")
        if isinstance(subs, list) and subs:
            names = sorted(str(s.get("model", "?")) for s in subs if isinstance(s, dict))
            parts.append("subagents=" + "+".join(names))
    return ", ".join(parts)


def config_key(agent: str, model_id: str, settings: str) -> str:
    base = f"{agent} / {model_id}"
    return f"{base} [{settings}]" if settings else base


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        text = f"{exc.error_count()} validation error(s); first: {loc}: {first.get('msg', '')}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text[:_MAX_REASON]


def _read_audit(path: Path) -> tuple[AuditResult | None, str | None]:
    if not path.exists():
        return None, None
    try:
        return AuditResult.model_validate_json(path.read_text(encoding="utf-8")), None
    except (OSError, ValueError) as exc:
        return None, f"audit.json unreadable ({_short(exc)}): not scored"


def _missing_audit(record: TrialRecord) -> str | None:
    """Why a finished, scorable trial without audit.json is a problem (None: nothing was expected)."""
    if record.status not in FINISHED or _is_infra(record):
        return None
    if record.audit_score is not None:
        return f"audit.json missing (trial.json records score {record.audit_score}): not scored"
    if record.audit_error:
        return f"audit.json not written, the audit failed: {record.audit_error}"[:_MAX_REASON]
    return "audit.json missing: not scored"


def _check_json(path: Path) -> str | None:
    """The reason an optional JSON file that is present cannot be read (None when absent or fine)."""
    if not path.exists():
        return None
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{path.name} unreadable ({_short(exc)})"
    return None


def trial_problems(trial_dir: Path, record: TrialRecord, audit_problem: str | None) -> list[TrialProblem]:
    """Every per-trial file of a loaded trial that is missing when expected, or unreadable."""
    found: list[tuple[str, str]] = []
    if audit_problem:
        found.append(("audit.json", audit_problem))
    elif not (trial_dir / "audit.json").exists() and (why := _missing_audit(record)):
        found.append(("audit.json", why))
    if why := _check_json(trial_dir / "validation.json"):
        found.append(("validation.json", why))
    return [TrialProblem(trial_id=record.trial_id, file=f, reason=r, path=str(trial_dir)) for f, r in found]


def _is_infra(record: TrialRecord) -> bool:
    return record.status == "infra_error" or record.failure_class == "infra"


def row_from_record(record: TrialRecord, audit: AuditResult | None, path: Path | None = None) -> TrialRow:
    """Flatten a trial record (and its audit, when there is one) into a row."""
    settings = settings_of(record.config)
    finished = record.status in FINISHED
    infra = _is_infra(record)
    row = TrialRow(
        trial_id=record.trial_id, suite=record.suite, task=record.task, agent=record.agent,
        model_id=record.model_id, model=record.model, provider=record.provider, repeat=record.repeat,
        settings=settings, config_key=config_key(record.agent, record.model_id, settings),
        status=record.status, status_reason=record.status_reason, failure_class=record.failure_class,
        finished=finished, infra=infra, wall_s=record.wall_s or sum(p.wall_s for p in record.phases),
        usage=record.usage, cost_usd=None if _unpriced(record) else record.cost_usd,
        llm_calls=sum(p.llm_calls for p in record.phases),
        delegations=sum(p.delegations for p in record.phases), path=str(path) if path else None,
        record=record, audit=audit, audited=audit is not None,
        contaminated=[path for p in record.phases for path in p.grading_paths],
    )
    _note_metering(row, record)
    if audit is not None:
        row.dimensions = {d.id: float(d.score) for d in audit.dimensions}
        row.dimension_max = {d.id: d.max for d in audit.dimensions}
        row.api_verdicts = dict(Counter(c.verdict for c in audit.api_calls if not c.in_test))
    _assign_score(row, record, audit)
    return row


def _unpriced(record: TrialRecord) -> bool:
    """Some answered call had no known price: the cost is unknown (shown as such), never a partial sum or $0."""
    return record.unpriced_calls > 0 or any(p.unpriced_calls for p in record.phases)


def _note_metering(row: TrialRow, record: TrialRecord) -> None:
    """Say when tokens were not the upstream's own figures (see LlmCallRecord.usage_source)."""
    sources: Counter[str] = Counter()
    for phase in record.phases:
        sources.update(phase.usage_sources)
    if sources.get("estimate"):
        row.tokens_reliable = False
        row.notes.append(f"tokens estimated for {sources['estimate']} call(s): the server reported no usage")
    if sources.get("none"):
        row.tokens_reliable = False
        row.notes.append(f"{sources['none']} answered call(s) have no token count")
    if sources.get("server_tokenizer"):
        row.notes.append(f"tokens of {sources['server_tokenizer']} call(s) counted by the server's tokenizer")
    if _unpriced(record):
        row.notes.append("cost unknown: no price for this model (give models.pricing in the suite)")
    if record.abandoned_calls:
        row.notes.append(f"{record.abandoned_calls} call(s) of redone attempts (${record.abandoned_cost_usd:.4f}, "
                         f"{record.abandoned_usage.total} tokens) spent apart from this result")


def _assign_score(row: TrialRow, record: TrialRecord, audit: AuditResult | None) -> None:
    if row.infra:
        row.notes.append("infrastructure failure: reported apart, not scored")
    elif row.contaminated:
        row.notes.append(f"contaminated: the agent read {row.contaminated[0][:_MAX_REASON]}: not scored")
    elif not row.finished:
        row.notes.append(f"unfinished ({record.status}): not scored")
    elif audit is not None and is_incomplete(audit.verdict):
        row.notes.append(f"audit {audit.verdict[:_MAX_REASON]}: not scored")
    elif audit is not None:
        row.score, row.tier, row.score_source = float(audit.score), audit.tier, "audit"
    elif record.audit_score is not None:
        row.notes.append(f"no readable audit.json (trial.json records score {record.audit_score}): not scored")
    else:
        reason = f"audit failed: {record.audit_error}" if record.audit_error else "no audit.json"
        row.notes.append(f"{reason[:_MAX_REASON]}: not scored")


def load_trial_dir(trial_dir: Path) -> TrialRow | SkippedTrial:
    """Load one trial dir; an unusable trial.json makes it a SkippedTrial with the reason, and every other
    file problem is in `row.problems`."""
    record_path = trial_dir / "trial.json"
    if not record_path.is_file():
        return SkippedTrial(path=str(trial_dir), reason="no trial.json (partial trial dir)")
    try:
        record = TrialRecord.model_validate_json(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return SkippedTrial(path=str(trial_dir), reason=f"trial.json unreadable: {_short(exc)}")
    audit, problem = _read_audit(trial_dir / "audit.json")
    row = row_from_record(record, audit, trial_dir)
    if problem:
        row.notes.append(problem)
    elif audit is not None and is_incomplete(audit.verdict):
        problem = f"audit {audit.verdict[:_MAX_REASON]}"  # listed: a partial score is never ranked as a whole one
    row.problems = trial_problems(trial_dir, record, problem)
    return row


def _looks_like_trial(path: Path) -> bool:
    return (path / "trial.json").exists() or any((path / hint).exists() for hint in _TRIAL_HINTS)


def _children(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def discover(root: Path) -> tuple[list[Path], list[SkippedTrial]]:
    """Trial dirs under `root`: root itself, <root>/<trial>, or <root>/<suite>/<trial>."""
    if _looks_like_trial(root) and (root / "trial.json").exists():
        return [root], []
    found: list[Path] = []
    skipped: list[SkippedTrial] = []
    for child in _children(root):
        if (child / "trial.json").exists():
            found.append(child)
            continue
        grand = _children(child)
        suite_trials = [g for g in grand if _looks_like_trial(g)]
        if suite_trials:
            found.extend(suite_trials)
        elif _looks_like_trial(child):
            found.append(child)  # partial trial dir: loads as skipped with the reason
    return found, skipped


def load_results(root: Path) -> LoadResult:
    """Load every trial under `root`. Raises FileNotFoundError only when `root` is not a directory."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    dirs, skipped = discover(root)
    result = LoadResult(root=str(root), skipped=skipped)
    for trial_dir in dirs:
        loaded = load_trial_dir(trial_dir)
        if isinstance(loaded, SkippedTrial):
            result.skipped.append(loaded)
        else:
            result.trials.append(loaded)
            result.problems.extend(loaded.problems)
    result.trials.sort(key=lambda r: (r.suite, r.task, r.config_key, r.repeat, r.trial_id))
    return result
