"""Persistence dimension: strategy classification and rules, on minimal projects written inline."""

from __future__ import annotations

from pathlib import Path

from shipbench.audit.checks import AuditContext, Hit
from shipbench.audit.engine import audit_project
from shipbench.audit.facts import extract_facts
from shipbench.audit.files import ProjectFiles
from shipbench.tasks.pack import load_task
from shipbench.tasks.rails_chat.checks import persistence

BASE = {
    "Gemfile": 'source "https://rubygems.org"\ngem "rails"\ngem "ruby_llm"\n',
    "config/application.rb": "module Chat\n  class Application < Rails::Application\n  end\nend\n",
}

SERVICE = """\
class ChatService
  def initialize(history)
    @history = history
  end

  def call(text)
    chat = RubyLLM.chat(model: "anthropic/claude-sonnet-4.6", provider: :openrouter)
    @history.each { |m| chat.add_message(role: m["role"], content: m["content"]) }
    chat.ask(text).content
  end
end
"""


def make_ctx(tmp_path: Path, files: dict[str, str]) -> AuditContext:
    for rel, text in {**BASE, **files}.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    project = ProjectFiles.scan(tmp_path)
    return AuditContext(
        project_root=tmp_path, files=project, task=load_task("rails-chat"), facts=extract_facts(project)
    )


def run(ctx: AuditContext) -> list[Hit]:
    return [hit for check in persistence.CHECKS for hit in check(ctx)]


def rules(hits: list[Hit]) -> set[str]:
    return {h.rule for h in hits}


def only(hits: list[Hit], rule: str) -> Hit:
    found = [h for h in hits if h.rule == rule]
    assert len(found) == 1, hits
    return found[0]


SESSION_CAPPED = """\
class MessagesController < ApplicationController
  def create
    history = session[:messages] || []
    reply = ChatService.new(history).call(params[:content])
    history += [{ "role" => "user", "content" => params[:content] }, { "role" => "assistant", "c" => reply }]
    session[:messages] = history.last(20)
  end
end
"""

SESSION_UNBOUNDED = """\
class MessagesController < ApplicationController
  def create
    session[:messages] ||= []
    reply = ChatService.new(session[:messages]).call(params[:content])
    session[:messages] << { "role" => "user", "content" => params[:content] }
    session[:messages] << { "role" => "assistant", "content" => reply }
  end
end
"""


def test_session_cookie_with_cap_is_classified_and_not_unbounded(tmp_path: Path) -> None:
    ctx = make_ctx(
        tmp_path,
        {"app/services/chat_service.rb": SERVICE, "app/controllers/messages_controller.rb": SESSION_CAPPED},
    )
    hits = run(ctx)
    assert ctx.derived["persistence"] == "session_cookie"
    assert ctx.derived["persistence_evidence"] == "app/controllers/messages_controller.rb:6"
    # a count cap is a cap (no unbounded_history), but 20 LLM replies are not bounded in bytes
    assert rules(hits) == {"persistence.cookie_size_risk"}
    assert [e.line for e in only(hits, "persistence.cookie_size_risk").evidence] == [6]


def test_session_cookie_capped_and_truncated_on_write_is_sound(tmp_path: Path) -> None:
    truncated = SESSION_CAPPED.replace('"c" => reply }', '"c" => reply.truncate(500) }')
    ctx = make_ctx(
        tmp_path, {"app/services/chat_service.rb": SERVICE, "app/controllers/messages_controller.rb": truncated}
    )
    assert run(ctx) == []


def test_truncation_away_from_the_store_write_bounds_nothing(tmp_path: Path) -> None:
    helper = "module TitleHelper\n  def title_for(text)\n    text.truncate(40)\n  end\nend\n"
    ctx = make_ctx(
        tmp_path,
        {
            "app/services/chat_service.rb": SERVICE,
            "app/controllers/messages_controller.rb": SESSION_CAPPED,
            "app/helpers/title_helper.rb": helper,
        },
    )
    assert rules(run(ctx)) == {"persistence.cookie_size_risk"}


