"""Hotwire dimension: Turbo Streams, fetch + innerHTML, Stimulus, partials, inline asset dumps."""

from __future__ import annotations

from pathlib import Path

from shipbench.audit.checks import AuditContext, Hit
from shipbench.audit.facts import extract_facts
from shipbench.audit.files import ProjectFiles
from shipbench.tasks.pack import load_task
from shipbench.tasks.rails_chat.checks import hotwire

BASE = {
    "Gemfile": 'source "https://rubygems.org"\ngem "rails"\ngem "turbo-rails"\n',
    "config/application.rb": "module Chat\n  class Application < Rails::Application\n  end\nend\n",
}

STIMULUS = """\
import { Controller } from "@hotwired/stimulus"

export default class extends Controller {
  static targets = ["input"]
  reset() { this.element.reset() }
}
"""

CONTROLLER = """\
class MessagesController < ApplicationController
  def create
    @message = params[:content]
    respond_to do |format|
      format.turbo_stream
      format.html { redirect_to root_path }
    end
  end
end
"""

GOOD = {
    "app/controllers/messages_controller.rb": CONTROLLER,
    "app/views/messages/create.turbo_stream.erb": (
        '<%= turbo_stream.append "messages", partial: "messages/message" %>\n'
    ),
    "app/views/messages/_message.html.erb": "<div><%= message %></div>\n",
    "app/views/chats/show.html.erb": (
        '<div id="messages" data-controller="composer"><%= render "messages/message", message: "hi" %></div>\n'
    ),
    "app/views/layouts/application.html.erb": (
        "<html><head>\n<script>\n  document.documentElement.classList.add('js')\n</script>\n</head></html>\n"
    ),
    "app/javascript/controllers/composer_controller.js": STIMULUS,
}


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
    return [hit for check in hotwire.CHECKS for hit in check(ctx)]


def only(hits: list[Hit], rule: str) -> Hit:
    found = [h for h in hits if h.rule == rule]
    assert len(found) == 1, hits
    return found[0]


def without(files: dict[str, str], *rels: str) -> dict[str, str]:
    return {k: v for k, v in files.items() if k not in rels}


def test_idiomatic_hotwire_app_has_no_findings(tmp_path: Path) -> None:
    assert run(make_ctx(tmp_path, GOOD)) == []


def test_no_turbo_stream_anywhere(tmp_path: Path) -> None:
    controller = "class MessagesController < ApplicationController\n  def create; redirect_to root_path; end\nend\n"
    files = {
        **without(GOOD, "app/views/messages/create.turbo_stream.erb"),
        "app/controllers/messages_controller.rb": controller,
    }
    hit = only(run(make_ctx(tmp_path, files)), "hotwire.no_turbo_stream")
    assert hit.evidence[0].line == 0
    assert "not found" in hit.evidence[0].snippet


def test_turbo_stream_helper_or_broadcast_counts(tmp_path: Path) -> None:
    inline = """\
class MessagesController < ApplicationController
  def create
    render turbo_stream: turbo_stream.replace("thread", partial: "messages/message")
  end
end
"""
    files = {
        **without(GOOD, "app/views/messages/create.turbo_stream.erb"),
        "app/controllers/messages_controller.rb": inline,
    }
    assert run(make_ctx(tmp_path / "a", files)) == []

    broadcast = """\
class ReplyJob
  def perform(id, text)
    Turbo::StreamsChannel.broadcast_append_to("chat_#{id}", target: "messages", html: text)
  end
end
"""
    plain = "class MessagesController < ApplicationController\n  def create; head :ok; end\nend\n"
    files = {
        **without(GOOD, "app/views/messages/create.turbo_stream.erb"),
        "app/controllers/messages_controller.rb": plain,
        "app/services/reply_job.rb": broadcast,
    }
    assert [h.rule for h in run(make_ctx(tmp_path / "b", files))] == []


def test_fetch_then_innerhtml_in_a_stimulus_controller(tmp_path: Path) -> None:
    js = """\
import { Controller } from "@hotwired/stimulus"

export default class extends Controller {
  async send() {
    const res = await fetch("/messages", { method: "POST" })
    const data = await res.json()
    this.outputTarget.innerHTML = ""
    this.outputTarget.innerHTML += `<div class="msg">${data.reply}</div>`
  }
}
"""
    files = {**GOOD, "app/javascript/controllers/composer_controller.js": js}
    hit = only(run(make_ctx(tmp_path, files)), "hotwire.fetch_innerhtml")
    assert [(e.path, e.line) for e in hit.evidence] == [("app/javascript/controllers/composer_controller.js", 8)]


