"""docker-compose facts: file discovery, services, YAML errors and compose-spec validation."""

from __future__ import annotations

from pathlib import Path

from shipbench.audit.facts.compose import NO_SERVICES, analyse_compose
from shipbench.audit.facts.extract import extract_facts
from shipbench.audit.facts.model import ProjectFacts
from shipbench.audit.files import ProjectFiles

VALID = """services:
  web:
    build: .
    ports:
      - "${PORT:-3000}:3000"
    environment:
      OPENROUTER_API_KEY: ${OPENROUTER_API_KEY}
    restart: unless-stopped
  redis:
    image: redis:7
"""


def _facts(root: Path, tree: dict[str, str]) -> ProjectFacts:
    for rel, text in tree.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return extract_facts(ProjectFiles.scan(root))


def test_valid_compose(tmp_path: Path) -> None:
    facts = _facts(tmp_path, {"docker-compose.yml": VALID})
    assert facts.docker_compose and facts.compose_path == "docker-compose.yml"
    assert facts.compose_services == ["redis", "web"]
    assert facts.compose_errors == []


def test_schema_violations_are_short_and_located() -> None:
    text = "services:\n  web:\n    image: ruby\n    ports: 3000\n    restrat: always\n"
    errors = analyse_compose("compose.yaml", text).errors
    assert errors and all(len(e) <= 160 for e in errors)
    assert any(e.startswith("services/web") and "restrat" in e for e in errors)
    assert any(e.startswith("services/web/ports") for e in errors)


def test_yaml_error_has_a_line() -> None:
    facts = analyse_compose("compose.yml", "services:\n  web:\n    image: [ruby\n  db: {\n")
    assert facts.services == []
    assert len(facts.errors) == 1 and facts.errors[0].startswith("YAML parse error at line")


def test_missing_or_empty_services() -> None:
    assert analyse_compose("compose.yml", "version: '3.8'\n").errors == [NO_SERVICES]
    assert NO_SERVICES in analyse_compose("compose.yml", "services: {}\n").errors
    assert analyse_compose("compose.yml", "").errors == ["top level is not a mapping"]
    assert analyse_compose("compose.yml", "- a\n- b\n").errors == ["top level is not a mapping"]


def test_compose_name_precedence_and_absence(tmp_path: Path) -> None:
    both = _facts(tmp_path / "a", {"compose.yaml": VALID, "docker-compose.yml": "services: {}\n"})
    assert both.compose_path == "compose.yaml" and both.compose_errors == []
    none = _facts(tmp_path / "b", {"README.md": "hi"})
    assert (none.docker_compose, none.compose_path, none.compose_services) == (False, None, [])


def test_healthchecks_and_restart_policies_per_service() -> None:
    text = (
        "services:\n"
        "  web:\n    image: app\n    restart: unless-stopped\n"
        "    healthcheck:\n      test: [\"CMD\", \"curl\", \"-f\", \"http://localhost:3000/up\"]\n"
        "  worker:\n    image: app\n    restart: \"no\"\n    healthcheck:\n      disable: true\n"
        "  cache:\n    image: redis\n    deploy:\n      restart_policy:\n        condition: on-failure\n"
    )
    facts = analyse_compose("compose.yaml", text)
    assert facts.healthchecks == ["web"]
    assert facts.restart_policies == ["cache", "web"]
