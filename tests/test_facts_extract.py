"""extract_facts end to end: a complete project, determinism, and bad input that must not raise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipbench.audit.facts import extract
from shipbench.audit.facts.extract import extract_facts
from shipbench.audit.facts.model import ProjectFacts
from shipbench.audit.files import ProjectFiles

PROJECT = {
    "Gemfile": 'source "https://rubygems.org"\ngem "rails", "~> 8.0"\ngem "ruby_llm"\n',
    "Gemfile.lock": "GEM\n  remote: https://rubygems.org/\n  specs:\n    ruby_llm (1.14.1)\n",
    ".ruby-version": "3.3.4\n",
    "config/application.rb": 'require "rails"\nrequire "action_controller/railtie"\n',
    "Dockerfile": 'FROM ruby:3.3-slim\nWORKDIR /app\nCOPY . .\nRUN bundle install\nCMD ["bin/rails", "s"]\n',
    "compose.yaml": "services:\n  web:\n    build: .\n",
    "README.md": "# Chat\n\n```\nbin/setup\n```\n",
    ".env.example": "OPENROUTER_API_KEY=your_key_here\n",
}


def _write(root: Path, tree: dict[str, str | bytes]) -> ProjectFiles:
    for rel, content in tree.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return ProjectFiles.scan(root)


def test_complete_project(tmp_path: Path) -> None:
    facts = extract_facts(_write(tmp_path, dict(PROJECT)))
    assert facts.is_rails and not facts.nested_app_dir
    assert facts.gems["ruby_llm"].in_production and facts.locked_versions == {"ruby_llm": "1.14.1"}
    assert facts.ruby_version_pin == ".ruby-version" and facts.frameworks_loaded == []
    assert facts.dockerfile and facts.dockerfile_placeholder_reasons == []
    assert facts.compose_services == ["web"] and facts.compose_errors == []
    assert facts.readme and facts.readme_setup_instructions and not facts.readme_stock_template
    assert facts.secrets == [] and facts.committed_env_files == [] and facts.master_key is None


def test_same_input_same_json(tmp_path: Path) -> None:
    files = _write(tmp_path, dict(PROJECT))
    first = extract_facts(files).model_dump_json()
    assert first == extract_facts(ProjectFiles.scan(tmp_path)).model_dump_json()
    assert json.loads(first)["gems"]["rails"]["version"] == ["~> 8.0"]


def test_bad_input_never_raises(tmp_path: Path) -> None:
    tree: dict[str, str | bytes] = {
        "Gemfile": 'gem "rails"\ngroup :test do\n  gem "x", require: \n',
        "Gemfile.lock": "GEM\n  specs:\n    broken line (\n\x7f\n",
        "config/application.rb": b"require 'rails/all'\n\xff\xfe bad bytes",
        "Dockerfile": "\\\n\\\n",
        "docker-compose.yml": "services:\n  web:\n\timage: x\n",
        "README.md": "```\nunterminated fence",
        "mise.toml": "[tools",
        ".env": "=\nNOEQUALS\n",
    }
    facts = extract_facts(_write(tmp_path, tree))
    assert facts.is_rails and "rails" in facts.gems
    assert [f.detail for f in facts.frameworks_loaded] == ["rails/all"]
    assert facts.compose_errors and facts.compose_errors[0].startswith("YAML parse error")
    assert any("Gemfile" in e for e in facts.fact_errors) and any("mise.toml" in e for e in facts.fact_errors)
    assert facts.committed_env_files == []


def test_a_crashing_section_is_recorded_and_the_rest_survives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_: object) -> None:
        raise RuntimeError("parser bug")

    monkeypatch.setattr(extract, "readme_facts", boom)
    facts = extract_facts(_write(tmp_path, dict(PROJECT)))
    assert facts.readme is False
    assert any(e.startswith("README: RuntimeError") for e in facts.fact_errors)
    assert facts.dockerfile and facts.docker_compose  # later and earlier sections still ran


def test_empty_directory(tmp_path: Path) -> None:
    assert extract_facts(ProjectFiles.scan(tmp_path)) == ProjectFacts()
