"""Benchmark: audit time for a generated 200-file Rails project.

Run: .venv/bin/python benchmarks/bench_audit.py [--files 200] [--repeats 5]
Prints the median and max wall time of `audit_project` (warm: the first run is discarded), with the
RubyLLM calls verified against the bundled signature mirror, with and without external linters
(hadolint runs as a subprocess; the target excludes it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from shipbench.audit.engine import audit_project  # noqa: E402
from shipbench.tasks import load_task  # noqa: E402

BASE = {
    "Gemfile": 'source "https://rubygems.org"\ngem "rails", "~> 8.0"\ngem "ruby_llm"\ngem "turbo-rails"\n'
    'gem "stimulus-rails"\ngem "tailwindcss-rails"\ngroup :development, :test do\n  gem "brakeman"\n'
    '  gem "rubocop"\n  gem "bundler-audit"\nend\ngroup :test do\n  gem "simplecov"\n  gem "webmock"\nend\n',
    "Gemfile.lock": "GEM\n  remote: https://rubygems.org/\n  specs:\n    rails (8.0.2)\n    ruby_llm (1.14.1)\n",
    "config/application.rb": 'require_relative "boot"\nrequire "action_controller/railtie"\n'
    "module Bench\n  class Application < Rails::Application\n  end\nend\n",
    "config/routes.rb": 'Rails.application.routes.draw do\n  root "chats#show"\n  resources :messages\nend\n',
    "Dockerfile": 'FROM ruby:3.4-slim\nWORKDIR /app\nCOPY . .\nRUN bundle install\nCMD ["bin/rails", "s"]\n',
    "docker-compose.yml": "services:\n  web:\n    build: .\n    ports:\n      - '3000:3000'\n",
    "README.md": "# Bench chat\n\n```bash\nbundle install\nOPENROUTER_API_KEY=... bin/rails s\n```\n",
}

SERVICE = """class ChatService{i}
  SYSTEM = "You are helpful."

  def initialize(history)
    @history = history
  end

  def reply(text)
    chat = RubyLLM.chat(model: "anthropic/claude-sonnet-4.5", provider: :openrouter)
    chat.with_instructions(SYSTEM)
    @history.each {{ |m| chat.add_message(role: m[:role], content: m[:content]) }}
    chat.ask(text).content
  rescue RubyLLM::Error => e
    "error: #{{e.message}}"
  end
end
"""
CONTROLLER = """class Things{i}Controller < ApplicationController
  def index
    @items = session[:items{i}] ||= []
  end

  def create
    reply = ChatService{i}.new(session[:items{i}] || []).reply(params[:text])
    respond_to do |format|
      format.turbo_stream do
        render turbo_stream: turbo_stream.append("list", partial: "things/item", locals: {{ reply: }})
      end
      format.html {{ redirect_to root_path }}
    end
  end
end
"""
VIEW = '<div id="item-{i}" class="p-2">\n  <%= render "things/item", reply: @reply%>\n  <p><%= @title %></p>\n</div>\n'
TEST = """require "test_helper"

class ChatService{i}Test < ActiveSupport::TestCase
  test "replies" do
    fake = Minitest::Mock.new
    RubyLLM.stub(:chat, fake) do
      assert_kind_of String, ChatService{i}.new([]).reply("hi").to_s
    end
  end
end
"""
JS = """import {{ Controller }} from "@hotwired/stimulus"

export default class extends Controller {{
  static targets = ["input"]
  submit{i}() {{ this.inputTarget.value = "" }}
}}
"""


def build_project(root: Path, n_files: int) -> int:
    files = dict(BASE)
    templates = [
        ("app/services/chat_service_{i}.rb", SERVICE),
        ("app/controllers/things_{i}_controller.rb", CONTROLLER),
        ("app/views/things/_item_{i}.html.erb", VIEW),
        ("test/services/chat_service_{i}_test.rb", TEST),
        ("app/javascript/controllers/thing_{i}_controller.js", JS),
    ]
    i = 0
    while len(files) < n_files:
        path, body = templates[i % len(templates)]
        group = i // len(templates)  # files of one group refer to each other (service, its controller, test)
        files[path.format(i=group)] = body.format(i=group)
        i += 1
    return write_files(root, files)


def write_files(root: Path, files: dict[str, str]) -> int:
    """Write `files` (relative path -> text) under `root`; returns how many."""
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return len(files)


GEM_SOURCES = {"ruby_llm": REPO / "tests" / "fixtures" / "gems" / "ruby_llm-1.14.1"}


def measure(root: Path, repeats: int) -> list[float]:
    task = load_task("rails-chat")
    audit_project(root, task, GEM_SOURCES)  # warm-up: imports, grammar loading, gem index cache
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        audit_project(root, task, GEM_SOURCES)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "project"
        count = build_project(root, args.files)
        with_linters = measure(root, args.repeats)
        os.environ["SHIPBENCH_NO_EXTERNAL_LINTERS"] = "1"
        without = measure(root, args.repeats)
    print(f"project: {count} files, {args.repeats} timed runs after one warm-up")
    print(
        f"audit incl. external linters: median {statistics.median(with_linters):.3f} s, max {max(with_linters):.3f} s"
    )
    print(
        f"audit excl. external linters: median {statistics.median(without):.3f} s, max {max(without):.3f} s"
    )
    print("target: < 2 s excluding external linters on 2 cores")


if __name__ == "__main__":
    main()
