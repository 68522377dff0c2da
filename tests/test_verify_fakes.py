"""Test doubles that imitate a RubyLLM API the gem does not have (fake classes and stubs)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import write_tree
from tests.test_verify import verify

from shipbench.audit.ruby.api_model import Param
from shipbench.audit.ruby.fake_signatures import Arity, arity_problem
from shipbench.audit.ruby.verify_types import ApiReport, FakeMismatch

Build = Callable[[dict[str, str | bytes]], Path]

FAKE = """class FakeChat
  attr_reader :asked

  def with_instructions(text)
    self
  end

  def ask(message)
    @asked = message
  end

  def send_message(message)
    ask(message)
  end

  private

  def helper_only; end
end

class FakeReply
  def content = "hi"
  def text = "hi"
end
"""


def test_fake_class_methods_the_gem_lacks_are_reported(project: Build) -> None:
    report = verify(project, {"test/support/fake_chat.rb": FAKE})
    found = {(f.kind, f.name, f.real, f.line) for f in report.fakes}
    assert found == {
        ("fake_method", "FakeChat#send_message", "Chat", 12),
        ("fake_method", "FakeReply#text", "Message", 23),
    }


def test_fakes_outside_tests_or_without_source_are_ignored(project: Build) -> None:
    assert not verify(project, {"app/models/fake_chat.rb": FAKE}).fakes
    assert not verify(project, {"test/support/fake_chat.rb": FAKE}, gem=None).fakes


def test_a_fake_is_recognised_by_its_methods_not_its_name(project: Build) -> None:
    code = (
        "class MockClientHelper\n  def send_message; end\nend\n"  # a double's name, no gem surface: not one
        "class ChatPresenter\n  def ask; end\n  def nope; end\nend\n"  # no double's name, imitates Chat: one
        "class ChatPresenterTest < ActiveSupport::TestCase\n  def ask; end\nend\n"  # a test case: never one
    )
    fakes = verify(project, {"test/helpers.rb": code}).fakes
    assert [(f.name, f.real) for f in fakes] == [("ChatPresenter#nope", "Chat")]


STUBS = """class ChatTest < ActiveSupport::TestCase
  def test_stubs
    RubyLLM::Client.stub(:new, Object.new) { }
    RubyLLM.stub(:client, Object.new) { }
    RubyLLM.stub(:chat, Object.new) { }
    RubyLLM::Chat.any_instance.stubs(:send_message).returns(nil)
    RubyLLM::Chat.any_instance.stubs(:ask).returns(nil)
    RubyLLM.expects(:chat).returns(nil)
    stub_const("RubyLLM::Client", Class.new)
    stub_const("RubyLLM::Chat", Class.new)
    chat = RubyLLM.chat
    chat.stubs(reply: 1, ask: 2)
  end
end
"""

RSPEC = """RSpec.describe "chat" do
  it "stubs" do
    allow(RubyLLM).to receive(:chat).and_return(double)
    allow_any_instance_of(RubyLLM::Chat).to receive(:send_message)
    expect(RubyLLM).to receive(:client)
  end
