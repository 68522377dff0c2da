"""rails-chat checks for the `hotwire` dimension: Turbo Streams, Stimulus, partials, no hand-written
fetch + innerHTML rendering, no inline asset dumps.

Invariants: graded on substance, not presence: Turbo Streams count when they carry the message flow
(a stream template of an action that reaches the LLM, a stream rendered in such an action after the
LLM call, a broadcast from the LLM path), Stimulus when some controller has behaviour (a method doing
more than logging). Presence rules (no_turbo_stream, no_stimulus, no_partials) fire at most once, with
`absent` evidence or the nearest offending line; line rules point at the offending line. Tests are
never consulted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from shipbench.audit.checks import AuditContext, Check, Hit
from shipbench.audit.models import Evidence
from shipbench.audit.ruby.parse import Node, ParsedSource, of_type
from shipbench.tasks.rails_chat.checks._common import app_ruby, calls, def_name, is_controller, method_name
from shipbench.tasks.rails_chat.checks._frontend import (
    JS_DIRS,
    inline_blocks,
    js_calls,
    js_fetch_calls,
    js_has_subclass,
    js_html_sinks,
    js_import_sources,
    js_units,
    view_sources,
)
from shipbench.tasks.rails_chat.checks._js_output import js_callee
from shipbench.tasks.rails_chat.checks._llm_flow import send_sites
from shipbench.tasks.rails_chat.checks._llmpath import build_llm_path, controller_resource, sending_methods

SCRIPT_MAX_LINES = 10
"""An inline JS script with more non-blank lines than this is a dump (a 1-2 line snippet is fine)."""
STYLE_MAX_LINES = 30
"""An inline <style> block with more non-blank lines than this is a dump."""

TURBO_ACTIONS = frozenset(
    {"append", "prepend", "replace", "update", "remove", "before", "after", "morph", "refresh", "action"}
)
_BROADCAST_RE = re.compile(r"^broadcast_(append|prepend|replace|update|remove|action|render|refresh|before|after)")
_STIMULUS_PACKAGES = frozenset({"@hotwired/stimulus", "stimulus"})
_DATA_CONTROLLER_RE = re.compile(
    r"""data-controller\s*=\s*["']([^"']+)["']|data:\s*\{[^}]*?\bcontroller:\s*["']([\w\-/ ]+)["']""", re.I
)
_NON_PARTIAL_RENDER_KEYS = frozenset({"template", "file", "html", "plain", "inline", "body", "json", "action"})


# ---------------------------------------------------------------- Turbo Streams


def _ruby_turbo_stream_use(parsed: ParsedSource) -> bool:
    for site in calls(parsed):
        method, recv = site.method, site.receiver
        if method == "turbo_stream" and recv == "format":
            return True
        if recv == "turbo_stream" and method in TURBO_ACTIONS:
            return True
        if method in ("turbo_stream_from", "turbo_stream_action_tag") or _BROADCAST_RE.match(method):
            return True
        if method == "render" and _has_pair_key(parsed, site.node, "turbo_stream"):
            return True
    return b"Turbo::StreamsChannel" in parsed.source or b"<turbo-stream" in parsed.source


def _has_pair_key(parsed: ParsedSource, call_node: Node, key: str) -> bool:
    args = call_node.child_by_field_name("arguments")
    if args is None:
        return False
    for pair in (c for c in args.children if c.type == "pair"):
        k = pair.child_by_field_name("key")
        if k is not None and parsed.text(k).strip(":\"'") == key:
            return True
    return False


def _turbo_stream_templates(ctx: AuditContext) -> list[str]:
    return [f.rel for f in ctx.app_files("app/views") if ".turbo_stream." in f.name]


