"""Gem discovery (exact locked version only, never another) and the on-disk index cache."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from shipbench.audit.ruby import gem_sources
from shipbench.audit.ruby.gem_sources import index_cached, locate_gem

GEMS = Path(__file__).parent / "fixtures" / "gems"


def _install(root: Path, dirname: str, source: str = "ruby_llm-1.14.1") -> Path:
    target = root / dirname
    shutil.copytree(GEMS / source, target)
    return target


def test_exact_version_found(tmp_path: Path) -> None:
    root = tmp_path / "gems"
    _install(root, "ruby_llm-1.13.0")
    exact = _install(root, "ruby_llm-1.14.1")
    source, path = locate_gem("ruby_llm", "1.14.1", {}, roots=[tmp_path / "missing", root])
    assert path == exact and source.used_version == "1.14.1" and source.path == str(exact)


def test_other_version_is_never_used(tmp_path: Path) -> None:
    root = tmp_path / "gems"
    _install(root, "ruby_llm-1.13.0")
    _install(root, "ruby_llm-schema-0.2.0")
    source, path = locate_gem("ruby_llm", "1.14.1", {}, roots=[root])
    assert path is None and source.used_version is None and source.path is None
    assert "1.14.1 not installed" in source.note and "1.13.0" in source.note
    assert "0.2.0" not in source.note, "a gem whose name merely starts alike is not a version"


def test_explicit_source_of_another_version_is_refused_for_verdicts(tmp_path: Path) -> None:
    explicit = _install(tmp_path, "checkout")  # a 1.14.1 source
    source, path = locate_gem("ruby_llm", "1.14.0", {"ruby_llm": explicit}, roots=[])
    assert path is None and source.used_version is None
    assert source.note == "--gem-source ruby_llm: found 1.14.1, locked 1.14.0: calls left unverifiable"
    same, same_path = locate_gem("ruby_llm", "1.14.1", {"ruby_llm": explicit}, roots=[])
    assert same_path == explicit and same.used_version == "1.14.1" and same.note == "explicit --gem-source"


def test_real_1_16_source_against_a_1_14_lock_gives_no_verdict(tmp_path: Path) -> None:
    from tests.conftest import REAL_RUBY_LLM_116, need_real_gem, write_tree

    from shipbench.audit.engine import audit_project

    need_real_gem(REAL_RUBY_LLM_116)
    lock = "GEM\n  remote: https://rubygems.org/\n  specs:\n    ruby_llm (1.14.1)\n\nDEPENDENCIES\n  ruby_llm\n"
    write_tree(
        tmp_path / "app",
        {
            "Gemfile": 'source "https://rubygems.org"\ngem "rails"\ngem "ruby_llm"\n',
            "Gemfile.lock": lock,
            "config/application.rb": "module A\n  class Application < Rails::Application\n  end\nend\n",
            "app/services/reply.rb": "class Reply\n  def call(t) = RubyLLM.chat.ask(t).content\nend\n",
        },
    )
    result = audit_project(tmp_path / "app", "rails-chat", {"ruby_llm": REAL_RUBY_LLM_116})
    assert result.api_calls and {c.verdict for c in result.api_calls} == {"unverifiable"}
    (source,) = [s for s in result.facts["api_sources"] if isinstance(s, dict) and s["gem"] == "ruby_llm"]
    assert "found 1.16.0, locked 1.14.1" in source["note"]


def test_cache_roundtrip_and_invalidation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(gem_sources, "_MEMO", {})
    gem = _install(tmp_path, "ruby_llm-1.14.1")
    first = index_cached(gem, "ruby_llm", "1.14.1")
    files = list((tmp_path / "cache" / "shipbench" / "api-index").glob("ruby_llm-1.14.1-*.json"))
    assert len(files) == 1
    monkeypatch.setattr(gem_sources, "_MEMO", {})
    again = index_cached(gem, "ruby_llm", "1.14.1")
    assert again == first
    chat = gem / "lib" / "ruby_llm" / "chat.rb"
    chat.write_text(chat.read_text().replace("def reset_messages!", "def reset_messages_now!"))
    os.utime(chat, ns=(1, 1))
    edited = index_cached(gem, "ruby_llm", "1.14.1")
    assert "reset_messages_now!" in edited.classes["RubyLLM::Chat"].instance_methods


def test_corrupt_cache_is_rewritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(gem_sources, "_MEMO", {})
    gem = _install(tmp_path, "ruby_llm-1.14.1")
    index_cached(gem, "ruby_llm", "1.14.1")
    (cached,) = (tmp_path / "cache" / "shipbench" / "api-index").glob("*.json")
    cached.write_text("{not json")
    monkeypatch.setattr(gem_sources, "_MEMO", {})
    rebuilt = index_cached(gem, "ruby_llm", "1.14.1")
    assert "RubyLLM::Chat" in rebuilt.classes
    assert json.loads(cached.read_text())["gem"] == "ruby_llm"


def test_a_changed_extractor_does_not_reuse_old_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(gem_sources, "_MEMO", {})
    gem = _install(tmp_path, "ruby_llm-1.14.1")
    index_cached(gem, "ruby_llm", "1.14.1")
    (cached,) = (tmp_path / "cache" / "shipbench" / "api-index").glob("*.json")
    stale = json.loads(cached.read_text())
    stale["classes"].pop("RubyLLM::Chat")  # what an older extractor might have written
    cached.write_text(json.dumps(stale))
    monkeypatch.setattr(gem_sources, "_MEMO", {})
    monkeypatch.setattr(gem_sources, "EXTRACTOR_VERSION", gem_sources.EXTRACTOR_VERSION + 1)
    assert "RubyLLM::Chat" in index_cached(gem, "ruby_llm", "1.14.1").classes
