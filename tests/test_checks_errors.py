"""errors checks: rescue coverage through methods, callers and rescue_from; typed vs untyped;
swallowed failures; user feedback; API-key preflight (bad fire at their lines, good are silent)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import make_context, write_tree

from shipbench.audit.checks import AuditContext, Hit
from shipbench.tasks.rails_chat.checks import errors as e

GEMFILE = 'source "https://rubygems.org"\ngem "rails"\ngem "ruby_llm"\n'
INIT = 'RubyLLM.configure do |c|\n  c.openrouter_api_key = ENV["OPENROUTER_API_KEY"]\nend\n'
SERVICE = """class LlmClient
  class Error < StandardError; end

  def reply(prompt)
    chat = RubyLLM.chat
    chat.ask(prompt).content
  rescue RubyLLM::Error, Faraday::Error => e
    raise Error, "The assistant is unavailable: #{e.message}"
  end
end
"""
CONTROLLER = """class ChatsController < ApplicationController
  def create
    @reply = LlmClient.new.reply(params[:message])
  rescue LlmClient::Error => e
    flash.now[:alert] = e.message
    render :show, status: :bad_gateway
  end
end
"""


def ctx_for(tmp_path: Path, files: dict[str, str]) -> AuditContext:
    base = {"Gemfile": GEMFILE, "config/application.rb": "", "config/initializers/ruby_llm.rb": INIT}
    return make_context(write_tree(tmp_path / "app", {**base, **files}))


def places(hits: list[Hit]) -> list[tuple[str, int]]:
    return sorted((ev.path, ev.line) for h in hits for ev in h.evidence)


def all_hits(ctx: AuditContext) -> list[str]:
    return sorted(h.rule for check in e.CHECKS for h in check(ctx))


def test_good_project_typed_rescue_with_feedback_and_preflight_is_silent(tmp_path: Path) -> None:
    init = INIT.replace('ENV["OPENROUTER_API_KEY"]', 'ENV.fetch("OPENROUTER_API_KEY")')
    files = {
        "app/services/llm_client.rb": SERVICE,
        "app/controllers/chats_controller.rb": CONTROLLER,
        "config/initializers/ruby_llm.rb": init,
    }
    assert all_hits(ctx_for(tmp_path, files)) == []


def test_no_rescue_fires_at_each_uncovered_send(tmp_path: Path) -> None:
    svc = (
        "class ChatSession\n"  # 1
        "  def initialize\n"  # 2
        "    @chat = RubyLLM.chat\n"  # 3
        "  end\n"  # 4
        "  def ask(m)\n"  # 5
        "    @chat.ask(m).content\n"  # 6
        "  end\n"
        "end\n"
    )
    ctrl = "class ChatsController < ApplicationController\n  def create\n    @s.ask(params[:m])\n  end\nend\n"
    hits = list(
        e.check_no_rescue(
            ctx_for(tmp_path, {"app/models/chat_session.rb": svc, "app/controllers/c_controller.rb": ctrl})
        )
    )
    assert [h.rule for h in hits] == ["errors.no_rescue"]
    assert ("app/models/chat_session.rb", 6) in places(hits)


def test_rescue_in_caller_covers_the_send(tmp_path: Path) -> None:
    svc = SERVICE.replace(
        '  rescue RubyLLM::Error => e\n    raise Error, "The assistant is unavailable: #{e.message}"\n', ""
    )
    files = {"app/services/llm_client.rb": svc, "app/controllers/chats_controller.rb": CONTROLLER}
    assert list(e.check_no_rescue(ctx_for(tmp_path, files))) == []


def test_rescue_from_in_application_controller_covers_controller_send(tmp_path: Path) -> None:
    ctrl = "class ChatsController < ApplicationController\n  def create\n    RubyLLM.chat.ask(params[:m])\n  end\nend\n"
    app = (
        "class ApplicationController < ActionController::Base\n"
        "  rescue_from RubyLLM::Error, with: :llm_down\n"
        "  def llm_down(err)\n    redirect_to root_path, alert: 'The assistant is down'\n  end\nend\n"
    )
    files = {"app/controllers/chats_controller.rb": ctrl, "app/controllers/application_controller.rb": app}
    ctx = ctx_for(tmp_path, files)
    assert list(e.check_no_rescue(ctx)) == []
    assert list(e.check_untyped_rescue(ctx)) == []
    assert list(e.check_no_user_feedback(ctx)) == []


def test_unrelated_rescue_does_not_cover(tmp_path: Path) -> None:
    svc = "class S\n  def go(m)\n    RubyLLM.chat.ask(m).content\n  rescue JSON::ParserError\n    'bad'\n  end\nend\n"
    hits = list(e.check_no_rescue(ctx_for(tmp_path, {"app/services/s.rb": svc})))
    assert places(hits) == [("app/services/s.rb", 3)]


def test_untyped_and_swallowed_and_no_feedback(tmp_path: Path) -> None:
    svc = (
        "class S\n"  # 1
        "  def go(m)\n"  # 2
        "    RubyLLM.chat.ask(m).content\n"  # 3
        "  rescue StandardError\n"  # 4
        "    @reply = nil\n"  # 5
        "  end\n"
        "  def quick(m) = (RubyLLM.chat.ask(m).content rescue '')\n"  # 7
        "end\n"
    )
    ctx = ctx_for(tmp_path, {"app/services/s.rb": svc})
    assert list(e.check_no_rescue(ctx)) == []
    untyped = list(e.check_untyped_rescue(ctx))
    assert places(untyped) == [("app/services/s.rb", 4), ("app/services/s.rb", 7)]
    # the rescues, then the empty values they answer with
    assert places(list(e.check_swallowed(ctx))) == [
        ("app/services/s.rb", 4),
        ("app/services/s.rb", 5),
        ("app/services/s.rb", 7),
    ]
    assert [h.rule for h in e.check_no_user_feedback(ctx)] == ["errors.no_user_feedback"]


def test_logged_rescue_with_message_is_typed_not_swallowed_and_gives_feedback(tmp_path: Path) -> None:
    svc = (
        "class S\n  def go(m)\n    RubyLLM.chat.ask(m).content\n"
        "  rescue RubyLLM::RateLimitError, Faraday::Error => e\n"
        "    Rails.logger.error(e.message)\n    'Sorry, the assistant is busy.'\n  end\nend\n"
    )
    ctx = ctx_for(tmp_path, {"app/services/s.rb": svc})
    assert list(e.check_untyped_rescue(ctx)) == []
    assert list(e.check_swallowed(ctx)) == []
    assert list(e.check_no_user_feedback(ctx)) == []


def test_logging_only_is_not_user_feedback(tmp_path: Path) -> None:
    svc = (
        "class S\n  def go(m)\n    RubyLLM.chat.ask(m).content\n"
        "  rescue RubyLLM::Error => e\n"
        '    Rails.logger.error("llm error #{e.message}")\n    nil\n  end\nend\n'
    )
    ctx = ctx_for(tmp_path, {"app/services/s.rb": svc})
    assert list(e.check_swallowed(ctx)) == []  # logged, so not silently dropped
    assert places(list(e.check_no_user_feedback(ctx))) == [("app/services/s.rb", 4)]


def test_raw_http_call_without_rescue_counts(tmp_path: Path) -> None:
    svc = (
        "class S\n  def go(b)\n"
        "    Net::HTTP.post(URI('https://openrouter.ai/api/v1/chat/completions'), b)\n  end\nend\n"
    )
    hits = list(e.check_no_rescue(ctx_for(tmp_path, {"app/services/s.rb": svc})))
    assert places(hits) == [("app/services/s.rb", 3)]


def test_no_sends_means_no_rescue_findings(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path, {"app/services/s.rb": "class S\n  def go\n    1\n  end\nend\n"})
    assert [r for r in all_hits(ctx) if r != "errors.no_key_preflight"] == []


def test_key_preflight_forms(tmp_path: Path) -> None:
    assert [h.rule for h in e.check_no_key_preflight(ctx_for(tmp_path / "none", {}))] == ["errors.no_key_preflight"]
    default = INIT.replace('ENV["OPENROUTER_API_KEY"]', 'ENV.fetch("OPENROUTER_API_KEY", "")')
    ctx = ctx_for(tmp_path / "default", {"config/initializers/ruby_llm.rb": default})
    assert len(list(e.check_no_key_preflight(ctx))) == 1  # a default hides a missing key
    forms = [
        'raise "OPENROUTER_API_KEY is not set" if ENV["OPENROUTER_API_KEY"].blank?\n',
        'KEY = ENV["OPENROUTER_API_KEY"].presence || raise(KeyError, "set it")\n',
        "class Llm\n  def configured?\n    ENV['OPENROUTER_API_KEY'].present?\n  end\nend\n",
        'K = ENV.fetch("OPENROUTER_API_KEY") { raise "missing key" }\n',
    ]
    for i, code in enumerate(forms):
        ctx = ctx_for(tmp_path / f"f{i}", {"config/initializers/key.rb": code})
        assert list(e.check_no_key_preflight(ctx)) == [], code


# ---------------------------------------------------------------- silent empty reply (two styles + guards)

_SILENT_LOOP = (
    "class Relay\n  def initialize(turns) = @turns = turns\n\n  def call\n    c = RubyLLM.chat\n"
    "    @turns.each_with_index do |t, i|\n      if i == @turns.size - 1 && t[:role] == 'user'\n"
    "        return c.ask(t[:content]).content\n      end\n      c.add_message(t)\n    end\n    ''\n  end\nend\n"
)
_SILENT_CASE = (
    "module Bots\n  class Answer\n    def reply(history)\n      llm = RubyLLM.chat\n"
    "      case history.last&.fetch(:who)\n      when :human then llm.ask(history.last[:text]).content\n"
    "      else\n        return nil\n      end\n    end\n  end\nend\n"
)
_BLANK_GUARD = (
    "class Ok\n  def call(text)\n    return '' if text.blank?\n    chat = RubyLLM.chat\n"
    "    if text.length > 2\n      chat.ask(text).content\n    else\n"
    "      chat.ask(text * 2).content\n    end\n  end\nend\n"
)


@pytest.mark.parametrize(("source", "line"), [(_SILENT_LOOP, 12), (_SILENT_CASE, 8)], ids=["loop-if", "case-else"])
def test_conditional_send_with_silent_empty_answer_is_found(tmp_path: Path, source: str, line: int) -> None:
    ctx = ctx_for(tmp_path, {"app/services/x.rb": source})
    hits = list(e.check_silent_empty_reply(ctx))
    assert [(ev.path, ev.line) for h in hits for ev in h.evidence] == [("app/services/x.rb", line)]


def test_blank_input_guard_and_unconditional_sends_are_not_silent_replies(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path, {"app/services/x.rb": _BLANK_GUARD})
    assert list(e.check_silent_empty_reply(ctx)) == []


def test_exception_text_shown_flashed_returned_as_the_reply_but_not_logged_or_reraised(tmp_path: Path) -> None:
    svc = (
        "class S\n"  # 1
        "  def go(m)\n"  # 2
        "    RubyLLM.chat.ask(m).content\n"  # 3
        "  rescue RubyLLM::RateLimitError => e\n"  # 4
        "    raise Busy, e.message\n"  # 5: re-raised, the catcher decides
        "  rescue RubyLLM::Error => e\n"  # 6
        '    Rails.logger.error("llm: #{e.message}")\n'  # 7: logged, not shown
        '    "Sorry: #{e.message}"\n'  # 8: the reply the user reads
        "  end\n"
        "end\n"
    )
    ctx = ctx_for(tmp_path, {"app/services/s.rb": svc})
    assert places(list(e.check_exception_message_shown(ctx))) == [("app/services/s.rb", 8)]
    friendly = svc.replace('    "Sorry: #{e.message}"\n', '    "The assistant is unavailable."\n')
    assert list(e.check_exception_message_shown(ctx_for(tmp_path / "ok", {"app/services/s.rb": friendly}))) == []


def test_exception_text_in_a_result_field_counts_only_where_the_field_is_displayed(tmp_path: Path) -> None:
    svc = (
        "class S\n"
        "  Result = Struct.new(:text, :error, keyword_init: true)\n"
        "  def go(m)\n"
        "    Result.new(text: RubyLLM.chat.ask(m).content)\n"
        "  rescue RubyLLM::Error => e\n"
        '    Result.new(text: "Unavailable, try again.", error: e.message)\n'  # 6
        "  end\n"
        "end\n"
    )
    flag_only = "<p class=\"<%= r.error.present? ? 'red' : '' %>\"><%= r.text %></p>\n"
    ctx = ctx_for(tmp_path, {"app/services/s.rb": svc, "app/views/chats/_r.html.erb": flag_only})
    assert list(e.check_exception_message_shown(ctx)) == []  # the error field only picks a colour
    shown = "<p><%= r.text %></p><small><%= r.error %></small>\n"
    ctx = ctx_for(tmp_path / "shown", {"app/services/s.rb": svc, "app/views/chats/_r.html.erb": shown})
    assert places(list(e.check_exception_message_shown(ctx))) == [("app/services/s.rb", 6)]


# ---------------------------------------------------------------- failures outside RubyLLM::Error


def _escapes(tmp_path: Path, service: str, init: str = INIT) -> list[str]:
    files = {"app/services/reply.rb": service, "config/initializers/ruby_llm.rb": init}
    hits = list(e.check_escaping_failures(ctx_for(tmp_path, files)))
    assert all(h.rule == "errors.failure_escapes_rescue" for h in hits)
    return sorted(h.key for h in hits)


def _service(rescued: str, build_outside: bool = False) -> str:
    if build_outside:
        return (
            "class Reply\n  def initialize\n    @chat = RubyLLM.chat\n  end\n\n"
            f'  def call(text)\n    @chat.ask(text).content\n  rescue {rescued} => e\n    "Sorry: unavailable"\n'
            "  end\nend\n"
        )
    return (
        "class Reply\n  def call(text)\n    RubyLLM.chat.ask(text).content\n"
        f'  rescue {rescued} => e\n    "Sorry: unavailable"\n  end\nend\n'
    )


def test_gem_family_rescue_lets_the_missing_key_and_network_failures_through(tmp_path: Path) -> None:
    assert _escapes(tmp_path / "a", _service("RubyLLM::Error")) == ["a missing API key", "a network failure"]
    assert _escapes(tmp_path / "b", _service("RubyLLM::RateLimitError, RubyLLM::ServerError")) == [
        "a missing API key",
        "a network failure",
    ]


def test_a_key_preflight_makes_the_configuration_error_moot(tmp_path: Path) -> None:
    strict = INIT.replace('ENV["OPENROUTER_API_KEY"]', 'ENV.fetch("OPENROUTER_API_KEY")')
    assert _escapes(tmp_path, _service("RubyLLM::Error"), strict) == ["a network failure"]


@pytest.mark.parametrize(
    "rescued",
    [
        "StandardError",
        "RubyLLM::ConfigurationError, RubyLLM::Error, Faraday::Error",
        "RubyLLM::Error, ::Faraday::Error, RubyLLM::ConfigurationError",
        "*LLM_FAILURES",  # a list the audit cannot see: benefit of the doubt
    ],
)
def test_rescues_that_catch_both_are_silent(tmp_path: Path, rescued: str) -> None:
    assert _escapes(tmp_path, _service(rescued)) == []


def test_a_rescued_list_constant_is_expanded(tmp_path: Path) -> None:
    listed = _service("*FAILURES").replace(
        "class Reply\n", "class Reply\n  FAILURES = [RubyLLM::Error, Faraday::Error].freeze\n"
    )
    assert _escapes(tmp_path, listed) == ["a missing API key"]


def test_a_chat_built_outside_the_rescue_raises_its_configuration_error_there(tmp_path: Path) -> None:
    # StandardError around the send catches everything the send raises, but the chat (and the key
    # check of its provider) is built in initialize, outside any rescue
    assert _escapes(tmp_path, _service("StandardError", build_outside=True)) == ["a missing API key"]


def test_nothing_rescued_is_left_to_no_rescue(tmp_path: Path) -> None:
    bare = "class Reply\n  def call(text)\n    RubyLLM.chat.ask(text).content\n  end\nend\n"
    assert _escapes(tmp_path, bare) == []


def test_the_gem_raises_these_outside_its_error_family() -> None:
    """The facts _escapes.py relies on, read from the real 1.14.1 and 1.16.0 sources."""
    from tests.conftest import REAL_RUBY_LLM, REAL_RUBY_LLM_116, need_real_gem

    from shipbench.audit.ruby.api_index import build_index

    need_real_gem(REAL_RUBY_LLM, REAL_RUBY_LLM_116)
    for root in (REAL_RUBY_LLM, REAL_RUBY_LLM_116):
        classes = build_index(root).classes
        assert classes["RubyLLM::ConfigurationError"].superclass == "StandardError"
        assert classes["RubyLLM::RateLimitError"].superclass == "RubyLLM::Error"
        provider = (root / "lib" / "ruby_llm" / "provider.rb").read_text(encoding="utf-8")
        assert "raise ConfigurationError" in provider and "ensure_configured!" in provider
        connection = (root / "lib" / "ruby_llm" / "connection.rb").read_text(encoding="utf-8")
        assert "rescue Faraday" not in connection  # the retry middleware re-raises Faraday's own errors


def test_app_error_classes_follow_inheritance_not_names(tmp_path: Path) -> None:
    from shipbench.tasks.rails_chat.checks._rescue import rescue_index

    errors = (
        "module Llm\n  class Base < StandardError; end\n  class Timeout < Base; end\n"
        "  class Deep < Timeout; end\n  Busy = Class.new(Base)\n  class NotAnError < Struct; end\n"
        "  class Store < ActiveRecord::RecordInvalid; end\nend\n"
    )
    ctx = ctx_for(tmp_path, {"app/services/llm.rb": errors})
    found = rescue_index(ctx).app_errors
    assert {"Base", "Timeout", "Deep", "Busy"} <= found
    assert "NotAnError" not in found and "Store" not in found
