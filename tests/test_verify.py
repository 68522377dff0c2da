"""verify_project against the ruby_llm 1.14.1 fixture gem: call names, verdicts, type flows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import RUBY_LLM_GEM, make_context

from shipbench.audit.models import ApiCall
from shipbench.audit.ruby.verify import verify_project
from shipbench.audit.ruby.verify_types import ApiReport

Build = Callable[[dict[str, str | bytes]], Path]
GEMFILE = "source 'https://rubygems.org'\ngem 'rails'\ngem 'ruby_llm'\n"


def verify(build: Build, files: dict[str, str | bytes], gem: Path | None = RUBY_LLM_GEM) -> ApiReport:
    root = build({"Gemfile": GEMFILE, **files})
    sources = {"ruby_llm": gem} if gem is not None else {}
    return verify_project(make_context(root), sources, roots=[])


def in_method(body: str) -> dict[str, str | bytes]:
    """A service whose `run` method starts with `chat = RubyLLM.chat` on line 3, then `body` from line 4."""
    lines = "\n".join("    " + line for line in body.splitlines())
    code = f"class Svc\n  def run(text, &blk)\n    chat = RubyLLM.chat\n{lines}\n  end\nend\n"
    return {"app/services/svc.rb": code}


def at(report: ApiReport, line: int, call: str) -> ApiCall:
    found = [c for c in report.calls if c.line == line and c.call == call]
    assert found, f"no {call} at line {line}: {[(c.line, c.call, c.verdict) for c in report.calls]}"
    return found[0]


OK_FORMS = [
    ("chat.add_message(role: :user, content: 'x')", "Chat#add_message"),
    ("chat.complete", "Chat#complete"),
    ("chat.complete { |chunk| print chunk.content }", "Chat#complete"),
    ("RubyLLM::Chat.new(model: 'm', provider: :openrouter)", "Chat.new"),
    ("RubyLLM.chat(model: 'm', provider: :openrouter, assume_model_exists: true)", "RubyLLM.chat"),
    ("chat.with_instructions('be brief')", "Chat#with_instructions"),
    ("chat.ask(text).content", "Message#content"),
    ("chat.ask(text, &blk)", "Chat#ask"),
    (
        "chat.with_model('m').with_temperature(0.2).with_params(a: 1).with_instructions('s').complete(&blk)",
        "Chat#complete",
    ),
    ("chat.with_model('m').with_temperature(0.2)", "Chat#with_temperature"),
    ("chat.each { |m| m.content }", "Message#content"),
    ("chat.messages.last.content", "Message#content"),
    ("chat.say('hi')", "Chat#say"),
]


@pytest.mark.parametrize(("code", "call"), OK_FORMS)
def test_real_api_forms_are_ok(project: Build, code: str, call: str) -> None:
    report = verify(project, in_method(code))
    found = at(report, 4, call)
    assert found.verdict == "ok", found
    assert found.definition is not None and found.definition.version == "1.14.1"
    assert found.definition.path.startswith("lib/")


BAD_FORMS = [
    ("RubyLLM::Client.new", "RubyLLM::Client.new", "missing", "not defined"),
    ("RubyLLM::Client", "RubyLLM::Client", "missing", "not defined"),
    ("chat.user('hi')", "Chat#user", "missing", "undefined method 'user'"),
    ("chat.assistant('hi')", "Chat#assistant", "missing", "undefined method"),
    ("RubyLLM.chat(messages: [])", "RubyLLM.chat", "bad_arguments", "unknown keyword: messages"),
    ("chat.with_model('m') do |c| c end", "Chat#with_model", "bad_arguments", "with_model never yields"),
    ("chat.with_model { |c| c }", "Chat#with_model", "bad_arguments", "wrong number of arguments"),
    ("chat.ask(text).text", "Message#text", "missing", "undefined method 'text'"),
    ("chat.send_message('x')", "Chat#send_message", "missing", "send_message"),
    ("chat.with_temperature", "Chat#with_temperature", "bad_arguments", "given 0, expected 1"),
    ("chat.with_model('m', assume_model_exists: true)", "Chat#with_model", "bad_arguments", "assume_model_exists"),
]


@pytest.mark.parametrize(("code", "call", "verdict", "detail"), BAD_FORMS)
def test_hallucinated_forms_are_flagged(project: Build, code: str, call: str, verdict: str, detail: str) -> None:
    found = at(verify(project, in_method(code)), 4, call)
    assert found.verdict == verdict
    assert detail in found.detail


def test_missing_method_comes_with_suggestions(project: Build) -> None:
    found = at(verify(project, in_method("chat.ask(text).contents")), 4, "Message#contents")
    assert found.verdict == "missing" and "content" in found.suggestions


def test_private_method_is_missing_from_outside(project: Build) -> None:
    # Chat#wrap_streaming_block is defined after `private` in chat.rb
    found = at(verify(project, in_method("chat.wrap_streaming_block(nil)")), 4, "Chat#wrap_streaming_block")
    assert (found.verdict, found.detail) == ("missing", "private method")


def test_configure_block_parameter_is_configuration(project: Build) -> None:
    code = (
        "RubyLLM.configure do |config|\n"
        "  config.openrouter_api_key = ENV['OPENROUTER_API_KEY']\n"
        "  config.openrouter_key = 'x'\nend\n"
    )
    report = verify(project, {"config/initializers/ruby_llm.rb": code})
    assert at(report, 1, "RubyLLM.configure").verdict == "ok"
    assert at(report, 2, "Configuration#openrouter_api_key=").verdict == "ok"
    wrong = at(report, 3, "Configuration#openrouter_key=")
    assert wrong.verdict == "missing" and "openrouter_api_key=" in wrong.suggestions


def test_an_invented_client_and_its_methods_are_named_but_nothing_beyond(project: Build) -> None:
    # the contract's names: the constructor `RubyLLM::Client.new`, its instance's call `Client#chat`
    # (missing: the class does not exist); what that call returns says nothing more
    report = verify(project, in_method("client = RubyLLM::Client.new\nclient.chat(messages: []).dig(:x)"))
    assert at(report, 4, "RubyLLM::Client.new").verdict == "missing"
    assert at(report, 5, "Client#chat").verdict == "missing"
    assert [(c.line, c.call) for c in report.calls if c.line >= 4] == [(4, "RubyLLM::Client.new"), (5, "Client#chat")]


SERVICE = """class ChatService
  def initialize
    @chat = RubyLLM.chat(model: 'anthropic/claude-sonnet-4')
  end

  def reply(text)
    @chat.ask(text)
  end

  def again(text)
    chat = @chat
    chat.sendd(text)
  end

  def memo
    client.ask('x').content
  end

  private

  def client
    @client ||= RubyLLM.chat
  end

  def short = RubyLLM::Chat.new

  def other
    short.speak
  end
