"""The `shipbench` command line: parses arguments and calls one function per verb.

Invariants: user mistakes (missing directory, broken task pack, bad --gem-source) exit with code 2
and a one-line message on stderr, never a traceback; JSON goes to stdout unless --json PATH.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from shipbench import __version__
from shipbench.audit.engine import INCOMPLETE_PREFIX, AuditInputError, audit_project, is_incomplete
from shipbench.audit.files import MAX_FILES
from shipbench.audit.models import AuditResult
from shipbench.audit.report_md import render_markdown
from shipbench.audit.serialize import to_json
from shipbench.tasks.pack import TaskPackError, load_task

if TYPE_CHECKING:
    from shipbench.report.leaderboard import Leaderboard

app = typer.Typer(
    name="shipbench",
    help="Benchmark LLM coding agents on whole-project tasks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, soft_wrap=True)


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
    max_files: Annotated[
        int, typer.Option("--max-files", min=1, help="File budget: beyond it the audit is marked incomplete.")
    ] = MAX_FILES,
) -> None:
    """Score a project against the task's rubric, with evidence for every deduction.

    An audit that could not see the whole project (file budget spent, a check crashed) has a verdict
    starting with `incomplete:` and says so on stderr; its score covers only what was read.
    """
    from rich.markup import escape

    sources = _parse_gem_sources(gem_source or [])
    try:
        pack = load_task(task)
        result = audit_project(project_dir, pack, sources, max_files=max_files)
    except (TaskPackError, AuditInputError) as exc:
        raise _fail(escape(str(exc))) from None
    if md_path is not None:
        _emit(render_markdown(result), md_path)
    if json_path is not None or md_path is None:
        _emit(to_json(result), json_path)
    if json_path is not None or md_path is not None:
        line = f"{result.project}: {result.score}/100 tier {result.tier} ({result.verdict})"
        err.print(escape(line), highlight=False)
    if is_incomplete(result.verdict):
        err.print(
            f"[bold yellow]warning: incomplete audit[/], the score covers only part of the project: "
            f"{escape(result.verdict.removeprefix(INCOMPLETE_PREFIX))}",
            highlight=False,
        )
    for note in _unverified_notes(result):
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False)


def _unverified_notes(result: AuditResult) -> list[str]:
    """Say so when library calls could not be verified: their verdicts are all `unverifiable`."""
    sources = result.facts.get("api_sources")
    notes: list[str] = []
    for source in sources if isinstance(sources, list) else []:
        if isinstance(source, dict) and not source.get("path"):
            gem, why = source.get("gem"), source.get("note") or "no source found"
            notes.append(f"{gem} calls not verified: {why}; pass --gem-source {gem}=DIR to verify them")
    return notes


@app.command()
def validate(
    project_dir: Annotated[Path, typer.Argument(help="Directory the agent produced (or a trial's workspace).")],
    task: Annotated[str, typer.Option(help="Built-in task id or a task pack directory.")] = "rails-chat",
    engine: Annotated[str, typer.Option(help="auto, native or docker (docker: require an engine).")] = "auto",
    out: Annotated[
        Path | None,
        typer.Option(help="Where validation.json and validation/ go (default: the trial dir of a trial's "
                     "workspace, else ./shipbench-validate/<project>)."),
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write validation.json here.")] = None,
    network: Annotated[
        bool, typer.Option("--network", help="Let deps download missing gems (the app itself never has network).")
    ] = False,
) -> None:
    """Boot what the agent built and prove what it does: the task's runtime ladder (deps, tests, gates, boot,
    chat in Chromium against a wire-capturing LLM stand-in, docker). Exit 0 when no stage failed."""
    from rich.markup import escape

    from shipbench.validate import ValidateInputError, default_out, validate_project

    if engine not in ("auto", "native", "docker"):
        raise _fail(f"--engine must be auto, native or docker, not {engine!r}")
    try:
        pack = load_task(task)
        root = out or default_out(project_dir)
        result = validate_project(project_dir, pack, root, engine=engine,  # type: ignore[arg-type]
                                  network=network, progress=lambda m: err.print(escape(m), highlight=False))
    except (TaskPackError, ValidateInputError) as exc:
        raise _fail(escape(str(exc))) from None
    if json_path is not None:
        _emit(result.model_dump_json(indent=2), json_path)
    passed, ran = result.works
    err.print(f"works: {passed}/{ran} stages passed; {root / 'validation.json'}", highlight=False)
    if any(s.status == "failed" for s in result.stages):
        raise typer.Exit(code=1)


@app.command()
def run(
    suite: Annotated[
        Path | None, typer.Argument(help="Suite TOML (default: the bundled demo suite, a REPLAY run).")
    ] = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent (registry name).")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model (suite id or model name).")] = None,
    repeats: Annotated[int | None, typer.Option(min=1, help="Override the suite's repeats.")] = None,
    jobs: Annotated[int | None, typer.Option(min=1, help="Trials at once (default: the suite's jobs).")] = None,
    out: Annotated[
        str, typer.Option(help="Results directory, or an fsspec URL such as s3://bucket/prefix (executor ray).")
    ] = "results",
    force: Annotated[
        list[str] | None, typer.Option("--force", help="Restart this trial id from an empty workspace.")
    ] = None,
    gem_source: Annotated[
        list[str] | None, typer.Option("--gem-source", help="NAME=DIR: audit verifies calls against it.")
    ] = None,
    no_preflight: Annotated[
        bool, typer.Option("--no-preflight", help="Skip the preflight checks of the models (see `preflight`).")
    ] = False,
    executor: Annotated[
        str | None, typer.Option(help="local (this machine) or ray (one Ray task per trial); default: the suite's.")
    ] = None,
    ray_address: Annotated[str | None, typer.Option(help="The Ray cluster to join (executor ray).")] = None,
) -> None:
    """Run (or resume) a suite: real agent CLIs, metered through the local proxy, audited, indexed.

    Idempotent: finished trials are skipped, unfinished phases re-run. Exit 0 when every trial finished
    (whatever its status); 1 if any trial ended in infra_error, including a trial whose trial.json cannot
    be read (left untouched: fix it or --force that trial id; the other trials still run); 2 when the run
    is refused before anything starts (bad or unreadable suite, unsafe name, --agent/--model matching
    nothing, agent CLI not installed, max_usd for a model without a price, --out held by another run, a
    failed preflight); 130 when interrupted.
    """
    from rich.markup import escape

    from shipbench.config import ConfigError
    from shipbench.runner.command import DEMO_SUITE, load_suite_file, run_command, with_executor
    from shipbench.store.remote import is_url

    sources = _gem_sources_with_hints(gem_source)
    try:
        config = with_executor(load_suite_file(suite or DEMO_SUITE), executor, ray_address)
        code = run_command(config, out=out if is_url(out) else Path(out), console=_console(), only_agent=agent,
                           only_model=model,
                           repeats=repeats, jobs=jobs, force=set(force or []), gem_sources=sources,
                           preflight=not no_preflight)
    except ConfigError as exc:
        raise _fail(escape(str(exc))) from None
    raise typer.Exit(code=code)


@app.command()
def preflight(
    suite: Annotated[Path, typer.Argument(help="Suite TOML.")],
    agent: Annotated[str | None, typer.Option(help="Only this agent (registry name).")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model (suite id or model name).")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the preflight report JSON here.")] = None,
) -> None:
    """Check that every selected model can serve the suite: endpoint up, model listed, each agent's wire API,
    structured tool calls, served context >= the task's min_context_tokens. Exit 0 when all pass, 2 otherwise."""
    import asyncio

    from rich.markup import escape
    from rich.table import Table

    from shipbench.config import ConfigError
    from shipbench.preflight import raise_for_failures, run_preflight, selected
    from shipbench.runner.command import load_suite_file
    from shipbench.runner.refusals import check_filters

    console = _console()
    try:
        config = load_suite_file(suite)
        check_filters(config, agent, model)
        pack = load_task(config.task)
        agents, models = selected(config, agent, model)
        report = asyncio.run(run_preflight(config, min_context_tokens=pack.spec.min_context_tokens, agents=agents,
                                           models=models, progress=lambda line: err.out(line, highlight=False)))
    except (ConfigError, TaskPackError) as exc:
        raise _fail(escape(str(exc))) from None
    table = Table(title=f"preflight {config.name}: task {config.task} needs {report.min_context_tokens} tokens")
    for column in ("model", "check", "status", "s", "detail"):
        table.add_column(column, overflow="fold")
    style = {"passed": "green", "failed": "bold red", "skipped": "yellow"}
    for m in report.models:
        for c in m.checks:
            table.add_row(escape(m.model_id), c.id, f"[{style[c.status]}]{c.status}[/]", f"{c.seconds:.1f}",
                          escape(c.detail))
    console.print(table)
    if json_path is not None:
        _emit(report.model_dump_json(indent=2) + "\n", json_path)
    try:
        raise_for_failures(report)
    except ConfigError as exc:
        raise _fail(escape(str(exc))) from None


