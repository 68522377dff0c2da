"""What a task check sees (`AuditContext`) and returns (`Hit`).

A check is a plain function `check(ctx) -> Iterable[Hit]`. It reads facts, parsed sources and the
API report from the context and yields one `Hit` per distinct problem, each with evidence. It never
assigns points: the rubric does. Invariants: parsed trees are cached per file, so checks may ask for
the same file freely; a file that can no longer be read is recorded in `parse_issues` and parses to
None, never raises; evidence paths are relative to the audited directory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from shipbench.audit.facts.model import ProjectFacts
from shipbench.audit.files import ProjectFiles, SourceFile, UnreadableFile
from shipbench.audit.models import Evidence, FileIssue
from shipbench.audit.ruby.parse import Node, ParsedSource, line_of, parse_erb, parse_js, parse_ruby
from shipbench.audit.ruby.verify_types import ApiReport
from shipbench.tasks.pack import TaskPack

RUBY_SUFFIXES = (".rb", ".rake", ".ru", "Gemfile", "Rakefile")
ERB_SUFFIXES = (".erb",)
JS_SUFFIXES = (".js", ".mjs")


@dataclass(frozen=True)
class Hit:
    """One distinct problem found by a check.

    `key` tells distinct hits of the same rule apart (a gem name, a call name); hits of one rule
    with the same key are merged, their evidence and tags joined. `tags` say what the hit means
    beyond its rule (e.g. "core_path": it breaks the call that serves a user turn); the rubric's
    severity classes may trigger on them.
    """

    rule: str
    message: str
    evidence: tuple[Evidence, ...]
    key: str = ""
    tags: frozenset[str] = frozenset()


@dataclass
class AuditContext:
    project_root: Path
    files: ProjectFiles
    task: TaskPack
    facts: ProjectFacts
    api: ApiReport = field(default_factory=ApiReport)
    derived: dict[str, object] = field(default_factory=dict)
    memo: dict[str, object] = field(default_factory=dict)  # checks' shared intermediate results, not output
    parse_issues: dict[str, FileIssue] = field(default_factory=dict)
    _parsed: dict[str, ParsedSource | None] = field(default_factory=dict)

    # ---- files of the app (under the detected app root)

    @property
    def app_prefix(self) -> str:
        root = self.facts.app_root
        return f"{root}/" if root else ""

    def app_path(self, rel_in_app: str) -> str:
        """Path relative to the audited dir for a path relative to the app root."""
        return self.app_prefix + rel_in_app

    def app_file(self, rel_in_app: str) -> SourceFile | None:
        return self.files.get(self.app_path(rel_in_app))

    def app_files(self, prefix: str = "", *suffixes: str) -> list[SourceFile]:
        return self.files.under(self.app_path(prefix) if prefix else self.facts.app_root, *suffixes)

    # ---- parsed sources (cached; None when the file cannot be parsed at all)

    def parsed(self, rel: str) -> ParsedSource | None:
        if rel in self._parsed:
            return self._parsed[rel]
        source = self.files.get(rel)
        result: ParsedSource | None = None
        if source is not None:
            try:
                data = source.read_bytes()
            except UnreadableFile as exc:  # swapped or grown since the scan: recorded, not parsed
                detail = f"since the scan: {exc.detail}"
                self.parse_issues[rel] = FileIssue(path=rel, status=exc.status, detail=detail)
                self._parsed[rel] = None
                return None
            if rel.endswith(ERB_SUFFIXES):
                result = parse_erb(rel, data)
            elif rel.endswith(JS_SUFFIXES):
                result = parse_js(rel, data)
            elif rel.endswith(RUBY_SUFFIXES) or rel.rsplit("/", 1)[-1] in ("Gemfile", "Rakefile"):
                result = parse_ruby(rel, data)
            if result is not None and result.has_error:
                self.parse_issues[rel] = FileIssue(
                    path=rel,
                    status="syntax_error",
                    detail=f"first error near line {result.first_error_line()}",
                )
        self._parsed[rel] = result
        return result

    def ruby_sources(self, prefix: str = "") -> list[ParsedSource]:
        """Parsed Ruby files of the app under `prefix` (relative to the app root)."""
        return self._parse_all(self.app_files(prefix, *RUBY_SUFFIXES))

    def erb_sources(self, prefix: str = "app/views") -> list[ParsedSource]:
        return self._parse_all(self.app_files(prefix, *ERB_SUFFIXES))

    def js_sources(self, prefix: str = "app/javascript") -> list[ParsedSource]:
        return self._parse_all(self.app_files(prefix, *JS_SUFFIXES))

    def test_sources(self) -> list[ParsedSource]:
        return self.ruby_sources("test") + self.ruby_sources("spec")

    def _parse_all(self, files: Iterable[SourceFile]) -> list[ParsedSource]:
        return [p for f in files if (p := self.parsed(f.rel)) is not None]

    # ---- evidence helpers

    @staticmethod
    def at(parsed: ParsedSource, node: Node) -> Evidence:
        line = line_of(node)
        return Evidence(path=parsed.rel, line=line, snippet=parsed.line_text(line))

    def at_line(self, rel: str, line: int) -> Evidence:
        snippet = ""
        source = self.files.get(rel)
        if source is not None and line > 0:
            try:
                lines = source.read_text().splitlines()
            except OSError:
                lines = []
            if line <= len(lines):
                snippet = lines[line - 1].strip()[:200]
        return Evidence(path=rel, line=line, snippet=snippet)

    @staticmethod
    def whole_file(rel: str, note: str = "") -> Evidence:
        return Evidence(path=rel, line=0, snippet=note)

    def absent(self, what: str) -> Evidence:
        """Evidence for something missing: points at the app root with a note."""
        return Evidence(path=self.facts.app_root or ".", line=0, snippet=f"not found: {what}")


Check = Callable[[AuditContext], Iterable[Hit]]
