"""rails-chat checks for the `production` dimension: XSS, CSRF, committed secrets, process-local state.

Invariants: every hit is keyed by its location (`path:line`), so one place never deducts twice and
distinct places are listed apart; output built only from fixed literals, constants or helpers that
return escaped HTML (render, t, sanitize, turbo_stream...) is never flagged as unsafe; a secret's
evidence snippet is redacted, never the secret itself; commented-out code never fires (comments
are not in the syntax tree).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from shipbench.audit.checks import AuditContext, Check, Hit
from shipbench.audit.models import Evidence
from shipbench.audit.ruby.parse import (
    Node,
    ParsedSource,
    enclosing,
    erb_output_directives,
    of_type,
    parse_ruby,
)
from shipbench.tasks.rails_chat.checks._common import (
    app_ruby,
    bare_statements,
    call_arguments,
    calls,
    is_collection_constructor,
    is_plain_string,
    keyword_arguments,
    method_name,
    unwrap,
    words,
    writes,
)
from shipbench.tasks.rails_chat.checks._frontend import js_units
from shipbench.tasks.rails_chat.checks._js_output import project_escapers, unsafe_js_sinks
from shipbench.tasks.rails_chat.checks._persistence_signals import CLASS_STORE_MACROS
from shipbench.tasks.rails_chat.checks.persistence import unbounded_cookie_writes

SAFE_HTML_METHODS = words(
    """
    render render_to_string t translate sanitize h html_escape escape_once json_escape to_json safe_join
    content_tag tag link_to button_to image_tag strip_tags javascript_include_tag
    javascript_importmap_tags stylesheet_link_tag csrf_meta_tags csp_meta_tag turbo_stream_from
    escape_javascript j dom_id content_for
    """
)
SAFE_CHAIN_ROOTS = frozenset({"turbo_stream", "tag"})
ESCAPE_FUNCTIONS = frozenset({"escapeHTML", "escape_html", "escapeElement"})
_HELPER_RECEIVER_RE = re.compile(r"\bhelpers\b|view_context|ERB::Util|\bCGI\b|Rack::Utils|Controller\b|renderer")
LITERAL_TYPES = frozenset({"integer", "float", "nil", "true", "false", "constant", "scope_resolution", "yield"})
CSRF_SKIPPERS = ("skip_before_action", "skip_before_filter", "skip_action_callback")
SINGLETON_ACCESSORS = ("attr_accessor", "attr_writer")
BUILTIN_GLOBALS = frozenset(
    {"$stdout", "$stderr", "$stdin", "$0", "$PROGRAM_NAME", "$VERBOSE", "$DEBUG", "$LOAD_PATH", "$_", "$~"}
)
_IDENTIFIER_RE = re.compile(r"[A-Z][A-Z_]*|[a-z][a-z_]*")
_TOKEN_RE = re.compile(r"([A-Za-z0-9_\-]{4})[A-Za-z0-9_\-]{8,}")


def _loc_key(ev: Evidence) -> str:
    return f"{ev.path}:{ev.line}"


def _clip(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# ---------------------------------------------------------------- unsafe output (Ruby / ERB)


def is_safe_html_expr(parsed: ParsedSource, node: Node) -> bool:
    """True when `node` cannot carry attacker-controlled markup: literals, constants, escaping helpers."""
    node = unwrap(node)
    if node.type in LITERAL_TYPES or is_plain_string(node):
        return True
    if node.type == "string":  # interpolated: safe when every interpolation is
        parts = [c.named_children[0] for c in node.children if c.type == "interpolation" and c.named_child_count]
        return all(is_safe_html_expr(parsed, p) for p in parts)
    if node.type == "binary":
        left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
        return left is not None and right is not None and all(is_safe_html_expr(parsed, n) for n in (left, right))
    if node.type == "call":
        return _is_safe_helper_call(parsed, node) or _chain_root(parsed, node) in SAFE_CHAIN_ROOTS
    return node.type == "identifier" and parsed.text(node) in SAFE_CHAIN_ROOTS


def _is_safe_helper_call(parsed: ParsedSource, call: Node) -> bool:
    """A Rails view helper that returns escaped HTML, called as a helper (`render`, `helpers.sanitize`).

    The same name on another receiver is another method: `markdown.render(text)` returns raw HTML.
    """
    name = method_name(parsed, call)
    recv = call.child_by_field_name("receiver")
    if recv is None:
        return name in SAFE_HTML_METHODS
    return name == "to_json" or (
        name in SAFE_HTML_METHODS | ESCAPE_FUNCTIONS and bool(_HELPER_RECEIVER_RE.search(parsed.text(recv)))
    )


def _chain_root(parsed: ParsedSource, node: Node) -> str:
    while node.type == "call":
        recv = node.child_by_field_name("receiver")
        if recv is None:
            return method_name(parsed, node)
        node = recv
    return parsed.text(node)


def _ruby_unsafe_sites(parsed: ParsedSource) -> Iterator[tuple[Node, str]]:
    for site in calls(parsed, "raw"):
        args = call_arguments(site.node)
        if not site.receiver and args and not is_safe_html_expr(parsed, args[0]):
            yield site.node, f"raw({_clip(parsed.text(args[0]))}) renders unescaped output"
    for site in calls(parsed, "html_safe"):
        recv = site.node.child_by_field_name("receiver")
        if recv is not None and not is_safe_html_expr(parsed, recv):
            yield site.node, f"{_clip(parsed.text(recv))}.html_safe marks unescaped output as safe"
    for site in calls(parsed):
        value = keyword_arguments(parsed, site.node).get("sanitize")
        if value is not None and unwrap(value).type == "false":
            yield site.node, f"{site.method}(..., sanitize: false) renders unsanitized HTML"


def _erb_double_equals(ctx: AuditContext, rel: str, source: bytes) -> Iterator[Hit]:
    for opener, line, code in erb_output_directives(source):
        if opener != "<%==" or not code:
            continue
        expr = parse_ruby(rel, code.encode())
        first = expr.root.named_children[0] if expr.root.named_child_count else None
        if first is not None and is_safe_html_expr(expr, first):
            continue
        ev = ctx.at_line(rel, line)
        yield Hit("production.unsafe_output", f"<%== {_clip(code)} %> renders unescaped output", (ev,), _loc_key(ev))


def check_unsafe_output(ctx: AuditContext) -> Iterator[Hit]:
    for parsed in ctx.erb_sources("app") + ctx.ruby_sources("app"):
        for node, message in _ruby_unsafe_sites(parsed):
            ev = ctx.at(parsed, node)
            yield Hit("production.unsafe_output", message, (ev,), _loc_key(ev))
        if parsed.kind == "erb":
            yield from _erb_double_equals(ctx, parsed.rel, parsed.source)
    units = [u for u in js_units(ctx) if "/builds/" not in u.rel and not u.rel.endswith(".min.js")]  # not bundles
    escapers = project_escapers(units, escaped_json_fields(ctx))
    for parsed in units:  # JS files and the inline <script> blocks of views
        for node, message in unsafe_js_sinks(parsed, escapers):
            ev = ctx.at(parsed, node)
            yield Hit("production.unsafe_output", message, (ev,), _loc_key(ev))


def _json_pairs(parsed: ParsedSource, node: Node) -> Iterator[tuple[str, Node]]:
    """(key, value) of a JSON hash literal and the hashes nested in it."""
    for pair in (c for c in node.named_children if c.type == "pair"):
        key, value = pair.child_by_field_name("key"), pair.child_by_field_name("value")
        if key is None or value is None:
            continue
        if value.type == "hash":
            yield from _json_pairs(parsed, value)
        else:
            yield parsed.text(key).strip("\"':"), value


def escaped_json_fields(ctx: AuditContext) -> frozenset[str]:
    """Keys of `render json: {...}` hashes whose every value is escaped (or fixed) HTML."""
    verdicts: dict[str, bool] = {}
    for parsed in ctx.ruby_sources("app"):
        for site in calls(parsed, "render"):
            payload = keyword_arguments(parsed, site.node).get("json")
            if payload is None or payload.type != "hash":
                continue
            for key, value in _json_pairs(parsed, payload):
                safe = is_safe_html_expr(parsed, value) and not parsed.text(value).endswith(".to_json")
                verdicts[key] = verdicts.get(key, True) and safe
    return frozenset(k for k, safe in verdicts.items() if safe)


# ---------------------------------------------------------------- CSRF


def _inherits_api(parsed: ParsedSource, node: Node) -> bool:
    klass = enclosing(node, "class")
    superclass = klass.child_by_field_name("superclass") if klass is not None else None
    return superclass is not None and "ActionController::API" in parsed.text(superclass)


def _names_symbol(parsed: ParsedSource, call: Node, symbol: str) -> bool:
    return any(parsed.text(a) in (f":{symbol}", f'"{symbol}"', f"'{symbol}'") for a in call_arguments(call))


def _csrf_sites(parsed: ParsedSource) -> Iterator[tuple[Node, str]]:
    for node in [s.node for s in calls(parsed, "skip_forgery_protection")] + list(
        bare_statements(parsed, "skip_forgery_protection")
    ):
        yield node, "skip_forgery_protection disables CSRF protection"
    for site in calls(parsed, *CSRF_SKIPPERS):
        if _names_symbol(parsed, site.node, "verify_authenticity_token"):
            yield site.node, f"{site.method} :verify_authenticity_token disables CSRF protection"
    for site in calls(parsed, "protect_from_forgery"):
        kwargs = keyword_arguments(parsed, site.node)
        strategy = kwargs.get("with")
        if strategy is None or parsed.text(strategy) != ":null_session" or "if" in kwargs or "unless" in kwargs:
            continue
        if not _inherits_api(parsed, site.node):
            yield site.node, "protect_from_forgery with: :null_session in a controller serving HTML"


def _forgery_config_off(parsed: ParsedSource) -> Iterator[tuple[Node, str]]:
    for node in of_type(parsed.root, "assignment"):
        left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
        if left is None or right is None or left.type != "call" or unwrap(right).type != "false":
            continue
        if method_name(parsed, left) == "allow_forgery_protection":
            yield node, "allow_forgery_protection = false turns CSRF protection off"


def check_csrf_disabled(ctx: AuditContext) -> Iterator[Hit]:
    test_env = ctx.app_path("config/environments/test.rb")
    for parsed in app_ruby(ctx):
        sites = list(_forgery_config_off(parsed)) if parsed.rel != test_env else []
        if parsed.rel.startswith(ctx.app_path("app/")):
            sites += list(_csrf_sites(parsed))
        for node, message in sites:
            ev = ctx.at(parsed, node)
            yield Hit("production.csrf_disabled", f"{message} ({parsed.rel})", (ev,), _loc_key(ev))


# ---------------------------------------------------------------- committed secrets


def redact(text: str) -> str:
    """Mask every long token-like run except identifiers (`OPENROUTER_API_KEY`, `openrouter_api_key`).

    A masked run keeps its first 4 characters, so a reader can still tell `sk-or-...` from `AKIA...`.
    """

    def mask(m: re.Match[str]) -> str:
        run = m.group(0)
        return run if _IDENTIFIER_RE.fullmatch(run) else m.group(1) + "…[redacted]"

    return _TOKEN_RE.sub(mask, text)


_ENV_ASSIGNMENT_RE = re.compile(r"^\s*(?:export\s+)?[A-Za-z_][A-Za-z0-9_]*\s*=\s*['\"]?[^\s'\"#]")


def _first_env_assignment(ctx: AuditContext, path: str) -> int:
    """1-based line of the first `KEY=value` with a value in an env file (0 if none is found)."""
    source = ctx.files.get(path)
    if source is None:
        return 0
    for number, text in enumerate(source.read_text().splitlines(), 1):
        if _ENV_ASSIGNMENT_RE.match(text):
            return number
    return 0


def check_committed_secret(ctx: AuditContext) -> Iterator[Hit]:
    facts = ctx.facts
    for secret in facts.secrets:
        ev = ctx.at_line(secret.path, secret.line)
        kind = secret.detail or "secret"
        ev = Evidence(path=ev.path, line=ev.line, snippet=redact(ev.snippet))
        yield Hit("production.committed_secret", f"{kind} committed in {secret.path}", (ev,), key=secret.path)
    for path in facts.committed_env_files:
        line = _first_env_assignment(ctx, path)
        ev = ctx.at_line(path, line) if line else ctx.whole_file(path, "env file with values")
        ev = Evidence(path=ev.path, line=ev.line, snippet=redact(ev.snippet))
        yield Hit("production.committed_secret", f"environment file with values committed: {path}", (ev,), key=path)
    if facts.master_key:
        yield Hit(
            "production.committed_secret",
            f"Rails master key committed: {facts.master_key}",
            (ctx.whole_file(facts.master_key, "config/master.key is committed"),),
            key=facts.master_key,
        )


# ---------------------------------------------------------------- process-local state


def class_level(node: Node) -> bool:
    """Whether `self` at `node` is a class/module: class body, `def self.x`, or inside `class << self`."""
    parent = node.parent
    while parent is not None:
        if parent.type in ("singleton_method", "singleton_class"):
            return True
        if parent.type == "method":  # an instance method, unless written inside `class << self`
            return _nearest(parent, "singleton_class", "class", "module") == "singleton_class"
        if parent.type in ("class", "module"):
            return True
        parent = parent.parent
    return False


def _nearest(node: Node, *types: str) -> str:
    found = enclosing(node, *types)
    return found.type if found is not None else ""


def _constant_stores(sources: list[ParsedSource]) -> set[str]:
    """Names of constants assigned a fresh mutable collection (`STORE = {}`)."""
    names: set[str] = set()
    for parsed in sources:
        for w in writes(parsed):
            fresh = w.value is not None and is_collection_constructor(parsed, w.value)
            if w.kind == "assign" and w.target.type == "constant" and fresh:
                names.add(parsed.text(w.target))
    return names


def _ivar_stores(parsed: ParsedSource) -> set[str]:
    return {
        parsed.text(w.target)
        for w in writes(parsed)
        if w.target.type == "instance_variable"
        and w.value is not None
        and is_collection_constructor(parsed, w.value)
        and class_level(w.site)
    }


def _state_writes(parsed: ParsedSource, constants: set[str]) -> Iterator[tuple[Node, str]]:
    ivars = _ivar_stores(parsed)
    for w in writes(parsed):
        name = parsed.text(w.target)
        kind = w.target.type
        if kind == "class_variable":
            yield w.site, f"class variable {name} is written: process-local state"
        elif kind == "global_variable" and name not in BUILTIN_GLOBALS:
            yield w.site, f"global {name} is written: process-local state"
        elif kind == "instance_variable" and name in ivars and class_level(w.site):
            yield w.site, f"class-level {name} holds a mutable collection: process-local store"
        elif w.kind == "mutate" and kind in ("constant", "scope_resolution") and _last(name) in constants:
            yield w.site, f"constant {name} is mutated at runtime: process-local store"


def _last(name: str) -> str:
    return name.rsplit("::", 1)[-1]


def _state_declarations(parsed: ParsedSource) -> Iterator[tuple[Node, str]]:
    for site in calls(parsed, "include", "extend"):
        if any(parsed.text(a).lstrip(":") == "Singleton" for a in call_arguments(site.node)):
            yield site.node, f"{site.method} Singleton: a process-local singleton"
    for site in calls(parsed, *SINGLETON_ACCESSORS):
        if enclosing(site.node, "singleton_class") is not None:
            yield site.node, f"class << self; {site.method}: class-level accessors used as a store"
    for site in calls(parsed, *CLASS_STORE_MACROS):
        default = keyword_arguments(parsed, site.node).get("default")
        if default is not None and is_collection_constructor(parsed, default):
            yield site.node, f"{site.method} with a mutable default: a class variable used as a store"


def check_process_local_state(ctx: AuditContext) -> Iterator[Hit]:
    sources = ctx.ruby_sources("app") + ctx.ruby_sources("lib")
    constants = _constant_stores(sources + ctx.ruby_sources("config"))
    for parsed in sources:
        seen: set[int] = set()
        for node, message in [*_state_writes(parsed, constants), *_state_declarations(parsed)]:
            ev = ctx.at(parsed, node)
            if ev.line in seen:
                continue
            seen.add(ev.line)
            yield Hit("production.process_local_state", message, (ev,), _loc_key(ev))


def check_cookie_overflow(ctx: AuditContext) -> Iterator[Hit]:
    writes = unbounded_cookie_writes(ctx)
    if writes:
        yield Hit(
            rule="production.cookie_overflow",
            message="Every conversation is written into a cookie and nothing trims what is written: past "
            "4 KB Rails raises ActionDispatch::Cookies::CookieOverflow, a 500 after a few turns.",
            evidence=tuple(ctx.at_line(w.rel, w.line) for w in writes),
        )


CHECKS: list[Check] = [
    check_unsafe_output,
    check_cookie_overflow,
    check_csrf_disabled,
    check_committed_secret,
    check_process_local_state,
]