end
"""


def test_instance_variables_and_helpers_flow_across_methods(project: Build) -> None:
    report = verify(project, {"app/services/chat_service.rb": SERVICE})
    assert at(report, 7, "Chat#ask").verdict == "ok"
    assert at(report, 12, "Chat#sendd").verdict == "missing"
    assert at(report, 16, "Chat#ask").verdict == "ok"
    assert at(report, 16, "Message#content").verdict == "ok"
    assert at(report, 28, "Chat#speak").verdict == "missing"


def test_conditional_assignment_of_different_types_is_not_resolved(project: Build) -> None:
    code = "reply = text\nreply = chat.ask(text) if text\nreply.bogus\nother = chat.ask(text)\nother.bogus"
    report = verify(project, in_method(code))
    assert not [c for c in report.calls if c.line == 6]
    assert at(report, 8, "Message#bogus").verdict == "missing"


def test_last_assignment_before_the_call_wins(project: Build) -> None:
    code = "x = chat.ask(text)\nx = text.upcase\nx.strip\ny = text\ny = chat\ny.nope"
    report = verify(project, in_method(code))
    assert not [c for c in report.calls if c.line == 6]
    assert at(report, 9, "Chat#nope").verdict == "missing"


def test_unrelated_receivers_are_not_reported(project: Build) -> None:
    code = "Chat.create!(title: 'x').ask\nparams[:chat].send_message\nchat.respond_to?(:ask)\nchat.map(&:content)"
    report = verify(project, in_method(code))
    assert [c.line for c in report.calls] == [3]  # only RubyLLM.chat itself


def test_project_defined_constants_and_reopenings_are_not_flagged(project: Build) -> None:
    lib = "module RubyLLM\n  class Client\n    def go; end\n  end\n  class Chat\n    def shout; end\n  end\nend\n"
    report = verify(project, {"lib/ruby_llm_ext.rb": lib, **in_method("RubyLLM::Client.new.go\nchat.shout")})
    assert not [c for c in report.calls if "Client" in c.call or "shout" in c.call]


def test_erb_and_tests_are_scanned_with_flags(project: Build) -> None:
    files = {
        "app/views/chats/show.html.erb": "<p><%= RubyLLM.chat.ask('x').txt %></p>\n",
        "test/services/svc_test.rb": "class SvcTest\n  def test_x\n    RubyLLM.chat.ask('x').content\n  end\nend\n",
    }
    report = verify(project, files)
    view = at(report, 1, "Message#txt")
    assert view.verdict == "missing" and not view.in_test
    assert at(report, 3, "Message#content").in_test


def test_without_gem_source_every_call_is_unverifiable(project: Build) -> None:
    report = verify(project, in_method("chat.send_message('x')\nRubyLLM::Client.new"), gem=None)
    assert report.calls and {c.verdict for c in report.calls} == {"unverifiable"}
    assert not report.verified and report.sources[0].path is None and report.sources[0].note
    assert all(c.definition is None for c in report.calls)


def test_bad_files_never_raise(project: Build) -> None:
    files = {
        "app/models/broken.rb": "class Broken\n  def x(\n    RubyLLM.chat.ask(\nend end end\n",
        "app/models/blob.rb": b"\x00\x01\x02binary",
        **in_method("chat.ask(text)"),
    }
    report = verify(project, files)
    assert at(report, 4, "Chat#ask").verdict == "ok"
    assert not report.notes


def test_companion_gem_namespace_is_not_missing(project: Build) -> None:
    gemfile = GEMFILE + "gem 'ruby_llm-schema'\n"
    report = verify(project, {"Gemfile": gemfile, **in_method("class_name = RubyLLM::Schema")})
    schema = at(report, 4, "RubyLLM::Schema")
    assert schema.verdict == "unverifiable" and "ruby_llm-schema" in schema.detail


TOOL = """class Weather < RubyLLM::Tool
  description "Weather"
  params_of :city
  def execute(city:)
    halt("done")
  end
