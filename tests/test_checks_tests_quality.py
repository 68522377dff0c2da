"""The `tests.*` rules of rails-chat: each fires on a minimal bad project, at the right line, and stays
silent on its good counterpart."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from shipbench.audit.checks import AuditContext, Hit
from shipbench.audit.facts import extract_facts
from shipbench.audit.files import ProjectFiles
from shipbench.audit.models import ApiCall
from shipbench.audit.ruby.verify_types import ApiReport, FakeMismatch, GemSource
from shipbench.tasks.pack import TaskPack, load_task
from shipbench.tasks.rails_chat.checks import tests_quality as tq

APP = {
    "Gemfile": 'source "https://rubygems.org"\ngem "rails"\ngem "ruby_llm"\n',
    "config/application.rb": "module ChatApp\n  class Application < Rails::Application\n  end\nend\n",
    "config/routes.rb": """
        Rails.application.routes.draw do
          root "chats#show"
          resources :messages, only: :create
          post "/ask", to: "messages#create", as: :ask_llm
        end
    """,
    "app/services/chat_service.rb": """
        class ChatService
          class Error < StandardError; end
          MAX_HISTORY = 20

          def initialize(client_factory: -> { RubyLLM.chat(model: "anthropic/claude-sonnet-4") })
            @client_factory = client_factory
          end

          def reply(text, history: [])
            chat = @client_factory.call
            chat.with_instructions("You are helpful")
            history.each { |m| chat.add_message(role: m[:role], content: m[:content]) }
            chat.ask(text).content
          rescue RubyLLM::Error => e
            raise Error, e.message
          end
        end
    """,
    "app/controllers/messages_controller.rb": """
        class MessagesController < ApplicationController
          def create
            @reply = ChatService.new.reply(params[:content])
          end
        end
    """,
    "app/controllers/chats_controller.rb": "class ChatsController < ApplicationController\n  def show; end\nend\n",
    "app/models/message.rb": """
        class Message
          attr_reader :role, :content
          def initialize(role:, content:)
            @role = role
            @content = content
          end
        end
    """,
}

HELPER = """
    require "simplecov"
    SimpleCov.start "rails"
    require "rails/test_help"
    require "webmock/minitest"
"""

FAKE = """
    class FakeChat
      def initialize(reply: "ok", error: nil)
        @reply = reply
        @error = error
      end

      def with_instructions(_text) = self
      def add_message(_attrs) = self

      def ask(_text)
        raise @error if @error
        Struct.new(:content).new(@reply)
      end
    end
"""

SERVICE_TEST = """
    require "test_helper"

    class ChatServiceTest < ActiveSupport::TestCase
      test "asks the chat with the history" do
        fake = FakeChat.new(reply: "Hello")
        service = ChatService.new(client_factory: -> { fake })
        assert_equal "Hello", service.reply("hi")
      end

      test "wraps provider errors" do
        service = ChatService.new(client_factory: -> { FakeChat.new(error: RubyLLM::Error.new("boom")) })
        assert_raises(ChatService::Error) { service.reply("hi") }
      end

      test "a missing key surfaces as the gem's configuration error" do
        service = ChatService.new(client_factory: -> { raise RubyLLM::ConfigurationError, "no key" })
        assert_raises(RubyLLM::ConfigurationError) { service.reply("hi") }
      end
    end
"""

CONTROLLER_TEST = """
    require "test_helper"

    class MessagesControllerTest < ActionDispatch::IntegrationTest
      test "posts a message" do
        RubyLLM.stub(:chat, FakeChat.new(reply: "Hi there")) do
          post messages_path, params: { content: "hi" }
        end
        assert_response :success
      end
    end
