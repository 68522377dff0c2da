"""Extraction of a gem's public API: one fixture gem per construct family, plus the ruby_llm mirror."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipbench.audit.ruby.api_index import build_index
from shipbench.audit.ruby.api_model import ApiIndex, ClassDef, MethodDef

GEMS = Path(__file__).parent / "fixtures" / "gems"


def _index(name: str) -> ApiIndex:
    return build_index(GEMS / name)


def _kinds(md: MethodDef) -> list[tuple[str, str | None]]:
    return [(p.kind, p.name) for p in md.params]


def _cls(index: ApiIndex, name: str) -> ClassDef:
    assert name in index.classes, sorted(index.classes)
    return index.classes[name]


@pytest.fixture(scope="module")
def llm() -> ApiIndex:
    return _index("ruby_llm-1.14.1")


def test_ruby_llm_mirror_documented_facts(llm: ApiIndex) -> None:
    assert (llm.gem, llm.version) == ("ruby_llm", "1.14.1")
    chat = _cls(llm, "RubyLLM::Chat")
    assert _kinds(chat.instance_methods["ask"]) == [("opt", "message"), ("key", "with"), ("block", None)]
    assert chat.instance_methods["say"].origin == "alias"
    assert _kinds(chat.instance_methods["say"]) == _kinds(chat.instance_methods["ask"])
    with_model = chat.instance_methods["with_model"]
    assert ("key", "assume_exists") in _kinds(with_model)
    assert ("key", "assume_model_exists") not in _kinds(with_model)
    assert with_model.returns_self and not with_model.yields
    assert chat.includes == ["Enumerable"]
    assert chat.instance_methods["build_content"].visibility == "private"
    message = _cls(llm, "RubyLLM::Message")
    assert "text" not in message.instance_methods
    assert message.instance_methods["content="].origin == "attr"
    assert _cls(llm, "RubyLLM::ConfigurationError").superclass == "StandardError"
    assert _cls(llm, "RubyLLM::RateLimitError").superclass == "RubyLLM::Error"
    assert _cls(llm, "RubyLLM::Chunk").superclass == "RubyLLM::Message"
    config = _cls(llm, "RubyLLM::Configuration")
    assert config.instance_methods["openrouter_api_key"].origin == "macro"
    assert "openrouter_api_key=" in config.instance_methods and "default_model" in config.instance_methods
    assert "mistral_api_base" not in config.instance_methods
    assert config.singleton_methods["option"].visibility == "private"
    assert _cls(llm, "RubyLLM::Models").open_singleton
    info = _cls(llm, "RubyLLM::Model::Info")
    assert {"streaming?", "function_calling?", "batch?"} <= set(info.instance_methods)
    assert "ask" in _cls(llm, "RubyLLM::Agent").instance_methods


def test_forwarders_resolve_lexically(llm: ApiIndex) -> None:
    chat = _cls(llm, "RubyLLM").singleton_methods["chat"]
    assert _kinds(chat) == [("fwd", None)]
    assert chat.forwards_to == "RubyLLM::Chat#initialize"
    assert chat.returns == "RubyLLM::Chat"
    assert _cls(llm, "RubyLLM").singleton_methods["embed"].forwards_to == "RubyLLM::Embedding.embed"
    assert _cls(llm, "RubyLLM").singleton_methods["configure"].yields
    context_chat = _cls(llm, "RubyLLM::Context").instance_methods["chat"]
    assert context_chat.forwards_to == "RubyLLM::Chat#initialize"


def test_multiline_signature_with_comments(llm: ApiIndex) -> None:
    embed = _cls(llm, "RubyLLM::Embedding").singleton_methods["embed"]
    assert [p.name for p in embed.params] == [
        "text", "model", "provider", "assume_model_exists", "context", "dimensions",
    ]  # fmt: skip
    assert embed.location is not None and embed.location.path == "lib/ruby_llm/embedding.rb"


def test_visibility_rules() -> None:
    index = _index("visibility-0.1.0")
    widget = _cls(index, "Visibility::Widget")
    vis = {n: m.visibility for n, m in widget.instance_methods.items()}
    assert vis["open_a"] == "public" and vis["hidden_a"] == "private" and vis["guarded"] == "protected"
    assert vis["reopened"] == "public", "a bare `public` re-opens visibility"
    assert vis["inline_private"] == "private" and vis["later_marked"] == vis["also_marked"] == "private"
    assert vis["tail_private"] == "private"
    svis = {n: m.visibility for n, m in widget.singleton_methods.items()}
    assert svis["cls_public"] == "public" and svis["cls_private"] == "private"
    assert svis["explicit_self_after_private"] == "public" and svis["still_public"] == "public"
    assert svis["made_private"] == "private"
    helpers = _cls(index, "Visibility::Helpers")
    assert helpers.singleton_methods["helper_one"].visibility == "public"
    assert helpers.instance_methods["helper_one"].visibility == "private"
    assert "helper_internal" not in helpers.singleton_methods, "bare private ends module_function"
    assert _cls(index, "Visibility::Util").extends == ["Visibility::Util"]


def test_attrs_and_accessor_macros() -> None:
    index = _index("attrs-0.1.0")
    record = _cls(index, "Attrs::Record")
    assert {"id", "name", "created_at", "secret=", "both", "both="} <= set(record.instance_methods)
    assert "secret" not in record.instance_methods
    assert record.instance_methods["internal"].visibility == "private"
    assert {"registry", "registry="} <= set(record.singleton_methods)
    settings = _cls(index, "Attrs::Settings")
    assert settings.instance_methods["timeout="].origin == "macro"
    assert "verbose" in _cls(index, "Attrs::MoreSettings").instance_methods, "macro inherited from superclass"


def test_aliases() -> None:
    speaker = _cls(_index("aliases-0.1.0"), "Aliases::Speaker")
    for name in ("say", "talk", "shout"):
        assert _kinds(speaker.instance_methods[name]) == _kinds(speaker.instance_methods["ask"])
    from_parent = speaker.instance_methods["from_parent"]
    assert from_parent.forwards_to == "Aliases::Speaker#inherited_one"
    assert "make" in speaker.singleton_methods


def test_delegation() -> None:
    holder = _cls(_index("delegation-0.1.0"), "Delegation::Holder")
    names = set(holder.instance_methods)
    assert {"ask", "say", "complete", "history", "fetch", "supports?", "type", "streaming?"} <= names
    assert {"owner_name", "novel_title"} <= names and "messages" not in names
    assert holder.instance_methods["ask"].origin == "delegator"


def test_dynamic_definitions() -> None:
    index = _index("dynamic-0.1.0")
    caps = _cls(index, "Dynamic::Caps")
    assert {"vision?", "audio?", "literal_sym", "literal_str", "value="} <= set(caps.instance_methods)
    assert _kinds(caps.instance_methods["literal_sym"]) == [("req", "a"), ("opt", "b")]
    assert {"has_alpha?", "has_beta?"} <= set(caps.instance_methods), "loop over a literal constant array"
    assert caps.instance_patterns == ["maybe_*?"], "a loop over a constant that is not a literal"
    assert _cls(index, "Dynamic::Ghost").open_instance
    assert _cls(index, "Dynamic::GhostClass").open_singleton


def test_params_every_kind() -> None:
    sig = _cls(_index("params-0.1.0"), "Params::Sig").instance_methods
    assert [p.kind for p in sig["all_kinds"].params] == [
        "req",
        "opt",
        "rest",
        "keyreq",
        "key",
        "keyrest",
        "block",
    ]
    assert _kinds(sig["anonymous"]) == [("rest", None), ("keyrest", None), ("block", None)]
    assert sig["forwarding"].forwards_to == "Params::Sig#target"
    assert [p.kind for p in sig["no_keywords"].params] == ["req", "nokey"]
    assert _kinds(sig["endless"]) == [("req", "x")]
    assert _kinds(sig["no_parens"]) == [("req", "a"), ("req", "b")]
    assert _kinds(sig["multi_line"]) == [("req", "first"), ("key", "second"), ("key", "third")]
    assert sig["yielder"].yields and sig["maybe_block"].yields and not sig["fluent"].yields
    assert sig["fluent"].returns_self and not sig["endless"].returns_self
    assert sig["splat_forward"].forwards_to == "Params::Sig#target"
    assert sig["builds"].returns == "Params::Sig"
    assert {"==", "[]", "value="} <= set(sig)


def test_structs_and_data() -> None:
    index = _index("structs-0.1.0")
    point = _cls(index, "Structs::Point")
    assert point.superclass == "Struct" and {"x", "x=", "y", "norm"} <= set(point.instance_methods)
    pair = _cls(index, "Structs::Pair")
    assert _kinds(pair.instance_methods["initialize"]) == [("key", "left"), ("key", "right")]
    assert pair.instance_methods["swap"].returns_self
    coord = _cls(index, "Structs::Coord")
    assert (
        coord.superclass == "Data"
        and "lat" in coord.instance_methods
        and "lat=" not in coord.instance_methods
    )
    assert _cls(index, "Structs::Custom").superclass == "StandardError"


def test_reopened_and_nested() -> None:
    index = _index("reopen-0.1.0")
    chat = _cls(index, "Reopen::Chat")
    assert {"ask", "extra"} <= set(chat.instance_methods)
    assert len(chat.locations) == 2
    assert {loc.path for loc in chat.locations} == {"lib/reopen/chat.rb"}
    error = _cls(index, "Reopen::Error")
    assert error.superclass == "StandardError" and "response" in error.instance_methods
    assert _cls(index, "Reopen::Inner::Uses").superclass == "Reopen::Inner::Chat"
    assert _cls(index, "Reopen::Inner::UsesOuter").superclass == "Reopen::Chat"
    assert "Reopen::Chat::Nested" in index.classes and "TopLevelThing" in index.classes
    assert index.version == "0.1.0" and index.files == 4


def test_unparsable_and_binary_files_are_skipped(tmp_path: Path) -> None:
    index = _index("broken-0.1.0")
    assert "Broken::Fine" in index.classes
    assert any(s.startswith("lib/bad.rb:") for s in index.skipped)
    assert any(s.startswith("lib/binary.rb:") for s in index.skipped)
    empty = build_index(tmp_path)
    assert empty.files == 0 and empty.classes == {}


def test_version_from_version_rb(tmp_path: Path) -> None:
    gem = tmp_path / "mygem"
    (gem / "lib" / "mygem").mkdir(parents=True)
    (gem / "lib" / "mygem" / "version.rb").write_text('module Mygem\n  VERSION = "2.3.4"\nend\n')
    index = build_index(gem)
    assert (index.gem, index.version) == ("mygem", "2.3.4")
    assert build_index(gem, "other", "9").version == "9"


def test_index_is_deterministic() -> None:
    a = _index("ruby_llm-1.14.1").model_dump_json()
    b = _index("ruby_llm-1.14.1").model_dump_json()
    assert a == b


def test_pass_through_wrappers_are_marked_and_others_are_not(tmp_path: Path) -> None:
    lib = tmp_path / "wrap-0.1.0" / "lib"
    lib.mkdir(parents=True)
    (lib / "wrap.rb").write_text(
        "module Wrap\n"
        "  class Param\n    def initialize(name, desc: nil); end\n  end\n"
        "  class Tool\n"
        "    def self.param(name, **options)\n      params[name] = Param.new(name, **options)\n    end\n"
        "    def self.renamed(name, **options)\n      Param.new(name.to_s, **options)\n    end\n"
        "    def self.reordered(a, b, **options)\n      Param.new(b, a, **options)\n    end\n"
        "  end\n"
        "end\n",
        encoding="utf-8",
    )
    index = build_index(tmp_path / "wrap-0.1.0")
    methods = index.classes["Wrap::Tool"].singleton_methods
    assert methods["param"].passes_through and methods["param"].forwards_to == "Wrap::Param#initialize"
    assert not methods["renamed"].passes_through  # name.to_s is not the parameter itself
    assert not methods["reordered"].passes_through
