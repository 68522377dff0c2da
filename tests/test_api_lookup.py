"""Ancestor-aware lookup: found definitions, proven absence, and the cases that must stay unsure."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipbench.audit.ruby.api_index import build_index
from shipbench.audit.ruby.api_lookup import find_class, find_method, public_constants, suggest
from shipbench.audit.ruby.api_model import ApiIndex

GEMS = Path(__file__).parent / "fixtures" / "gems"


@pytest.fixture(scope="module")
def llm() -> ApiIndex:
    return build_index(GEMS / "ruby_llm-1.14.1")


def test_find_class_accepts_leading_colons(llm: ApiIndex) -> None:
    found = find_class(llm, "::RubyLLM::Chat")
    assert found is not None and found.name == "RubyLLM::Chat"
    assert find_class(llm, "RubyLLM::Client") is None


def test_real_and_missing_instance_methods(llm: ApiIndex) -> None:
    ask = find_method(llm, "RubyLLM::Chat", "ask", singleton=False)
    assert ask.method is not None and ask.owner == "RubyLLM::Chat" and ask.certain
    missing = find_method(llm, "RubyLLM::Chat", "send_message", singleton=False)
    assert missing.method is None and missing.certain
    text = find_method(llm, "RubyLLM::Chunk", "text", singleton=False)
    assert text.method is None and text.certain
    content = find_method(llm, "RubyLLM::Chunk", "content", singleton=False)
    assert content.owner == "RubyLLM::Message"


def test_core_ancestors(llm: ApiIndex) -> None:
    assert find_method(llm, "RubyLLM::Chat", "map", singleton=False).owner == "Enumerable"
    assert find_method(llm, "RubyLLM::Chat", "tap", singleton=False).owner == "Kernel"
    assert find_method(llm, "RubyLLM::RateLimitError", "message", singleton=False).owner == "Exception"
    assert find_method(llm, "RubyLLM::Message", "respond_to?", singleton=False).certain


def test_new_takes_initialize_params(llm: ApiIndex) -> None:
    new = find_method(llm, "RubyLLM::Chat", "new", singleton=True)
    assert new.method is not None
    assert [p.name for p in new.method.params] == ["model", "provider", "assume_model_exists", "context"]
    assert new.method.forwards_to == "RubyLLM::Chat#initialize"
    err = find_method(llm, "RubyLLM::ConfigurationError", "new", singleton=True)
    assert err.method is not None and [p.kind for p in err.method.params] == ["opt"]
    assert find_method(llm, "RubyLLM", "new", singleton=True).method is None, "modules have no .new"


def test_module_methods(llm: ApiIndex) -> None:
    chat = find_method(llm, "RubyLLM", "chat", singleton=True)
    assert chat.method is not None and chat.method.forwards_to == "RubyLLM::Chat#initialize"
    client = find_method(llm, "RubyLLM", "client", singleton=True)
    assert client.method is None and client.certain
    assert find_method(llm, "RubyLLM", "const_get", singleton=True).owner == "Module"


def test_open_classes_are_never_certain(llm: ApiIndex) -> None:
    models = find_method(llm, "RubyLLM::Models", "chat_models_v2", singleton=True)
    assert models.method is None and not models.certain
    index = build_index(GEMS / "dynamic-0.1.0")
    assert not find_method(index, "Dynamic::Ghost", "anything_x", singleton=False).certain
    assert not find_method(index, "Dynamic::ChildOfGhost", "anything", singleton=False).certain
    assert not find_method(index, "Dynamic::GhostClass", "anything", singleton=True).certain
    assert find_method(index, "Dynamic::GhostClass", "anything", singleton=False).certain


def test_unknown_ancestor_and_unknown_class_are_unsure() -> None:
    index = build_index(GEMS / "dynamic-0.1.0")
    assert not find_method(index, "Dynamic::Anything", "call", singleton=False).certain
    assert find_method(index, "Dynamic::Anything", "known", singleton=False).certain
    nowhere = find_method(index, "Nope::Thing", "x", singleton=False)
    assert nowhere.method is None and not nowhere.certain


def test_patterns_make_absence_uncertain() -> None:
    index = build_index(GEMS / "dynamic-0.1.0")
    hit = find_method(index, "Dynamic::Caps", "maybe_alpha?", singleton=False)
    assert hit.method is None and not hit.certain and hit.via_pattern == "maybe_*?"
    assert find_method(index, "Dynamic::Caps", "has_alpha?", singleton=False).method is not None
    assert find_method(index, "Dynamic::Caps", "vision?", singleton=False).method is not None
    other = find_method(index, "Dynamic::Caps", "video?", singleton=False)
    assert other.method is None and other.certain


def test_singleton_side_extend_include_singleton() -> None:
    index = build_index(GEMS / "singleton-0.1.0")
    assert (
        find_method(index, "SingletonGem::Extended", "mixed_in", singleton=True).owner
        == "SingletonGem::Mixin"
    )
    assert find_method(index, "SingletonGem::Extended", "mixed_in", singleton=False).method is None
    assert find_method(index, "SingletonGem::Counted", "instance", singleton=True).method is not None
    assert find_method(index, "SingletonGem::Counted", "between?", singleton=False).owner == "Comparable"
    child_new = find_method(index, "SingletonGem::Child", "new", singleton=True)
    assert child_new.method is not None and [p.name for p in child_new.method.params] == ["model", "provider"]
    assert find_method(index, "SingletonGem::Child", "create", singleton=True).owner == "SingletonGem::Client"
    plain_new = find_method(index, "SingletonGem::Plain", "new", singleton=True)
    assert plain_new.method is not None and plain_new.method.params == []
    util = build_index(GEMS / "visibility-0.1.0")
    assert find_method(util, "Visibility::Util", "shared", singleton=True).method is not None


def test_struct_lookup() -> None:
    index = build_index(GEMS / "structs-0.1.0")
    assert find_method(index, "Structs::Point", "to_a", singleton=False).owner == "Struct"
    assert find_method(index, "Structs::Point", "each_slice", singleton=False).owner == "Enumerable"
    assert find_method(index, "Structs::Coord", "with", singleton=False).method is not None
    assert find_method(index, "Structs::Point", "members", singleton=True).method is not None


def test_suggest_and_constants(llm: ApiIndex) -> None:
    assert suggest(llm, "RubyLLM::Message", "contnt", singleton=False)[0] == "content"
    assert "build_content" not in suggest(llm, "RubyLLM::Chat", "build_contnt", singleton=False)
    assert "with_model" in suggest(llm, "RubyLLM::Chat", "with_modle", singleton=False)
    constants = public_constants(llm)
    assert "RubyLLM::Chat" in constants and "RubyLLM::VERSION" in constants
    reopen = build_index(GEMS / "reopen-0.1.0")
    names = public_constants(reopen)
    assert "Reopen::Message::PUBLIC" in names and "Reopen::Message::SECRET" not in names
