"""App root detection, Ruby version pins and heavy-framework loads in config/application.rb."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipbench.audit.facts import extract_facts
from shipbench.audit.facts.model import ProjectFacts
from shipbench.audit.files import ProjectFiles

RAILS_GEMFILE = 'source "https://rubygems.org"\ngem "rails", "~> 8.0"\n'


def _facts(root: Path, tree: dict[str, str]) -> ProjectFacts:
    for rel, text in tree.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return extract_facts(ProjectFiles.scan(root))


def test_app_at_root(tmp_path: Path) -> None:
    facts = _facts(tmp_path, {"Gemfile": RAILS_GEMFILE, "config/application.rb": "", "README.md": "x"})
    assert (facts.is_rails, facts.app_root, facts.nested_app_dir) == (True, "", False)


@pytest.mark.parametrize("nest", ["chat_app", "app", "workspace/myapp"])
def test_nested_app_dir(tmp_path: Path, nest: str) -> None:
    tree = {
        "README.md": "stub",
        f"{nest}/Gemfile": RAILS_GEMFILE,
        f"{nest}/config/application.rb": 'require "rails/all"\n',
        f"{nest}/app/controllers/chats_controller.rb": "class ChatsController; end\n",
    }
    facts = _facts(tmp_path, tree)
    assert (facts.is_rails, facts.app_root, facts.nested_app_dir) == (True, nest, True)
    assert facts.gemfile == f"{nest}/Gemfile"
    assert [(f.path, f.detail) for f in facts.frameworks_loaded] == [
        (f"{nest}/config/application.rb", "rails/all")
    ]


def test_shallowest_then_alphabetical_candidate(tmp_path: Path) -> None:
    tree = {
        "zeta/Gemfile": RAILS_GEMFILE,
        "alpha/config/application.rb": "",
        "aaa/deeper/Gemfile": RAILS_GEMFILE,
    }
    assert _facts(tmp_path, tree).app_root == "alpha"


def test_root_gemfile_without_rails_is_not_the_app(tmp_path: Path) -> None:
    tree = {"Gemfile": 'gem "rake"\n', "web/Gemfile": 'gem "railties"\n'}
    facts = _facts(tmp_path, tree)
    assert (facts.app_root, facts.nested_app_dir, facts.gemfile) == ("web", True, "web/Gemfile")


def test_no_rails_app(tmp_path: Path) -> None:
    facts = _facts(tmp_path, {"Gemfile": 'gem "sinatra"\n', "app.rb": "puts 1\n"})
    assert (facts.is_rails, facts.app_root, facts.nested_app_dir) == (False, "", False)
    assert facts.gemfile == "Gemfile" and "sinatra" in facts.gems
    assert _facts(tmp_path / "empty", {}).is_rails is False


def test_individual_railties_and_commented_requires(tmp_path: Path) -> None:
    app = (
        'require_relative "boot"\n'
        'require "rails"\n'
        'require "active_record/railtie"\n'
        '# require "action_mailer/railtie"\n'
        "require('active_job/railtie')\n"
        'require "action_controller/railtie"\n'
        '=begin\nrequire "rails/all"\n=end\n'
    )
    facts = _facts(tmp_path, {"Gemfile": RAILS_GEMFILE, "config/application.rb": app})
    assert [(f.line, f.detail) for f in facts.frameworks_loaded] == [
        (3, "active_record/railtie"),
        (5, "active_job/railtie"),
    ]


def test_database_yml_alone_is_not_a_load(tmp_path: Path) -> None:
    tree = {
        "Gemfile": RAILS_GEMFILE,
        "config/application.rb": 'require "rails"\nrequire "action_controller/railtie"\n',
        "config/database.yml": "development:\n  adapter: sqlite3\n",
    }
    assert _facts(tmp_path, tree).frameworks_loaded == []


@pytest.mark.parametrize(
    ("tree", "pin"),
    [
        ({".ruby-version": "3.3.4\n"}, ".ruby-version"),
        ({".tool-versions": "nodejs 20.1.0\nruby 3.3.4\n"}, ".tool-versions"),
        ({"mise.toml": '[tools]\nruby = "3.3"\n'}, "mise.toml"),
        ({".mise.toml": '[tools]\nruby = "3.3"\n'}, ".mise.toml"),
        ({"Gemfile": RAILS_GEMFILE + 'ruby "3.3.4"\n'}, "Gemfile"),
        (
            {".ruby-version": "\n", ".tool-versions": "nodejs 20\n", "mise.toml": "[tools]\nnode = '20'\n"},
            None,
        ),
        ({"mise.toml": "[tools\nruby = 3"}, None),
    ],
)
def test_ruby_version_pin(tmp_path: Path, tree: dict[str, str], pin: str | None) -> None:
    tree = {"Gemfile": RAILS_GEMFILE, **tree}
    assert _facts(tmp_path, tree).ruby_version_pin == pin


def test_nested_app_pin_found_at_workspace_root(tmp_path: Path) -> None:
    tree = {"app/Gemfile": RAILS_GEMFILE, "app/config/application.rb": "", ".tool-versions": "ruby 3.3.4\n"}
    assert _facts(tmp_path, tree).ruby_version_pin == ".tool-versions"
