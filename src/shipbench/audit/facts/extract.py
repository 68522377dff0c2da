"""Build `ProjectFacts` from a scanned project (minimal first version: app root and Gemfile)."""

from __future__ import annotations

import re

from shipbench.audit.facts.model import GemDecl, ProjectFacts
from shipbench.audit.files import ProjectFiles

_GEM_RE = re.compile(r"""^\s*gem\s+['"]([\w.-]+)['"]""")


def extract_facts(files: ProjectFiles) -> ProjectFacts:
    facts = ProjectFacts()
    roots = sorted(
        {rel.rsplit("/", 2)[0] if rel.count("/") >= 2 else "" for rel in files.files if rel.endswith("config/application.rb")},
        key=lambda r: (r.count("/"), r),
    )
    if files.exists("Gemfile") or "" in roots:
        facts.app_root = ""
    elif roots:
        facts.app_root = roots[0]
        facts.nested_app_dir = True
    prefix = f"{facts.app_root}/" if facts.app_root else ""
    gemfile = files.get(prefix + "Gemfile")
    if gemfile is not None:
        facts.gemfile = gemfile.rel
        for i, line in enumerate(gemfile.read_text().splitlines(), 1):
            m = _GEM_RE.match(line)
            if m:
                facts.gems[m.group(1)] = GemDecl(name=m.group(1), path=gemfile.rel, line=i)
    facts.is_rails = "rails" in facts.gems or files.exists(prefix + "config/application.rb")
    return facts
