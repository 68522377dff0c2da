"""Verify a project's calls into library gems against the gems' own source (issue 3).

For each verified gem (task.toml [rubyllm].verified_gems) the source at the Gemfile.lock version is
located (or given with --gem-source) and indexed; every Ruby/ERB file of app/, lib/, config/ and (as
in_test) test/ and spec/ is walked, receivers are typed by infer_types, and each gem call gets a
verdict from resolve_calls; test files also get their doubles checked by resolve_fakes.
Invariants: never raises on project content (a file that breaks the resolver is recorded in
`ApiReport.notes` and skipped); without a gem source every call is "unverifiable" and no fake is
reported; the result is a pure function of the files, the task and the gem sources.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from shipbench.audit.ruby.api_model import ApiIndex
from shipbench.audit.ruby.gem_sources import default_roots, index_cached, locate_gem
from shipbench.audit.ruby.infer_types import FileTypes
from shipbench.audit.ruby.parse import ParsedSource
from shipbench.audit.ruby.resolve_api import GemApi
from shipbench.audit.ruby.resolve_calls import FileCalls, ProjectDefs
from shipbench.audit.ruby.resolve_fakes import find_fakes
from shipbench.audit.ruby.verify_types import ApiReport, GemSource

if TYPE_CHECKING:
    from shipbench.audit.checks import AuditContext

APP_DIRS = ("app", "lib", "config")
TEST_DIRS = ("test", "spec")
_DEPENDENCY = re.compile(r"""add_(?:runtime_)?dependency\s*\(?\s*['"]([\w.-]+)['"]""")


def verify_project(ctx: AuditContext, gem_sources: dict[str, Path], roots: Sequence[Path] | None = None) -> ApiReport:
    """Every call into the task's verified gems, with verdicts; `roots` overrides where gems are searched."""
    report = ApiReport()
    gems = [str(g) for g in ctx.task.spec.rubyllm.get("verified_gems", [])]
    sources = _project_sources(ctx, report)
    apis = [_load_api(ctx, gem, gem_sources, roots, sources, report) for gem in gems]
    apis = [api for api in apis if api.namespace]
    if not apis:
        return report
    defs = ProjectDefs()
    for parsed, _ in sources:
        _guard(report, parsed.rel, partial(defs.add_file, parsed, apis))
    for parsed, in_test in sources:
        _guard(report, parsed.rel, partial(_verify_file, report, parsed, in_test, apis, defs))
    return report


def _verify_file(report: ApiReport, parsed: ParsedSource, in_test: bool, apis: list[GemApi], defs: ProjectDefs) -> None:
    types = FileTypes(parsed, apis, defs.constants)
    report.calls.extend(FileCalls(parsed, types, defs, in_test).run())
    if in_test:
        for api in apis:
            if api.index is not None:
                report.fakes.extend(find_fakes(parsed, types, api))


def _guard(report: ApiReport, rel: str, action: Callable[[], None]) -> None:
    try:
        action()
    except Exception as exc:  # a resolver bug on one file must not lose the others
        report.notes.append(f"{rel}: verification skipped ({type(exc).__name__}: {exc})")


def _project_sources(ctx: AuditContext, report: ApiReport) -> list[tuple[ParsedSource, bool]]:
    out: list[tuple[ParsedSource, bool]] = []
    for prefix, in_test in [(d, False) for d in APP_DIRS] + [(d, True) for d in TEST_DIRS]:
        try:
            out += [(p, in_test) for p in ctx.ruby_sources(prefix)]
            out += [(p, in_test) for p in ctx.erb_sources(prefix)]
        except Exception as exc:
            report.notes.append(f"{prefix}/: could not be read ({type(exc).__name__}: {exc})")
    return out


def _load_api(
    ctx: AuditContext,
    gem: str,
    explicit: dict[str, Path],
    roots: Sequence[Path] | None,
    sources: list[tuple[ParsedSource, bool]],
    report: ApiReport,
) -> GemApi:
    locked = ctx.facts.locked_versions.get(gem)
    index: ApiIndex | None = None
    try:
        search = list(roots) if roots is not None else default_roots(ctx.project_root)
        source, gem_dir = locate_gem(gem, locked, explicit, search)
        if gem_dir is not None:
            index = index_cached(gem_dir, gem, source.used_version)
    except Exception as exc:
        source = GemSource(gem=gem, locked_version=locked, used_version=None, path=None, note=f"index failed: {exc}")
        gem_dir = None
    report.sources.append(source)
    namespace = _namespace(gem, index, sources)
    version = (index.version if index is not None else None) or source.used_version
    extensions = _extensions(gem, gem_dir, ctx)
    return GemApi(gem=gem, namespace=namespace, index=index, version=version, extensions=extensions)


def _normal(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def _namespace(gem: str, index: ApiIndex | None, sources: list[tuple[ParsedSource, bool]]) -> str:
    """The gem's top-level constant: from its index, else as spelled in the project (RubyLLM)."""
    target = _normal(gem)
    if index is not None:
        top = sorted(n for n in index.classes if "::" not in n and _normal(n) == target)
        if top:
            return top[0]
    pattern = re.compile(rb"\b[A-Z][A-Za-z0-9_]*\b")
    for parsed, _ in sources:
        for match in pattern.finditer(parsed.source):
            word = match.group().decode()
            if _normal(word) == target:
                return word
    return ""


def _extensions(gem: str, gem_dir: Path | None, ctx: AuditContext) -> dict[str, str]:
    """Companion gems (ruby_llm-schema) own a sub-namespace (RubyLLM::Schema): segment -> gem."""
    names = set(ctx.facts.locked_versions) | set(ctx.facts.gems)
    if gem_dir is not None:
        for spec in sorted(gem_dir.glob("*.gemspec"))[:3]:
            try:
                names.update(_DEPENDENCY.findall(spec.read_text(encoding="utf-8", errors="replace")))
            except OSError:
                continue
    prefix = gem + "-"
    return {_normal(n[len(prefix) :]): n for n in names if n.startswith(prefix) and len(n) > len(prefix)}
