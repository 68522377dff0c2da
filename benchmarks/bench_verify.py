"""Time `verify_project` (call-site resolution + verdicts) on a synthetic 200-file Rails project.

Run: .venv/bin/python benchmarks/bench_verify.py [--files 200] [--repeats 5]
The gem index is built once up front (it is cached in real audits); each timed run uses a fresh
AuditContext, so parsing the project's files is included in the figure.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from shipbench.audit.checks import AuditContext
from shipbench.audit.facts import extract_facts
from shipbench.audit.files import ProjectFiles
from shipbench.audit.ruby.gem_sources import index_cached
from shipbench.audit.ruby.verify import verify_project
from shipbench.tasks import load_task

GEM = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "gems" / "ruby_llm-1.14.1"

SERVICE = """class ChatService{i}
  def initialize(history)
    @chat = RubyLLM.chat(model: "anthropic/claude-sonnet-4", provider: :openrouter, assume_model_exists: true)
    @history = history
  end

  def reply(text, &blk)
    chat = @chat.with_instructions("You are helpful #{i}").with_temperature(0.2)
    @history.each {{ |m| chat.add_message(role: m[:role], content: m[:content]) }}
    response = chat.ask(text, &blk)
    chat.messages.last.content
    response.text if response.respond_to?(:text)
    client.complete {{ |chunk| chunk.content }}
  end

  private

  def client = @client ||= RubyLLM::Chat.new(model: "m{i}")
end
"""
CONTROLLER = """class Thing{i}Controller < ApplicationController
  before_action :set_thing

  def show
    @items = Item.where(thing: params[:id]).order(:created_at).limit(20)
    respond_to do |format|
      format.html
      format.turbo_stream {{ render turbo_stream: turbo_stream.append("items", partial: "items/item") }}
    end
  end

  private

  def set_thing
    @thing = Thing.find(params[:id])
  end
end
"""
VIEW = """<div id="thing-{i}">
  <% @items.each do |item| %>
    <%= render partial: "items/item", locals: {{ item: item }} %>
  <% end %>
  <%= turbo_frame_tag "frame-{i}" do %><p><%= @thing.name %></p><% end %>
</div>
"""
TEST = """require "test_helper"

class ChatService{i}Test < ActiveSupport::TestCase
  class FakeChat{i}
    def ask(text) = Struct.new(:content).new("ok")
    def with_instructions(_) = self
    def send_message(text) = ask(text)
  end

  test "replies" do
    RubyLLM.stub(:chat, FakeChat{i}.new) do
      assert_equal "ok", ChatService{i}.new([]).reply("hi")
    end
  end
end
"""


def make_project(root: Path, files: int) -> None:
    (root / "config").mkdir(parents=True)
    (root / "Gemfile").write_text("gem 'rails'\ngem 'ruby_llm'\n")
    (root / "config" / "application.rb").write_text(
        "module App\n  class Application < Rails::Application\n  end\nend\n"
    )
    kinds = [
        ("app/services/chat_service{i}.rb", SERVICE),
        ("app/controllers/thing{i}_controller.rb", CONTROLLER),
        ("app/views/things/show{i}.html.erb", VIEW),
        ("test/services/chat_service{i}_test.rb", TEST),
    ]
    for n in range(files):
        rel, template = kinds[n % len(kinds)]
        path = root / rel.format(i=n)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(i=n))


def run_once(root: Path) -> tuple[float, int]:
    files = ProjectFiles.scan(root)
    ctx = AuditContext(project_root=root, files=files, task=load_task("rails-chat"), facts=extract_facts(files))
    start = time.perf_counter()
    report = verify_project(ctx, {"ruby_llm": GEM}, roots=[])
    return time.perf_counter() - start, len(report.calls)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    opts = parser.parse_args()
    index_cached(GEM, "ruby_llm", "1.14.1")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "proj"
        make_project(root, opts.files)
        timings = []
        calls = 0
        for _ in range(opts.repeats):
            seconds, calls = run_once(root)
            timings.append(seconds)
    print(
        f"verify_project: {opts.files} files, {calls} gem calls: median {statistics.median(timings) * 1000:.0f} ms, "
        f"max {max(timings) * 1000:.0f} ms over {opts.repeats} runs"
    )


if __name__ == "__main__":
    main()