"""


@pytest.fixture(scope="module")
def pack() -> TaskPack:
    return load_task("rails-chat")


def build(tmp: Path, pack: TaskPack, files: dict[str, str], api: ApiReport | None = None) -> AuditContext:
    for rel, text in files.items():
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    scanned = ProjectFiles.scan(tmp)
    facts = extract_facts(scanned)
    return AuditContext(project_root=tmp.resolve(), files=scanned, task=pack, facts=facts, api=api or ApiReport())


def good_files(changes: dict[str, str | None] | None = None) -> dict[str, str]:
    """The Tier-A project; `changes` replaces files (None removes one)."""
    files = {
        **APP,
        "test/test_helper.rb": HELPER,
        "test/support/fake_chat.rb": FAKE,
        "test/services/chat_service_test.rb": SERVICE_TEST,
        "test/controllers/messages_controller_test.rb": CONTROLLER_TEST,
    }
    for rel, text in (changes or {}).items():
        if text is None:
            files.pop(rel, None)
        else:
            files[rel] = text
    return files


SERVICE = "test/services/chat_service_test.rb"
CONTROLLER = "test/controllers/messages_controller_test.rb"
HAPPY_ONLY = SERVICE_TEST.split('      test "wraps provider errors"')[0] + "    end\n"


def run(ctx: AuditContext) -> dict[str, list[Hit]]:
    out: dict[str, list[Hit]] = {}
    for check in tq.CHECKS:
        for hit in check(ctx):
            out.setdefault(hit.rule, []).append(hit)
    return out


def line_of(ctx: AuditContext, rel: str, needle: str) -> int:
    lines = (ctx.project_root / rel).read_text().splitlines()
    return next(i for i, text in enumerate(lines, 1) if needle in text)


# ---------------------------------------------------------------- the good project


def test_good_project_fires_nothing(tmp_path: Path, pack: TaskPack) -> None:
    ctx = build(tmp_path, pack, good_files())
    assert run(ctx) == {}
    analysis = tq.analyse(ctx)
    assert len(analysis.cases) == 4
    assert all(f.reaches and f.replaced for f in analysis.cases)
    assert [f.case.name for f in analysis.cases if f.error_path] == [
        "wraps provider errors",
        "a missing key surfaces as the gem's configuration error",
    ]
    assert ctx.derived["tests_count"] == 4


# ---------------------------------------------------------------- tests.none


def test_none_fires_without_test_dir(tmp_path: Path, pack: TaskPack) -> None:
    ctx = build(tmp_path, pack, dict(APP))
    hits = run(ctx)
    assert list(hits) == ["tests.none"]  # the other rules stay quiet when there is nothing to judge
    assert hits["tests.none"][0].evidence[0].snippet.startswith("not found")


def test_none_fires_on_helper_without_any_test(tmp_path: Path, pack: TaskPack) -> None:
    ctx = build(tmp_path, pack, {**APP, "test/test_helper.rb": HELPER, "test/models/message_test.rb": "# todo\n"})
    evidence = run(ctx)["tests.none"][0].evidence[0]
    assert evidence.path.startswith("test/") and evidence.line == 0


def test_spec_style_tests_count(tmp_path: Path, pack: TaskPack) -> None:
    spec = """
        RSpec.describe Message do
          it "keeps the role" do
            expect(Message.new(role: "user", content: "x").role).to eq("user")
          end
        end
    """
    ctx = build(tmp_path, pack, {**APP, "spec/models/message_spec.rb": spec})
    assert "tests.none" not in run(ctx)
    assert [c.case.name for c in tq.analyse(ctx).cases] == ["keeps the role"]


# ---------------------------------------------------------------- tests.llm_path_untested


PORO_TEST = """
    require "test_helper"

    class MessageTest < ActiveSupport::TestCase
      test "keeps role and content" do
        message = Message.new(role: "user", content: "hi")
        assert_equal "user", message.role
        assert_equal "hi", message.content
      end
    end
