"""Progress display for a suite run (observers of the trial lifecycle) and the final summary table.

Invariants: display code only reads what the lifecycle reports through the ProgressSink calls, it
never changes a trial; a TTY gets a rich Live table, anything else (CI, pipes) one plain line per
state change (never per event), so logs stay short; display errors never reach a trial.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.table import Table

from shipbench.agents.base import AgentEvent, Usage
from shipbench.store.records import TrialRecord


@dataclass
class TrialRow:
    trial_id: str
    phases: int = 0
    phase: str = "-"
    started: float = field(default_factory=time.monotonic)
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    last_tool: str = ""
    status: str = "running"
    finished_at: float | None = None

    def elapsed(self) -> float:
        return (self.finished_at or time.monotonic()) - self.started


def _tokens(u: Usage) -> str:
    return f"{u.input_tokens + u.cache_read_tokens + u.cache_write_tokens}/{u.output_tokens}"


class LineProgress:
    """Plain lines: trial started / phase started / trial finished or skipped."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.rows: dict[str, TrialRow] = {}

    def _print(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def trial_started(self, trial_id: str, phases: int) -> None:
        self.rows[trial_id] = TrialRow(trial_id, phases)
        self._print(f"[start] {trial_id}")

    def phase_started(self, trial_id: str, n: int, phase_id: str) -> None:
        row = self.rows.setdefault(trial_id, TrialRow(trial_id))
        row.phase = f"{n}:{phase_id}"
        self._print(f"[phase] {trial_id} phase {n} ({phase_id})")

    def on_event(self, trial_id: str, event: AgentEvent) -> None:
        row = self.rows.get(trial_id)
        if row is not None and event.kind == "tool_call" and event.tool:
            row.last_tool = event.tool

    def on_usage(self, trial_id: str, usage: Usage, cost_usd: float) -> None:
        row = self.rows.get(trial_id)
        if row is not None:
            row.usage, row.cost_usd = usage, cost_usd

    def note(self, trial_id: str, text: str) -> None:
        row = self.rows.setdefault(trial_id, TrialRow(trial_id))
        row.phase = text.split(":", 1)[0]
        if ": " in text and "[" in text:  # a finished stage, not a stage starting
            self._print(f"[step ] {trial_id} {text}")

    def trial_finished(self, record: TrialRecord, skipped: bool) -> None:
        row = self.rows.setdefault(record.trial_id, TrialRow(record.trial_id))
        row.status, row.finished_at = record.status, time.monotonic()
        row.usage, row.cost_usd = record.usage, record.cost_usd
        what = "skip " if skipped else "done "
        score = f" score {record.audit_score} tier {record.audit_tier}" if record.audit_score is not None else ""
        if record.works_run:
            score += f" works {record.works_passed}/{record.works_run}"
        reason = f" ({record.status_reason})" if record.status_reason else ""
        self._print(f"[{what.strip()}] {record.trial_id}: {record.status}{reason}{score}")


class LiveProgress(LineProgress):
    """A rich Live table refreshed a few times a second; finished trials keep their final row."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self.live = Live(console=console, refresh_per_second=4, get_renderable=self.table, transient=False)

    def _print(self, text: str) -> None:
        pass  # the live table shows everything

    def __enter__(self) -> LiveProgress:
        self.live.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.live.stop()

    def table(self) -> Table:
        table = Table(title="shipbench run", title_justify="left", expand=False)
        for name, justify in (("trial", "left"), ("phase", "left"), ("elapsed", "right"),
                              ("tokens in/out", "right"), ("cost $", "right"), ("last tool", "left"),
                              ("status", "left")):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for row in self.rows.values():
            table.add_row(row.trial_id, row.phase, f"{row.elapsed():.0f}s", _tokens(row.usage),
                          f"{row.cost_usd:.4f}", row.last_tool, row.status)
        return table


def make_progress(console: Console) -> LineProgress:
    return LiveProgress(console) if console.is_terminal else LineProgress(console)


def summary_table(records: list[TrialRecord], title: str = "shipbench results") -> Table:
    table = Table(title=title, title_justify="left")
    for name in ("trial", "status", "score", "tier", "works", "wall s", "tok in", "tok out", "tok cache r/w",
                 "cost $"):
        table.add_column(name, justify="left" if name in ("trial", "status") else "right")
    for r in records:
        u = r.usage
        mark = "~" if _estimated(r) else ""  # the server sent no usage: counted or estimated by the proxy
        table.add_row(
            r.trial_id, r.status + (" (infra)" if r.failure_class == "infra" else ""),
            "-" if r.audit_score is None else str(r.audit_score), r.audit_tier or "-",
            "-" if not r.works_run else f"{r.works_passed}/{r.works_run}", f"{r.wall_s:.1f}",
            f"{mark}{u.input_tokens}", f"{mark}{u.output_tokens}", f"{u.cache_read_tokens}/{u.cache_write_tokens}",
            "unknown" if r.unpriced_calls else f"{r.cost_usd:.4f}",
        )
    return table


def _estimated(record: TrialRecord) -> bool:
    return any(p.usage_sources.get("estimate") or p.usage_sources.get("none") for p in record.phases)
