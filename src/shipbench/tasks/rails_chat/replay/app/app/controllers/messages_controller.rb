class MessagesController < ApplicationController
  def index
    @messages = transcript.messages
  end

  def create
    content = params.require(:message).fetch(:content, "").strip
    return head :unprocessable_entity if content.empty?

    @user_message = transcript.append(role: "user", content: content)
    reply = ChatReply.new(history: transcript.messages[0...-1]).call(content)
    @assistant_message = transcript.append(role: "assistant", content: reply.text, error: reply.error?)

    respond_to do |format|
      format.turbo_stream
      format.html { redirect_to root_path }
    end
  end

  def reset
    transcript.clear
    redirect_to root_path
  end

  private

  def transcript
    @transcript ||= Transcript.new(session)
  end
end