"""


def test_llm_path_untested_when_tests_only_cover_poros(tmp_path: Path, pack: TaskPack) -> None:
    files = good_files({SERVICE: None, CONTROLLER: None})
    files["test/models/message_test.rb"] = PORO_TEST
    hits = run(build(tmp_path, pack, files))
    assert "tests.llm_path_untested" in hits
    assert hits["tests.llm_path_untested"][0].evidence[0].path == "test"
    assert "tests.real_network" not in hits  # nothing reaches the LLM, so nothing can leak
    assert "tests.no_error_path" in hits


def test_llm_path_untested_when_the_service_is_called_for_real(tmp_path: Path, pack: TaskPack) -> None:
    real = """
        require "test_helper"

        class ChatServiceTest < ActiveSupport::TestCase
          test "answers" do
            assert_match(/\\w+/, ChatService.new.reply("hi", history: [{ role: :user, content: "x" }]))
          end
        end
    """
    files = good_files({CONTROLLER: None})
    files["test/services/chat_service_test.rb"] = real
    ctx = build(tmp_path, pack, files)
    hits = run(ctx)
    assert "tests.llm_path_untested" in hits
    facts = tq.analyse(ctx).cases[0]
    assert facts.reaches and not facts.replaced


@pytest.mark.parametrize(
    "body",
    [
        # mocha on the entry point
        'RubyLLM.stubs(:chat).returns(FakeChat.new)\n    post "/ask", params: { content: "hi" }',
        # any_instance on the service
        'ChatService.any_instance.stubs(:reply).returns("ok")\n    post ask_llm_path, params: { content: "x" }',
        # WebMock on the provider endpoint
        'stub_request(:post, /openrouter/).to_return(body: "{}")\n    post messages_path',
        # a VCR cassette
        'VCR.use_cassette("chat") { post messages_path, params: { content: "hi" } }',
        # an injected Minitest::Mock
        "mock = Minitest::Mock.new\n    mock.expect(:ask, nil, [String])\n"
        "    ChatService.new(client_factory: -> { mock })",
    ],
)
def test_each_replacement_style_counts(tmp_path: Path, pack: TaskPack, body: str) -> None:
    test = (
        'require "test_helper"\n\nclass LlmTest < ActionDispatch::IntegrationTest\n'
        f'  test "x" do\n    {body}\n    assert_response :success\n  end\nend\n'
    )
    files = good_files({SERVICE: None, CONTROLLER: None})
    files["test/integration/llm_test.rb"] = test
    ctx = build(tmp_path, pack, files)
    facts = tq.analyse(ctx).cases[0]
    assert facts.reaches and facts.replaced
    assert "tests.llm_path_untested" not in run(ctx)


def test_a_global_llm_stub_does_not_make_poro_tests_reach_the_llm(tmp_path: Path, pack: TaskPack) -> None:
    helper = HELPER + "class ActiveSupport::TestCase\n  setup { RubyLLM.stubs(:chat).returns(FakeChat.new) }\nend\n"
    files = good_files({"test/test_helper.rb": helper, SERVICE: None, CONTROLLER: PORO_TEST})
    hits = run(build(tmp_path, pack, files))
    assert "tests.llm_path_untested" in hits


def test_a_global_stub_replaces_the_llm_for_reaching_tests(tmp_path: Path, pack: TaskPack) -> None:
    helper = HELPER + "class ActiveSupport::TestCase\n  setup { RubyLLM.stubs(:chat).returns(FakeChat.new) }\nend\n"
    plain = 'class ApiTest < ActionDispatch::IntegrationTest\n  test "x" do\n    post messages_path\n'
    plain += "    assert_response :success\n  end\nend\n"
    files = good_files({"test/test_helper.rb": helper, SERVICE: None, CONTROLLER: plain})
    ctx = build(tmp_path, pack, files)
    assert [(f.reaches, f.replaced) for f in tq.analyse(ctx).cases] == [(True, True)]
    assert "tests.llm_path_untested" not in run(ctx)


def test_rspec_allow_receive_and_described_class(tmp_path: Path, pack: TaskPack) -> None:
    spec = """
        RSpec.describe ChatService do
          let(:chat) { instance_double("RubyLLM::Chat") }

          before { allow(RubyLLM).to receive(:chat).and_return(chat) }

          it "replies" do
            allow(chat).to receive(:ask).and_return(double(content: "ok"))
            expect(described_class.new.reply("hi")).to eq("ok")
          end

          it "wraps errors" do
            allow(chat).to receive(:ask).and_raise(RubyLLM::Error)
            expect { described_class.new.reply("hi") }.to raise_error(ChatService::Error)
          end
        end
    """
    files = {**APP, "spec/spec_helper.rb": 'require "simplecov"\nSimpleCov.start\n', "spec/services/chat_spec.rb": spec}
    hits = run(build(tmp_path, pack, files))
    assert "tests.llm_path_untested" not in hits
    assert "tests.no_error_path" not in hits
    assert "tests.real_network" not in hits  # every reaching example stubs RubyLLM.chat


# ---------------------------------------------------------------- tests.real_network


def test_real_network_points_at_the_unprotected_test(tmp_path: Path, pack: TaskPack) -> None:
    leaky = """
        require "test_helper"

        class ChatServiceTest < ActiveSupport::TestCase
          test "talks to openrouter" do
            assert_equal "pong", ChatService.new.reply("ping")
          end
        end
    """
    files = good_files({"test/test_helper.rb": 'require "simplecov"\nSimpleCov.start\n'})
    files["test/services/live_test.rb"] = leaky
    ctx = build(tmp_path, pack, files)
    hits = run(ctx)["tests.real_network"]
    assert [(e.path, e.line) for e in hits[0].evidence] == [
        ("test/services/live_test.rb", line_of(ctx, "test/services/live_test.rb", 'test "talks'))
    ]


def test_real_network_silent_when_webmock_blocks(tmp_path: Path, pack: TaskPack) -> None:
    leaky = (
        'class LiveTest < ActiveSupport::TestCase\n  test "x" do\n    assert ChatService.new.reply("p")\n  end\nend\n'
    )
    files = good_files()
    files["test/services/live_test.rb"] = leaky
    assert "tests.real_network" not in run(build(tmp_path, pack, files))


def test_real_network_fires_when_webmock_is_switched_back_off(tmp_path: Path, pack: TaskPack) -> None:
    leaky = (
        'class LiveTest < ActiveSupport::TestCase\n  test "x" do\n    assert ChatService.new.reply("p")\n  end\nend\n'
    )
    files = good_files({"test/test_helper.rb": HELPER + "WebMock.allow_net_connect!\n"})
    files["test/services/live_test.rb"] = leaky
    hits = run(build(tmp_path, pack, files))
    assert [e.path for e in hits["tests.real_network"][0].evidence] == ["test/services/live_test.rb"]


def test_real_network_counts_direct_rubyllm_calls(tmp_path: Path, pack: TaskPack) -> None:
    direct = """
        class RubyLlmTest < ActiveSupport::TestCase
          test "live call" do
            response = RubyLLM.chat.ask("hello")
            assert response.content
          end
        end
    """
    files = {**APP, "test/test_helper.rb": "SimpleCov.start\n", "test/llm_test.rb": direct}
    hits = run(build(tmp_path, pack, files))
    assert hits["tests.real_network"][0].evidence[0].line == 2


# ---------------------------------------------------------------- tests.no_error_path


def test_no_error_path_fires_with_only_happy_path(tmp_path: Path, pack: TaskPack) -> None:
    files = good_files({SERVICE: HAPPY_ONLY})
    hits = run(build(tmp_path, pack, files))
    assert list(hits) == ["tests.no_error_path"]
    assert hits["tests.no_error_path"][0].evidence[0].path == "test"


@pytest.mark.parametrize(
    "failure",
    [
        "RubyLLM.stubs(:chat).raises(RubyLLM::Error)",
        'stub_request(:post, /openrouter/).to_return(status: 503, body: "")',
        "stub_request(:post, /openrouter/).to_timeout",
        "RubyLLM.stub(:chat, ->(*) { raise RubyLLM::Error, 'down' }) { post messages_path }",
    ],
)
def test_each_error_style_counts(tmp_path: Path, pack: TaskPack, failure: str) -> None:
    test = (
        "class FailTest < ActionDispatch::IntegrationTest\n"
        f'  test "fails" do\n    {failure}\n    post messages_path\n    assert_response :bad_gateway\n  end\nend\n'
    )
    files = good_files({SERVICE: HAPPY_ONLY})
    files["test/integration/fail_test.rb"] = test
    assert "tests.no_error_path" not in run(build(tmp_path, pack, files))


def test_a_raise_in_the_test_itself_is_not_an_llm_failure(tmp_path: Path, pack: TaskPack) -> None:
    test = """
        class BlankTest < ActiveSupport::TestCase
          test "rejects blank" do
            service = ChatService.new(client_factory: -> { FakeChat.new })
            raise "setup failed" if service.nil?
            assert_raises(ArgumentError) { service.reply("") }
          end
        end
    """
    files = good_files({SERVICE: HAPPY_ONLY})
    files["test/services/blank_test.rb"] = test
    assert "tests.no_error_path" in run(build(tmp_path, pack, files))


# ---------------------------------------------------------------- tests.coverage_theater


def test_theater_rescue_assert_true(tmp_path: Path, pack: TaskPack) -> None:
    theater = """
        require "test_helper"

        class ChatServiceTest < ActiveSupport::TestCase
          test "the service answers" do
            response = ChatService.new.reply("hi")
            assert response.present?
          rescue => e
            assert true
          end

          test "history" do
            service = ChatService.new(client_factory: -> { FakeChat.new })
            assert_equal "ok", service.reply("hi")
          end
        end
    """
    files = good_files({SERVICE: theater})
    ctx = build(tmp_path, pack, files)
    hit = run(ctx)["tests.coverage_theater"][0]
    rel = "test/services/chat_service_test.rb"
    assert [(e.path, e.line) for e in hit.evidence] == [(rel, line_of(ctx, rel, "rescue => e"))]
    assert "1 rescue swallow" in hit.message


def test_rescue_with_flunk_idiom_is_not_theater(tmp_path: Path, pack: TaskPack) -> None:
    idiom = """
        class GuardTest < ActiveSupport::TestCase
          test "raises on blank" do
            begin
              ChatService.new(client_factory: -> { FakeChat.new }).reply("")
              flunk "expected an error"
            rescue ArgumentError
            end
          end
        end
    """
    files = good_files()
    files["test/services/guard_test.rb"] = idiom
    ctx = build(tmp_path, pack, files)
    verdicts = {f.case.name: f.verdict.verdict for f in tq.analyse(ctx).cases}
    assert verdicts["raises on blank"] == "real"
    assert "tests.coverage_theater" not in run(ctx)


def test_theater_constants_respond_to_and_no_assertion(tmp_path: Path, pack: TaskPack) -> None:
    theater = """
        require "test_helper"

        class ChatServiceTest < ActiveSupport::TestCase
          test "limit" do
            assert_equal 20, ChatService::MAX_HISTORY
          end

          test "api" do
            assert ChatService.new.respond_to?(:reply)
            assert defined?(ChatService::Error)
          end

          test "blank guard" do
            assert "".blank?
          end

          test "smoke" do
            ChatService.new(client_factory: -> { FakeChat.new })
          end
        end
    """
    files = good_files({SERVICE: theater})
    ctx = build(tmp_path, pack, files)
    verdicts = {f.case.name: f.verdict.verdict for f in tq.analyse(ctx).cases}
    assert verdicts == {
        "limit": "trivial_only",
        "api": "trivial_only",
        "blank guard": "trivial_only",
        "smoke": "no_assertion",
        "posts a message": "real",
    }
    hit = run(ctx)["tests.coverage_theater"][0]
    rel = "test/services/chat_service_test.rb"
    assert [e.line for e in hit.evidence] == [
        line_of(ctx, rel, f'test "{n}"') for n in ("limit", "api", "blank guard", "smoke")
    ]
    assert hit.message.startswith("4 of 5 tests")


def test_few_weak_tests_among_real_ones_are_not_theater(tmp_path: Path, pack: TaskPack) -> None:
    files = good_files()
    files["test/services/limit_test.rb"] = (
        'class LimitTest < ActiveSupport::TestCase\n  test "max" do\n    assert_equal 20, ChatService::MAX_HISTORY\n'
        "  end\nend\n"
    )
    assert "tests.coverage_theater" not in run(build(tmp_path, pack, files))


def test_assertions_in_called_helpers_and_mocha_expects_count(tmp_path: Path, pack: TaskPack) -> None:
    test = """
        class HelperTest < ActiveSupport::TestCase
          test "via helper" do
            check_reply ChatService.new(client_factory: -> { FakeChat.new }).reply("x")
          end

          test "via mocha" do
            FakeChat.any_instance.expects(:ask).returns(Struct.new(:content).new("y"))
            ChatService.new(client_factory: -> { FakeChat.new }).reply("x")
          end

          test "via spec expectation" do
            _(ChatService.new(client_factory: -> { FakeChat.new }).reply("x")).must_equal "ok"
          end

          private

          def check_reply(text)
            assert_equal "ok", text
          end
        end
    """
    ctx = build(tmp_path, pack, good_files({SERVICE: test}))
    verdicts = {f.case.name: f.verdict.verdict for f in tq.analyse(ctx).cases}
    assert verdicts["via helper"] == verdicts["via mocha"] == verdicts["via spec expectation"] == "real"


# ---------------------------------------------------------------- tests.no_coverage_tool


def test_no_coverage_tool_fires_on_helper_without_simplecov(tmp_path: Path, pack: TaskPack) -> None:
    helper = '# require "simplecov"\n# SimpleCov.start\nrequire "webmock/minitest"\n'
    ctx = build(tmp_path, pack, good_files({"test/test_helper.rb": helper}))
    hits = run(ctx)
    assert list(hits) == ["tests.no_coverage_tool"]
    assert hits["tests.no_coverage_tool"][0].evidence[0].path == "test/test_helper.rb"


def test_simplecov_via_dotfile_counts(tmp_path: Path, pack: TaskPack) -> None:
    files = good_files({"test/test_helper.rb": 'require "simplecov"\nrequire "webmock/minitest"\n'})
    files[".simplecov"] = 'SimpleCov.start "rails" do\n  add_filter "/test/"\nend\n'
    assert "tests.no_coverage_tool" not in run(build(tmp_path, pack, files))


# ---------------------------------------------------------------- tests.fake_wrong_api


def verified(fakes: list[FakeMismatch], calls: list[ApiCall] | None = None, path: str | None = "/g") -> ApiReport:
    source = GemSource(gem="ruby_llm", locked_version="1.14.1", used_version="1.14.1", path=path)
    return ApiReport(calls=calls or [], fakes=fakes, sources=[source])


def test_fake_wrong_api_one_hit_per_name(tmp_path: Path, pack: TaskPack) -> None:
    rel = "test/support/fake_chat.rb"
    fakes = [
        FakeMismatch(path=rel, line=9, kind="fake_method", name="FakeChat#send_message", real="Chat"),
        FakeMismatch(path=rel, line=12, kind="fake_method", name="FakeChat#send_message", real="Chat"),
        FakeMismatch(path=rel, line=1, kind="missing_constant", name="RubyLLM::Client", real="Client"),
    ]
    missing_call = ApiCall(path=rel, line=3, call="Chat#user", verdict="missing", in_test=True)
    app_call = ApiCall(path="app/services/chat_service.rb", line=3, call="Chat#user", verdict="missing")
    ctx = build(tmp_path, pack, good_files(), verified(fakes, [missing_call, app_call]))
    hits = run(ctx)["tests.fake_wrong_api"]
    assert sorted({h.key for h in hits}) == ["Chat#user", "FakeChat#send_message", "RubyLLM::Client"]
    assert {e.line for h in hits if h.key == "FakeChat#send_message" for e in h.evidence} == {9, 12}
    assert all(e.path == rel for h in hits for e in h.evidence)
    assert next(h for h in hits if h.key == "RubyLLM::Client").evidence[0].snippet == "class FakeChat"


def test_fake_wrong_api_silent_without_gem_source(tmp_path: Path, pack: TaskPack) -> None:
    fakes = [FakeMismatch(path="test/x.rb", line=1, kind="fake_method", name="FakeChat#x", real="Chat")]
    ctx = build(tmp_path, pack, good_files(), verified(fakes, path=None))
    assert "tests.fake_wrong_api" not in run(ctx)


# ---------------------------------------------------------------- robustness


def test_broken_and_binary_test_files_do_not_raise(tmp_path: Path, pack: TaskPack) -> None:
    files = good_files()
    files["test/models/broken_test.rb"] = 'class BrokenTest < ActiveSupport::TestCase\n  test "x" do\n    assert(\n'
    (tmp_path / "test/models").mkdir(parents=True)
    (tmp_path / "test/models/blob_test.rb").write_bytes(b"\x00\x01binary")
    ctx = build(tmp_path, pack, files)
    hits = run(ctx)
    assert "tests.none" not in hits
    assert {f.case.parsed.rel for f in tq.analyse(ctx).cases} >= {SERVICE, CONTROLLER}


@pytest.mark.parametrize(
    ("test_class", "body", "reaches"),
    [
        ("LlmTest", 'post "/ask", params: { content: "x" }', True),
        ("LlmTest", 'post "/messages"', True),
        ("LlmTest", "post ask_llm_url", True),
        ("LlmTest", 'get "/"', False),  # root is chats#show, which never calls the LLM
        ("LlmTest", "get root_path", False),
        ("LlmTest", 'visit root_path\n    fill_in "content", with: "hi"\n    click_on "Send"', True),
        ("LlmTest", "visit root_path", False),
        ("MessagesControllerTest", "post :create, params: { content: 'x' }", True),
        ("ChatsControllerTest", "get :show", False),
        ("LlmTest", 'assert_equal "user", Message.new(role: "user", content: "x").role', False),
    ],
)
def test_which_tests_reach_the_llm_path(
    tmp_path: Path, pack: TaskPack, test_class: str, body: str, reaches: bool
) -> None:
    test = f'class {test_class} < ActionDispatch::IntegrationTest\n  test "t" do\n    {body}\n  end\nend\n'
    ctx = build(tmp_path, pack, {**APP, "test/integration/t_test.rb": test})
    assert [f.reaches for f in tq.analyse(ctx).cases] == [reaches]


def test_engine_scores_the_tests_dimension(tmp_path: Path) -> None:
    from shipbench.audit.engine import audit_project

    good, bad = tmp_path / "good", tmp_path / "bad"
    for root, files in ((good, good_files()), (bad, good_files({SERVICE: None, CONTROLLER: None}))):
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(textwrap.dedent(text).lstrip("\n"))
    good_result, bad_result = audit_project(good), audit_project(bad)
    mine = {check.__name__ for check in tq.CHECKS}
    errors = str(good_result.facts.get("check_errors", "")) + str(bad_result.facts.get("check_errors", ""))
    assert not [name for name in mine if name in errors]
    assert [f.rule for f in good_result.findings if f.dimension == "tests"] == []
    assert good_result.facts["tests_count"] == 4
    assert {f.rule for f in bad_result.findings if f.dimension == "tests"} == {"tests.none"}


# ---------------------------------------------------------------- tests.no_missing_key_test

NO_KEY_TEST = SERVICE_TEST.split('      test "a missing key')[0] + "    end\n"
KEY_CASE = """
    require "test_helper"

    class KeyTest < ActiveSupport::TestCase
      test "t" do
        {body}
        assert true
      end
    end