end
"""


def test_stubs_of_absent_constants_and_methods_are_reported(project: Build) -> None:
    report = verify(project, {"test/chat_test.rb": STUBS})
    found = {(f.kind, f.name, f.line) for f in report.fakes}
    assert found == {
        ("missing_constant", "RubyLLM::Client", 3),
        ("stubbed_method", "RubyLLM.client", 4),
        ("stubbed_method", "Chat#send_message", 6),
        ("missing_constant", "RubyLLM::Client", 9),
        ("stubbed_method", "Chat#reply", 12),
    }
    # the test-double API itself is not reported as a call into the gem
    assert not [c for c in report.calls if c.call.endswith((".stub", ".stubs", ".expects", ".any_instance"))]


def test_rspec_stubs_are_reported(project: Build) -> None:
    report = verify(project, {"spec/chat_spec.rb": RSPEC})
    found = {(f.kind, f.name, f.line) for f in report.fakes}
    assert found == {("stubbed_method", "Chat#send_message", 4), ("stubbed_method", "RubyLLM.client", 5)}


# ---- what a fake's methods return imitates what the real methods return


def fakes_of(report: ApiReport, kind: str) -> dict[str, FakeMismatch]:
    return {f.name: f for f in report.fakes if f.kind == kind}


RETURNS = """class StubAssistant
  def initialize
    @canned = CannedAnswer.new(body: "hi")
  end

  def ask(prompt)
    @canned
  end

  def complete
    answer = Answer.new("ok", 3, :stop)
    answer
  end

  def say(text)
    return Struct.new(:content, :words).new(text, 1) if text.empty?

    OpenStruct.new(content: text, reply_text: text)
  end

  def messages
    [Turn.new(content: "a", speaker: :bot)]
  end
end

class CannedAnswer
  attr_reader :body, :content, :input_tokens

  def initialize(body:)
    @body = body
    @content = body
  end

  def role = :assistant
end

Answer = Struct.new(:content, :output_tokens, :finish_reason) do
  def summary = content[0, 10]
end

Turn = Data.define(:content, :speaker)

class UnrelatedHelper
  def text = "not a double"
end
"""


def test_classes_a_fake_returns_are_checked_against_the_real_return_class(project: Build) -> None:
    report = verify(project, {"test/support/stub_assistant.rb": RETURNS})
    found = {name: (f.real, f.line) for name, f in fakes_of(report, "fake_method").items()}
    assert found == {
        "CannedAnswer#body": ("Message", 27),  # an attr_reader, via the ivar set in initialize
        "Answer#finish_reason": ("Message", 37),  # a Struct member, via a local
        "Answer#summary": ("Message", 38),  # a def in the Struct's block
        "StubAssistant#say (anonymous Struct)#words": ("Message", 16),  # via an explicit `return`
        "StubAssistant#say (OpenStruct)#reply_text": ("Message", 18),
        "Turn#speaker": ("Message", 41),  # Chat#messages is an Array of Message: its elements
    }
    body = fakes_of(report, "fake_method")["CannedAnswer#body"]
    assert "did you mean content?" in body.detail and "StubAssistant#ask" in body.detail
    # real Message methods (content, role, input_tokens, output_tokens) and the unrelated helper are fine
    assert not [f for f in report.fakes if f.name.endswith(("#content", "#role", "#input_tokens", "#text"))]


def test_a_fake_returning_a_real_compatible_or_gem_object_is_fine(project: Build) -> None:
    code = """class FakeLlmChat
  def ask(message)
    Reply.new(message)
  end

  def complete
    RubyLLM::Message.new(role: :assistant, content: "x")
  end
end

class Reply
  attr_reader :content

  def initialize(content) = @content = content
  def role = :assistant
  def output_tokens = 1
end

class Message
  def text = "a test-local class that happens to share the gem's short name"
end
"""
    assert not verify(project, {"test/support/fake.rb": code}).fakes


def test_return_propagation_dedupes_and_terminates_on_cycles(project: Build) -> None:
    code = """class FakeChatA
  def ask(m) = FakeMessage.new
  def with_model(id) = FakeChatB.new
end

class FakeChatB
  def ask(m) = FakeMessage.new
  def with_model(id) = FakeChatA.new
  def send_it = nil
end

class FakeMessage
  def content = "x"
  def text = "x"
end
"""
    report = verify(project, {"test/support/fakes.rb": code})
    names = sorted(f.name for f in report.fakes)
    # FakeMessage is a fake by name and a returned class: one report; B is reached through A and B's own name
    assert names == ["FakeChatB#send_it", "FakeMessage#text"]


# ---- a fake method whose signature no real call can share


SIGNATURES = """class FakeChatClient
  def with_instructions(text, &blk)
    blk.call(self)
  end

  def with_temperature(value)
    yield self if block_given?
    self
  end

  def ask(messages:)
    nil
  end

  def with_schema(a, b, c) = self
  def add_message = nil
  def with_thinking(level:, effort: nil) = self
