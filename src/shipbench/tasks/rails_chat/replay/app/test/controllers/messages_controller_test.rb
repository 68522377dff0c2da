require "test_helper"

class MessagesControllerTest < ActionDispatch::IntegrationTest
  test "renders the chat page" do
    get root_path
    assert_response :success
    assert_select "form#composer"
  end

  test "appends both turns as turbo streams" do
    reply = ChatReply::Result.new(text: "Hello there", error: nil)
    service = Struct.new(:result) { def call(_content) = result }.new(reply)
    ChatReply.stub(:new, service) do
      post messages_path, params: { message: { content: "Hi" } }, as: :turbo_stream
    end

    assert_response :success
    assert_includes response.body, "Hello there"
    assert_includes response.body, 'action="append"'
  end

  test "rejects an empty message" do
    post messages_path, params: { message: { content: "  " } }, as: :turbo_stream
    assert_response :unprocessable_entity
  end
end
