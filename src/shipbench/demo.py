"""`shipbench demo`: audit a directory of example projects and print their ranking.

Until the runner exists this is the main job on a fresh machine: it needs no API key and no network.
Invariants: one project that cannot be audited never stops the others (it is listed with its error);
rows are ordered by score, then name, so the output is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shipbench.audit.engine import AuditInputError, audit_project
from shipbench.audit.models import AuditResult
from shipbench.audit.serialize import to_json
from shipbench.tasks.pack import TaskPack

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_EXAMPLES = REPO_ROOT / "tests" / "fixtures" / "rails_chat"
DEFAULT_GEM_SOURCES = {"ruby_llm": REPO_ROOT / "tests" / "fixtures" / "gems" / "ruby_llm-1.14.1"}


@dataclass(frozen=True)
class DemoRow:
    name: str
    result: AuditResult | None
    error: str = ""


def example_projects(examples: Path) -> list[Path]:
    return sorted(p for p in examples.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def audit_examples(
    projects: list[Path], task: TaskPack, gem_sources: dict[str, Path], console: Console
) -> list[DemoRow]:
    rows: list[DemoRow] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task("auditing", total=len(projects))
        for project in projects:
            progress.update(bar, description=f"auditing {project.name}")
            try:
                rows.append(DemoRow(project.name, audit_project(project, task, gem_sources)))
            except (AuditInputError, OSError) as exc:
                rows.append(DemoRow(project.name, None, str(exc)))
            progress.advance(bar)
    return sorted(rows, key=lambda r: (-(r.result.score if r.result else -1), r.name))


def ranking_table(rows: list[DemoRow], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("project", no_wrap=True)
    table.add_column("score", justify="right")
    table.add_column("tier", justify="center")
    dims = next((r.result.dimensions for r in rows if r.result), [])
    for dim in dims:
        table.add_column(f"{dim.id[:6]}\n/{dim.max}", justify="right")
    table.add_column("API ok/missing/bad/unverif.", justify="right")
    for rank, row in enumerate(rows, 1):
        if row.result is None:
            table.add_row(str(rank), row.name, "-", "-", *["" for _ in dims], f"error: {row.error}")
            continue
        verdicts = [c.verdict for c in row.result.api_calls]
        api = "/".join(str(verdicts.count(v)) for v in ("ok", "missing", "bad_arguments", "unverifiable"))
        table.add_row(
            str(rank),
            row.name,
            str(row.result.score),
            row.result.tier,
            *[str(d.score) for d in row.result.dimensions],
            api,
        )
    return table


def write_results(rows: list[DemoRow], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for row in rows:
        if row.result is not None:
            (out / f"{row.name}.audit.json").write_text(to_json(row.result), encoding="utf-8")
