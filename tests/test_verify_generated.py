"""Issue 8 (2b) constructs, each in at least two code styles: methods generated from data (option-style
macros with define_method, constant lists, unreadable names), anonymous block arguments the grammar
needs repaired, ActiveRecord models using the gem's acts_as_* macros, every Ruby file of a project,
the locked version (and forks), and the result types of module entry points."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import REAL_GEMS, REAL_RUBY_LLM, REAL_RUBY_LLM_116, make_context, need_real_gem, write_tree

from shipbench.audit.facts.lockfile import locked_sources
from shipbench.audit.models import ApiCall
from shipbench.audit.ruby.api_index import build_index
from shipbench.audit.ruby.api_lookup import find_method
from shipbench.audit.ruby.parse import parse_ruby
from shipbench.audit.ruby.verify import verify_project

Build = Callable[[dict[str, str | bytes]], Path]
RAILS = "source 'https://rubygems.org'\ngem 'rails'\ngem 'ruby_llm'\n"


def lock(version: str) -> str:
    specs = f"    rails (8.0.2)\n    ruby_llm ({version})\n"
    return f"GEM\n  remote: https://rubygems.org/\n  specs:\n{specs}\nDEPENDENCIES\n  ruby_llm\n"


def real(build: Build, files: dict[str, str | bytes], version: str = "1.16.0") -> list[ApiCall]:
    need_real_gem(REAL_RUBY_LLM, REAL_RUBY_LLM_116)
    root = build({"Gemfile": RAILS, "Gemfile.lock": lock(version), **files})
    return verify_project(make_context(root), {}, roots=[REAL_GEMS]).calls


def verdicts(calls: list[ApiCall]) -> dict[str, str]:
    return {c.call: c.verdict for c in calls}


# ---- methods generated from data the extractor can read -------------------------------------------

OPTION_STYLES = {
    "attr_reader + define_method writer (1.16.0)": """
      def option(key, default = nil)
        key = key.to_sym
        attr_reader key
        define_method("#{key}=") { |value| instance_variable_set(:"@#{key}", value) }
      end
    """,
    "send(:attr_accessor) (1.14.1)": """
      def option(key, default = nil)
        send(:attr_accessor, key)
      end
    """,
}


@pytest.mark.parametrize("macro", OPTION_STYLES.values(), ids=list(OPTION_STYLES))
def test_option_macro_generates_reader_and_writer(tmp_path: Path, macro: str) -> None:
    gem = write_tree(tmp_path / "cfg-0.1.0", {
        "lib/cfg.rb": f"module Cfg\n  class Settings\n    class << self\n{macro}\n    end\n"
        "    option :timeout, 5\n  end\nend\n",
        "lib/cfg/provider.rb": "module Cfg\n  class Acme\n    def self.configuration_options\n"
        "      %i[acme_key acme_base]\n    end\n  end\nend\n",
    })  # fmt: skip
    index = build_index(gem)
    for name in ("timeout", "timeout=", "acme_key", "acme_key=", "acme_base="):
        assert find_method(index, "Cfg::Settings", name, singleton=False).method is not None, name
    assert find_method(index, "Cfg::Settings", "acme_secret=", singleton=False).certain


LOOP_STYLES = {
    "literal array": '%i[red green].each do |c|\n      define_method("#{c}?") { true }\n    end',
    "constant array": "COLOURS = %w[red green].freeze\n    COLOURS.each do |c|\n"
    '      define_method "#{c}?" do\n        true\n      end\n    end',
}


@pytest.mark.parametrize("body", LOOP_STYLES.values(), ids=list(LOOP_STYLES))
def test_define_method_over_a_readable_list(tmp_path: Path, body: str) -> None:
    gem = write_tree(tmp_path / "paint-0.1.0", {"lib/paint.rb": f"module Paint\n  class Can\n    {body}\n  end\nend\n"})
    index = build_index(gem)
    assert find_method(index, "Paint::Can", "green?", singleton=False).method is not None
    blue = find_method(index, "Paint::Can", "blue?", singleton=False)
    assert blue.method is None and blue.certain


MACRO = "class << self\n      def option(key)\n        attr_accessor key\n      end\n    end\n"
UNREADABLE = {
    "macro over a computed list": MACRO + "    Loader.keys.each { |k| option(k) }",
    "macro given a variable": MACRO + "    name = ENV.fetch('X')\n    option name",
}


@pytest.mark.parametrize("body", UNREADABLE.values(), ids=list(UNREADABLE))
def test_unreadable_generated_names_are_unsure_never_absent(tmp_path: Path, body: str) -> None:
    gem = write_tree(tmp_path / "dyn-0.1.0", {"lib/dyn.rb": f"module Dyn\n  class Conf\n    {body}\n  end\nend\n"})
    found = find_method(build_index(gem), "Dyn::Conf", "whatever=", singleton=False)
    assert found.method is None and not found.certain


@pytest.mark.parametrize("version", ["1.14.1", "1.16.0"])
def test_real_provider_keys_are_ok(project: Build, version: str) -> None:
    init = (
        "RubyLLM.configure do |config|\n  config.openrouter_api_key = ENV['K']\n  config.bedrock_api_key = 'a'\n"
        "  config.bedrock_session_token = nil\n  config.default_model = 'm'\n  config.vertexai_location = 'eu'\nend\n"
    )
    found = verdicts(real(project, {"config/initializers/ruby_llm.rb": init}, version))
    assert set(found.values()) == {"ok"} and "Configuration#bedrock_session_token=" in found


# ---- anonymous block arguments ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    ["def run(a, &)\n  super(\n    a,\n    &\n  )\nend\n", "def run(a, &)\n  helper a, &\nend\n"],
    ids=["multi-line parens", "no parens"],
)
def test_anonymous_block_argument_parses(code: str) -> None:
    parsed = parse_ruby("x.rb", code.encode())
    assert not parsed.has_error
    assert parsed.source == code.encode(), "the original bytes are kept"


def test_real_gem_indexes_every_file() -> None:
    need_real_gem(REAL_RUBY_LLM)
    assert build_index(REAL_RUBY_LLM).skipped == []


# ---- ActiveRecord models using the gem's Rails macros ----------------------------------------------

NEW_API = "RubyLLM.configure { |c| c.use_new_acts_as = true }\n"
RECORD_STYLES = {
    "legacy, bare macro": ({}, "  acts_as_chat\n", "messages"),
    "new API, renamed association": (
        {"config/initializers/ruby_llm.rb": NEW_API},
        "  acts_as_chat messages: :turns, message_class: 'Turn'\n",
        "turns",
    ),
}


@pytest.mark.parametrize(("extra", "macro", "assoc"), RECORD_STYLES.values(), ids=list(RECORD_STYLES))
def test_calls_on_acts_as_chat_models(project: Build, extra: dict[str, str], macro: str, assoc: str) -> None:
    model = f"class Topic < ApplicationRecord\n{macro}  def starter\n    with_instructions('be brief')\n  end\nend\n"
    job = (
        "class ReplyJob\n  def perform(id, text)\n    thread = Topic.find(id)\n"
        f"    thread.{assoc}.count\n    thread.with_model('gpt-4.1').ask(text) {{ |chunk| chunk.content }}.content\n"
        "    Topic.create!(model_id: 'x').ask('hi')\n    thread.title\n    thread.ask(text, stream: true)\n  end\nend\n"
    )
    calls = real(project, {**extra, "app/models/thread.rb": model, "app/jobs/reply_job.rb": job})
    found = {(c.path, c.line, c.call): c.verdict for c in calls}
    job_rb = "app/jobs/reply_job.rb"
    assert found[("app/models/thread.rb", 2, "Topic.acts_as_chat")] == "ok"
    assert found[("app/models/thread.rb", 4, "Topic#with_instructions")] == "ok"
    assert found[(job_rb, 4, f"Topic#{assoc}")] == "ok"
    assert found[(job_rb, 5, "Topic#ask")] == "ok" and found[(job_rb, 5, "Message#content")] == "ok"
    assert found[(job_rb, 5, "Chunk#content")] == "ok"
    assert found[(job_rb, 6, "Topic#ask")] == "ok", "Model.create! gives a record"
    assert not any(c.call == "Topic#title" for c in calls), "ActiveRecord columns are not gem calls"
    assert found[(job_rb, 8, "Topic#ask")] == "bad_arguments"


@pytest.mark.parametrize(
    "macro", ["acts_as_chat messages: :turns\n", "acts_as_chat(messages: :turns)\n"], ids=["bare", "parens"]
)
def test_macro_arguments_of_the_other_variant_are_unverifiable(project: Build, macro: str) -> None:
    calls = real(project, {"app/models/thread.rb": f"class Topic < ApplicationRecord\n  {macro}end\n"})
    assert verdicts(calls)["Topic.acts_as_chat"] == "unverifiable", "legacy rejects messages:, the new API takes it"


# ---- every Ruby file; the locked version; forks ----------------------------------------------------


@pytest.mark.parametrize(
    "rel", ["bin/chat", "script/chat.rb", "examples/chat.rb", "tools/deep/chat.rake"], ids=lambda r: r.split("/")[0]
)
def test_ruby_outside_app_and_lib_is_verified(project: Build, rel: str) -> None:
    shebang = "#!/usr/bin/env ruby\n" if "." not in rel.rsplit("/", 1)[-1] else ""
    calls = real(
        project, {rel: f"{shebang}chat = RubyLLM.chat\nputs chat.ask('x').content\n", "bin/other": "echo hi\n"}
    )
    assert {(c.path, c.call) for c in calls} >= {(rel, "RubyLLM.chat"), (rel, "Chat#ask"), (rel, "Message#content")}
    assert not any(c.path == "bin/other" for c in calls)


@pytest.mark.parametrize(
    ("code", "call"), [("RubyLLM.chat.cost", "Chat#cost"), ("RubyLLM.chat.ask('x').cost", "Message#cost")]
)
def test_methods_added_in_a_later_version_follow_the_lock(project: Build, code: str, call: str) -> None:
    files = {"app/services/s.rb": f"class S\n  def run\n    {code}\n  end\nend\n"}
    assert verdicts(real(project, files, "1.16.0"))[call] == "ok"
    assert verdicts(real(project, files, "1.14.1"))[call] == "missing"


def test_a_source_of_another_version_never_says_missing(project: Build) -> None:
    need_real_gem(REAL_RUBY_LLM)
    root = project({"Gemfile": RAILS, "Gemfile.lock": lock("1.16.0"), "app/s.rb": "RubyLLM.chat.cost\n"})
    calls = verify_project(make_context(root), {"ruby_llm": REAL_RUBY_LLM}, roots=[]).calls
    found = next(c for c in calls if c.call == "Chat#cost")
    assert found.verdict == "unverifiable" and "found 1.14.1, locked 1.16.0" in found.detail


@pytest.mark.parametrize(
    "section", ["GIT\n  remote: https://github.com/me/ruby_llm.git\n  revision: abc\n", "PATH\n  remote: ../ruby_llm\n"]
)
def test_locked_from_a_fork(project: Build, section: str) -> None:
    need_real_gem(REAL_RUBY_LLM_116)
    gems = "GEM\n  remote: https://rubygems.org/\n  specs:\n    rails (8.0.2)\n"
    text = f"{section}  specs:\n    ruby_llm (1.16.0)\n\n{gems}"
    assert set(locked_sources(text)) == {"ruby_llm"}
    root = project({"Gemfile": RAILS, "Gemfile.lock": text, "app/s.rb": "RubyLLM.chat.invented_by_the_fork\n"})
    calls = verify_project(make_context(root), {}, roots=[REAL_GEMS]).calls
    assert calls and all(c.verdict == "unverifiable" and "fork" in c.detail for c in calls)


# ---- results of module entry points ----------------------------------------------------------------

ENTRY_POINTS = [
    ("RubyLLM.embed('t').vectors", "Embedding#vectors"),
    ("RubyLLM::Embedding.embed('t').model", "Embedding#model"),
    ("RubyLLM.context { |c| c.request_timeout = 1 }.embed('t').input_tokens", "Embedding#input_tokens"),
    ("RubyLLM.paint('cat').url", "Image#url"),
    ("RubyLLM::Image.paint('cat').save('x.png')", "Image#save"),
    ("RubyLLM.moderate('x').flagged?", "Moderation#flagged?"),
    ("RubyLLM.transcribe('a.mp3').text", "Transcription#text"),
]


@pytest.mark.parametrize(("code", "call"), ENTRY_POINTS)
def test_entry_point_results_are_typed(project: Build, code: str, call: str) -> None:
    assert verdicts(real(project, {"app/s.rb": f"x = {code}\n"}, "1.14.1"))[call] == "ok"


def test_invented_method_on_an_entry_point_result_is_missing(project: Build) -> None:
    assert verdicts(real(project, {"app/s.rb": "RubyLLM.embed('t').embedding\n"}))["Embedding#embedding"] == "missing"
