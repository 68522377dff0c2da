"""production checks: XSS sinks, CSRF switches, committed secrets, process-local state (bad and good)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from tests.conftest import make_context, write_tree

from shipbench.audit.checks import AuditContext, Hit
from shipbench.audit.engine import audit_project
from shipbench.audit.facts.model import Located, ProjectFacts
from shipbench.tasks.rails_chat.checks.production import (
    check_committed_secret,
    check_csrf_disabled,
    check_process_local_state,
    check_unsafe_output,
    redact,
)

GEMFILE = 'source "https://rubygems.org"\ngem "rails"\n'


def ctx_for(tmp_path: Path, files: dict[str, str | bytes], facts: ProjectFacts | None = None) -> AuditContext:
    root = write_tree(tmp_path / "app", {"Gemfile": GEMFILE, "config/application.rb": "", **files})
    ctx = make_context(root)
    ctx.facts = facts or ProjectFacts(is_rails=True, gemfile="Gemfile")
    return ctx


def lines(hits: list[Hit]) -> list[tuple[str, int]]:
    return sorted((ev.path, ev.line) for h in hits for ev in h.evidence)


# ---------------------------------------------------------------- unsafe_output


def test_erb_unescaped_outputs_fire_at_their_lines(tmp_path: Path) -> None:
    view = (
        "<div>\n"  # 1
        "<%== message.content %>\n"  # 2
        "<%= raw @reply %>\n"  # 3
        "<%= msg.content.html_safe %>\n"  # 4
        "<%= simple_format(msg.content, {}, sanitize: false) %>\n"  # 5
        '<%= "<p>#{msg.content}</p>".html_safe %>\n'  # 6
        "<%= markdown.render(msg.content).html_safe %>\n"  # 7
        "</div>\n"
    )
    hits = list(check_unsafe_output(ctx_for(tmp_path, {"app/views/chats/show.html.erb": view})))
    assert lines(hits) == [("app/views/chats/show.html.erb", n) for n in (2, 3, 4, 5, 6, 7)]
    assert all(h.rule == "production.unsafe_output" for h in hits)
    assert len({h.key for h in hits}) == 6
    assert any("raw(@reply)" in h.message for h in hits)


def test_erb_safe_outputs_do_not_fire(tmp_path: Path) -> None:
    view = (
        '<%= raw "<br>" %>\n'
        '<%= "<hr>".html_safe %>\n'
        "<%= ICON_SVG.html_safe %>\n"
        '<%= raw t("chat.greeting_html") %>\n'
        '<%= render("messages/message").html_safe %>\n'
        "<%= sanitize(msg.content, tags: %w[b i]) %>\n"
        '<%= turbo_stream.append("messages", partial: "m").html_safe %>\n'
        "<%= simple_format(msg.content) %>\n"
        "<%# raw(msg.content) %>\n"
        '<%== "<b>fixed</b>" %>\n'
        "<%= msg.content %>\n"
        "<%= raw yield %>\n"
        "<%= helpers.sanitize(msg.content).html_safe %>\n"
        "<%= ERB::Util.html_escape(msg.content).html_safe %>\n"
        "<%= CGI.escapeHTML(msg.content).html_safe %>\n"
        "<%= raw content_for(:head) %>\n"
    )
    assert list(check_unsafe_output(ctx_for(tmp_path, {"app/views/chats/show.html.erb": view}))) == []


def test_html_safe_in_ruby_helper_fires(tmp_path: Path) -> None:
    helper = 'module MessagesHelper\n  def bubble(m)\n    "<div>#{m.content}</div>".html_safe\n  end\nend\n'
    hits = list(check_unsafe_output(ctx_for(tmp_path, {"app/helpers/messages_helper.rb": helper})))
    assert lines(hits) == [("app/helpers/messages_helper.rb", 3)]


def test_js_innerhtml_with_response_data_fires(tmp_path: Path) -> None:
    js = (
        'import { Controller } from "@hotwired/stimulus"\n'  # 1
        "export default class extends Controller {\n"  # 2
        "  async send() {\n"  # 3
        "    const data = await (await fetch('/chat')).json()\n"  # 4
        "    this.outputTarget.innerHTML += `<p>${data.reply}</p>`\n"  # 5
        "    this.listTarget.insertAdjacentHTML('beforeend', data.html)\n"  # 6
        "    this.statusTarget.innerHTML = data.status\n"  # 7
        "  }\n"
        "}\n"
    )
    hits = list(check_unsafe_output(ctx_for(tmp_path, {"app/javascript/controllers/chat_controller.js": js})))
    assert lines(hits) == [("app/javascript/controllers/chat_controller.js", n) for n in (5, 6, 7)]


def test_bundled_js_output_is_not_app_code(tmp_path: Path) -> None:
    bundle = "function r(e, d) { e.innerHTML = d.html }\n"
    ctx = ctx_for(tmp_path, {"app/assets/builds/application.js": bundle, "app/javascript/x.min.js": bundle})
    assert list(check_unsafe_output(ctx)) == []
    ctx = ctx_for(tmp_path / "b", {"app/javascript/application.js": bundle})
    assert lines(list(check_unsafe_output(ctx))) == [("app/javascript/application.js", 1)]


def test_js_constant_or_escaped_innerhtml_does_not_fire(tmp_path: Path) -> None:
    js = (
        'import escapeHtml from "escape-html"\n'
        "export default class extends Controller {\n"
        "  reset() {\n"
        "    this.outputTarget.innerHTML = ''\n"
        '    this.spinner.innerHTML = "<span>…</span>"\n'
        "    this.msg.innerHTML = `<p>${escapeHtml(this.reply)}</p>`\n"
        "    this.msg.textContent = this.reply\n"
        "  }\n"
        "}\n"
    )
    ctx = ctx_for(tmp_path, {"app/javascript/controllers/chat_controller.js": js})
    assert list(check_unsafe_output(ctx)) == []


ESCAPING_BODIES = {
    "entities": 'return String(t).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")',
    "dom_round_trip": 'const d = document.createElement("div"); d.textContent = t; return d.innerHTML',
}


@pytest.mark.parametrize("name", ["tidy", "escapeHtml", "fmt"])
@pytest.mark.parametrize("body", sorted(ESCAPING_BODIES))
def test_a_function_escapes_by_what_it_does_whatever_its_name(tmp_path: Path, name: str, body: str) -> None:
    js = (
        f"function {name}(t) {{ {ESCAPING_BODIES[body]} }}\n"
        f"const shown = {name}(reply)\n"
        "box.innerHTML = `<p>${shown}</p>`\n"
        f"other.innerHTML = {name}(data.content)\n"
    )
    ctx = ctx_for(tmp_path, {"app/javascript/chat.js": js})
    assert list(check_unsafe_output(ctx)) == []


@pytest.mark.parametrize(
    "helper",
    [
        "function sanitizeReply(t) { return t.trim() }",
        'function encodeForDisplay(t) { return t.replace(/\\n/g, "<br>") }',
        "function escapeText(t) { return unescape(t) }",
    ],
)
def test_a_function_named_like_an_escaper_that_does_not_escape_is_unsafe(tmp_path: Path, helper: str) -> None:
    name = helper.split()[1].split("(")[0]
    js = f"{helper}\nbox.innerHTML = {name}(data.content)\nlog.innerHTML = unescape(data.content)\n"
    ctx = ctx_for(tmp_path, {"app/javascript/chat.js": js})
    assert [e.line for h in check_unsafe_output(ctx) for e in h.evidence] == [2, 3]


def test_a_json_field_the_server_escapes_is_safe_and_a_raw_one_is_not(tmp_path: Path) -> None:
    controller = (
        "class RepliesController < ApplicationController\n"
        "  def create\n"
        "    reply = Assistant.new.answer(params[:text])\n"
        "    render json: { html: ERB::Util.html_escape(reply), raw: reply, meta: { note: helpers.sanitize(reply) } }\n"
        "  end\n"
        "end\n"
    )
    js = 'a.innerHTML = data.html\nb.innerHTML = data["note"]\nc.innerHTML = data.raw\n'
    ctx = ctx_for(tmp_path, {"app/controllers/replies_controller.rb": controller, "app/javascript/chat.js": js})
    assert [e.line for h in check_unsafe_output(ctx) for e in h.evidence] == [3]


# ---------------------------------------------------------------- csrf_disabled


def test_csrf_switches_fire(tmp_path: Path) -> None:
    files = {
        "app/controllers/application_controller.rb": (
            "class ApplicationController < ActionController::Base\n  protect_from_forgery with: :null_session\nend\n"
        ),
        "app/controllers/chats_controller.rb": (
            "class ChatsController < ApplicationController\n"
            "  skip_forgery_protection\n"
            "  skip_before_action :verify_authenticity_token, only: :create\n"
            "end\n"
        ),
        "config/environments/production.rb": (
            "Rails.application.configure do\n  config.action_controller.allow_forgery_protection = false\nend\n"
        ),
    }
    hits = list(check_csrf_disabled(ctx_for(tmp_path, files)))
    assert lines(hits) == [
        ("app/controllers/application_controller.rb", 2),
        ("app/controllers/chats_controller.rb", 2),
        ("app/controllers/chats_controller.rb", 3),
        ("config/environments/production.rb", 2),
    ]
    assert {h.rule for h in hits} == {"production.csrf_disabled"}


def test_csrf_good_counterparts_do_not_fire(tmp_path: Path) -> None:
    files = {
        "app/controllers/application_controller.rb": (
            "class ApplicationController < ActionController::Base\n"
            "  protect_from_forgery with: :exception\n"
            "  # skip_forgery_protection\n"
            "  # skip_before_action :verify_authenticity_token\n"
            "  skip_before_action :authenticate_user!\n"
            "end\n"
        ),
        "app/controllers/api/base_controller.rb": (
            "class Api::BaseController < ActionController::API\n  protect_from_forgery with: :null_session\nend\n"
        ),
        "config/environments/test.rb": (
            "Rails.application.configure do\n  config.action_controller.allow_forgery_protection = false\nend\n"
        ),
    }
    assert list(check_csrf_disabled(ctx_for(tmp_path, files))) == []


# ---------------------------------------------------------------- committed_secret


def test_committed_secrets_one_hit_per_file_and_redacted(tmp_path: Path) -> None:
    fake = "sk-or-v1-" + "0" * 48
    files = {
        "config/initializers/ruby_llm.rb": (f'RubyLLM.configure do |c|\n  c.openrouter_api_key = "{fake}"\nend\n'),
        ".env": f"OPENROUTER_API_KEY={fake}\n",
        "config/master.key": "00000000000000000000000000000000\n",
    }
    facts = ProjectFacts(
        is_rails=True,
        gemfile="Gemfile",
        secrets=[
            Located(path="config/initializers/ruby_llm.rb", line=2, detail="OpenRouter API key"),
            Located(path=".env", line=1, detail="OpenRouter API key"),
        ],
        committed_env_files=[".env"],
        master_key="config/master.key",
    )
    hits = list(check_committed_secret(ctx_for(tmp_path, files, facts)))
    assert {h.key for h in hits} == {"config/initializers/ruby_llm.rb", ".env", "config/master.key"}
    assert all(fake not in ev.snippet for h in hits for ev in h.evidence)
    assert ("config/initializers/ruby_llm.rb", 2) in lines(hits)


def test_no_secret_facts_no_hits(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path, {".env.example": "OPENROUTER_API_KEY=your-key-here\n"})
    assert list(check_committed_secret(ctx)) == []


def test_redact_masks_long_tokens_only() -> None:
    assert redact('key = "sk-or-v1-abcdefghijklmnop"') == 'key = "sk-o…[redacted]"'
    assert redact("short words stay") == "short words stay"
    assert redact("OPENROUTER_API_KEY=abcd1234efgh5678ijkl") == "OPENROUTER_API_KEY=abcd…[redacted]"
    assert redact("c.openrouter_api_key = x") == "c.openrouter_api_key = x"


# ---------------------------------------------------------------- process_local_state


def test_process_local_stores_fire_once_per_location(tmp_path: Path) -> None:
    files = {
        "app/models/conversation.rb": (
            "class Conversation\n"  # 1
            "  @@all = {}\n"  # 2
            "  STORE = {}\n"  # 3
            "  def save\n"  # 4
            "    @@all[id] = self\n"  # 5
            "    STORE[id] = self\n"  # 6
            "  end\n"
            "end\n"
        ),
        "app/services/chat_store.rb": (
            "class ChatStore\n"  # 1
            "  include Singleton\n"  # 2
            "  class << self\n"  # 3
            "    attr_accessor :chats\n"  # 4
            "  end\n"
            "  def self.history\n"  # 6
            "    @history ||= Hash.new\n"  # 7
            "  end\n"
            "  def self.push(m)\n"  # 9
            "    $last_message = m\n"  # 10
            "  end\n"
            "end\n"
        ),
    }
    hits = list(check_process_local_state(ctx_for(tmp_path, files)))
    assert lines(hits) == [
        ("app/models/conversation.rb", 2),
        ("app/models/conversation.rb", 5),
        ("app/models/conversation.rb", 6),
        ("app/services/chat_store.rb", 2),
        ("app/services/chat_store.rb", 4),
        ("app/services/chat_store.rb", 7),
        ("app/services/chat_store.rb", 10),
    ]
    assert len({h.key for h in hits}) == len(hits)


def test_instance_state_and_frozen_constants_do_not_fire(tmp_path: Path) -> None:
    files = {
        "app/services/chat_service.rb": (
            "class ChatService\n"
            "  MODELS = %w[a b].freeze\n"
            "  DEFAULTS = { temperature: 0.2 }.freeze\n"
            "  def initialize(session)\n"
            "    @session = session\n"
            "    @messages = []\n"
            "  end\n"
            "  def add(m)\n"
            "    @messages << m\n"
            "    @session[:history] = @messages\n"
            "    $stdout.puts 'x'\n"
            "  end\n"
            "  def self.client\n"
            "    @client ||= RubyLLM.chat\n"
            "  end\n"
            "end\n"
        ),
    }
    assert list(check_process_local_state(ctx_for(tmp_path, files))) == []


def test_engine_end_to_end_reports_production_findings(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "p",
        {
            "Gemfile": GEMFILE,
            "config/application.rb": "module P\n  class Application < Rails::Application\n  end\nend\n",
            "app/views/chats/show.html.erb": "<%== @reply %>\n",
            "app/controllers/chats_controller.rb": (
                "class ChatsController < ApplicationController\n  skip_forgery_protection\nend\n"
            ),
        },
    )
    result = audit_project(root, "rails-chat")
    prod = next(d for d in result.dimensions if d.id == "production")
    rules = {f.rule for f in prod.findings}
    assert {"production.unsafe_output", "production.csrf_disabled"} <= rules
    # 3 + 3 points against a 5-point dimension: clamped at 0, the deductions add up to the max
    assert prod.score == 0
    assert sum(-f.points for f in prod.findings) == prod.max


def test_engine_end_to_end_committed_env_but_not_example(tmp_path: Path) -> None:
    # built at run time from a hash: key-shaped, never a real credential
    fake = "sk-or-v1-" + hashlib.sha256(b"shipbench fake key").hexdigest()
    base = {
        "Gemfile": GEMFILE,
        "config/application.rb": "module P\n  class Application < Rails::Application\n  end\nend\n",
        ".env.example": "OPENROUTER_API_KEY=your-key-here\n",
    }
    clean = audit_project(write_tree(tmp_path / "clean", base), "rails-chat")
    assert not [f for f in clean.findings if f.rule == "production.committed_secret"]
    dirty = audit_project(write_tree(tmp_path / "dirty", {**base, ".env": f"OPENROUTER_API_KEY={fake}\n"}))
    found = [f for f in dirty.findings if f.rule == "production.committed_secret"]
    assert len(found) == 1
    assert {e.path for e in found[0].evidence} == {".env"}
    assert all(fake not in e.snippet for e in found[0].evidence)


def test_inline_script_sink_in_a_view_is_unsafe_output_at_the_template_line(tmp_path: Path) -> None:
    view = (
        '<div id="log"></div>\n'  # 1
        "<script>\n"  # 2
        "  const render = (data) => {\n"  # 3
        "    document.getElementById('log').innerHTML += data.html\n"  # 4
        "    document.getElementById('log').innerHTML += '<hr>'\n"  # 5: a constant is fine
        "  }\n"
        "</script>\n"
    )
    hits = list(check_unsafe_output(ctx_for(tmp_path, {"app/views/home/index.html.erb": view})))
    assert [(e.path, e.line) for h in hits for e in h.evidence] == [("app/views/home/index.html.erb", 4)]


def test_a_parameter_sink_is_judged_by_what_every_caller_passes(tmp_path: Path) -> None:
    js = (
        "function esc(t) { return String(t).replace(/</g, '&lt;').replace(/&/g, '&amp;') }\n"
        "function show(role, html) { box.innerHTML = html }\n"  # 2: safe only if every caller passes safe html
        "show('user', esc(text))\n"
        "show('assistant', esc(data.content))\n"
        "function loop(h) { loop(h); other.innerHTML = h }\n"  # 5: a parameter cycle is not proof
    )
    ctx = ctx_for(tmp_path, {"app/javascript/chat.js": js})
    assert [e.line for h in check_unsafe_output(ctx) for e in h.evidence] == [5]
    raw = js.replace("show('assistant', esc(data.content))", "show('assistant', data.content)")
    ctx = ctx_for(tmp_path / "raw", {"app/javascript/chat.js": raw})
    assert [e.line for h in check_unsafe_output(ctx) for e in h.evidence] == [2, 5]
