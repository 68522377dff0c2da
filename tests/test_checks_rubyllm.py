"""rubyllm checks: each rule fires on a minimal bad project at the right line and stays silent on a
good one (GPT-5.x-like service: injected RubyLLM, instructions, history replay, Sonnet slug)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from tests.conftest import make_context, write_tree

from shipbench.audit.checks import AuditContext, Hit
from shipbench.audit.models import ApiCall
from shipbench.audit.ruby.verify_types import ApiReport, GemSource
from shipbench.tasks.rails_chat.checks import rubyllm as r
from shipbench.tasks.rails_chat.checks.rubyllm import CHECKS

Check = Callable[[AuditContext], Iterable[Hit]]

GEMFILE = 'source "https://rubygems.org"\ngem "rails"\ngem "ruby_llm"\n'
INITIALIZER = """RubyLLM.configure do |config|
  config.openrouter_api_key = ENV.fetch("OPENROUTER_API_KEY")
end
"""
GOOD_SERVICE = """class ChatService
  MODEL = ENV.fetch("OPENROUTER_MODEL", "anthropic/claude-sonnet-4.5")
  SYSTEM_PROMPT = "You are a helpful assistant."

  def initialize(client: RubyLLM)
    @client = client
  end

  def reply(history, prompt)
    chat = @client.chat(model: MODEL, provider: :openrouter, assume_model_exists: true)
    chat.with_instructions(SYSTEM_PROMPT)
    history.each { |m| chat.add_message(role: m[:role], content: m[:content]) }
    response = chat.ask(prompt)
    response.content.to_s.strip
  end