@app.command()
def demo(
    audit_examples: Annotated[
        bool, typer.Option("--audit-examples", help="Audit the bundled example corpus instead (no agents).")
    ] = False,
    examples: Annotated[
        Path | None,
        typer.Option(help="With --audit-examples: directory of example projects (required)."),
    ] = None,
    gem_source: Annotated[
        list[str] | None, typer.Option("--gem-source", help="NAME=DIR: the audit verifies calls against it.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Results directory (default ./results); with --audit-examples: audit JSON directory."),
    ] = None,
    jobs: Annotated[int | None, typer.Option(min=1, help="Trials at once.")] = None,
    force: Annotated[
        list[str] | None, typer.Option("--force", help="Restart this trial id from an empty workspace.")
    ] = None,
    report_dir: Annotated[
        Path, typer.Option("--report", help="Where the demo writes its leaderboard (index.html, leaderboard.md).")
    ] = Path("report"),
) -> None:
    """Run the bundled demo suite offline: every installed agent CLI builds the rails-chat app against
    the scripted `replay` upstream, through the proxy, watchdogs, audit and store (a REPLAY run, not a
    real model; no API key needed). --audit-examples audits the example corpus instead.
    """
    if audit_examples:
        _demo_audit_examples(examples, out, _gem_sources_with_hints(gem_source))
        return
    from shipbench.config import ConfigError
    from shipbench.demo import installed_agents
    from shipbench.runner.command import DEMO_SUITE, load_suite_file, run_command

    console = _console()
    try:
        config, skipped = installed_agents(load_suite_file(DEMO_SUITE))
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    for line in skipped:
        console.print(f"[yellow]skipped[/] {line}", highlight=False)
    if not config.agents:
        console.print("no agent CLI is installed: nothing to run (./scripts/setup.sh installs them)")
        raise typer.Exit(code=1)
    console.print(
        "[bold]REPLAY demo[/]: the model is a scripted local upstream replaying a recorded trajectory; "
        "the agents, proxy, watchdogs, audit and store are real. Scores show the pipeline, not a model."
    )
    sources = _gem_sources_with_hints(gem_source)
    results = out or Path("results")
    try:
        code = run_command(config, out=results, console=console, jobs=jobs, force=set(force or []), gem_sources=sources)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    if code in (0, 1):
        _write_demo_report(results / config.name, report_dir, console)
    raise typer.Exit(code=code)


