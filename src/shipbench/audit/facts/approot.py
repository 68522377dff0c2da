"""Where the Rails app lives, what pins its Ruby, and which heavy frameworks it loads.

Invariants: an app-root candidate is a directory holding `config/application.rb` or a Gemfile that
declares rails/railties; the shallowest candidate wins, ties broken alphabetically, so the answer is
deterministic. Framework loads are read from the syntax tree of config/application.rb: a commented
`require` is a comment node, not a call, and never counts.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass

from shipbench.audit.facts.gemfile import GemfileInfo, declares_rails, literal_text
from shipbench.audit.facts.model import Located
from shipbench.audit.files import ProjectFiles, SourceFile
from shipbench.audit.ruby.parse import line_of, of_type, parse_ruby

APPLICATION_RB = "config/application.rb"
FRAMEWORK_REQUIRES = frozenset(
    {"rails/all", "active_record/railtie", "action_mailer/railtie", "active_job/railtie"}
)
MISE_FILES = ("mise.toml", ".mise.toml", ".config/mise.toml", "mise/config.toml", ".config/mise/config.toml")


@dataclass(frozen=True)
class AppRoot:
    path: str  # '' for the audited directory itself
    is_rails: bool

    @property
    def prefix(self) -> str:
        return f"{self.path}/" if self.path else ""


def dir_of(rel: str, tail: str) -> str | None:
    """The directory that holds `tail` when `rel` ends with it ('' for the root), else None."""
    if rel == tail:
        return ""
    if rel.endswith("/" + tail):
        return rel[: -len(tail) - 1]
    return None


def find_app_root(files: ProjectFiles, gemfiles: dict[str, GemfileInfo]) -> AppRoot:
    """`gemfiles` maps each Gemfile's path to its parse."""
    candidates: set[str] = set()
    for rel in files.files:
        found = dir_of(rel, APPLICATION_RB)
        if found is not None:
            candidates.add(found)
    for rel, info in gemfiles.items():
        found = dir_of(rel, "Gemfile")
        if found is not None and declares_rails(info):
            candidates.add(found)
    if not candidates:
        return AppRoot(path="", is_rails=False)
    best = min(candidates, key=lambda d: (d.count("/") + (1 if d else 0), d))
    return AppRoot(path=best, is_rails=True)


def ruby_version_pin(
    files: ProjectFiles, roots: list[str], gemfile: tuple[str, GemfileInfo] | None, errors: list[str]
) -> str | None:
    """The first file (app root first, then the audited root) that pins the Ruby version."""
    for root in roots:
        prefix = f"{root}/" if root else ""
        for finder in (_ruby_version_file, _tool_versions, _mise):
            found = finder(files, prefix, errors)
            if found is not None:
                return found
    if gemfile is not None and gemfile[1].ruby_pin_line is not None:
        return gemfile[0]
    return None


def _ruby_version_file(files: ProjectFiles, prefix: str, errors: list[str]) -> str | None:
    source = files.get(prefix + ".ruby-version")
    if source is not None and read_text(source, errors).strip():
        return source.rel
    return None


def _tool_versions(files: ProjectFiles, prefix: str, errors: list[str]) -> str | None:
    source = files.get(prefix + ".tool-versions")
    if source is None:
        return None
    for line in read_text(source, errors).splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 2 and parts[0] == "ruby":
            return source.rel
    return None


def _mise(files: ProjectFiles, prefix: str, errors: list[str]) -> str | None:
    for name in MISE_FILES:
        source = files.get(prefix + name)
        if source is None:
            continue
        try:
            data = tomllib.loads(read_text(source, errors))
        except tomllib.TOMLDecodeError as exc:
            errors.append(f"{source.rel}: unreadable TOML ({exc})"[:200])
            continue
        tools = data.get("tools")
        if isinstance(tools, dict) and tools.get("ruby"):
            return source.rel
    return None


def read_text(source: SourceFile, errors: list[str]) -> str:
    """The file's text, or '' (with the reason recorded) when it cannot be read."""
    try:
        return source.read_text()
    except OSError as exc:
        errors.append(f"{source.rel}: unreadable ({exc})"[:200])
        return ""


def frameworks_loaded(files: ProjectFiles, prefix: str, errors: list[str]) -> list[Located]:
    """`require "rails/all"` and the ActiveRecord/ActionMailer/ActiveJob railties in application.rb."""
    source = files.get(prefix + APPLICATION_RB)
    if source is None:
        return []
    try:
        parsed = parse_ruby(source.rel, source.read_bytes())
    except OSError as exc:
        errors.append(f"{source.rel}: unreadable ({exc})"[:200])
        return []
    found: list[Located] = []
    for call in of_type(parsed.root, "call"):
        method = call.child_by_field_name("method")
        if call.child_by_field_name("receiver") is not None or method is None:
            continue
        if parsed.text(method) != "require":
            continue
        args = call.child_by_field_name("arguments")
        first = args.named_children[0] if args is not None and args.named_children else None
        target = literal_text(parsed, first) if first is not None else None
        if target in FRAMEWORK_REQUIRES:
            found.append(Located(path=source.rel, line=line_of(call), detail=target))
    return found