end
"""


def ctx_for(tmp_path: Path, files: dict[str, str]) -> AuditContext:
    base = {"Gemfile": GEMFILE, "config/application.rb": "", "config/initializers/ruby_llm.rb": INITIALIZER}
    return make_context(write_tree(tmp_path / "app", {**base, **files}))


def run(check: Check, ctx: AuditContext) -> list[Hit]:
    return list(check(ctx))


def places(hits: list[Hit]) -> list[tuple[str, int]]:
    return sorted((e.path, e.line) for h in hits for e in h.evidence)


def test_good_project_is_silent_on_every_rule(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path, {"app/services/chat_service.rb": GOOD_SERVICE})
    hits = [h for check in CHECKS for h in check(ctx)]
    assert hits == []


# ---------------------------------------------------------------- entry point and raw HTTP


def test_no_entry_point_fires_without_any_chat(tmp_path: Path) -> None:
    svc = "class Svc\n  def go(x)\n    RubyLLM::Client.new.chat(messages: [x])\n  end\nend\n"
    ctx = ctx_for(tmp_path, {"app/services/svc.rb": svc})
    hits = run(r.check_no_entry_point, ctx)
    assert [h.rule for h in hits] == ["rubyllm.no_entry_point"]
    assert hits[0].evidence[0].line == 0


def test_entry_point_through_context_and_chat_new(tmp_path: Path) -> None:
    svc = "class Svc\n  def go\n    RubyLLM.context { |c| c.request_timeout = 5 }.chat\n  end\nend\n"
    assert run(r.check_no_entry_point, ctx_for(tmp_path / "a", {"app/services/svc.rb": svc})) == []
    svc2 = "class Svc\n  def go\n    RubyLLM::Chat.new(model: 'x')\n  end\nend\n"
    assert run(r.check_no_entry_point, ctx_for(tmp_path / "b", {"app/services/svc.rb": svc2})) == []


def test_entry_point_through_a_helper_returning_a_context_or_the_module(tmp_path: Path) -> None:
    svc = (
        "class Svc\n"  # 1
        "  def go(text)\n"  # 2
        "    conversation = llm.chat(model: 'x')\n"  # 3
        "    conversation.ask(text).content\n"  # 4
        "  end\n"
        "\n"
        "  private\n"
        "\n"
        "  def llm\n"
        "    RubyLLM.context { |config| config.request_timeout = 60 }\n"
        "  end\n"
        "end\n"
    )
    ctx = ctx_for(tmp_path / "a", {"app/services/svc.rb": svc})
    assert run(r.check_no_entry_point, ctx) == []
    assert run(r.check_no_send, ctx) == []
    module_helper = svc.replace("RubyLLM.context { |config| config.request_timeout = 60 }", "::RubyLLM")
    assert run(r.check_no_entry_point, ctx_for(tmp_path / "b", {"app/services/svc.rb": module_helper})) == []


def test_raw_http_bypass_net_http_and_url(tmp_path: Path) -> None:
    svc = (
        "require 'net/http'\n"  # 1
        "class Llm\n"  # 2
        '  URL = URI("https://openrouter.ai/api/v1/chat/completions")\n'  # 3
        "  def call(body)\n"  # 4
        "    Net::HTTP.post(URL, body.to_json, 'Authorization' => \"Bearer #{ENV['OPENROUTER_API_KEY']}\")\n"
        "  rescue Faraday::Error\n"  # 6: a rescued constant is not a use
        "    nil\n"
        "  end\n"
        "end\n"
    )
    hits = run(r.check_raw_http_bypass, ctx_for(tmp_path, {"app/services/llm.rb": svc}))
    assert len(hits) == 1
    assert places(hits) == [("app/services/llm.rb", 3), ("app/services/llm.rb", 5)]
    assert "Net::HTTP" in hits[0].message


def test_raw_http_sdk_client_fires_even_with_rubyllm(tmp_path: Path) -> None:
    svc = GOOD_SERVICE + "class Other\n  def c\n    OpenRouter::Client.new\n  end\nend\n"
    hits = run(r.check_raw_http_bypass, ctx_for(tmp_path, {"app/services/chat_service.rb": svc}))
    assert places(hits) == [("app/services/chat_service.rb", 19)]


def test_raw_http_ignores_unrelated_http_and_rubyllm_api_base(tmp_path: Path) -> None:
    svc = "class Weather\n  def get\n    Net::HTTP.get(URI('https://weather.example/today'))\n  end\nend\n"
    init = INITIALIZER.replace("end\n", '  config.openrouter_api_base = "https://openrouter.ai/api/v1"\nend\n')
    ctx = ctx_for(tmp_path, {"app/services/weather.rb": svc, "config/initializers/ruby_llm.rb": init})
    assert run(r.check_raw_http_bypass, ctx) == []


def test_raw_http_in_javascript(tmp_path: Path) -> None:
    js = "fetch('https://openrouter.ai/api/v1/chat/completions', {method: 'POST'})\n"
    hits = run(r.check_raw_http_bypass, ctx_for(tmp_path, {"app/javascript/controllers/chat.js": js}))
    assert places(hits) == [("app/javascript/controllers/chat.js", 1)]


# ---------------------------------------------------------------- API verdicts


def _api_ctx(tmp_path: Path, calls: list[ApiCall], source_path: str | None = "x") -> AuditContext:
    svc = "class S\n  def go(c)\n    r = c.ask('hi')\n    r.text\n  end\nend\n"
    ctx = ctx_for(tmp_path, {"app/services/s.rb": svc})
    ctx.api = ApiReport(
        calls=calls,
        sources=[GemSource(gem="ruby_llm", locked_version="1.14.1", used_version="1.14.1", path=source_path)],
    )
    return ctx


def test_missing_api_one_hit_per_call_with_all_places_and_suggestion(tmp_path: Path) -> None:
    calls = [
        ApiCall(path="app/services/s.rb", line=4, call="Message#text", verdict="missing",
                detail="does not exist on Message", suggestions=["content"]),
        ApiCall(path="app/services/s.rb", line=3, call="Message#text", verdict="missing",
                detail="does not exist on Message", suggestions=["content"]),
        ApiCall(path="test/s_test.rb", line=1, call="RubyLLM::Client", verdict="missing", in_test=True),
        ApiCall(path="app/services/s.rb", line=3, call="Chat#ask", verdict="ok"),
    ]  # fmt: skip
    hits = run(r.check_missing_api, _api_ctx(tmp_path, calls))
    assert [h.key for h in hits] == ["Message"]  # one invented idiom per class
    assert places(hits) == [("app/services/s.rb", 3), ("app/services/s.rb", 4)]
    assert "does not exist on Message" in hits[0].message and "`content`" in hits[0].message
    assert hits[0].evidence[0].snippet  # the real source line


def test_bad_arguments_and_unverified_report(tmp_path: Path) -> None:
    calls = [
        ApiCall(path="app/services/s.rb", line=3, call="RubyLLM.chat", verdict="bad_arguments",
                detail="unknown keyword: messages"),
    ]  # fmt: skip
    hits = run(r.check_bad_arguments, _api_ctx(tmp_path / "a", calls))
    assert [(h.rule, h.key) for h in hits] == [("rubyllm.bad_entry_arguments", "RubyLLM.chat")]
    assert "unknown keyword: messages" in hits[0].message
    unverified = _api_ctx(tmp_path / "b", calls, source_path=None)
    assert run(r.check_bad_arguments, unverified) == []
    assert run(r.check_missing_api, unverified) == []


# ---------------------------------------------------------------- send, reply accessor


def test_no_send_fires_at_entry_line(tmp_path: Path) -> None:
    svc = (
        "class S\n  def initialize\n    @chat = RubyLLM.chat(model: 'x')\n  end\n\n"
        "  def go(m)\n    @chat.send_message(m)\n  end\nend\n"
    )
    hits = run(r.check_no_send, ctx_for(tmp_path, {"app/services/s.rb": svc}))
    assert places(hits) == [("app/services/s.rb", 3)]


def test_send_found_through_memoised_reader_and_fluent_chain(tmp_path: Path) -> None:
    svc = (
        "class S\n"
        "  def llm = @llm ||= RubyLLM.chat.with_temperature(0.2)\n"
        "  def go(m)\n"
        "    llm.complete { |chunk| print chunk.content }\n"
        "  end\n"
        "end\n"
    )
    assert run(r.check_no_send, ctx_for(tmp_path, {"app/services/s.rb": svc})) == []


def test_no_response_accessor_when_reply_returned_raw(tmp_path: Path) -> None:
    svc = (
        "class S\n"  # 1
        "  def go(m)\n"  # 2
        "    chat = RubyLLM.chat\n"  # 3
        "    reply = chat.ask(m)\n"  # 4
        '    { role: "assistant", content: reply }\n'  # 5
        "  end\n"
        "end\n"
    )
    hits = run(r.check_no_response_accessor, ctx_for(tmp_path, {"app/services/s.rb": svc}))
    assert places(hits) == [("app/services/s.rb", 4)]
    fixed = svc.replace("content: reply }", "content: reply.content }")
    assert run(r.check_no_response_accessor, ctx_for(tmp_path / "ok", {"app/services/s.rb": fixed})) == []


def test_no_response_accessor_direct_return(tmp_path: Path) -> None:
    svc = "class S\n  def go(m)\n    RubyLLM.chat.ask(m)\n  end\nend\n"
    hits = run(r.check_no_response_accessor, ctx_for(tmp_path, {"app/services/s.rb": svc}))
    assert places(hits) == [("app/services/s.rb", 3)]


# ---------------------------------------------------------------- multi-turn


def test_no_multi_turn_fresh_chat_per_request(tmp_path: Path) -> None:
    ctrl = (
        "class ChatsController < ApplicationController\n"  # 1
        "  def create\n"  # 2
        "    chat = RubyLLM.chat(model: 'anthropic/claude-sonnet-4')\n"  # 3
        "    @reply = chat.ask(params[:message]).content\n"  # 4
        "  end\n"
        "end\n"
    )
    hits = run(r.check_no_multi_turn, ctx_for(tmp_path, {"app/controllers/chats_controller.rb": ctrl}))
    # the fresh chat, then the send that carries no history
    assert places(hits) == [("app/controllers/chats_controller.rb", 3), ("app/controllers/chats_controller.rb", 4)]


def test_a_prompt_folding_request_input_or_constants_is_not_multi_turn(tmp_path: Path) -> None:
    svc = (
        "class Brief\n"  # 1
        "  HINTS = ['be short', 'be kind']\n"  # 2
        "  def answer(note, tags)\n"  # 3
        "    lines = note.lines.map(&:strip)\n"  # 4
        '    prompt = (HINTS + tags.map { |t| "topic: #{t}" } + lines).join("\\n")\n'  # 5
        "    RubyLLM.chat.ask(prompt).content\n"  # 6
        "  end\n"
        "end\n"
    )
    ctrl = (
        "class BriefsController < ApplicationController\n"
        "  def create\n    Brief.new.answer(params[:note], params[:tags])\n  end\nend\n"
    )
    files = {"app/models/brief.rb": svc, "app/controllers/briefs_controller.rb": ctrl}
    hits = run(r.check_no_multi_turn, ctx_for(tmp_path, files))
    assert [h.rule for h in hits] == ["rubyllm.no_multi_turn"]
    assert ("app/models/brief.rb", 5) in places(hits)  # the fold shown as what is not history
    transcript = svc.replace('tags.map { |t| "topic: #{t}" }', 'tags.map { |m| "#{m[:role]}: #{m[:content]}" }')
    assert run(r.check_no_multi_turn, ctx_for(tmp_path / "roles", {**files, "app/models/brief.rb": transcript})) == []


def test_persistent_chat_in_singleton_store_is_multi_turn(tmp_path: Path) -> None:
    session = (
        "class ChatSession\n"
        "  def initialize\n"
        "    @llm_chat = RubyLLM::Chat.new(model: MODEL, provider: :openrouter)\n"
        "  end\n"
        "  def ask(content, &)\n"
        "    @llm_chat.ask(content, &).content\n"
        "  end\n"
        "end\n"
    )
    store = (
        "class ChatStore\n  include Singleton\n  def fetch(id)\n"
        "    (@sessions ||= {})[id] ||= ChatSession.new\n  end\nend\n"
    )
    files = {"app/models/chat_session.rb": session, "app/models/chat_store.rb": store}
    assert run(r.check_no_multi_turn, ctx_for(tmp_path, files)) == []
    # the same session class, built fresh in each request: not multi-turn
    ctrl = (
        "class ChatsController < ApplicationController\n  def create\n    ChatSession.new.ask(params[:m])\n  end\nend\n"
    )
    files2 = {"app/models/chat_session.rb": session, "app/controllers/chats_controller.rb": ctrl}
    hits = run(r.check_no_multi_turn, ctx_for(tmp_path / "fresh", files2))
    assert places(hits) == [("app/models/chat_session.rb", 3), ("app/models/chat_session.rb", 6)]


# ---------------------------------------------------------------- system prompt, model, provider


def test_no_system_prompt_and_system_role_message(tmp_path: Path) -> None:
    svc = "class S\n  def go(m)\n    RubyLLM.chat.ask(m).content\n  end\nend\n"
    hits = run(r.check_no_system_prompt, ctx_for(tmp_path, {"app/services/s.rb": svc}))
    assert [h.rule for h in hits] == ["rubyllm.no_system_prompt"]
    with_role = svc.replace(
        "RubyLLM.chat.ask", "c = RubyLLM.chat\n    c.add_message(role: :system, content: 'x')\n    c.ask"
    )
    assert run(r.check_no_system_prompt, ctx_for(tmp_path / "ok", {"app/services/s.rb": with_role})) == []


def test_model_slug_without_prefix_fires_at_constant_use(tmp_path: Path) -> None:
    svc = (
        "class S\n"  # 1
        "  MODEL = 'claude-sonnet-4'\n"  # 2
        "  def go(m)\n"  # 3
        "    RubyLLM.chat(model: MODEL).ask(m).content\n"  # 4
        "  end\n"
        "end\n"
    )
    hits = run(r.check_model_not_current_sonnet, ctx_for(tmp_path, {"app/services/s.rb": svc}))
    assert len(hits) == 1 and '"claude-sonnet-4"' in hits[0].message
    assert places(hits) == [("app/services/s.rb", 2), ("app/services/s.rb", 4)]


def test_model_slugs_from_env_default_default_model_and_compose(tmp_path: Path) -> None:
    init = INITIALIZER.replace("end\n", '  config.default_model = ENV.fetch("LLM_MODEL") { "gpt-4o" }\nend\n')
    hits = run(r.check_model_not_current_sonnet, ctx_for(tmp_path, {"config/initializers/ruby_llm.rb": init}))
    assert places(hits) == [("config/initializers/ruby_llm.rb", 3)] and "gpt-4o" in hits[0].message
    compose = "services:\n  web:\n    environment:\n      - OPENROUTER_MODEL=anthropic/claude-sonnet-4.6\n"
    ok = ctx_for(tmp_path / "ok", {"docker-compose.yml": compose})
    assert run(r.check_model_not_current_sonnet, ok) == []


def test_no_model_anywhere_fires_absent(tmp_path: Path) -> None:
    svc = "class S\n  def go(m)\n    RubyLLM.chat.ask(m).content\n  end\nend\n"
    hits = run(r.check_model_not_current_sonnet, ctx_for(tmp_path, {"app/services/s.rb": svc}))
    assert len(hits) == 1 and hits[0].evidence[0].line == 0


def test_openrouter_not_configured(tmp_path: Path) -> None:
    init = 'RubyLLM.configure do |config|\n  config.openai_api_key = ENV["OPENAI_API_KEY"]\nend\n'
    hits = run(r.check_openrouter_not_configured, ctx_for(tmp_path, {"config/initializers/ruby_llm.rb": init}))
    assert [h.rule for h in hits] == ["rubyllm.openrouter_not_configured"]
    svc = "class S\n  def go\n    RubyLLM.chat(model: 'm', provider: :anthropic)\n  end\nend\n"
    hits = run(r.check_openrouter_not_configured, ctx_for(tmp_path / "p", {"app/services/s.rb": svc}))
    assert places(hits) == [("app/services/s.rb", 3)]


def test_invented_client_send_with_hash_digging_has_no_response_accessor(tmp_path: Path) -> None:
    svc = (
        "class Completion\n"  # 1
        "  def initialize\n"  # 2
        "    @client = RubyLLM::Client.new(api_key: ENV['OPENROUTER_API_KEY'])\n"  # 3
        "  end\n"  # 4
        "  def call(messages)\n"  # 5
        "    response = @client.chat(model: 'm', messages: messages)\n"  # 6
        '    response.dig("choices", 0, "message", "content")\n'  # 7
        "  end\n"
        "end\n"
    )
    ctx = ctx_for(tmp_path, {"app/services/completion.rb": svc})
    assert [h.rule for h in r.check_no_entry_point(ctx)] == ["rubyllm.no_entry_point"]
    assert places(run(r.check_no_response_accessor, ctx)) == [("app/services/completion.rb", 6)]


def test_messages_keyword_on_entry_is_no_replay_but_not_charged_twice(tmp_path: Path) -> None:
    svc = (
        "class G\n  def respond(history, text)\n"
        "    chat = RubyLLM.chat(model: 'm', messages: history)\n"
        "    chat.ask(text).content\n  end\nend\n"
    )
    ctx = ctx_for(tmp_path, {"app/services/g.rb": svc})
    assert run(r.check_no_multi_turn, ctx) == []  # the rejected entry call carries the defect
    assert ctx.derived["multi_turn"] is False  # but it is not multi-turn


# ---------------------------------------------------------------- core path (severity trigger), per hit

_STRAIGHT = "class Reply\n  def call(t)\n    c = RubyLLM.chat\n    c.user(t)\n    c.ask(t).content\n  end\nend\n"
_REPLAY_NO_HISTORY = (
    "module Bot\n  class Turn\n    def initialize\n      @past = []\n    end\n\n"
    "    def run(text)\n      llm = RubyLLM.chat\n      @past.each { |m| llm.user(m) }\n      llm.ask(text).content\n"
    "    end\n  end\nend\n"
)
_IN_RESCUE = (
    "class Answer\n  def go(q)\n    RubyLLM.chat.ask(q).content\n  rescue RubyLLM::Error\n"
    "    RubyLLM.chat.user(q)\n  end\nend\n"
)


@pytest.mark.parametrize(
    ("source", "line", "core"),
    [(_STRAIGHT, 4, True), (_REPLAY_NO_HISTORY, 9, False), (_IN_RESCUE, 5, False)],
    ids=["straight-line", "replay-loop-over-discarded-history", "inside-rescue"],
)
def test_missing_call_is_tagged_core_path_only_when_every_turn_runs_it(
    tmp_path: Path, source: str, line: int, core: bool
) -> None:
    ctx = ctx_for(tmp_path, {"app/lib/x.rb": source})
    ctx.api = ApiReport(
        calls=[ApiCall(path="app/lib/x.rb", line=line, call="Chat#user", verdict="missing")],
        sources=[GemSource(gem="ruby_llm", locked_version="1.14.1", used_version="1.14.1", path="x")],
    )
    hits = run(r.check_missing_api, ctx)
    assert [h.rule for h in hits] == ["rubyllm.missing_api"]
    assert ("core_path" in hits[0].tags) is core


# ---------------------------------------------------------------- injected entry points (no false "never used")


@pytest.mark.parametrize(
    "source",
    [
        # the chat class injected as a keyword default, instantiated through an ivar
        "class Turn\n  def initialize(log, chat_class: RubyLLM::Chat)\n    @klass = chat_class\n  end\n\n"
        "  def go(q)\n    c = @klass.new(model: 'm')\n    c.ask(q).content\n  end\nend\n",
        # the chat class as a positional default, used directly
        "module Svc\n  class Reply\n    def call(q, factory = ::RubyLLM::Chat)\n"
        "      factory.new.ask(q).content\n    end\n  end\nend\n",
        # the module as a class_attribute default, reached through self.class
        "class Answer\n  class_attribute :llm, default: RubyLLM\n\n"
        "  def go(q)\n    self.class.llm.chat(model: 'm').ask(q).content\n  end\nend\n",
        # the module as a cattr_accessor default, called bare
        "class Bot\n  cattr_accessor :backend, default: RubyLLM\n  def go(q) = backend.chat.ask(q).content\nend\n",
    ],
    ids=["kwarg-chat-class", "positional-chat-class", "class_attribute-module", "cattr-module"],
)
def test_injected_chat_factories_are_entry_points(tmp_path: Path, source: str) -> None:
    ctx = ctx_for(tmp_path, {"app/services/x.rb": source})
    assert run(r.check_no_entry_point, ctx) == []
    assert run(r.check_no_send, ctx) == []