def test_session_cookie_without_cap_is_unbounded(tmp_path: Path) -> None:
    ctx = make_ctx(
        tmp_path,
        {
            "app/services/chat_service.rb": SERVICE,
            "app/controllers/messages_controller.rb": SESSION_UNBOUNDED,
        },
    )
    hits = run(ctx)
    assert ctx.derived["persistence"] == "session_cookie"
    hit = only(hits, "persistence.unbounded_history")
    assert rules(hits) == {"persistence.unbounded_history"}
    assert [e.line for e in hit.evidence] == [3, 5, 6]
    assert hit.evidence[1].path == "app/controllers/messages_controller.rb"
    assert "<<" in hit.evidence[1].snippet


def test_cap_in_a_referenced_class_with_max_constant_counts(tmp_path: Path) -> None:
    store = """\
class Conversation
  MAX_TURNS = 24

  def initialize(session)
    @session = session
  end

  def add(role, content)
    list = (@session[:conversation] ||= [])
    list << { "role" => role, "content" => content }
    list.shift while list.size > MAX_TURNS
  end
end
"""
    controller = """\
class ChatsController < ApplicationController
  def create
    convo = Conversation.new(session)
    convo.add("user", params[:content])
    ChatService.new([]).call(params[:content])
  end
end
"""
    ctx = make_ctx(
        tmp_path,
        {
            "app/services/chat_service.rb": SERVICE,
            "app/models/conversation.rb": store,
            "app/controllers/chats_controller.rb": controller,
        },
    )
    hits = run(ctx)
    assert ctx.derived["persistence"] == "session_cookie"
    assert ctx.derived["persistence_evidence"] == "app/models/conversation.rb:9"
    assert "persistence.unbounded_history" not in rules(hits)


def test_server_side_session_store_is_not_a_cookie_overflow(tmp_path: Path) -> None:
    ctx = make_ctx(
        tmp_path,
        {
            "app/services/chat_service.rb": SERVICE,
            "app/controllers/messages_controller.rb": SESSION_UNBOUNDED,
            "config/initializers/session_store.rb": "Rails.application.config.session_store :cache_store\n",
        },
    )
    assert run(ctx) == []
    assert ctx.derived["persistence"] == "session_cookie"


def test_encrypted_cookie_write_is_session_cookie(tmp_path: Path) -> None:
    controller = """\
class ChatController < ApplicationController
  def create
    past = JSON.parse(cookies.encrypted[:history] || "[]")
    reply = ChatService.new(past).call(params[:q])
    cookies.encrypted[:history] = JSON.generate((past + [reply]).last(10))
  end
end
"""
    ctx = make_ctx(
        tmp_path,
        {"app/services/chat_service.rb": SERVICE, "app/controllers/chat_controller.rb": controller},
    )
    assert rules(run(ctx)) == {"persistence.cookie_size_risk"}  # capped by count, not by size
    assert ctx.derived["persistence"] == "session_cookie"
    assert ctx.derived["persistence_evidence"] == "app/controllers/chat_controller.rb:5"


def test_cookie_jar_handed_to_a_store_and_a_view_only_trim(tmp_path: Path) -> None:
    store = """\
class HistoryStore
  def initialize(jar)
    @cookie_jar = jar
  end

  def add(turn)
    turns = JSON.parse(@cookie_jar.encrypted[:history] || "[]")
    @cookie_jar.encrypted[:history] = JSON.generate(turns + [turn])
  end
end
"""
    controller = """\
class ChatController < ApplicationController
  def create
    store = HistoryStore.new(cookies)
    store.add(ChatService.new([]).call(params[:q]))
    @history = JSON.parse(cookies.encrypted[:history]).last(4)
  end
end
"""
    files = {
        "app/services/chat_service.rb": SERVICE,
        "app/models/history_store.rb": store,
        "app/controllers/chat_controller.rb": controller,
    }
    ctx = make_ctx(tmp_path, files)
    hits = run(ctx)
    assert ctx.derived["persistence"] == "session_cookie"
    # the controller's `.last(4)` only trims what the view shows: the stored history still grows
    hit = only(hits, "persistence.unbounded_history")
    assert [(e.path, e.line) for e in hit.evidence] == [("app/models/history_store.rb", 8)]