"""


def test_missing_key_test_fires_when_only_provider_failures_are_tested(tmp_path: Path, pack: TaskPack) -> None:
    ctx = build(tmp_path, pack, good_files({SERVICE: NO_KEY_TEST}))
    assert set(run(ctx)) == {"tests.no_missing_key_test"}


def test_missing_key_test_follows_what_the_test_does_not_its_name(tmp_path: Path, pack: TaskPack) -> None:
    named_only = NO_KEY_TEST.replace("wraps provider errors", "raises when OPENROUTER_API_KEY is missing")
    ctx = build(tmp_path, pack, good_files({SERVICE: named_only}))
    assert "tests.no_missing_key_test" in run(ctx)


@pytest.mark.parametrize(
    "body",
    [
        'ENV.delete("OPENROUTER_API_KEY")',
        'ENV["OPENROUTER_API_KEY"] = nil',
        'ENV["LLM_TOKEN"] = ""',
        "ClimateControl.modify(OPENROUTER_API_KEY: nil) { }",
        'with_env("OPENROUTER_API_KEY" => "") { }',
        "RubyLLM.config.openrouter_api_key = nil",
        "RubyLLM.configure { |c| c.openrouter_api_key = nil }",
        "ENV.stub(:[], nil) { }",
        "assert_raises(KeyError) { }",
    ],
)
def test_each_way_of_removing_the_key_counts(tmp_path: Path, pack: TaskPack, body: str) -> None:
    strict = 'RubyLLM.configure { |c| c.openrouter_api_key = ENV.fetch("OPENROUTER_API_KEY") }\n'
    app = {"config/initializers/ruby_llm.rb": strict}
    files = good_files({SERVICE: NO_KEY_TEST, "test/models/key_test.rb": KEY_CASE.replace("{body}", body), **app})
    assert "tests.no_missing_key_test" not in run(build(tmp_path, pack, files))


def test_the_class_the_app_raises_in_its_key_check_counts(tmp_path: Path, pack: TaskPack) -> None:
    check = """
        class KeyGuard
          class Unconfigured < StandardError; end
          def self.check!
            raise Unconfigured, "set the key" if ENV["OPENROUTER_API_KEY"].blank?
          end
        end
    """
    files = good_files(
        {
            SERVICE: NO_KEY_TEST,
            "app/services/key_guard.rb": check,
            "test/models/key_test.rb": KEY_CASE.replace("{body}", "assert_raises(KeyGuard::Unconfigured) { }"),
        }
    )
    assert "tests.no_missing_key_test" not in run(build(tmp_path, pack, files))
    unrelated = KEY_CASE.replace("{body}", "assert_raises(ArgumentError) { }")
    files["test/models/key_test.rb"] = unrelated
    assert "tests.no_missing_key_test" in run(build(tmp_path / "2", pack, files))


def test_no_error_path_at_all_is_left_to_no_error_path(tmp_path: Path, pack: TaskPack) -> None:
    hits = run(build(tmp_path, pack, good_files({SERVICE: HAPPY_ONLY})))
    assert "tests.no_error_path" in hits and "tests.no_missing_key_test" not in hits


# ---------------------------------------------------------------- tests.llm_path_live_only

LIVE_TEST = """
    require "test_helper"

    class MessagesControllerTest < ActionDispatch::IntegrationTest
      test "index renders" do
        get root_path
        assert_response :success
      end

      test "answers a message" do
        skip "needs a key" unless ENV["OPENROUTER_API_KEY"]
        post messages_path, params: { content: "Say hello" }
        assert_response :success
      end
    end
"""


def test_a_suite_that_reaches_the_llm_only_live_costs_less_than_none(tmp_path: Path, pack: TaskPack) -> None:
    files = good_files({SERVICE: None, "test/support/fake_chat.rb": None, CONTROLLER: LIVE_TEST})
    hits = run(build(tmp_path, pack, files))
    assert "tests.llm_path_live_only" in hits and "tests.llm_path_untested" not in hits
    assert [e.line for e in hits["tests.llm_path_live_only"][0].evidence] == [9]


def test_page_gets_and_blank_posts_are_not_live_llm_tests(tmp_path: Path, pack: TaskPack) -> None:
    blank = LIVE_TEST.replace('params: { content: "Say hello" }', 'params: { content: "" }')
    files = good_files({SERVICE: None, "test/support/fake_chat.rb": None, CONTROLLER: blank})
    hits = run(build(tmp_path, pack, files))
    assert "tests.llm_path_untested" in hits and "tests.llm_path_live_only" not in hits
