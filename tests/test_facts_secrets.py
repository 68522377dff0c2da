"""Committed secrets: provider keys with lines, placeholders ignored, .env files, master keys.

Key-shaped values are built at run time from a hash of an obviously fake label, so no key-shaped
literal lives in this repository.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from shipbench.audit.facts.extract import extract_facts
from shipbench.audit.facts.model import ProjectFacts
from shipbench.audit.facts.secrets import env_has_values, is_env_file, is_placeholder, scan_text_for_keys
from shipbench.audit.files import ProjectFiles


def _hex(label: str, n: int = 64) -> str:
    out = ""
    while len(out) < n:
        out += hashlib.sha256(f"{label}:{len(out)}".encode()).hexdigest()
    return out[:n]


OPENROUTER = "sk-or-v1-" + _hex("shipbench fixture, not a real key")
GITHUB = "ghp_" + _hex("shipbench github fixture", 36)


def _facts(root: Path, tree: dict[str, str]) -> ProjectFacts:
    for rel, text in tree.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return extract_facts(ProjectFiles.scan(root))


def test_openrouter_key_found_with_its_line(tmp_path: Path) -> None:
    init = (
        f'RubyLLM.configure do |config|\n  # key below\n  config.openrouter_api_key = "{OPENROUTER}"\nend\n'
    )
    facts = _facts(tmp_path, {"config/initializers/ruby_llm.rb": init})
    assert [(s.path, s.line, s.detail) for s in facts.secrets] == [
        ("config/initializers/ruby_llm.rb", 3, "OpenRouter API key")
    ]
    assert OPENROUTER not in facts.model_dump_json()  # the value itself is never stored


def test_placeholders_are_ignored(tmp_path: Path) -> None:
    lines = [
        'config.openrouter_api_key = ENV["OPENROUTER_API_KEY"]',
        'key = "sk-or-v1-xxx"',
        'key = "sk-or-v1-' + "0" * 64 + '"',
        'key = "sk-or-v1-' + "0123456789abcdef" * 4 + '"',
        "OPENROUTER_API_KEY=your_key_here",
        'aws = "AKIA' + 'IOSFODNN7EXAMPLE"',  # AWS's documented example id, split so no scanner flags the repo
        'openai = "sk-test-' + "a1B2" * 10 + '"',
        "key = ${OPENROUTER_API_KEY}",
    ]
    facts = _facts(tmp_path, {"app/services/llm.rb": "\n".join(lines) + "\n"})
    assert facts.secrets == []


def test_a_key_in_test_fixtures_still_counts(tmp_path: Path) -> None:
    facts = _facts(tmp_path, {"test/fixtures/files/config.yml": f"api_key: {OPENROUTER}\n"})
    assert [(s.path, s.line) for s in facts.secrets] == [("test/fixtures/files/config.yml", 1)]


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("sk-ant-api03-" + _hex("anthropic fixture", 90), "Anthropic API key"),
        ("sk-proj-" + _hex("openai fixture", 48), "OpenAI API key"),
        ("AIza" + _hex("google fixture", 35), "Google API key"),
        ("AKIA" + _hex("aws fixture", 16).upper(), "AWS access key id"),
    ],
)
def test_provider_patterns(value: str, kind: str) -> None:
    assert list(scan_text_for_keys(f"x\nTOKEN = '{value}'\n")) == [(2, kind)]
    assert list(scan_text_for_keys(f"TOKEN = 'task-{value}'\n")) == []  # part of a longer token


def test_detect_secrets_detectors_run(tmp_path: Path) -> None:
    tree = {
        "bin/deploy": f"#!/bin/sh\n\ncurl -H 'Authorization: token {GITHUB}' https://api.example.com\n",
        "config/cert.pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\n",
    }
    facts = _facts(tmp_path, tree)
    found = {(s.path, s.line): s.detail for s in facts.secrets}
    assert found[("bin/deploy", 3)] == "GitHub Token"
    assert found[("config/cert.pem", 1)] == "Private Key"


def test_env_files(tmp_path: Path) -> None:
    tree = {
        ".env": f"# local settings\nexport OPENROUTER_API_KEY={OPENROUTER}\n",
        ".env.example": "OPENROUTER_API_KEY=your_key_here\nPORT=3000\n",
        ".env.local": "OPENROUTER_API_KEY=\nOTHER=<changeme>\n",
        "chat/.env.production": "RAILS_MASTER_KEY=" + _hex("rails master fixture", 32) + "\n",
    }
    facts = _facts(tmp_path, tree)
    assert facts.committed_env_files == [".env", "chat/.env.production"]
    assert (".env", 2) in {(s.path, s.line) for s in facts.secrets}


def test_env_rules() -> None:
    assert is_env_file(".env") and is_env_file(".env.local") and is_env_file("production.env")
    assert (
        not is_env_file(".env.example")
        and not is_env_file(".env.sample")
        and not is_env_file(".env.template")
    )
    assert not is_env_file("env.rb")
    assert env_has_values('MODEL="anthropic/claude-sonnet-4"  # chosen model\n')
    assert not env_has_values('# KEY=real\nKEY=""\nOTHER= # nothing\nX=${X}\n')
    assert is_placeholder("sk-or-v1-...") and is_placeholder("<your key>") and not is_placeholder(OPENROUTER)


def test_master_keys(tmp_path: Path) -> None:
    key = _hex("master key fixture", 32)
    assert _facts(tmp_path / "a", {"config/master.key": key}).master_key == "config/master.key"
    production = _facts(tmp_path / "b", {"app/config/credentials/production.key": key})
    assert production.master_key == "app/config/credentials/production.key"
    assert _facts(tmp_path / "c", {"config/credentials.yml.enc": "abc--def"}).master_key is None


def test_two_hundred_files_stay_fast(tmp_path: Path) -> None:
    tree = {f"app/models/m{i}.rb": f"class M{i}\n  def x = 'value {i}'\nend\n" * 5 for i in range(200)}
    tree["Gemfile"] = 'gem "rails"\n'
    for rel, text in tree.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    files = ProjectFiles.scan(tmp_path)
    start = time.perf_counter()
    facts = extract_facts(files)
    elapsed = time.perf_counter() - start
    assert facts.is_rails and facts.secrets == []
    assert elapsed < 2.0, f"facts took {elapsed:.2f}s for 200 files"