def _stream_calls(parsed: ParsedSource, node: Node) -> list[Node]:
    """Turbo Stream responses under `node`: `turbo_stream.x`, `format.turbo_stream`, `render turbo_stream:`."""
    found: list[Node] = []
    for call in of_type(node, "call"):
        site_method, recv = method_name(parsed, call), call.child_by_field_name("receiver")
        recv_text = parsed.text(recv) if recv is not None else ""
        if (
            (recv_text == "turbo_stream" and site_method in TURBO_ACTIONS)
            or (site_method == "turbo_stream" and recv_text == "format")
            or (site_method == "render" and _has_pair_key(parsed, call, "turbo_stream"))
        ):
            found.append(call)
    return found


def _streams_carry_messages(ctx: AuditContext) -> bool:
    """Some Turbo Stream is part of the message flow (see the module's invariants)."""
    path = build_llm_path(ctx)
    files = [p for p in app_ruby(ctx) if p.rel in set(path.files)]
    sending = sending_methods(files, [(site.parsed.rel, site.node.start_byte) for site in send_sites(ctx)])
    for parsed in files:
        if not is_controller(parsed):
            if any(_BROADCAST_RE.match(s.method) for s in calls(parsed)) or b"Turbo::StreamsChannel" in parsed.source:
                return True
            continue
        resource = controller_resource(parsed.rel)
        actions = path.llm_actions.get(resource, set())
        folder = parsed.rel.rsplit("/controllers/", 1)[-1].removesuffix("_controller.rb")
        methods = {def_name(parsed, m): m for m in of_type(parsed.root, "method")}
        for name, method in methods.items():
            if name not in actions and "*" not in actions:
                continue
            if any(
                t.endswith(f"views/{folder}/{name}.turbo_stream.erb") or f"/{folder}/{name}.turbo_stream." in t
                for t in _turbo_stream_templates(ctx)
            ):
                return True
            sends = [c.start_byte for c in of_type(method, "call") if method_name(parsed, c) in sending]
            first = min(sends) if sends else method.start_byte
            if any(c.start_byte > first for c in _stream_calls(parsed, method)):
                return True
            helpers = [  # the action's own helpers called after the LLM call (`respond_with_reply`)
                methods[method_name(parsed, c) or parsed.text(c)]
                for c in of_type(method, "call", "identifier")
                if c.start_byte > first
                and (method_name(parsed, c) or parsed.text(c)) in methods
                and (method_name(parsed, c) or parsed.text(c)) != name
            ]
            if any(_stream_calls(parsed, h) for h in helpers):
                return True
    return not path.exists  # nothing to judge the flow against: presence is all there is


def check_no_turbo_stream(ctx: AuditContext) -> Iterable[Hit]:
    sources = app_ruby(ctx) + view_sources(ctx)
    present = bool(_turbo_stream_templates(ctx)) or any(_ruby_turbo_stream_use(p) for p in sources)
    if present and not _streams_carry_messages(ctx):
        yield Hit(
            rule="hotwire.streams_off_message_flow",
            message="Turbo Streams are used, but not for the message flow: no stream answers the action that "
            "calls the LLM after the call, no broadcast from the LLM path.",
            evidence=(ctx.absent("a turbo stream rendered with the LLM's reply"),),
        )
        return
    if present:
        hand_written = _hand_rendered_messages(ctx)
        if hand_written and not any(list(js_calls(u, "renderStreamMessage")) for u in js_units(ctx)):
            yield Hit(
                rule="hotwire.streams_off_message_flow",
                message="Turbo Streams exist, but the message flow does not use them: replies are fetched "
                "and written into the page by hand.",
                evidence=tuple(hand_written[:3]),
            )
        return
    yield Hit(
        rule="hotwire.no_turbo_stream",
        message="No Turbo Stream response: no format.turbo_stream, turbo_stream template, helper or broadcast.",
        evidence=(ctx.absent("format.turbo_stream / render turbo_stream: / *.turbo_stream.erb / broadcasts"),),
    )


