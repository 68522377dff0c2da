"""The `shipbench` command line: parses arguments and calls one function per verb.

Invariants: user mistakes (missing directory, broken task pack, bad --gem-source) exit with code 2
and a one-line message on stderr, never a traceback; JSON goes to stdout unless --json PATH.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from shipbench import __version__
from shipbench.audit.engine import AuditInputError, audit_project
from shipbench.audit.report_md import render_markdown
from shipbench.audit.serialize import to_json
from shipbench.tasks.pack import TaskPackError, load_task

app = typer.Typer(
    name="shipbench",
    help="Benchmark LLM coding agents on whole-project tasks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code=2)


def _parse_gem_sources(values: list[str]) -> dict[str, Path]:
    sources: dict[str, Path] = {}
    for value in values:
        name, sep, directory = value.partition("=")
        if not sep or not name or not directory:
            raise _fail(f"--gem-source expects NAME=DIR, got {value!r}")
        path = Path(directory)
        if not path.is_dir():
            raise _fail(f"--gem-source {name}: {directory} is not a directory")
        sources[name] = path
    return sources


def _emit(text: str, path: Path | None) -> None:
    if path is None:
        sys.stdout.write(text)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@app.command()
def audit(
    project_dir: Annotated[Path, typer.Argument(help="Directory the agent produced.")],
    task: Annotated[str, typer.Option(help="Built-in task id or a task pack directory.")] = "rails-chat",
    gem_source: Annotated[
        list[str] | None, typer.Option("--gem-source", help="NAME=DIR: verify calls against this gem source.")
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the audit JSON here.")] = None,
    md_path: Annotated[Path | None, typer.Option("--md", help="Write the Markdown report here.")] = None,
) -> None:
    """Score a project against the task's rubric, with evidence for every deduction."""
    sources = _parse_gem_sources(gem_source or [])
    try:
        pack = load_task(task)
        result = audit_project(project_dir, pack, sources)
    except (TaskPackError, AuditInputError) as exc:
        raise _fail(str(exc)) from None
    if md_path is not None:
        _emit(render_markdown(result), md_path)
    if json_path is not None or md_path is None:
        _emit(to_json(result), json_path)
    if json_path is not None or md_path is not None:
        err.print(f"{result.project}: {result.score}/100 tier {result.tier} ({result.verdict})", highlight=False)


@app.command()
def version() -> None:
    """Print the shipbench version."""
    print(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
