"""`shipbench demo`: the replay demo suite's helpers, and the audit of a directory of example projects.

`shipbench demo` runs the bundled demo suite (real agent CLIs against the scripted `replay` upstream);
`shipbench demo --audit-examples --examples DIR` audits a directory of example projects. Neither needs an API
key or the network.
Invariants: nothing here reads the test tree: calls are verified only against a `--gem-source` or a gem that
discovery finds installed, else they are `unverifiable` and `gem_source_hints` says how to give a source; one
project that cannot be audited never stops the others (it is listed with its error); rows are ordered by score,
then name, so the output is deterministic; an agent whose CLI is not installed is skipped with a reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shipbench.audit.engine import AuditInputError, audit_project
from shipbench.audit.models import AuditResult
from shipbench.audit.ruby.gem_sources import installed_gem
from shipbench.audit.serialize import to_json
from shipbench.config import AgentConfig, SuiteConfig
from shipbench.tasks.pack import TaskPack

VERIFIED_GEMS = ("ruby_llm",)  # the libraries whose calls the rails-chat audit checks against their source


@dataclass(frozen=True)
class DemoRow:
    name: str
    result: AuditResult | None
    error: str = ""


def gem_source_hints(explicit: dict[str, Path], roots: Sequence[Path] | None = None) -> list[str]:
    """One line per verified gem that has no explicit source and that discovery cannot find installed."""
    hints: list[str] = []
    for gem in VERIFIED_GEMS:
        if gem in explicit or installed_gem(gem, roots):
            continue
        hints.append(
            f"no {gem} source: none given and none installed (GEM_HOME/GEM_PATH, `gem env`, mise/rbenv/asdf/rvm, "
            f"system gems), so {gem} calls are `unverifiable` unless a workspace vendors the gem; pass "
            f"--gem-source {gem}=DIR (an unpacked {gem}-<version> source, or a folder of them) to verify them"
        )
    return hints


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


def installed_agents(config: SuiteConfig) -> tuple[SuiteConfig, list[str]]:
    """The suite restricted to agents whose CLI binary is installed, and one line per skipped agent."""
    from shipbench.agents.discovery import find_binary
    from shipbench.agents.registry import get_adapter

    kept: list[AgentConfig] = []
    skipped: list[str] = []
    for agent in config.agents:
        try:
            cap = get_adapter(agent.name).capabilities
        except KeyError as exc:
            skipped.append(f"{agent.name}: no adapter ({exc})")
            continue
        if find_binary(cap, agent.binary) is None:
            skipped.append(
                f"{agent.name}: `{cap.binary}` not installed (npm {cap.npm_package}@{cap.npm_version}; "
                "scripts/setup.sh installs it into .tools/npm)"
            )
            continue
        kept.append(agent)
    return config.model_copy(update={"agents": kept}), skipped
