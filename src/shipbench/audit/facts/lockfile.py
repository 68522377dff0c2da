"""Gemfile.lock: locked gem versions from the GEM, PATH and GIT sections.

Invariants: a locked spec is a line at exactly four spaces of indent inside a `specs:` block of a
GEM/PATH/GIT section, shaped `name (version)`; a platform suffix (`1.16.0-x86_64-linux`) is cut off,
since RubyGems versions never contain '-'. The first spec of a name wins. Malformed lines are
skipped, never raised on.
"""

from __future__ import annotations

import re

_SOURCE_SECTIONS = frozenset({"GEM", "PATH", "GIT"})
_SPEC_RE = re.compile(r"^ {4}([A-Za-z0-9_.\-]+) \(([^)\s]+)\)\s*$")


def parse_lockfile(text: str) -> dict[str, str]:
    locked: dict[str, str] = {}
    section = ""
    in_specs = False
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        if not line.startswith(" "):
            section = line.strip()
            in_specs = False
            continue
        if section not in _SOURCE_SECTIONS:
            continue
        if line.startswith("  ") and not line.startswith("   "):
            in_specs = line.strip() == "specs:"
            continue
        if in_specs:
            match = _SPEC_RE.match(line)
            if match:
                locked.setdefault(match.group(1), strip_platform(match.group(2)))
    return locked


def strip_platform(version: str) -> str:
    return version.split("-", 1)[0]


def locked_sources(text: str) -> dict[str, str]:
    """Gems locked from a GIT or PATH section (a fork, a branch, a local checkout), with where from:
    `{"ruby_llm": "git https://github.com/someone/ruby_llm.git (revision abc123)"}`. GEM sections
    (a registry release) are not listed."""
    out: dict[str, str] = {}
    section, remote, revision, in_specs = "", "", "", False
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        if not line.startswith(" "):
            section, remote, revision, in_specs = line.strip(), "", "", False
            continue
        if section not in ("GIT", "PATH"):
            continue
        if line.startswith("  ") and not line.startswith("   "):
            key, _, value = line.strip().partition(":")
            in_specs = key == "specs"
            remote = value.strip() if key == "remote" else remote
            revision = value.strip() if key == "revision" else revision
            continue
        match = _SPEC_RE.match(line) if in_specs else None
        if match:
            where = f"{section.lower()} {remote}" + (f" (revision {revision[:12]})" if revision else "")
            out.setdefault(match.group(1), where.strip())
    return out