def check_template_raises(ctx: AuditContext) -> Iterable[Hit]:
    """A view reading a class variable (`@@messages`): templates compile into methods of a view class,
    which does not see the controller's class variables, so rendering raises NameError."""
    evidence = [
        ctx.at(view, node)
        for view in view_sources(ctx)
        if view.kind == "erb"
        for node in of_type(view.root, "class_variable")
    ]
    if evidence:
        yield Hit(
            rule="hotwire.template_raises",
            message="A view reads a class variable (@@x): a template cannot see the controller's class "
            "variables, so rendering it raises NameError and that response (often the message stream) fails.",
            evidence=tuple(dict.fromkeys(evidence)),
        )


# ---------------------------------------------------------------- fetch + innerHTML


def _hand_rendered_messages(ctx: AuditContext) -> list[Evidence]:
    """The HTML sinks of JS units that also fetch: messages rendered by hand rather than by Turbo."""
    evidence: list[Evidence] = []
    for unit in js_units(ctx):
        if not js_fetch_calls(unit):
            continue
        sinks = js_html_sinks(unit)
        if sinks:
            evidence.append(ctx.at(unit, sinks[0]))
    return evidence


def check_fetch_innerhtml(ctx: AuditContext) -> Iterable[Hit]:
    evidence = _hand_rendered_messages(ctx)
    if evidence:
        yield Hit(
            rule="hotwire.fetch_innerhtml",
            message="Messages are fetched with fetch() and written into the page with innerHTML/insertAdjacentHTML.",
            evidence=tuple(evidence),
        )


# ---------------------------------------------------------------- Stimulus


def _js_files(ctx: AuditContext) -> list[ParsedSource]:
    return [p for prefix in JS_DIRS for p in ctx.js_sources(prefix)]


def _stimulus_controller_count(ctx: AuditContext) -> int:
    """`*_controller.js` files subclassing a Controller, in a project that imports Stimulus."""
    files = _js_files(ctx)
    if not any(_STIMULUS_PACKAGES & set(js_import_sources(p)) for p in files):
        return 0
    return sum(1 for p in files if p.rel.endswith("_controller.js") and js_has_subclass(p))


def _controller_refs(ctx: AuditContext) -> Iterator[tuple[ParsedSource, int, str]]:
    """(template, line, identifier) for every Stimulus identifier a view attaches."""
    for view in view_sources(ctx):
        text = view.source.decode("utf-8", "replace")
        for match in _DATA_CONTROLLER_RE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            for ident in (match.group(1) or match.group(2) or "").split():
                if "<%" not in ident:
                    yield view, line, ident


def _controller_file_exists(ctx: AuditContext, ident: str) -> bool:
    stem = ident.replace("--", "/").replace("-", "_") + "_controller"
    for prefix in JS_DIRS:
        for ext in (".js", ".mjs", ".ts"):
            if ctx.app_file(f"{prefix}/controllers/{stem}{ext}") is not None:
                return True
    return False


_TRIVIAL_JS = frozenset({"log", "debug", "info", "warn", "error", "trace"})


def _has_behaviour(parsed: ParsedSource) -> bool:
    """A controller class with at least one method that does more than log (or call super)."""
    bodies = [m.child_by_field_name("body") for m in of_type(parsed.root, "method_definition")]
    for field in of_type(parsed.root, "field_definition"):  # `submit = (event) => { ... }`
        value = field.child_by_field_name("value")
        if value is not None and value.type in ("arrow_function", "function_expression", "function"):
            bodies.append(value.child_by_field_name("body"))
    for body in bodies:
        if body is not None and body.type != "statement_block":
            logs = body.type == "call_expression" and js_callee(parsed, body)[0] == "console"
            if not logs:
                return True  # an expression-bodied arrow function that does something
            continue
        statements = [c for c in body.named_children if c.type != "comment"] if body is not None else []
        for stmt in statements:
            calls_in = list(of_type(stmt, "call_expression"))
            trivial = bool(calls_in) and all(
                js_callee(parsed, c)[0] in ("console", "super") or js_callee(parsed, c)[1] in _TRIVIAL_JS
                for c in calls_in
            )
            if not trivial:
                return True
    return False


def _unparsable_controllers(ctx: AuditContext) -> list[ParsedSource]:
    return [p for p in _js_files(ctx) if p.rel.endswith("_controller.js") and p.has_error]