def test_rails_cache_store_is_fine_even_without_ttl(tmp_path: Path) -> None:
    store = """\
class ConversationStore
  def initialize(id)
    @key = "conversation:#{id}"
  end

  def messages
    Rails.cache.fetch(@key) { [] }
  end

  def save(list)
    Rails.cache.write(@key, list.last(24))
  end
end
"""
    controller = """\
class ChatsController < ApplicationController
  def create
    session[:chat_id] ||= SecureRandom.uuid
    store = ConversationStore.new(session[:chat_id])
    ChatService.new(store.messages).call(params[:content])
  end
end
"""
    ctx = make_ctx(
        tmp_path,
        {
            "app/services/chat_service.rb": SERVICE,
            "app/services/conversation_store.rb": store,
            "app/controllers/chats_controller.rb": controller,
        },
    )
    assert run(ctx) == []
    assert ctx.derived["persistence"] == "rails_cache"
    assert ctx.derived["persistence_evidence"] == "app/services/conversation_store.rb:7"


def test_singleton_store_is_flagged_at_the_include(tmp_path: Path) -> None:
    store = """\
require "singleton"

class ChatStore
  include Singleton

  def initialize
    @chats = {}
    @lock = Mutex.new
  end

  def for(id)
    @lock.synchronize { @chats[id] ||= [] }
  end
end
"""
    controller = """\
class ChatsController < ApplicationController
  def create
    history = ChatStore.instance.for(session[:chat_id])
    ChatService.new(history).call(params[:content])
  end
end
"""
    ctx = make_ctx(
        tmp_path,
        {
            "app/services/chat_service.rb": SERVICE,
            "app/models/chat_store.rb": store,
            "app/controllers/chats_controller.rb": controller,
        },
    )
    hits = run(ctx)
    assert ctx.derived["persistence"] == "singleton"
    hit = only(hits, "persistence.singleton")
    assert (hit.evidence[0].path, hit.evidence[0].line) == ("app/models/chat_store.rb", 4)
    assert rules(hits) == {"persistence.singleton"}


def test_class_level_storage_accessor_is_class_variable(tmp_path: Path) -> None:
    model = """\
class Chat
  def self.storage
    @storage ||= {}
  end

  def self.find_or_create(id)
    storage[id] ||= new
  end

  def reply(text)
    RubyLLM.chat.ask(text).content
  end
end
"""
    ctx = make_ctx(tmp_path, {"app/models/chat.rb": model})
    hits = run(ctx)
    assert ctx.derived["persistence"] == "class_variable"
    hit = only(hits, "persistence.class_variable")
    assert (hit.evidence[0].path, hit.evidence[0].line) == ("app/models/chat.rb", 3)


def test_class_variable_and_mutated_constant_are_class_level_stores(tmp_path: Path) -> None:
    cvar = """\
class ChatService
  @@conversations = Hash.new { |h, k| h[k] = [] }

  def call(id, text)
    RubyLLM.chat.ask(text)
  end
end
"""
    ctx = make_ctx(tmp_path, {"app/services/chat_service.rb": cvar})
    hit = only(run(ctx), "persistence.class_variable")
    assert hit.evidence[0].line == 2

    const = """\
module Conversations
  STORE = Concurrent::Map.new

  def self.append(id, message)
    STORE.compute_if_absent(id) { [] } << message
  end
end
"""
    ctx = make_ctx(tmp_path, {"app/services/chat_service.rb": SERVICE, "lib/conversations.rb": const})
    hit = only(run(ctx), "persistence.class_variable")
    assert (hit.evidence[0].path, hit.evidence[0].line) == ("lib/conversations.rb", 2)


def test_unmutated_empty_constant_and_instance_block_are_not_stores(tmp_path: Path) -> None:
    controller = """\
class ChatsController < ApplicationController
  DEFAULTS = {}
  before_action { @messages = [] }

  def create
    @messages = []
    ChatService.new(@messages).call(params[:content])
  end
end
"""
    ctx = make_ctx(
        tmp_path,
        {"app/services/chat_service.rb": SERVICE, "app/controllers/chats_controller.rb": controller},
    )
    hits = run(ctx)
    assert ctx.derived["persistence"] == "none"
    assert rules(hits) == {"persistence.none"}


def test_no_state_is_none_with_evidence_at_the_fresh_chat(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, {"app/services/chat_service.rb": SERVICE})
    hits = run(ctx)
    assert ctx.derived["persistence"] == "none"
    hit = only(hits, "persistence.none")
    assert (hit.evidence[0].path, hit.evidence[0].line) == ("app/services/chat_service.rb", 7)
    assert ctx.derived["persistence_evidence"] == "app/services/chat_service.rb:7"


