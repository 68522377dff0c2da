"""The real-usage corpus: small projects that call ruby_llm the way public applications do (rewritten,
never copied), audited against the real gem sources at the version each Gemfile.lock pins.

Standing guarantees: no real call is ever `missing` or `bad_arguments` (a false alarm is the worst
mistake the auditor can make), every call listed in a project's expected.toml is reported with its
expected verdict, and no fewer calls are reported than listed (calls must not go unreported).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from tests.conftest import FIXTURES, REAL_GEMS, REAL_RUBY_LLM, REAL_RUBY_LLM_116, make_context, need_real_gem

from shipbench.audit.engine import audit_project
from shipbench.audit.models import ApiCall
from shipbench.audit.ruby.verify import verify_project

CORPUS = FIXTURES / "real_usage"
PROJECTS = sorted(p.name for p in CORPUS.iterdir() if (p / "expected.toml").is_file())


def _expected(name: str) -> dict[str, object]:
    return tomllib.loads((CORPUS / name / "expected.toml").read_text(encoding="utf-8"))


def _calls(name: str) -> list[ApiCall]:
    need_real_gem(REAL_RUBY_LLM, REAL_RUBY_LLM_116)
    return verify_project(make_context(CORPUS / name), {}, roots=[REAL_GEMS]).calls


def test_corpus_is_broad() -> None:
    files = [f for f in CORPUS.rglob("*") if f.is_file() and f.name not in ("Gemfile", "Gemfile.lock", "expected.toml")]
    versions = {_expected(p)["locked"] for p in PROJECTS}
    assert len(PROJECTS) >= 10 and len(files) >= 25
    assert versions == {"1.14.1", "1.16.0"}


@pytest.mark.parametrize("name", PROJECTS)
def test_no_false_alarms(name: str) -> None:
    alarms = [
        (c.path, c.line, c.call, c.verdict, c.detail) for c in _calls(name) if c.verdict in ("missing", "bad_arguments")
    ]
    assert alarms == []


@pytest.mark.parametrize("name", PROJECTS)
def test_every_expected_call_is_reported(name: str) -> None:
    calls = _calls(name)
    got = {(c.path, c.line, c.call): c.verdict for c in calls}
    expected = _expected(name)["call"]
    assert isinstance(expected, list)
    wrong = []
    for item in expected:
        key = (item["path"], item["line"], item["call"])
        if got.get(key) != item["verdict"]:
            wrong.append((*key, item["verdict"], got.get(key)))
    assert wrong == [], "expected (path, line, call, verdict, got)"
    assert len(calls) >= len(expected), "calls went unreported"


def test_fork_detail_says_fork() -> None:
    calls = _calls("forked_gem_app")
    assert calls and all(c.verdict == "unverifiable" and "fork" in c.detail for c in calls)


def test_fork_source_given_by_the_user_is_used(tmp_path: Path) -> None:
    need_real_gem(REAL_RUBY_LLM_116)
    report = verify_project(make_context(CORPUS / "forked_gem_app"), {"ruby_llm": REAL_RUBY_LLM_116}, roots=[])
    verdicts = {c.call: c.verdict for c in report.calls}
    assert verdicts["Configuration#openai_api_key="] == "ok"
    assert verdicts["Configuration#custom_gateway_url="] == "missing", "the fork's own names are not upstream's"


def test_non_rails_project_calls_are_in_the_audit() -> None:
    need_real_gem(REAL_RUBY_LLM_116)
    result = audit_project(CORPUS / "terminal_scripts", gem_sources={"ruby_llm": REAL_GEMS})
    assert result.verdict.startswith("not a Rails project")
    paths = {c.path for c in result.api_calls}
    assert {"bin/ask", "script/repl", "script/summarize_file.rb"} <= paths
    assert all(c.verdict == "ok" for c in result.api_calls)