end
"""


def test_incompatible_fake_signatures_are_reported(project: Build) -> None:
    report = verify(project, {"test/support/fake_chat_client.rb": SIGNATURES})
    found = fakes_of(report, "fake_signature")
    assert {name: f.line for name, f in found.items()} == {
        "FakeChatClient#with_instructions": 2,
        "FakeChatClient#with_temperature": 6,
        "FakeChatClient#ask": 11,
        "FakeChatClient#with_schema": 15,
        "FakeChatClient#add_message": 16,
        "FakeChatClient#with_thinking": 17,
    }
    assert all(f.real == "Chat" for f in found.values())
    assert "never yields" in found["FakeChatClient#with_instructions"].detail
    assert "with_instructions(instructions, append: ?, replace: ?)" in found["FakeChatClient#with_instructions"].detail
    assert "requires keyword messages:" in found["FakeChatClient#ask"].detail
    assert "accepts only with:" in found["FakeChatClient#ask"].detail
    assert "at most 1" in found["FakeChatClient#with_schema"].detail
    assert "requires 1" in found["FakeChatClient#add_message"].detail
    assert "keyword level:" in found["FakeChatClient#with_thinking"].detail
    assert not fakes_of(report, "fake_method")


def test_compatible_fake_signatures_are_not_reported(project: Build) -> None:
    code = """class FakeChatClient
  def ask(message, &block)
    block&.call("chunk")
    yield "more" if block_given?
    Reply.new
  end

  def with_model(*args, **kwargs, &blk)
    self
  end

  def with_instructions(text, append: false, replace: nil, locale: :en) = self
  def add_message(role:, content:) = nil
  def with_temperature(...) = self
  def with_params(**opts) = self
  def complete(extra = nil) { |chunk| chunk }
    nil
  end
end
"""
    report = verify(project, {"test/support/fake_chat_client.rb": code})
    assert not fakes_of(report, "fake_signature"), [f.detail for f in report.fakes]


P = Param


@pytest.mark.parametrize(
    ("fake", "real", "problem"),
    [
        ([P(kind="keyreq", name="x")], [P(kind="keyrest", name="kw")], ""),
        ([P(kind="keyreq", name="x")], [P(kind="nokey")], "accepts no keywords"),
        ([P(kind="keyreq", name="x")], [P(kind="req", name="a")], ""),  # pairs become the positional Hash
        ([P(kind="req", name="a"), P(kind="keyreq", name="x")], [P(kind="req", name="a")], "at most 1"),
        ([P(kind="req", name="a")], [P(kind="key", name="x")], ""),  # a braceless `x: 1` fits both
        ([P(kind="req", name="a"), P(kind="req", name="b")], [P(kind="key", name="x")], "at most 0"),
        ([P(kind="rest", name="a")], [P(kind="req", name="a"), P(kind="req", name="b")], ""),
        ([P(kind="opt", name="a")], [P(kind="req", name="a"), P(kind="req", name="b")], "requires 2"),
        ([P(kind="key", name="x")], [P(kind="req", name="a")], ""),  # `x: 1` is the real method's Hash
        ([P(kind="key", name="x")], [P(kind="keyreq", name="y")], "keyword y:"),
        ([], [P(kind="keyreq", name="y")], ""),  # without keywords, pairs reach the double as a Hash... unknowable
    ],
)
def test_arity_problem_follows_ruby_3_binding(fake: list[Param], real: list[Param], problem: str) -> None:
    result = arity_problem(Arity.of(fake), Arity.of(real))
    assert (problem in result) if problem else result == ""
    assert bool(result) == bool(problem)


def test_calls_chained_on_a_stub_builder_are_not_gem_calls(tmp_path: Path) -> None:
    test_src = (
        'require "test_helper"\n'
        "class ServiceTest < ActiveSupport::TestCase\n"
        '  test "errors" do\n'
        "    RubyLLM::Chat.stubs(:new).raises(RubyLLM::ServerError.new(nil, 'boom'))\n"  # 4
        "    RubyLLM::Chat.any_instance.stubs(:ask).returns(nil)\n"  # 5
        "  end\n"
        "end\n"
    )
    report = verify(lambda files: write_tree(tmp_path / "p", files), {"test/services/s_test.rb": test_src})
    calls = sorted((c.line, c.call, c.verdict) for c in report.calls)
    assert all(".stubs" not in call and ".any_instance" not in call for _, call, _ in calls), calls
    assert (4, "RubyLLM::ServerError", "ok") in calls


MOCK_TEST = """\
require "test_helper"
class AssistantTest < ActiveSupport::TestCase
  test "minitest mock injected through RubyLLM.stub" do
    chat = Minitest::Mock.new
    chat.expect(:send_message, "hi", [String])
    reply = Minitest::Mock.new
    reply.expect(:text, "hello")
    chat.expect(:ask, reply, [String])
    RubyLLM.stub(:chat, chat) { Assistant.new.reply("yo") }
  end

  test "mocha mock returned by Chat.new" do
    llm = mock("chat")
    llm.expects(:user).with("yo")
    llm.expects(:with_instructions).returns(llm)
    RubyLLM::Chat.stubs(:new).returns(llm)
  end

  test "a mock nobody injects is not judged" do
    loose = Minitest::Mock.new
    loose.expect(:whatever, 1)
  end

  test "real names pass" do
    good = Minitest::Mock.new
    good.expect(:add_message, nil, [Hash])
    good.expect(:ask, stub(content: "fine"), [String])
    RubyLLM.stub(:chat, good) { Assistant.new.reply("yo") }
  end
