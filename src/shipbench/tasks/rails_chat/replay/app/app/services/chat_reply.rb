# Sends the user's message, with the earlier turns replayed, to Claude Sonnet through OpenRouter.
class ChatReply
  SYSTEM_PROMPT = "You are a helpful assistant. Answer clearly and concisely, using Markdown when it helps.".freeze
  MODEL = "anthropic/claude-sonnet-4.5".freeze

  Result = Struct.new(:text, :error, keyword_init: true) do
    def error? = error.present?
  end

  def initialize(history: [], chat: nil)
    @history = history
    @chat = chat
  end

  def call(content)
    chat = build_chat
    response = chat.ask(content)
    Result.new(text: response.content, error: nil)
  rescue => e
    Rails.logger.error("LLM request failed: #{e.class}: #{e.message}")
    Result.new(text: "Sorry, the assistant is unavailable right now. Please try again.", error: e.message)
  end

  private

  def build_chat
    chat = @chat || RubyLLM.chat(model: MODEL, provider: :openrouter)
    chat.with_instructions(SYSTEM_PROMPT)
    @history.each { |message| chat.add_message(role: message[:role].to_sym, content: message[:content]) }
    chat
  end
end
