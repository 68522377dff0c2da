# The conversation lives in the signed session cookie, so it survives page reloads without a database.
class Transcript
  def initialize(session)
    @session = session
    @session[:messages] ||= []
  end

  def messages
    @session[:messages].map(&:symbolize_keys)
  end

  def append(role:, content:, error: false)
    message = { role: role, content: content, error: error }
    @session[:messages] << message.stringify_keys
    message
  end

  def clear
    @session[:messages] = []
  end
end
