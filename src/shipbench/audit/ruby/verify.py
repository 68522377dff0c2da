"""Verify a project's calls into library gems against the gems' own source (issue 3).

For each verified gem (task.toml [rubyllm].verified_gems) the source at the Gemfile.lock version is
located (or given with --gem-source) and indexed; every Ruby/ERB file of the project (and every
extensionless file with a ruby shebang) is walked, test/ and spec/ ones as in_test; models calling the
gem's acts_as_* macros become records (resolve_records); receivers are typed by infer_types, and each
gem call gets a verdict from resolve_calls; test files also get their doubles checked by resolve_fakes.
A gem locked from a git/path source (a fork) is not verified against a release unless its source is
given; a source whose version is not the locked one never yields missing/bad_arguments.
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

from shipbench.audit.checks import ERB_SUFFIXES, RUBY_SUFFIXES
from shipbench.audit.facts.lockfile import locked_sources
from shipbench.audit.files import SourceFile
from shipbench.audit.ruby.api_model import ApiIndex
from shipbench.audit.ruby.gem_sources import default_roots, index_cached, locate_gem
from shipbench.audit.ruby.infer_types import FileTypes
from shipbench.audit.ruby.parse import ParsedSource, parse_ruby
from shipbench.audit.ruby.resolve_api import GemApi
from shipbench.audit.ruby.resolve_calls import FileCalls, ProjectDefs
from shipbench.audit.ruby.resolve_fakes import find_fakes
from shipbench.audit.ruby.resolve_records import macros_of, prefers_new_variant
from shipbench.audit.ruby.verify_types import ApiReport, FakeMismatch, GemSource

if TYPE_CHECKING:
    from shipbench.audit.checks import AuditContext

TEST_DIRS = ("test", "spec")
_RUBY_SHEBANG = re.compile(rb"^#![^\n]*\bruby\b")
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
    prefer_new = prefers_new_variant([p for p, _ in sources])
    for api in apis:
        macros = macros_of(api)
        for parsed, in_test in sources:
            if not in_test and parsed.kind == "ruby":
                _guard(report, parsed.rel, partial(defs.add_records, parsed, api, macros, prefer_new))
    for parsed, in_test in sources:
        _guard(report, parsed.rel, partial(defs.add_file, parsed, apis, in_test))
        if not in_test and parsed.kind == "ruby":
            _guard(report, parsed.rel, partial(defs.add_injections, parsed))
    for parsed, in_test in sources:
        _guard(report, parsed.rel, partial(_verify_file, report, parsed, in_test, apis, defs))
    for name, (rel, line) in sorted(defs.test_constants.items()):
        detail = "defined by the test suite inside the gem's namespace; the locked gem has no such constant"
        fake = FakeMismatch(path=rel, line=line, kind="defined_constant", name=name, real=name, detail=detail)
        report.fakes.append(fake)
    return report


def _verify_file(report: ApiReport, parsed: ParsedSource, in_test: bool, apis: list[GemApi], defs: ProjectDefs) -> None:
    types = FileTypes(parsed, apis, defs.constants, defs.records, defs.injected)
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
    """Every Ruby and ERB file of the project, wherever it sits (app/, lib/, bin/ scripts with a ruby
    shebang, script/, examples/, a non-Rails gem or script folder); test/ and spec/ files are `in_test`."""
    out: list[tuple[ParsedSource, bool]] = []
    for source in ctx.files.files.values():
        try:
            parsed = _parse(ctx, source)
        except Exception as exc:
            report.notes.append(f"{source.rel}: could not be read ({type(exc).__name__}: {exc})")
            continue
        if parsed is not None:
            out.append((parsed, _in_test(source.rel, ctx.app_prefix)))
    return out


def _parse(ctx: AuditContext, source: SourceFile) -> ParsedSource | None:
    rel = source.rel
    if rel.endswith((*RUBY_SUFFIXES, *ERB_SUFFIXES)) or source.name in ("Gemfile", "Rakefile"):
        return ctx.parsed(rel)
    if source.suffix or source.size > 1_000_000:
        return None
    head = source.read_head(128)
    if not _RUBY_SHEBANG.match(head):
        return None
    return parse_ruby(rel, source.read_bytes())


def _in_test(rel: str, app_prefix: str) -> bool:
    inner = rel[len(app_prefix) :] if app_prefix and rel.startswith(app_prefix) else rel
    return inner.split("/", 1)[0] in TEST_DIRS


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
    fork = _locked_from(ctx, gem) if gem not in explicit else None
    try:
        if fork is not None:  # a fork or checkout: the registry release of that number is other code
            note = f"{gem} is locked from {fork} (a fork, not a release): calls left unverifiable"
            source = GemSource(gem=gem, locked_version=locked, used_version=None, path=None, note=note)
            gem_dir = None
        else:
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
    api = GemApi(gem=gem, namespace=namespace, index=index, version=version, extensions=extensions)
    if fork is not None:
        api.unavailable = f"{gem} is locked from {fork}, a fork: pass --gem-source {gem}=DIR with its source"
    elif index is None and source.note and "locked" in source.note:
        api.unavailable = source.note  # e.g. "--gem-source ruby_llm: found 1.14.1, locked 1.16.0: ..."
    elif index is not None and locked and version and version != locked:
        api.mismatch = f"the source is {gem} {version} but the project locks {locked}"
    return api


def _locked_from(ctx: AuditContext, gem: str) -> str | None:
    """Where Gemfile.lock takes `gem` from when that is a git repository or a path, not a registry."""
    rel = ctx.facts.gemfile_lock
    source = ctx.files.get(rel) if rel else None
    if source is None:
        return None
    return locked_sources(source.read_text()).get(gem)


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
