"""architecture checks: RubyLLM called from a controller, over-long controller methods and files."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_context, write_tree

from shipbench.audit.checks import AuditContext
from shipbench.audit.engine import audit_project
from shipbench.audit.facts.model import ProjectFacts
from shipbench.audit.ruby.parse import of_type
from shipbench.tasks.rails_chat.checks.architecture import (
    body_line_count,
    check_fat_controller,
    check_llm_in_controller,
)

GEMFILE = 'source "https://rubygems.org"\ngem "rails"\n'


def ctx_for(tmp_path: Path, files: dict[str, str | bytes]) -> AuditContext:
    root = write_tree(tmp_path / "app", {"Gemfile": GEMFILE, "config/application.rb": "", **files})
    ctx = make_context(root)
    ctx.facts = ProjectFacts(is_rails=True, gemfile="Gemfile")
    return ctx


def controller_with_action(body_lines: int, extra: str = "") -> str:
    body = "".join(f"    step_{i} = {i}\n" for i in range(body_lines))
    return (
        "class ChatsController < ApplicationController\n"  # 1
        f"{extra}"
        "  def create\n"  # 2 (+ extra lines)
        f"{body}"
        "  end\n"
        "end\n"
    )


def test_llm_entry_in_controller_fires_with_call_lines(tmp_path: Path) -> None:
    src = (
        "class ChatsController < ApplicationController\n"  # 1
        "  def create\n"  # 2
        "    chat = RubyLLM.chat(model: 'anthropic/claude-sonnet-4')\n"  # 3
        "    reply = ::RubyLLM::Chat.new.ask(params[:q])\n"  # 4
        "  end\n"
        "end\n"
    )
    hits = list(check_llm_in_controller(ctx_for(tmp_path, {"app/controllers/chats_controller.rb": src})))
    assert [h.rule for h in hits] == ["architecture.llm_in_controller"]
    assert [(e.path, e.line) for e in hits[0].evidence] == [
        ("app/controllers/chats_controller.rb", 3),
        ("app/controllers/chats_controller.rb", 4),
    ]
    assert "RubyLLM.chat" in hits[0].message


def test_any_call_on_a_rubyllm_constant_counts_but_configuration_does_not(tmp_path: Path) -> None:
    src = (
        "class ChatsController < ApplicationController\n"  # 1
        "  def create\n"  # 2
        "    RubyLLM.configure { |c| c.openrouter_api_key = ENV['K'] }\n"  # 3
        "    client = RubyLLM::Client.new(api_key: ENV['K'])\n"  # 4
        "    client.chat(messages: [])\n"  # 5
        "  rescue RubyLLM::Error => e\n"  # 6
        "    head :bad_gateway\n"
        "  end\n"
        "end\n"
    )
    hits = list(check_llm_in_controller(ctx_for(tmp_path, {"app/controllers/chats_controller.rb": src})))
    assert [(e.path, e.line) for h in hits for e in h.evidence] == [("app/controllers/chats_controller.rb", 4)]


def test_llm_in_service_is_not_a_controller_problem(tmp_path: Path) -> None:
    files = {
        "app/services/chat_service.rb": "class ChatService\n  def call(q) = RubyLLM.chat.ask(q)\nend\n",
        "app/controllers/chats_controller.rb": (
            "class ChatsController < ApplicationController\n"
            "  # RubyLLM.chat is called by ChatService\n"
            "  def create\n    @reply = ChatService.new.call(params[:q])\n  end\nend\n"
        ),
    }
    assert list(check_llm_in_controller(ctx_for(tmp_path, files))) == []


def test_long_action_fires_at_def_line(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path, {"app/controllers/chats_controller.rb": controller_with_action(26)})
    hits = list(check_fat_controller(ctx))
    assert len(hits) == 1
    assert (hits[0].evidence[0].path, hits[0].evidence[0].line) == ("app/controllers/chats_controller.rb", 2)
    assert "ChatsController#create has 26 lines" in hits[0].message


def test_action_at_limit_with_blank_and_comment_lines_does_not_fire(tmp_path: Path) -> None:
    padding = "    # a comment\n\n" * 10
    src = controller_with_action(25).replace("  def create\n", "  def create\n" + padding)
    assert list(check_fat_controller(ctx_for(tmp_path, {"app/controllers/chats_controller.rb": src}))) == []


def test_long_controller_file_fires_at_class_line(tmp_path: Path) -> None:
    methods = "".join(f"  def a{i}\n    {i}\n  end\n\n" for i in range(40))  # 160 lines of small methods
    src = (
        "# frozen_string_literal: true\n\nclass ChatsController < ApplicationController\n" + methods + "end\n"
    )
    hits = list(check_fat_controller(ctx_for(tmp_path, {"app/controllers/chats_controller.rb": src})))
    assert len(hits) == 1
    assert hits[0].evidence[0].line == 3
    assert "lines long (limit 150)" in hits[0].message


def test_body_line_count_ignores_def_end_blank_and_comments(tmp_path: Path) -> None:
    src = "class A\n  def x\n    # c\n\n    a = 1\n    b = 2\n  end\nend\n"
    ctx = ctx_for(tmp_path, {"app/controllers/a_controller.rb": src})
    parsed = ctx.parsed("app/controllers/a_controller.rb")
    assert parsed is not None
    method = next(of_type(parsed.root, "method"))
    assert body_line_count(parsed, method) == 2


def test_engine_end_to_end_architecture(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "p",
        {
            "Gemfile": GEMFILE,
            "config/application.rb": "module P\n  class Application < Rails::Application\n  end\nend\n",
            "app/controllers/chats_controller.rb": controller_with_action(30).replace(
                "  def create\n", "  def create\n    RubyLLM.chat.ask(params[:q])\n"
            ),
        },
    )
    result = audit_project(root, "rails-chat")
    arch = next(d for d in result.dimensions if d.id == "architecture")
    assert {f.rule for f in arch.findings} == {
        "architecture.llm_in_controller",
        "architecture.fat_controller",
    }
    assert arch.score == 0