end
"""


def test_bare_calls_in_gem_subclasses_are_checked_with_self_visibility(project: Build) -> None:
    report = verify(project, {"app/tools/weather.rb": TOOL})
    assert at(report, 2, "Tool.description").verdict == "ok"
    assert at(report, 5, "Tool#halt").verdict == "ok"  # protected, but called on implicit self
    assert not [c for c in report.calls if "params_of" in c.call]  # not the gem's: the class's own business


def test_context_chat_forwards_to_the_constructor(project: Build) -> None:
    code = (
        "ctx = RubyLLM.context { |c| c.openrouter_api_key = 'x' }\nctx.chat(model: 'm').ask('hi')\nctx.chat(modle: 'm')"
    )
    report = verify(project, in_method(code))
    assert at(report, 4, "Configuration#openrouter_api_key=").verdict == "ok"
    assert at(report, 5, "Chat#ask").verdict == "ok"
    bad = at(report, 6, "Context#chat")
    assert bad.verdict == "bad_arguments" and "unknown keyword: modle" in bad.detail


def test_injected_dependency_is_verified_through_its_default(project: Build) -> None:
    source = (
        "class Assistant\n"  # 1
        "  def initialize(llm: RubyLLM, model: 'x')\n"  # 2
        "    @llm = llm\n"  # 3
        "  end\n"  # 4
        "\n"  # 5
        "  def respond(prompt)\n"  # 6
        "    conversation = @llm.chat(provider: :openrouter)\n"  # 7
        "    conversation.with_instructions('be brief')\n"  # 8
        "    conversation.send_message(prompt).content\n"  # 9
        "  end\n"
        "end\n"
    )
    report = verify(project, {"app/models/assistant.rb": source})
    assert at(report, 7, "RubyLLM.chat").verdict == "ok"
    assert at(report, 8, "Chat#with_instructions").verdict == "ok"
    assert at(report, 9, "Chat#send_message").verdict == "missing"


def test_missing_calls_suggest_the_documented_real_name_first(project: Build) -> None:
    report = verify(project, in_method("chat.with_system_prompt('be brief')\nchat.ask(text).message"))
    assert at(report, 4, "Chat#with_system_prompt").suggestions[0] == "with_instructions"
    assert at(report, 5, "Message#message").suggestions[0] == "content"


def test_keywords_passed_through_a_wrapper_are_checked_at_the_callee(project: Build) -> None:
    tool = (
        "class WeatherTool < RubyLLM::Tool\n"  # 1
        "  description 'Weather for a city'\n"  # 2
        "  param :city, desc: 'City name'\n"  # 3: Tool.param(name, **options) -> Parameter.new(name, **options)
        "  param :unit, description: 'C or F', required: false\n"  # 4: the real keyword is desc:
        "end\n"
    )
    report = verify(project, {"app/tools/weather_tool.rb": tool})
    assert at(report, 3, "Tool.param").verdict == "ok"
    bad = at(report, 4, "Tool.param")
    assert bad.verdict == "bad_arguments"
    assert "unknown keyword: description" in bad.detail and "Parameter#initialize" in bad.detail


def test_tap_and_then_yield_the_receiver_itself(project: Build) -> None:
    report = verify(
        project, in_method("chat.tap { |c| c.user('hi') }\nRubyLLM.chat.then { |c| c.with_instructions('x') }")
    )
    assert at(report, 4, "Chat#user").verdict == "missing"
    assert at(report, 5, "Chat#with_instructions").verdict == "ok"


def test_calls_on_an_injected_callables_result_are_typed_or_reported_unverifiable(project: Build) -> None:
    svc = (
        "class Reply\n"  # 1
        "  def initialize(chat_builder: -> { RubyLLM.chat })\n"  # 2
        "    @chat_builder = chat_builder\n"  # 3
        "  end\n"  # 4
        "  def call(text)\n"  # 5
        "    chat = @chat_builder.call\n"  # 6
        "    chat.with_instructionz('be brief')\n"  # 7: typed from the default lambda
        "    chat.ask(text).content\n"  # 8
        "  end\n"
        "end\n"
    )
    report = verify(project, {"app/services/reply.rb": svc})
    assert at(report, 7, "Chat#with_instructionz").verdict == "missing"
    assert at(report, 8, "Chat#ask").verdict == "ok"
    untyped = svc.replace("chat_builder: -> { RubyLLM.chat }", "chat_builder:")  # nothing says what it builds
    report = verify(project, {"app/services/reply.rb": untyped, "app/services/x.rb": "class X\nend\n"})
    assert at(report, 7, "(injected)#with_instructionz").verdict == "unverifiable"
    passed = "class C\n  def go\n    Reply.new(chat_builder: -> { RubyLLM.chat }).call('x')\n  end\nend\n"
    report = verify(project, {"app/services/reply.rb": untyped, "app/controllers/c.rb": passed})
    assert at(report, 7, "Chat#with_instructionz").verdict == "missing"  # typed from what the caller passes