def check_no_stimulus(ctx: AuditContext) -> Iterable[Hit]:
    count = _stimulus_controller_count(ctx)
    ctx.derived["stimulus_controllers"] = count
    broken = _unparsable_controllers(ctx)
    if broken:
        # one module of the graph that fails to parse fails the import of every controller beside it
        # (importmap's index.js imports them all; a bundler refuses to build)
        yield Hit(
            rule="hotwire.no_stimulus",
            message="A Stimulus controller does not parse (JavaScript syntax error): the module fails to load, "
            "and with it the controllers index, so no controller runs.",
            evidence=tuple(ctx.at_line(p.rel, p.first_error_line()) for p in broken[:5]),
        )
        return
    controllers = [p for p in _js_files(ctx) if p.rel.endswith("_controller.js") and js_has_subclass(p)]
    if count and not any(_has_behaviour(p) for p in controllers):
        yield Hit(
            rule="hotwire.no_stimulus",
            message="Stimulus controllers exist but none has behaviour: their methods only log or are empty.",
            evidence=tuple(ctx.whole_file(p.rel, "no behaviour") for p in controllers[:5]),
        )
        return
    if count:
        return
    refs = list(_controller_refs(ctx))
    if any(_controller_file_exists(ctx, ident) for _view, _line, ident in refs):
        return
    evidence = tuple(ctx.at_line(view.rel, line) for view, line, _ident in refs[:5])
    detail = "; views attach controllers that do not exist" if refs else ""
    yield Hit(
        rule="hotwire.no_stimulus",
        message=f"No Stimulus controller (no *_controller.js extending Controller from @hotwired/stimulus){detail}.",
        evidence=evidence or (ctx.absent("app/javascript/controllers/*_controller.js"),),
    )


# ---------------------------------------------------------------- partials


def _partial_files(ctx: AuditContext) -> list[str]:
    return [f.rel for f in ctx.app_files("app/views") if f.name.startswith("_")]


def _renders_partial(ctx: AuditContext) -> bool:
    for view in view_sources(ctx):
        for site in calls(view, "render"):
            if not any(_has_pair_key(view, site.node, k) for k in _NON_PARTIAL_RENDER_KEYS):
                return True
    for parsed in app_ruby(ctx):
        for pair in of_type(parsed.root, "pair"):
            key = pair.child_by_field_name("key")
            if key is not None and parsed.text(key).strip(":\"'") in ("partial", "collection"):
                return True
    return False


def check_no_partials(ctx: AuditContext) -> Iterable[Hit]:
    partials = _partial_files(ctx)
    if not partials:
        yield Hit(
            rule="hotwire.no_partials",
            message="No view partials: the UI is written as monolithic templates.",
            evidence=(ctx.absent("app/views/**/_*.html.erb"),),
        )
    elif not _renders_partial(ctx):
        yield Hit(
            rule="hotwire.no_partials",
            message="Partials exist but no view or controller renders one.",
            evidence=tuple(ctx.whole_file(rel, "partial never rendered") for rel in partials[:5]),
        )


# ---------------------------------------------------------------- inline assets


def check_inline_assets(ctx: AuditContext) -> Iterable[Hit]:
    evidence: list[Evidence] = []
    for view in view_sources(ctx):
        for block in inline_blocks(view):
            too_long = (block.is_js and block.code_lines > SCRIPT_MAX_LINES) or (
                block.tag == "style" and block.code_lines > STYLE_MAX_LINES
            )
            if too_long:
                evidence.append(ctx.at_line(view.rel, block.line))
    if evidence:
        yield Hit(
            rule="hotwire.inline_assets",
            message="Large inline <script>/<style> blocks in views instead of asset files or Stimulus controllers.",
            evidence=tuple(evidence),
        )


CHECKS: list[Check] = [
    check_no_turbo_stream,
    check_template_raises,
    check_fetch_innerhtml,
    check_no_stimulus,
    check_no_partials,
    check_inline_assets,
]
