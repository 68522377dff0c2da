"""Dockerfile facts: placeholder detection from parsed instructions, and hadolint findings."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipbench.audit.facts import docker
from shipbench.audit.facts.docker import parse_instructions, placeholder_reasons
from shipbench.audit.facts.extract import extract_facts
from shipbench.audit.facts.model import ProjectFacts
from shipbench.audit.files import ProjectFiles

REAL = """# syntax=docker/dockerfile:1
ARG RUBY_VERSION=3.3.4
FROM docker.io/library/ruby:$RUBY_VERSION-slim AS base
WORKDIR /rails
RUN apt-get update -qq && \\
    # build tools for native gems
    apt-get install --no-install-recommends -y build-essential && \\

    rm -rf /var/lib/apt/lists/*
COPY Gemfile Gemfile.lock ./
RUN bundle config set --local without development && bundle install --jobs 4
COPY . .
RUN <<EOF
bundle exec bootsnap precompile app/
CMD this line is inside the heredoc
EOF
EXPOSE 3000
CMD ["./bin/rails", "server", "-b", "0.0.0.0"]
"""


def _facts(root: Path, tree: dict[str, str | bytes]) -> ProjectFacts:
    for rel, content in tree.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return extract_facts(ProjectFiles.scan(root))


def test_instructions_with_continuations_comments_and_heredocs() -> None:
    found = parse_instructions(REAL)
    assert [i.keyword for i in found] == [
        "ARG", "FROM", "WORKDIR", "RUN", "COPY", "RUN", "COPY", "RUN", "EXPOSE", "CMD",
    ]  # fmt: skip
    run = found[3]
    assert run.line == 5 and "build-essential" in run.args and "rm -rf" in run.args
    assert found[-1].line == 18


def test_escape_directive_changes_the_continuation_character() -> None:
    text = "# escape=`\nFROM mcr.microsoft.com/windows\nRUN dir `\n  c:\\\\\nCMD x\n"
    assert [(i.keyword, i.line) for i in parse_instructions(text)] == [("FROM", 2), ("RUN", 3), ("CMD", 5)]


def test_real_dockerfile_is_not_a_placeholder() -> None:
    assert placeholder_reasons(parse_instructions(REAL)) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# TODO: write the Dockerfile\n", {docker.ONLY_COMMENTS, docker.NO_FROM, docker.TOO_FEW}),
        ("TODO\n", {docker.ONLY_COMMENTS}),
        ("FROM ruby:3.3\n", {docker.NO_INSTALL, docker.NO_START, docker.TOO_FEW}),
        (
            "FROM ruby:3.3\nCOPY . .\nRUN bundle exec rake assets:precompile && npm install\nCMD x\n",
            {docker.NO_INSTALL},
        ),
        ('RUN bundle install\nCOPY . .\nENTRYPOINT ["x"]\n', {docker.NO_FROM}),
        ("FROM ruby\nRUN bundle _2.5.0_ install\nCMD rails s\n", set()),
    ],
)
def test_placeholder_reasons(text: str, expected: set[str]) -> None:
    reasons = set(placeholder_reasons(parse_instructions(text)))
    assert expected <= reasons
    if not expected:
        assert reasons == set()


def test_hadolint_flags_latest_tag_ignoring_project_config(tmp_path: Path) -> None:
    text = 'FROM ruby:latest\nRUN bundle install\nCMD ["rails", "s"]\n'
    facts = _facts(tmp_path, {"Dockerfile": text, ".hadolint.yaml": "ignored:\n  - DL3007\n"})
    assert facts.dockerfile and facts.dockerfile_path == "Dockerfile"
    assert facts.hadolint_available
    latest = [i for i in facts.hadolint if i.code == "DL3007"]
    assert latest and latest[0].line == 1 and latest[0].path == "Dockerfile" and latest[0].level == "warning"
    assert facts.dockerfile_placeholder_reasons == []


def test_hadolint_missing_binary_is_recorded_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docker, "hadolint_binary", lambda: None)
    facts = _facts(tmp_path, {"Dockerfile": REAL})
    assert facts.dockerfile and not facts.hadolint_available and facts.hadolint == []
    assert facts.dockerfile_placeholder_reasons == []
    assert any("hadolint" in e for e in facts.fact_errors)


def test_dockerfile_locations_and_binary(tmp_path: Path) -> None:
    assert _facts(tmp_path / "a", {"docker/Dockerfile": REAL}).dockerfile_path == "docker/Dockerfile"
    variants = {"Dockerfile.prod": REAL, "Dockerfile.dockerignore": "log/\n", "sub/Dockerfile": REAL}
    assert _facts(tmp_path / "b", variants).dockerfile_path == "Dockerfile.prod"
    assert _facts(tmp_path / "c", {"README.md": "x"}).dockerfile is False
    binary = _facts(tmp_path / "d", {"Dockerfile": b"\x00\x01\x02FROM"})
    assert binary.dockerfile and binary.dockerfile_placeholder_reasons == [docker.UNREADABLE]


def test_healthcheck_line_is_the_last_one_and_none_disables() -> None:
    text = (
        "FROM ruby:3.4\nHEALTHCHECK CMD true\nCMD [\"rails\", \"s\"]\n"
        "HEALTHCHECK --interval=5s \\\n  CMD curl -f localhost/up\n"
    )
    assert docker.healthcheck_line(parse_instructions(text)) == 4
    assert docker.healthcheck_line(parse_instructions("FROM app\nHEALTHCHECK NONE\n")) is None
    assert docker.healthcheck_line(parse_instructions("FROM ruby:3.4\nCMD bin/rails s\n")) is None