def test_global_store_is_singleton(tmp_path: Path) -> None:
    init = "$conversations = {}\n"
    ctx = make_ctx(tmp_path, {"app/services/chat_service.rb": SERVICE, "config/initializers/store.rb": init})
    hit = only(run(ctx), "persistence.singleton")
    assert (hit.evidence[0].path, hit.evidence[0].line) == ("config/initializers/store.rb", 1)


def test_browser_history_is_client_side(tmp_path: Path) -> None:
    js = """\
import { Controller } from "@hotwired/stimulus"

export default class extends Controller {
  connect() { this.history = JSON.parse(localStorage.getItem("chat-history") || "[]") }

  async send() {
    this.history.push({ role: "user", content: this.inputTarget.value })
    const res = await fetch("/chat", { method: "POST", body: JSON.stringify({ history: this.history }) })
    localStorage.setItem("chat-history", JSON.stringify(this.history))
  }
}
"""
    controller = """\
class ChatController < ApplicationController
  def create
    render json: { reply: ChatService.new(params[:history]).call(params[:content]) }
  end
end
"""
    ctx = make_ctx(
        tmp_path,
        {
            "app/services/chat_service.rb": SERVICE,
            "app/controllers/chat_controller.rb": controller,
            "app/javascript/controllers/chat_controller.js": js,
        },
    )
    hits = run(ctx)
    assert ctx.derived["persistence"] == "client_side"
    hit = only(hits, "persistence.client_side")
    assert (hit.evidence[0].path, hit.evidence[0].line) == (
        "app/javascript/controllers/chat_controller.js",
        9,
    )


def test_hidden_history_field_is_client_side(tmp_path: Path) -> None:
    view = '<%= form_with url: "/chat" do |f| %>\n  <%= hidden_field_tag :history, @h.to_json %>\n<% end %>\n'
    ctx = make_ctx(tmp_path, {"app/services/chat_service.rb": SERVICE, "app/views/chat/index.html.erb": view})
    hit = only(run(ctx), "persistence.client_side")
    assert (hit.evidence[0].path, hit.evidence[0].line) == ("app/views/chat/index.html.erb", 2)


def test_conversation_store_wins_over_unrelated_process_state(tmp_path: Path) -> None:
    limiter = "class RateLimiter\n  @@hits = {}\nend\n"
    ctx = make_ctx(
        tmp_path,
        {
            "app/services/chat_service.rb": SERVICE,
            "app/controllers/messages_controller.rb": SESSION_CAPPED,
            "app/lib/rate_limiter.rb": limiter,
        },
    )
    assert rules(run(ctx)) == {"persistence.cookie_size_risk"}  # capped by count, not by size
    assert ctx.derived["persistence"] == "session_cookie"


def test_unparsable_ruby_degrades_without_raising(tmp_path: Path) -> None:
    ctx = make_ctx(
        tmp_path,
        {
            "app/services/chat_service.rb": SERVICE,
            "app/models/broken.rb": "class Broken\n  def x(\n  @@store = {\n",
            "app/javascript/controllers/bad_controller.js": "export default class extends {{{ fetch(",
            "app/views/chat/index.html.erb": "<script>\n<% if x %>\nlet a = \n</script>",
        },
    )
    hits = run(ctx)
    assert ctx.derived["persistence"] in {"none", "class_variable"}
    assert all(h.rule.startswith("persistence.") for h in hits)


def test_engine_exports_the_kind_as_a_fact(tmp_path: Path) -> None:
    make_ctx(
        tmp_path,
        {
            "app/services/chat_service.rb": SERVICE,
            "app/controllers/messages_controller.rb": SESSION_UNBOUNDED,
        },
    )
    result = audit_project(tmp_path)
    assert result.facts["persistence"] == "session_cookie"
    assert result.facts["persistence_evidence"] == "app/controllers/messages_controller.rb:3"
    assert any(f.rule == "persistence.unbounded_history" for f in result.findings)


def test_input_length_guard_is_not_a_history_cap(tmp_path: Path) -> None:
    controller = """\
class MessagesController < ApplicationController
  MAX_MESSAGE_LENGTH = 4000

  def create
    return head(:bad_request) if params[:content].length > MAX_MESSAGE_LENGTH
    text = params[:content].first(MAX_MESSAGE_LENGTH)
    session[:history] ||= []
    session[:history] << { "role" => "user", "content" => text }
    ChatService.new(session[:history]).call(text)
  end
end
"""
    ctx = make_ctx(
        tmp_path,
        {"app/services/chat_service.rb": SERVICE, "app/controllers/messages_controller.rb": controller},
    )
    hit = only(run(ctx), "persistence.unbounded_history")
    assert [e.line for e in hit.evidence] == [7, 8]


