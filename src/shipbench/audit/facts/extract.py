"""Build `ProjectFacts` from a scanned project: app root, Gemfile/lock, Ruby pin, frameworks, Docker,
compose, README, secrets.

Invariants: never raises on project content; each section runs guarded, and whatever it could not
establish is left at its default with the reason appended to `fact_errors`. Deliverables (Dockerfile,
compose, README, Ruby pin) are looked for at the app root first, then at the audited root; the
Gemfile, its lock and config/application.rb only at the app root.
"""

from __future__ import annotations

from collections.abc import Callable

from shipbench.audit.facts.approot import (
    dir_of,
    find_app_root,
    frameworks_loaded,
    read_text,
    ruby_version_pin,
)
from shipbench.audit.facts.compose import compose_facts
from shipbench.audit.facts.docker import docker_facts
from shipbench.audit.facts.gemfile import GemfileInfo, parse_gemfile
from shipbench.audit.facts.lockfile import parse_lockfile
from shipbench.audit.facts.model import ProjectFacts
from shipbench.audit.facts.readme import readme_facts
from shipbench.audit.facts.secrets import secret_facts
from shipbench.audit.files import ProjectFiles

Section = Callable[[ProjectFiles, ProjectFacts, list[str]], None]


def extract_facts(files: ProjectFiles) -> ProjectFacts:
    facts = ProjectFacts()
    gemfiles = _parse_gemfiles(files, facts.fact_errors)
    _guard("app root", lambda f, p, e: _app_root(f, p, gemfiles), files, facts)
    _guard("gemfile", lambda f, p, e: _gemfile(f, p, gemfiles), files, facts)
    _guard("ruby pin", lambda f, p, e: _ruby_pin(f, p, e, gemfiles), files, facts)
    for name, section in _SECTIONS:
        _guard(name, section, files, facts)
    return facts


def _guard(name: str, section: Section, files: ProjectFiles, facts: ProjectFacts) -> None:
    try:
        section(files, facts, facts.fact_errors)
    except Exception as exc:  # a parser bug on odd input must not lose the other facts
        facts.fact_errors.append(f"{name}: {type(exc).__name__}: {exc}"[:200])


def _roots(facts: ProjectFacts) -> list[str]:
    return [facts.app_root, ""] if facts.app_root else [""]


def _prefix(facts: ProjectFacts) -> str:
    return f"{facts.app_root}/" if facts.app_root else ""


def _parse_gemfiles(files: ProjectFiles, errors: list[str]) -> dict[str, GemfileInfo]:
    parsed: dict[str, GemfileInfo] = {}
    for rel, source in files.files.items():
        if dir_of(rel, "Gemfile") is None:
            continue
        try:
            parsed[rel] = parse_gemfile(rel, source.read_bytes())
        except Exception as exc:  # unreadable file or parser failure: record, go on
            errors.append(f"{rel}: not parsed ({type(exc).__name__})")
            continue
        if parsed[rel].has_error:
            errors.append(f"{rel}: syntax errors (gems read from what parsed)")
    return parsed


def _app_root(files: ProjectFiles, facts: ProjectFacts, gemfiles: dict[str, GemfileInfo]) -> None:
    root = find_app_root(files, gemfiles)
    facts.app_root = root.path
    facts.nested_app_dir = root.is_rails and root.path != ""
    facts.is_rails = root.is_rails


def _gemfile(files: ProjectFiles, facts: ProjectFacts, gemfiles: dict[str, GemfileInfo]) -> None:
    rel = _prefix(facts) + "Gemfile"
    info = gemfiles.get(rel)
    if info is None:
        return
    facts.gemfile = rel
    facts.gems = dict(sorted(info.gems.items()))


def _lockfile(files: ProjectFiles, facts: ProjectFacts, errors: list[str]) -> None:
    source = files.get(_prefix(facts) + "Gemfile.lock")
    if source is None:
        return
    facts.gemfile_lock = source.rel
    facts.locked_versions = dict(sorted(parse_lockfile(read_text(source, errors)).items()))


def _ruby_pin(
    files: ProjectFiles, facts: ProjectFacts, errors: list[str], gemfiles: dict[str, GemfileInfo]
) -> None:
    info = gemfiles.get(facts.gemfile) if facts.gemfile is not None else None
    gemfile = (facts.gemfile, info) if facts.gemfile is not None and info is not None else None
    facts.ruby_version_pin = ruby_version_pin(files, _roots(facts), gemfile, errors)


def _frameworks(files: ProjectFiles, facts: ProjectFacts, errors: list[str]) -> None:
    facts.frameworks_loaded = frameworks_loaded(files, _prefix(facts), errors)


def _docker(files: ProjectFiles, facts: ProjectFacts, errors: list[str]) -> None:
    found = docker_facts(files, _roots(facts), errors)
    facts.dockerfile = found.path is not None
    facts.dockerfile_path = found.path
    facts.dockerfile_placeholder_reasons = found.placeholder_reasons or []
    facts.hadolint = found.hadolint or []
    facts.hadolint_available = found.hadolint_available
    facts.dockerfile_healthcheck_line = found.healthcheck_line


def _compose(files: ProjectFiles, facts: ProjectFacts, errors: list[str]) -> None:
    found = compose_facts(files, _roots(facts))
    facts.docker_compose = found.path is not None
    facts.compose_path = found.path
    facts.compose_services = found.services
    facts.compose_errors = found.errors
    facts.compose_healthchecks = found.healthchecks
    facts.compose_restart_policies = found.restart_policies


def _readme(files: ProjectFiles, facts: ProjectFacts, errors: list[str]) -> None:
    found = readme_facts(files, _roots(facts))
    facts.readme = found.path is not None
    facts.readme_path = found.path
    facts.readme_stock_template = found.stock_template
    facts.readme_setup_instructions = found.setup_instructions


def _secrets(files: ProjectFiles, facts: ProjectFacts, errors: list[str]) -> None:
    found = secret_facts(files, errors)
    facts.secrets = found.secrets
    facts.committed_env_files = found.committed_env_files
    facts.master_key = found.master_key


_SECTIONS: tuple[tuple[str, Section], ...] = (
    ("Gemfile.lock", _lockfile),
    ("frameworks", _frameworks),
    ("Dockerfile", _docker),
    ("compose", _compose),
    ("README", _readme),
    ("secrets", _secrets),
)
