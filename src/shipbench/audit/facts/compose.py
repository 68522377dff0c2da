"""docker-compose facts: which file, its services, and why it is invalid (YAML or compose-spec).

Invariants: the file is searched in Docker's own order (compose.yaml, compose.yml,
docker-compose.yaml, docker-compose.yml) at each root in turn; YAML is read with the safe loader;
the schema is the compose-spec vendored by check-jsonschema; error messages are short (one line,
clipped) and at most MAX_ERRORS are kept, sorted by location. Nothing here raises.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import yaml

from shipbench.audit.files import ProjectFiles

COMPOSE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
SCHEMA_PACKAGE = "check_jsonschema.builtin_schemas.vendor"
SCHEMA_FILE = "compose-spec.json"
MAX_ERRORS = 5
NO_SERVICES = "no services defined"


@dataclass
class ComposeFacts:
    path: str | None = None
    services: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    healthchecks: list[str] = field(default_factory=list)  # services with an enabled healthcheck
    restart_policies: list[str] = field(default_factory=list)  # services with a restart policy other than "no"


def find_compose(files: ProjectFiles, roots: list[str]) -> str | None:
    present = set(files.files) | {issue.path for issue in files.issues}
    for root in roots:
        prefix = f"{root}/" if root else ""
        for name in COMPOSE_NAMES:
            if prefix + name in present:
                return prefix + name
    return None


def compose_facts(files: ProjectFiles, roots: list[str]) -> ComposeFacts:
    path = find_compose(files, roots)
    if path is None:
        return ComposeFacts()
    source = files.get(path)
    if source is None:
        return ComposeFacts(path=path, errors=["not a readable text file"])
    try:
        text = source.read_text()
    except OSError as exc:
        return ComposeFacts(path=path, errors=[f"unreadable: {exc}"[:160]])
    return analyse_compose(path, text)


def analyse_compose(path: str, text: str) -> ComposeFacts:
    facts = ComposeFacts(path=path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        facts.errors.append(_yaml_error(exc))
        return facts
    except (ValueError, RecursionError) as exc:  # pathological documents
        facts.errors.append(f"YAML error: {type(exc).__name__}")
        return facts
    if not isinstance(data, dict):
        facts.errors.append("top level is not a mapping")
        return facts
    services = data.get("services")
    if isinstance(services, dict):
        facts.services = sorted(str(name) for name in services)
        facts.healthchecks = sorted(str(n) for n, spec in services.items() if _healthcheck_on(spec))
        facts.restart_policies = sorted(str(n) for n, spec in services.items() if _restarts(spec))
    facts.errors.extend(schema_errors(data))
    if not facts.services:
        facts.errors.append(NO_SERVICES)
    return facts


def _healthcheck_on(spec: object) -> bool:
    check = spec.get("healthcheck") if isinstance(spec, dict) else None
    return isinstance(check, dict) and check.get("disable") is not True and bool(check.get("test", True))


def _restarts(spec: object) -> bool:
    """`restart:` other than "no", or a swarm-style `deploy.restart_policy` whose condition is not none."""
    if not isinstance(spec, dict):
        return False
    restart = spec.get("restart")
    if restart is not None and restart is not False and str(restart).strip().lower() not in ("no", ""):
        return True
    deploy = spec.get("deploy")
    policy = deploy.get("restart_policy") if isinstance(deploy, dict) else None
    return isinstance(policy, dict) and str(policy.get("condition", "any")).lower() != "none"


def _yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or type(exc).__name__
    where = f" at line {mark.line + 1}" if mark is not None else ""
    return f"YAML parse error{where}: {problem}"[:160]


@cache
def _validator() -> Any | None:
    try:
        text = resources.files(SCHEMA_PACKAGE).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
        schema = json.loads(text)
        cls = jsonschema.validators.validator_for(schema)
        return cls(schema)
    except (OSError, ValueError, ModuleNotFoundError, jsonschema.exceptions.SchemaError):
        return None


def schema_errors(data: dict[Any, Any]) -> list[str]:
    validator = _validator()
    if validator is None:
        return ["compose schema unavailable: not validated"]
    try:
        found = list(validator.iter_errors(data))
    except (RecursionError, TypeError, ValueError) as exc:
        return [f"schema validation failed: {type(exc).__name__}"]
    found.sort(key=lambda e: ([str(p) for p in e.absolute_path], e.message))
    return list(dict.fromkeys(_short(error) for error in found))[:MAX_ERRORS]


def _short(error: jsonschema.ValidationError) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "(top)"
    message = error.message.splitlines()[0] if error.message else "invalid"
    if len(message) > 120:
        message = message[:117] + "..."
    return f"{where}: {message}"