def test_innerhtml_without_fetch_is_not_flagged(tmp_path: Path) -> None:
    js = STIMULUS.replace("reset() {", "render(html) { this.element.innerHTML = html }\n  reset() {")
    files = {**GOOD, "app/javascript/controllers/composer_controller.js": js}
    assert run(make_ctx(tmp_path, files)) == []


def test_inline_script_fetch_with_insert_adjacent_html_reports_template_line(tmp_path: Path) -> None:
    view = """\
<div id="log"></div>
<script>
  document.querySelector("form").addEventListener("submit", async (e) => {
    e.preventDefault()
    const r = await fetch("<%= messages_path %>", { method: "POST" })
    document.getElementById("log").insertAdjacentHTML("beforeend", await r.text())
  })
</script>
"""
    files = {**GOOD, "app/views/chats/show.html.erb": view + GOOD["app/views/chats/show.html.erb"]}
    hit = only(run(make_ctx(tmp_path, files)), "hotwire.fetch_innerhtml")
    assert [(e.path, e.line) for e in hit.evidence] == [("app/views/chats/show.html.erb", 6)]
    assert "insertAdjacentHTML" in hit.evidence[0].snippet


def test_no_stimulus_controller(tmp_path: Path) -> None:
    files = without(GOOD, "app/javascript/controllers/composer_controller.js")
    files["app/views/chats/show.html.erb"] = '<div id="messages"><%= render "messages/message", message: "x" %></div>\n'
    hit = only(run(make_ctx(tmp_path, files)), "hotwire.no_stimulus")
    assert hit.evidence[0].line == 0


def test_view_attaching_a_missing_controller_is_no_stimulus_with_its_line(tmp_path: Path) -> None:
    files = without(GOOD, "app/javascript/controllers/composer_controller.js")
    hit = only(run(make_ctx(tmp_path, files)), "hotwire.no_stimulus")
    assert [(e.path, e.line) for e in hit.evidence] == [("app/views/chats/show.html.erb", 1)]


def test_stimulus_controller_found_by_data_controller_reference(tmp_path: Path) -> None:
    files = {
        **without(GOOD, "app/javascript/controllers/composer_controller.js"),
        "app/javascript/controllers/composer_controller.js": "// controller\n",
    }
    assert run(make_ctx(tmp_path, files)) == []


def test_no_partial_files(tmp_path: Path) -> None:
    files = without(GOOD, "app/views/messages/_message.html.erb")
    files["app/views/messages/create.turbo_stream.erb"] = '<%= turbo_stream.append "messages", html: "x" %>\n'
    files["app/views/chats/show.html.erb"] = '<div data-controller="composer"></div>\n'
    hit = only(run(make_ctx(tmp_path, files)), "hotwire.no_partials")
    assert hit.evidence[0].line == 0


def test_partials_never_rendered(tmp_path: Path) -> None:
    files = dict(GOOD)
    files["app/views/messages/create.turbo_stream.erb"] = '<%= turbo_stream.append "messages", html: "x" %>\n'
    files["app/views/chats/show.html.erb"] = '<div data-controller="composer"></div>\n'
    hit = only(run(make_ctx(tmp_path, files)), "hotwire.no_partials")
    assert [e.path for e in hit.evidence] == ["app/views/messages/_message.html.erb"]
    assert "never rendered" in hit.evidence[0].snippet


def test_large_inline_style_and_script_are_dumps(tmp_path: Path) -> None:
    style = "<style>\n" + "".join(f".c{i} {{ color: red; }}\n" for i in range(40)) + "</style>\n"
    script = '<script type="module">\n' + "".join(f"  console.log({i})\n" for i in range(15)) + "</script>\n"
    layout = "<html>\n<head>\n" + style + "</head>\n<body>\n" + script + "</body>\n</html>\n"
    files = {**GOOD, "app/views/layouts/application.html.erb": layout}
    hit = only(run(make_ctx(tmp_path, files)), "hotwire.inline_assets")
    assert [(e.path, e.line) for e in hit.evidence] == [
        ("app/views/layouts/application.html.erb", 3),
        ("app/views/layouts/application.html.erb", 47),
    ]


def test_small_script_importmap_and_short_style_are_fine(tmp_path: Path) -> None:
    importmap = (
        '<script type="importmap">\n{\n' + "".join(f'  "m{i}": "/m{i}.js",\n' for i in range(40)) + "}\n</script>\n"
    )
    style = "<style>\n" + "".join(f".c{i} {{ color: red; }}\n" for i in range(10)) + "</style>\n"
    layout = (
        "<html><head>\n" + importmap + style + "<script>\n  window.x = 1\n  window.y = 2\n</script>\n</head></html>\n"
    )
    files = {**GOOD, "app/views/layouts/application.html.erb": layout}
    assert run(make_ctx(tmp_path, files)) == []