end
"""

RSPEC_MOCK = """\
RSpec.describe Assistant do
  it "uses a double" do
    fake = double("chat", with_instructions: nil)
    allow(RubyLLM).to receive(:chat).and_return(fake)
    allow(fake).to receive(:send_message).and_return("hi")
  end
end
"""


def test_mocks_injected_as_a_gem_value_must_answer_real_methods(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {"test/assistant_test.rb": MOCK_TEST, "spec/assistant_spec.rb": RSPEC_MOCK}
    report = verify(lambda f: write_tree(tmp_path / "p", f), files)
    found = sorted((f.path, f.line, f.name, f.real) for f in report.fakes)
    assert found == [
        ("spec/assistant_spec.rb", 5, "fake (mock Chat)#send_message", "Chat"),
        ("test/assistant_test.rb", 5, "chat (mock Chat)#send_message", "Chat"),
        ("test/assistant_test.rb", 7, "reply (mock Message)#text", "Message"),  # Chat#ask returns a Message
        ("test/assistant_test.rb", 14, "llm (mock Chat)#user", "Chat"),
    ]
    by_name = {f.name: f for f in report.fakes}
    assert "did you mean ask" in by_name["chat (mock Chat)#send_message"].detail
    assert "did you mean content" in by_name["reply (mock Message)#text"].detail


def test_a_mock_returned_past_expectation_modifiers_still_imitates_the_real_value(tmp_path: Path) -> None:
    code = (
        "class T < ActiveSupport::TestCase\n"
        "  def test_x\n"
        "    chat = mock('chat')\n"
        "    chat.expects(:user).with('Hi').once\n"  # 4: Chat has no #user
        "    RubyLLM.expects(:chat).with(model: 'm').once.returns(chat)\n"
        "  end\n"
        "end\n"
    )
    report = verify(lambda f: write_tree(tmp_path / "p", f), {"test/t_test.rb": code})
    assert [(f.line, f.name) for f in report.fakes] == [(4, "chat (mock Chat)#user")]
