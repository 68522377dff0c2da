"""README facts: discovery, the stock `rails new` template, and setup instructions."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipbench.audit.facts.extract import extract_facts
from shipbench.audit.facts.model import ProjectFacts
from shipbench.audit.facts.readme import has_setup, is_stock_template
from shipbench.audit.files import ProjectFiles

STOCK = """# README

This README would normally document whatever steps are necessary to get the
application up and running.

Things you may want to cover:

* Ruby version

* System dependencies

* Configuration

* Database creation

* Database initialization

* How to run the test suite

* Services (job queues, cache servers, search engines, etc.)

* Deployment instructions

* ...
"""

REAL = """# Chat

A ChatGPT-like app on Rails 8, RubyLLM and Hotwire.

## Setup

```sh
bundle install
bin/rails server
```

Set `OPENROUTER_API_KEY` in your environment before starting the server.
"""


def _facts(root: Path, tree: dict[str, str]) -> ProjectFacts:
    for rel, text in tree.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return extract_facts(ProjectFiles.scan(root))


def test_stock_readme(tmp_path: Path) -> None:
    facts = _facts(tmp_path, {"README.md": STOCK})
    assert facts.readme and facts.readme_path == "README.md"
    assert facts.readme_stock_template and not facts.readme_setup_instructions


def test_stock_with_changed_title_and_a_line_added_is_still_stock() -> None:
    text = STOCK.replace("# README", "# My Chat App") + "\nA chat app.\n"
    assert is_stock_template(text)


def test_bullets_only_template_is_stock() -> None:
    bullets = STOCK.split("Things you may want to cover:")[1]
    assert is_stock_template("# Chat\n" + bullets)


def test_template_kept_but_mostly_real_content_is_not_stock() -> None:
    extra = "\n".join(f"Step {i}: configure the component number {i} of the chat service." for i in range(12))
    assert not is_stock_template(STOCK + "\n" + extra + "\n")


def test_real_readme(tmp_path: Path) -> None:
    facts = _facts(tmp_path, {"readme.md": REAL})
    assert facts.readme_path == "readme.md"
    assert not facts.readme_stock_template and facts.readme_setup_instructions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# App\n\n    $ docker compose up\n", True),  # indented block
        ("# App\n\n~~~\nmise install\n~~~\n", True),
        ("# App\nRun `bin/dev` and open the browser.\n", True),  # inline span
        ("# App\nExport OPENROUTER_API_KEY first.\n", True),  # the key alone
        ("# App\nA nice chat application built with love.\n", False),
        ("# App\n```ruby\nRubyLLM.chat.ask('hi')\n```\n", False),  # code, not a setup command
        ("# App\n- item\n    bundle install\n", False),  # list continuation, not a code block
    ],
)
def test_setup_rule(text: str, expected: bool) -> None:
    assert has_setup(text) is expected


def test_nested_app_readme_preferred_then_root(tmp_path: Path) -> None:
    tree = {"README.md": STOCK, "chat/Gemfile": 'gem "rails"\n', "chat/README.md": REAL}
    assert _facts(tmp_path / "a", tree).readme_path == "chat/README.md"
    tree = {"README": REAL, "chat/Gemfile": 'gem "rails"\n'}
    assert _facts(tmp_path / "b", tree).readme_path == "README"
    assert _facts(tmp_path / "c", {"docs/README.md": REAL}).readme is False
