"""Test doubles that imitate a RubyLLM API the gem does not have (fake classes and stubs)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.test_verify import verify

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


def test_name_heuristic_needs_a_marker_method(project: Build) -> None:
    code = (
        "class MockClientHelper\n  def send_message; end\nend\n"
        "class ChatPresenter\n  def ask; end\n  def nope; end\nend\n"
    )
    assert not verify(project, {"test/helpers.rb": code}).fakes


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
