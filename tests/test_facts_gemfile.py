"""Gemfile and Gemfile.lock facts: gem declarations in every group syntax, require:, versions, locks."""

from __future__ import annotations

from pathlib import Path

from shipbench.audit.facts import extract_facts
from shipbench.audit.facts.gemfile import parse_gemfile
from shipbench.audit.facts.lockfile import parse_lockfile
from shipbench.audit.files import ProjectFiles

GEMFILE = b"""source "https://rubygems.org"
git_source(:github) { |repo| "https://github.com/#{repo}.git" }
ruby "3.3.4"

gem "rails", "~> 8.0", ">= 8.0.1"
gem('ruby_llm', '~> 1.14')
gem "bootsnap", require: false
gem "pg", :require => "pg/ext"
# gem "sqlite3"
gem "solid_queue", group: :production
gem "letter_opener", groups: %i[development staging]
gem "pry", { "group" => ["development", :test] }

platforms :mri, :windows do
  gem "debug", platforms: %i[mri windows], require: "debug/prelude"
end

group :development, :test do
  gem "rubocop", require: false
  group(:test) { gem "webmock" }
end

group :test do
  gem "ruby_llm"
end
"""


def test_gems_with_groups_require_and_versions() -> None:
    info = parse_gemfile("Gemfile", GEMFILE)
    gems = info.gems
    assert gems["rails"].version == ["~> 8.0", ">= 8.0.1"]
    assert gems["rails"].line == 5 and gems["rails"].groups == []
    assert gems["bootsnap"].require is False
    assert gems["pg"].require == "pg/ext"
    assert gems["solid_queue"].groups == ["production"]
    assert gems["letter_opener"].groups == ["development", "staging"]
    assert gems["pry"].groups == ["development", "test"]
    assert gems["debug"].groups == [] and gems["debug"].require == "debug/prelude"
    assert gems["rubocop"].groups == ["development", "test"] and gems["rubocop"].require is False
    assert gems["webmock"].groups == ["development", "test"]
    assert "sqlite3" not in gems  # commented out
    assert info.ruby_pin_line == 3


def test_duplicate_keeps_the_production_declaration() -> None:
    gems = parse_gemfile("Gemfile", GEMFILE).gems
    assert gems["ruby_llm"].groups == [] and gems["ruby_llm"].line == 6
    later_prod = b'group :test do\n  gem "ruby_llm"\nend\ngem "ruby_llm", require: false\n'
    decl = parse_gemfile("Gemfile", later_prod).gems["ruby_llm"]
    assert (decl.line, decl.groups, decl.require) == (4, [], False)
    only_groups = b'group :test do\n  gem "x"\nend\ngroup :development do\n  gem "x"\nend\n'
    assert parse_gemfile("Gemfile", only_groups).gems["x"].groups == ["test"]


def test_broken_gemfile_does_not_raise_and_keeps_what_parsed() -> None:
    info = parse_gemfile("Gemfile", b'gem "rails"\ngroup :test do\n  gem "minitest"\n')
    assert info.has_error
    assert "rails" in info.gems
    assert parse_gemfile("Gemfile", b"\xff\xfe\x00garbage").gems == {}


def test_interpolated_or_dynamic_names_are_not_gems() -> None:
    gems = parse_gemfile("Gemfile", b'name = "x"\ngem name\ngem "a-#{name}"\nobj.gem "z"\n').gems
    assert gems == {}


LOCK = """GIT
  remote: https://github.com/crmne/ruby_llm.git
  revision: abc123
  specs:
    ruby_llm (1.14.1)
      faraday (>= 1.10.0)

PATH
  remote: engines/local
  specs:
    local_engine (0.1.0)

GEM
  remote: https://rubygems.org/
  specs:
    actionpack (8.0.1)
      nokogiri (>= 1.8.5)
    nokogiri (1.18.2-x86_64-linux-gnu)
      racc (~> 1.4)
    nokogiri (1.18.2-arm64-darwin)
    rails (8.0.1)
    turbo-rails (2.0.11)

PLATFORMS
  x86_64-linux

DEPENDENCIES
  rails (~> 8.0)
  ruby_llm!

BUNDLED WITH
   2.6.2
"""


def test_lockfile_specs_from_every_source_section() -> None:
    locked = parse_lockfile(LOCK.replace("\n", "\r\n"))
    assert locked == {
        "ruby_llm": "1.14.1",
        "local_engine": "0.1.0",
        "actionpack": "8.0.1",
        "nokogiri": "1.18.2",
        "rails": "8.0.1",
        "turbo-rails": "2.0.11",
    }
    assert "racc" not in locked and "faraday" not in locked  # dependency lines, not specs


def test_extract_fills_gem_and_lock_facts(tmp_path: Path) -> None:
    (tmp_path / "Gemfile").write_bytes(GEMFILE)
    (tmp_path / "Gemfile.lock").write_text(LOCK)
    facts = extract_facts(ProjectFiles.scan(tmp_path))
    assert facts.is_rails and facts.gemfile == "Gemfile" and facts.gemfile_lock == "Gemfile.lock"
    assert facts.locked_versions["ruby_llm"] == "1.14.1"
    assert facts.gems["rubocop"].path == "Gemfile"
    assert facts.ruby_version_pin == "Gemfile"


def test_production_group_counts_as_production_for_duplicates() -> None:
    text = b'group :test do\n  gem "x"\nend\ngem "x", group: :production\ngem "x"\n'
    decl = parse_gemfile("Gemfile", text).gems["x"]
    assert decl.line == 4 and decl.in_production
    assert not parse_gemfile("Gemfile", b'gem "y", group: :test\n').gems["y"].in_production