def _write_demo_report(suite_dir: Path, report_dir: Path, console: Console) -> None:
    from shipbench.report.build import build_report, html_renderer
    from shipbench.report.markdown import render_markdown as render_board_md

    board, trials = build_report(suite_dir, [])
    _print_read_problems(board)
    index = html_renderer()(board, trials, report_dir)
    _emit(render_board_md(board), report_dir / "leaderboard.md")
    console.print(f"leaderboard: {report_dir / 'leaderboard.md'} and {index}", highlight=False)


def _console() -> Console:
    return Console() if sys.stdout.isatty() else Console(width=160)


def _gem_sources_with_hints(values: list[str] | None) -> dict[str, Path]:
    """The explicit --gem-source values, and a stderr hint for each verified gem with no source at all."""
    from shipbench.demo import gem_source_hints

    sources = _parse_gem_sources(values or [])
    for hint in gem_source_hints(sources):
        err.out(f"note: {hint}", highlight=False)
    return sources


def _demo_audit_examples(examples: Path | None, out: Path | None, sources: dict[str, Path]) -> None:
    from shipbench.demo import audit_examples, example_projects, ranking_table, write_results

    if examples is None:
        raise _fail("--audit-examples needs --examples DIR (e.g. tests/fixtures/rails_chat in a source checkout)")
    if not examples.is_dir():
        raise _fail(f"{examples}: no example projects here (pass --examples DIR)")
    projects = example_projects(examples)
    if not projects:
        raise _fail(f"{examples}: contains no project directories")
    console = _console()
    rows = audit_examples(projects, load_task("rails-chat"), sources, console)
    title = (
        f"rails-chat audit of {len(rows)} example projects in {examples} (not agent runs; "
        f"API verified against: {', '.join(f'{k}={v}' for k, v in sources.items()) or 'installed gems only'})"
    )
    console.print(ranking_table(rows, title))
    if out is not None:
        write_results(rows, out)
        console.print(f"audit JSON written to {out}")


