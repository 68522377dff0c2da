"""deliverables checks: each rule fires on a minimal bad project with its evidence, and stays silent on
the good counterpart (a complete project whose facts say everything is in place)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import make_context, write_tree

from shipbench.audit.checks import AuditContext, Hit
from shipbench.audit.engine import audit_project
from shipbench.audit.facts.model import GemDecl, Located, ProjectFacts
from shipbench.tasks.rails_chat.checks import deliverables as d

STACK = ["rails", "ruby_llm", "turbo-rails", "stimulus-rails", "tailwindcss-rails"]
CI = ["brakeman", "rubocop-rails-omakase", "simplecov", "bundler-audit"]

GOOD_FILES: dict[str, str | bytes] = {
    "Gemfile": "".join(f'gem "{g}"\n' for g in STACK + CI),
    "Gemfile.lock": "GEM\n",
    ".ruby-version": "3.4.1\n",
    "config/application.rb": "module P\n  class Application < Rails::Application\n  end\nend\n",
    "config/routes.rb": (
        'Rails.application.routes.draw do\n  root "chats#index"\n  resources :messages\nend\n'
    ),
    "config/initializers/ruby_llm.rb": (
        'RubyLLM.configure do |c|\n  c.openrouter_api_key = ENV.fetch("OPENROUTER_API_KEY", nil)\nend\n'
    ),
    "app/controllers/application_controller.rb": (
        "class ApplicationController < ActionController::Base\nend\n"
    ),
    "app/controllers/chats_controller.rb": (
        "class ChatsController < ApplicationController\n  def index; end\nend\n"
    ),
    "app/views/layouts/application.html.erb": "<%= yield %>\n",
    "app/views/chats/index.html.erb": "<h1>Chat</h1>\n",
    "test/controllers/chats_controller_test.rb": (
        "class ChatsControllerTest < ActionDispatch::IntegrationTest\nend\n"
    ),
    "Dockerfile": "FROM ruby:3.4\nHEALTHCHECK CMD curl -f http://localhost:3000/up\n",
    "docker-compose.yml": "services:\n  web:\n    build: .\n    restart: unless-stopped\n",
    "README.md": "# Chat\n\nexport OPENROUTER_API_KEY=...\nbin/rails server\n",
}


def good_facts(**changes: object) -> ProjectFacts:
    gems = {g: GemDecl(name=g, path="Gemfile", line=i) for i, g in enumerate(STACK + CI, 1)}
    base = ProjectFacts(
        is_rails=True,
        gemfile="Gemfile",
        gems=gems,
        gemfile_lock="Gemfile.lock",
        ruby_version_pin=".ruby-version",
        dockerfile=True,
        dockerfile_path="Dockerfile",
        docker_compose=True,
        compose_path="docker-compose.yml",
        compose_services=["web"],
        dockerfile_healthcheck_line=2,
        compose_restart_policies=["web"],
        readme=True,
        readme_path="README.md",
        readme_setup_instructions=True,
    )
    return base.model_copy(update=changes)


def ctx_for(
    tmp_path: Path, facts: ProjectFacts, drop: tuple[str, ...] = (), files: dict[str, str] | None = None
) -> AuditContext:
    tree = {k: v for k, v in GOOD_FILES.items() if k not in drop}
    tree.update(files or {})
    ctx = make_context(write_tree(tmp_path / "app", tree))
    ctx.facts = facts
    return ctx


def run_all(ctx: AuditContext) -> list[Hit]:
    return [h for check in d.CHECKS for h in check(ctx)]


def rules(hits: list[Hit]) -> set[str]:
    return {h.rule for h in hits}


def test_complete_project_has_no_deliverable_findings(tmp_path: Path) -> None:
    assert run_all(ctx_for(tmp_path, good_facts())) == []


def test_nested_app_dir(tmp_path: Path) -> None:
    tree = {f"chat_app/{k}": v for k, v in GOOD_FILES.items()}
    ctx = make_context(write_tree(tmp_path / "ws", tree))
    ctx.facts = good_facts(app_root="chat_app", nested_app_dir=True)
    hits = [h for h in run_all(ctx) if h.rule == "deliverables.nested_app_dir"]
    assert len(hits) == 1
    assert hits[0].evidence[0].path == "chat_app/config/application.rb"
    # everything else resolves under the nested root, so nothing else fires
    assert rules(run_all(ctx)) == {"deliverables.nested_app_dir"}


def test_gemfile_missing_suppresses_per_gem_rules(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path, good_facts(gemfile=None, gems={}, gemfile_lock=None), drop=("Gemfile",))
    assert rules(run_all(ctx)) == {"deliverables.gemfile_missing"}


def test_gemfile_lock_missing(tmp_path: Path) -> None:
    hits = run_all(ctx_for(tmp_path, good_facts(gemfile_lock=None)))
    assert rules(hits) == {"deliverables.gemfile_lock_missing"}


def test_ruby_llm_gem_missing(tmp_path: Path) -> None:
    facts = good_facts()
    del facts.gems["ruby_llm"]
    hits = run_all(ctx_for(tmp_path, facts))
    assert rules(hits) == {"deliverables.ruby_llm_gem_missing"}
    assert hits[0].evidence[0].path == "Gemfile"


def _with_llm_decl(**decl: object) -> ProjectFacts:
    facts = good_facts()
    facts.gems["ruby_llm"] = GemDecl.model_validate(
        {"name": "ruby_llm", "path": "Gemfile", "line": 2, **decl}
    )
    return facts


def test_ruby_llm_in_dev_test_group_fires_even_with_explicit_require(tmp_path: Path) -> None:
    facts = _with_llm_decl(groups=["development", "test"], require=False)
    ctx = ctx_for(tmp_path, facts, files={"config/initializers/llm_require.rb": 'require "ruby_llm"\n'})
    hits = run_all(ctx)
    assert rules(hits) == {"deliverables.ruby_llm_not_in_production"}
    assert (hits[0].evidence[0].path, hits[0].evidence[0].line) == ("Gemfile", 2)
    assert "development/test" in hits[0].message


def test_ruby_llm_require_false_without_explicit_require_fires(tmp_path: Path) -> None:
    hits = run_all(ctx_for(tmp_path, _with_llm_decl(require=False)))
    assert rules(hits) == {"deliverables.ruby_llm_not_in_production"}
    assert "require: false" in hits[0].message


@pytest.mark.parametrize("decl", [{"require": False}, {"groups": ["llm"]}])
def test_explicit_require_rescues_require_false_and_custom_groups(
    tmp_path: Path, decl: dict[str, object]
) -> None:
    ctx = ctx_for(
        tmp_path, _with_llm_decl(**decl), files={"config/initializers/zz.rb": 'require "ruby_llm"\n'}
    )
    assert run_all(ctx) == []


def test_commented_require_does_not_count(tmp_path: Path) -> None:
    ctx = ctx_for(
        tmp_path, _with_llm_decl(require=False), files={"config/initializers/zz.rb": '# require "ruby_llm"\n'}
    )
    assert rules(run_all(ctx)) == {"deliverables.ruby_llm_not_in_production"}


def test_ruby_llm_in_default_or_production_group_is_fine(tmp_path: Path) -> None:
    assert run_all(ctx_for(tmp_path, _with_llm_decl(groups=["default", "development"]))) == []


def test_stack_and_ci_gems_missing_one_hit_per_gem(tmp_path: Path) -> None:
    facts = good_facts()
    for g in ("turbo-rails", "tailwindcss-rails", "brakeman", "bundler-audit", "rubocop-rails-omakase"):
        del facts.gems[g]
    hits = run_all(ctx_for(tmp_path, facts))
    assert {(h.rule, h.key) for h in hits} == {
        ("deliverables.stack_gem_missing", "turbo-rails"),
        ("deliverables.stack_gem_missing", "tailwindcss-rails"),
        ("deliverables.ci_gem_missing", "brakeman"),
        ("deliverables.ci_gem_missing", "bundler-audit"),
        ("deliverables.ci_gem_missing", "rubocop"),
    }
    assert any(h.message == "gem 'brakeman' not in Gemfile" for h in hits)


def test_stack_equivalents_are_accepted(tmp_path: Path) -> None:
    facts = good_facts()
    for g in ("turbo-rails", "stimulus-rails", "tailwindcss-rails"):
        del facts.gems[g]
    for g in ("hotwire-rails", "cssbundling-rails"):
        facts.gems[g] = GemDecl(name=g, path="Gemfile", line=30)
    ctx = ctx_for(tmp_path, facts, files={"package.json": '{"devDependencies": {"tailwindcss": "^4.0.0"}}'})
    assert run_all(ctx) == []
    ctx_no_npm = ctx_for(tmp_path / "b", facts)
    assert {h.key for h in run_all(ctx_no_npm)} == {"tailwindcss-rails"}


def test_forbidden_frameworks(tmp_path: Path) -> None:
    loads = [Located(path="config/application.rb", line=1, detail="active_record")]
    hits = run_all(ctx_for(tmp_path, good_facts(frameworks_loaded=loads)))
    assert rules(hits) == {"deliverables.forbidden_framework_loaded"}
    assert "active_record" in hits[0].message


def test_docker_compose_readme_states(tmp_path: Path) -> None:
    cases: list[tuple[dict[str, object], str]] = [
        ({"dockerfile": False, "dockerfile_path": None}, "deliverables.dockerfile_missing"),
        ({"dockerfile_placeholder_reasons": ["no CMD or ENTRYPOINT"]}, "deliverables.dockerfile_placeholder"),
        ({"docker_compose": False, "compose_path": None}, "deliverables.compose_missing"),
        ({"compose_errors": ["services.web.ports must be a list"]}, "deliverables.compose_invalid"),
        ({"compose_services": []}, "deliverables.compose_invalid"),
        ({"readme": False, "readme_path": None}, "deliverables.readme_missing"),
        ({"readme_stock_template": True, "readme_setup_instructions": False}, "deliverables.readme_stock"),
        ({"readme_setup_instructions": False}, "deliverables.readme_no_setup"),
        ({"dockerfile_healthcheck_line": None}, "deliverables.no_healthcheck"),
        ({"compose_restart_policies": []}, "deliverables.no_restart_policy"),
    ]
    for i, (change, rule) in enumerate(cases):
        hits = run_all(ctx_for(tmp_path / str(i), good_facts(**change)))
        assert rules(hits) == {rule}, (change, hits)
    # a healthcheck in compose is as good as one in the Dockerfile; a broken compose file says nothing of restarts
    compose_check = good_facts(dockerfile_healthcheck_line=None, compose_healthchecks=["web"])
    assert rules(run_all(ctx_for(tmp_path / "hc", compose_check))) == set()
    broken = good_facts(compose_restart_policies=[], compose_errors=["services.web.ports must be a list"])
    assert rules(run_all(ctx_for(tmp_path / "br", broken))) == {"deliverables.compose_invalid"}
    placeholder = run_all(ctx_for(tmp_path / "ph", good_facts(dockerfile_placeholder_reasons=["no FROM"])))
    assert placeholder[0].message == "Dockerfile is a placeholder: no FROM"


def test_routes_missing_when_file_absent_or_empty(tmp_path: Path) -> None:
    absent = run_all(ctx_for(tmp_path / "a", good_facts(), drop=("config/routes.rb",)))
    assert rules(absent) == {"deliverables.routes_missing"}
    empty_routes = "Rails.application.routes.draw do\n  # root 'chats#index'\nend\n"
    empty = run_all(ctx_for(tmp_path / "b", good_facts(), files={"config/routes.rb": empty_routes}))
    assert rules(empty) == {"deliverables.routes_missing"}
    assert empty[0].evidence[0].path == "config/routes.rb"


def test_controllers_views_tests_missing(tmp_path: Path) -> None:
    no_ctrl = run_all(ctx_for(tmp_path / "c", good_facts(), drop=("app/controllers/chats_controller.rb",)))
    assert rules(no_ctrl) == {"deliverables.controllers_missing"}
    no_views = run_all(ctx_for(tmp_path / "v", good_facts(), drop=("app/views/chats/index.html.erb",)))
    assert rules(no_views) == {"deliverables.views_missing"}
    no_tests = ctx_for(
        tmp_path / "t",
        good_facts(),
        drop=("test/controllers/chats_controller_test.rb",),
        files={"test/test_helper.rb": "require 'minitest'\n"},
    )
    assert rules(run_all(no_tests)) == {"deliverables.tests_missing"}


def test_rspec_only_is_reported_as_not_minitest(tmp_path: Path) -> None:
    ctx = ctx_for(
        tmp_path,
        good_facts(),
        drop=("test/controllers/chats_controller_test.rb",),
        files={"spec/requests/chats_spec.rb": "RSpec.describe 'chats' do\nend\n"},
    )
    hits = run_all(ctx)
    assert rules(hits) == {"deliverables.tests_missing"}
    assert "RSpec" in hits[0].message


def test_api_key_env_missing_and_accepted_forms(tmp_path: Path) -> None:
    no_env = 'RubyLLM.configure do |c|\n  c.openrouter_api_key = "OPENROUTER_API_KEY"\nend\n'
    hits = run_all(ctx_for(tmp_path / "a", good_facts(), files={"config/initializers/ruby_llm.rb": no_env}))
    assert rules(hits) == {"deliverables.api_key_env_missing"}
    for i, form in enumerate(['ENV["OPENROUTER_API_KEY"]', "::ENV.fetch('OPENROUTER_API_KEY')"]):
        src = f"RubyLLM.configure do |c|\n  c.openrouter_api_key = {form}\nend\n"
        assert (
            run_all(
                ctx_for(tmp_path / f"ok{i}", good_facts(), files={"config/initializers/ruby_llm.rb": src})
            )
            == []
        )
    via_const = (
        'KEY_VAR = "OPENROUTER_API_KEY"\nRubyLLM.configure { |c| c.openrouter_api_key = ENV[KEY_VAR] }\n'
    )
    ctx = ctx_for(tmp_path / "const", good_facts(), files={"config/initializers/ruby_llm.rb": via_const})
    assert run_all(ctx) == []
    yml = "default:\n  key: <%= ENV['OPENROUTER_API_KEY'] %>\n"
    ctx = ctx_for(
        tmp_path / "yml", good_facts(), files={"config/initializers/ruby_llm.rb": "", "config/llm.yml": yml}
    )
    assert run_all(ctx) == []


def test_ruby_version_pin_missing(tmp_path: Path) -> None:
    assert rules(run_all(ctx_for(tmp_path, good_facts(ruby_version_pin=None)))) == {
        "deliverables.ruby_version_pin_missing"
    }


def test_bad_input_never_raises(tmp_path: Path) -> None:
    ctx = ctx_for(
        tmp_path,
        good_facts(),
        files={
            "config/routes.rb": "Rails.application.routes.draw do\n  get 'x' =>\n",  # syntax error
            "package.json": "{not json",
            "app/controllers/broken_controller.rb": "class Broken <\n",
        },
    )
    ctx.files.files.pop("Gemfile.lock")
    hits = run_all(ctx)
    # an unparsable routes file is recorded as a parse issue, not claimed to have no routes
    assert "deliverables.routes_missing" not in rules(hits)
    assert "config/routes.rb" in ctx.parse_issues


def test_engine_end_to_end_bare_rails_app(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "p",
        {
            "Gemfile": 'source "https://rubygems.org"\ngem "rails"\n',
            "config/application.rb": "module P\n  class Application < Rails::Application\n  end\nend\n",
        },
    )
    result = audit_project(root, "rails-chat")
    found = {f.rule for f in result.findings if f.dimension == "deliverables"}
    expected = {
        "deliverables.ruby_llm_gem_missing",
        "deliverables.stack_gem_missing",
        "deliverables.ci_gem_missing",
        "deliverables.dockerfile_missing",
        "deliverables.compose_missing",
        "deliverables.readme_missing",
        "deliverables.routes_missing",
        "deliverables.controllers_missing",
        "deliverables.views_missing",
        "deliverables.tests_missing",
        "deliverables.api_key_env_missing",
        "deliverables.ruby_version_pin_missing",
        "deliverables.gemfile_lock_missing",
    }
    assert expected <= found
    assert "deliverables.gemfile_missing" not in found
    dim = next(x for x in result.dimensions if x.id == "deliverables")
    assert dim.score == 0