def test_bad_input_never_raises(tmp_path: Path) -> None:
    files = {
        **GOOD,
        "app/javascript/controllers/broken_controller.js": "export class extends {{{ fetch( x.innerHTML",
        "app/views/chats/broken.html.erb": "<script>\n<% if %>\n fetch( \n<style>",
        "app/controllers/broken_controller.rb": "class Broken < \n  def (\n",
    }
    hits = run(make_ctx(tmp_path, files))
    assert all(h.rule.startswith("hotwire.") for h in hits)


def test_stimulus_reference_through_data_hash_helper(tmp_path: Path) -> None:
    files = without(GOOD, "app/javascript/controllers/composer_controller.js")
    files["app/views/chats/show.html.erb"] = (
        '<%= link_to "Home", root_path, controller: "chats" %>\n'
        '<%= form_with url: "/m", data: { turbo: true, controller: "chat-composer" } do |f| %><% end %>\n'
        '<%= render "messages/message", message: "x" %>\n'
    )
    hit = only(run(make_ctx(tmp_path / "a", files)), "hotwire.no_stimulus")
    assert [(e.path, e.line) for e in hit.evidence] == [("app/views/chats/show.html.erb", 2)]
    files["app/javascript/controllers/chat_composer_controller.js"] = "// registered elsewhere\n"
    assert run(make_ctx(tmp_path / "b", files)) == []


def test_stimulus_behaviour_in_class_field_arrow_functions_counts(tmp_path: Path) -> None:
    from shipbench.audit.ruby.parse import parse_js
    from shipbench.tasks.rails_chat.checks.hotwire import _has_behaviour

    head = 'import { Controller } from "@hotwired/stimulus"\nexport default class extends Controller {\n'
    field = head + "  submit = (e) => { e.preventDefault(); this.formTarget.requestSubmit() }\n}\n"
    logging = head + '  connect() { console.log("hi") }\n  ping = () => console.log("x")\n}\n'
    assert _has_behaviour(parse_js("a_controller.js", field.encode()))
    assert not _has_behaviour(parse_js("b_controller.js", logging.encode()))


# ---------------------------------------------------------------- broken JS, templates that raise


def test_a_controller_that_does_not_parse_means_no_stimulus_runs(tmp_path: Path) -> None:
    unclosed = STIMULUS.replace("reset() { this.element.reset() }", "reset() {\n    fetch(url).then(r => {\n  }")
    files = {**GOOD, "app/javascript/controllers/composer_controller.js": unclosed}
    hit = only(run(make_ctx(tmp_path, files)), "hotwire.no_stimulus")
    assert "does not parse" in hit.message and hit.evidence[0].path.endswith("composer_controller.js")


def test_one_broken_controller_breaks_the_working_ones_beside_it(tmp_path: Path) -> None:
    broken = "import { Controller } from '@hotwired/stimulus'\nexport default class extends Controller {\n  go( {\n}\n"
    files = {**GOOD, "app/javascript/controllers/scroll_controller.js": broken}
    hit = only(run(make_ctx(tmp_path, files)), "hotwire.no_stimulus")
    assert [e.path for e in hit.evidence] == ["app/javascript/controllers/scroll_controller.js"]


def test_a_stream_template_reading_a_class_variable_raises(tmp_path: Path) -> None:
    stream = (
        '<%= turbo_stream.append "messages" do %>\n  <%= render "messages/message", message: @@log.last %>\n<% end %>\n'
    )
    files = {**GOOD, "app/views/messages/create.turbo_stream.erb": stream}
    hit = only(run(make_ctx(tmp_path, files)), "hotwire.template_raises")
    assert (hit.evidence[0].path, hit.evidence[0].line) == ("app/views/messages/create.turbo_stream.erb", 2)


def test_a_page_reading_a_class_variable_raises_and_ivars_do_not(tmp_path: Path) -> None:
    page = "<% @@history.each do |m| %>\n  <p><%= m %></p>\n<% end %>\n"
    files = {**GOOD, "app/views/chats/index.html.erb": page}
    assert only(run(make_ctx(tmp_path, files)), "hotwire.template_raises").evidence[0].line == 1
    fine = {**GOOD, "app/views/chats/index.html.erb": page.replace("@@history", "@history")}
    assert [h.rule for h in run(make_ctx(tmp_path / "ok", fine))] == []