@app.command("api-index")
def api_index(
    gem_dir: Annotated[Path, typer.Argument(help="A gem's source directory (the one holding lib/).")],
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the index JSON here.")] = None,
) -> None:
    """Print the public API extracted from a gem's source (classes, methods, exact parameters)."""
    from shipbench.audit.ruby.api_index import build_index

    if not gem_dir.is_dir():
        raise _fail(f"{gem_dir} is not a directory")
    index = build_index(gem_dir)
    if index.files == 0 and not index.skipped:
        raise _fail(f"{gem_dir} has no Ruby sources (expected lib/**/*.rb)")
    _emit(to_json(index), json_path)


@app.command()
def report(
    ctx: typer.Context,
    results: Annotated[
        str, typer.Argument(help="Results dir or fsspec URL (s3://bucket/prefix): one suite or many.")
    ] = "results",
    html_dir: Annotated[Path | None, typer.Option("--html", help="Write the HTML report into this directory.")] = None,
    md_path: Annotated[Path | None, typer.Option("--md", help="Write the Markdown leaderboard here.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the aggregated leaderboard JSON.")] = None,
    imports: Annotated[
        list[Path] | None,
        typer.Option("--import", help="Reference-harness result.json file or dir: unaudited historical rows."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap (same seed, same report).")] = 20240601,
    cache: Annotated[
        Path | None, typer.Option("--cache", help="With a URL: mirror the results here (default: a temp dir).")
    ] = None,
) -> None:
    """Leaderboard with intervals from trial dirs: Markdown (stdout by default), JSON, HTML."""
    from shipbench.report.build import build_report, html_renderer
    from shipbench.report.markdown import render_markdown as render_board_md

    results_dir = _report_results(ctx, results, cache)
    if not results_dir.is_dir():
        raise _fail(f"{results_dir}: no such directory")
    for path in imports or []:
        if not path.exists():
            raise _fail(f"--import {path}: no such file or directory")
    board, trials = build_report(results_dir, imports or [], seed=seed)
    if html_dir is not None:
        try:
            render = html_renderer()
        except ImportError as exc:
            raise _fail(f"HTML report unavailable: {exc}") from None
        index = render(board, trials, html_dir)
        err.print(f"HTML report: {index}", highlight=False)
    if json_path is not None:
        _emit(to_json(board), json_path)
    if md_path is not None or (html_dir is None and json_path is None):
        _emit(render_board_md(board), md_path)
    _print_read_problems(board)
    t = board.totals
    err.print(
        f"{t['trials']} trials, {t['scored']} scored, {t['infra']} infra, {t['imported']} imported, "
        f"{t['skipped']} skipped, {t['problems']} not fully read, {t['configurations']} configurations",
        highlight=False,
    )


def _report_results(ctx: typer.Context, location: str, cache: Path | None) -> Path:
    """The local results dir for `report`: the path itself, or a mirror of an fsspec URL (removed on exit)."""
    from rich.markup import escape

    from shipbench.store.remote import RemoteResults, RemoteStoreError, is_url

    if not is_url(location):
        return Path(location)
    if cache is None:
        import tempfile

        tmp = tempfile.TemporaryDirectory(prefix="shipbench-report-")
        ctx.call_on_close(tmp.cleanup)
        cache = Path(tmp.name)
    try:
        return RemoteResults.open(location).mirror_for_report("", cache)
    except RemoteStoreError as exc:
        raise _fail(escape(str(exc))) from None


def _print_read_problems(board: Leaderboard) -> None:
    """One stderr line per trial dir that could not be loaded and per trial file that could not be read."""
    for skipped in board.skipped:
        err.out(f"skipped: {skipped.path}: {skipped.reason}", highlight=False)
    for problem in board.problems:
        err.out(f"not fully read: {problem.trial_id}: {problem.file}: {problem.reason}", highlight=False)


@app.command()
def rescore(
    results_dir: Annotated[Path, typer.Argument(help="Results dir: one suite or many.")],
    task: Annotated[str, typer.Option(help="Built-in task id or a task pack directory.")] = "rails-chat",
    gem_source: Annotated[
        list[str] | None, typer.Option("--gem-source", help="NAME=DIR: verify calls against this gem source.")
    ] = None,
) -> None:
    """Audit finished trials again with today's rubric, beside the audit they were scored with
    (audit.rescored-<rubric digest>.json; audit.json is never changed). Exit 2 when nothing matches."""
    from shipbench.report.rescore import rescore_results
    from shipbench.tasks.pack import TaskPackError, load_task

    if not results_dir.is_dir():
        raise _fail(f"{results_dir}: no such results directory")
    try:
        pack = load_task(task)
    except TaskPackError as exc:
        raise _fail(str(exc)) from None
    done = rescore_results(results_dir, pack, _parse_gem_sources(gem_source or []))
    if not done:
        raise _fail(f"{results_dir}: no audited {pack.id} trial to rescore")
    console = _console()
    for r in done:
        old = "-" if r.old_score is None else str(r.old_score)
        new = f"error: {r.error}" if r.new_score is None else f"{r.new_score} ({r.path.name if r.path else ''})"
        console.print(f"{r.trial_dir.name}: {old} -> {new}", highlight=False, markup=False)
    failed = sum(r.new_score is None for r in done)
    console.print(f"rescored {len(done) - failed} of {len(done)} trials with rubric {pack.rubric.digest}")
    raise typer.Exit(code=1 if failed else 0)


@app.command()
def fit(
    source: Annotated[Path | None, typer.Argument(help="A .gguf file or a Hugging Face config.json.")] = None,
    layers: Annotated[int | None, typer.Option(help="Transformer layers (blocks).")] = None,
    kv_heads: Annotated[int | None, typer.Option(help="KV heads per layer (GQA groups).")] = None,
    head_dim: Annotated[int | None, typer.Option(help="Dimension of one attention head.")] = None,
    kv_type: Annotated[str, typer.Option(help="KV cache type: f16, bf16, q8_0, q4_0, f32, or bytes/element.")] = "f16",
    kv_bytes: Annotated[float | None, typer.Option(help="Bytes per KV element (wins over --kv-type).")] = None,
    params: Annotated[str | None, typer.Option(help="Parameter count: 70B, 135M, 7e9.")] = None,
    weight_bits: Annotated[float | None, typer.Option(help="Bits per weight (16, 8.5, 4.8 for Q4_K_M).")] = None,
    context: Annotated[int | None, typer.Option(help="Also show this context size (tokens).")] = None,
    memory_gb: Annotated[float | None, typer.Option(help="GPU/unified memory in GiB.")] = None,
    bandwidth_gbs: Annotated[float | None, typer.Option(help="Memory bandwidth in GB/s.")] = None,
    memory_class: Annotated[str | None, typer.Option(help="ddr4, ddr5, lpddr5x, gddr6, gddr7, hbm3, or GB/s.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the figures as JSON here.")] = None,
) -> None:
    """KV cache, weights, what fits in memory, and a bandwidth-bound decode speed for a local model."""
    from rich.markup import escape

    from shipbench.fit.cli import fit_report, render_table, summary_line
    from shipbench.fit.model import FitInputError

    try:
        report = fit_report(
            source,
            layers=layers,
            kv_heads=kv_heads,
            head_dim=head_dim,
            kv_type=kv_type,
            kv_bytes=kv_bytes,
            params=params,
            weight_bits=weight_bits,
            context=context,
            memory_gb=memory_gb,
            bandwidth_gbs=bandwidth_gbs,
            memory_class=memory_class,
        )
    except FitInputError as exc:
        raise _fail(escape(str(exc))) from None
    console = _console()
    console.print(render_table(report))
    console.print(summary_line(report), highlight=False, markup=False, soft_wrap=True)
    if json_path is not None:
        _emit(report.model_dump_json(indent=2) + "\n", json_path)


@app.command()
def version() -> None:
    """Print the shipbench version."""
    print(__version__)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("run", "demo"):
        from shipbench.runner.keyhold import hand_over

        # the process that spawns agents must not hold provider keys in its environment
        hand_over(os.environ, [sys.executable, "-m", "shipbench", *sys.argv[1:]])
    app()


if __name__ == "__main__":
    main()