def test_form_data_history_field_is_client_side(tmp_path: Path) -> None:
    js = """\
export function send(form, history) {
  const body = new FormData(form)
  body.append("history", JSON.stringify(history))
  return fetch(form.action, { method: "POST", body })
}
"""
    ctx = make_ctx(tmp_path, {"app/services/chat_service.rb": SERVICE, "app/javascript/chat.js": js})
    hit = only(run(ctx), "persistence.client_side")
    assert (hit.evidence[0].path, hit.evidence[0].line) == ("app/javascript/chat.js", 3)


# ---------------------------------------------------------------- stores reached through data flow, not names

_STORE_BY_CONSTANT = {
    "app/models/thread_box.rb": (
        "class ThreadBox\n  SLOT = :threads\n\n  def initialize(jar)\n    @bag = jar\n    @bag[SLOT] ||= {}\n"
        "  end\n\n  def add(id, turn)\n    (@bag[SLOT][id] ||= []) << turn\n  end\nend\n"
    ),
    "app/controllers/talk_controller.rb": (
        "class TalkController < ApplicationController\n  def create\n    box = ThreadBox.new(session)\n"
        "    reply = ChatService.new([]).call(params[:q])\n    box.add(params[:id], reply)\n  end\nend\n"
    ),
}
_STORE_BY_IVAR_KEY = {
    "lib/transcript_keeper.rb": (
        "module Keep\n  class TranscriptKeeper\n    def initialize(owner, store = nil)\n      @owner = owner\n"
        '      @where = store\n      @k = "t-#{owner}"\n    end\n\n    def push(turn)\n'
        "      @where[@k] = (@where[@k] || []) + [turn]\n    end\n  end\nend\n"
    ),
    "app/controllers/replies_controller.rb": (
        "class RepliesController < ApplicationController\n  def create\n"
        "    keeper = Keep::TranscriptKeeper.new(current_user_id, cookies.encrypted)\n"
        "    keeper.push(ChatService.new([]).call(params[:q]))\n  end\nend\n"
    ),
}


def test_session_handed_to_a_store_object_under_another_name_is_a_session_store(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, {"app/services/chat_service.rb": SERVICE, **_STORE_BY_CONSTANT})
    hits = run(ctx)
    assert "persistence.none" not in rules(hits)
    assert ctx.derived["persistence"] == "session_cookie"


def test_cookie_jar_passed_positionally_and_keyed_by_an_ivar_is_a_session_store(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, {"app/services/chat_service.rb": SERVICE, **_STORE_BY_IVAR_KEY})
    hits = run(ctx)
    assert "persistence.none" not in rules(hits)
    assert ctx.derived["persistence"] == "session_cookie"


def test_file_graph_links_by_use_not_by_shared_namespace_or_sibling_subclass() -> None:
    from shipbench.audit.ruby.parse import parse_ruby
    from shipbench.tasks.rails_chat.checks._persistence_signals import file_graph

    files = {
        "lib/gen/a.rb": "module Gen\n  class A\n    def v = 1\n  end\nend\n",
        "lib/gen/b.rb": "module Gen\n  class B\n    def v = Gen::A.new.v\n  end\nend\n",
        "lib/gen/c.rb": "module Gen\n  class C\n  end\nend\n",
        "app/controllers/application_controller.rb": "class ApplicationController\n  def store = Store.new\nend\n",
        "app/models/store.rb": "class Store\nend\n",
        "app/controllers/x_controller.rb": "class XController < ApplicationController\nend\n",
        "app/controllers/y_controller.rb": "class YController < ApplicationController\nend\n",
    }
    graph = file_graph([parse_ruby(rel, text.encode()) for rel, text in files.items()])
    assert graph["lib/gen/b.rb"] == {"lib/gen/a.rb"}  # uses A; the reopened `module Gen` links nothing
    assert graph["lib/gen/c.rb"] == set()
    # a subclass inherits what its superclass uses (Store), never its sibling subclasses
    assert graph["app/controllers/x_controller.rb"] == {
        "app/controllers/application_controller.rb",
        "app/models/store.rb",
    }
