require "test_helper"

class ChatReplyTest < ActiveSupport::TestCase
  class FakeChat
    attr_reader :instructions, :added, :asked

    def initialize(reply)
      @reply = reply
      @added = []
    end

    def with_instructions(text)
      @instructions = text
      self
    end

    def add_message(role:, content:)
      @added << { role: role, content: content }
    end

    def ask(content)
      @asked = content
      Struct.new(:content).new(@reply)
    end
  end

  test "replays the history and returns the model's answer" do
    chat = FakeChat.new("Paris.")
    history = [{ role: "user", content: "Hi" }, { role: "assistant", content: "Hello!" }]

    result = ChatReply.new(history: history, chat: chat).call("Capital of France?")

    assert_equal "Paris.", result.text
    refute result.error?
    assert_equal ChatReply::SYSTEM_PROMPT, chat.instructions
    assert_equal [:user, :assistant], chat.added.map { |m| m[:role] }
    assert_equal "Capital of France?", chat.asked
  end
end
