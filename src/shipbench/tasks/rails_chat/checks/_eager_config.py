"""Where a missing API key raises outside the handling the app built for LLM failures.

Invariants: two places count. At boot: an explicit `raise`/`fail`/`abort` conditional on the key,
run at load time in config/ (not inside a method or a block run later), with no other condition
around it (an environment guard makes it deliberate). On the request path, only where the app does
rescue its sends: a raise of the key check in app code (a conditional raise, a strict `ENV.fetch`)
not covered by a rescue that catches what it raises (`rescue RubyLLM::Error` does not catch
RubyLLM::ConfigurationError, which is not a RubyLLM::Error; nor a KeyError).
"""

from __future__ import annotations

from collections.abc import Iterator

from shipbench.audit.checks import AuditContext
from shipbench.audit.ruby.parse import Node, ParsedSource, of_type
from shipbench.tasks.rails_chat.checks._common import method_name
from shipbench.tasks.rails_chat.checks._llm_flow import send_sites
from shipbench.tasks.rails_chat.checks._rescue import SPLAT, RescueIndex, rescue_index

KEY_WORDS = ("API_KEY", "api_key", "OPENROUTER")
RAISES = frozenset({"raise", "fail", "abort"})
CONDITIONS = ("if", "unless", "if_modifier", "unless_modifier", "conditional")
DEFERRED = ("method", "singleton_method", "lambda", "do_block", "block")
CATCH_ALL = frozenset({"StandardError", "Exception"})


def _mentions_key(parsed: ParsedSource, node: Node | None) -> bool:
    return node is not None and any(w in parsed.text(node) for w in KEY_WORDS)


def key_raises(parsed: ParsedSource) -> Iterator[tuple[Node, str]]:
    """(node, class raised) for each raise conditional on the key and each strict `ENV.fetch` of it."""
    for call in of_type(parsed.root, "call"):
        name = method_name(parsed, call)
        if name in RAISES and call.child_by_field_name("receiver") is None:
            cond = next((a for a in _ancestors(call) if a.type in CONDITIONS), None)
            if (cond is not None and _mentions_key(parsed, cond.child_by_field_name("condition"))) or (
                call.parent is not None
                and call.parent.type == "binary"
                and _mentions_key(parsed, call.parent.child_by_field_name("left"))
            ):
                yield call, _raised_class(parsed, call)
        elif name == "fetch":
            recv, args = call.child_by_field_name("receiver"), call.child_by_field_name("arguments")
            named = list(args.named_children) if args is not None else []
            strict = len(named) == 1 and call.child_by_field_name("block") is None
            if (
                recv is not None
                and parsed.text(recv).lstrip(":") == "ENV"
                and strict
                and _mentions_key(parsed, named[0])
            ):
                yield call, "KeyError"


def _raised_class(parsed: ParsedSource, call: Node) -> str:
    args = call.child_by_field_name("arguments")
    first = args.named_children[0] if args is not None and args.named_children else None
    if first is None or first.type not in ("constant", "scope_resolution", "call"):
        return "RuntimeError"
    if first.type == "call":
        recv = first.child_by_field_name("receiver")
        return parsed.text(recv) if recv is not None else "RuntimeError"
    return parsed.text(first)


def _ancestors(node: Node) -> Iterator[Node]:
    current = node.parent
    while current is not None:
        yield current
        current = current.parent


def _at_load_time(node: Node) -> bool:
    """Runs when the file is loaded: not inside a method, a lambda or a block (configure blocks run at once)."""
    return all(a.type not in ("method", "singleton_method", "lambda") for a in _ancestors(node))


def _guarded(parsed: ParsedSource, node: Node) -> bool:
    """Some condition other than the key's own check decides whether the raise runs."""
    conditions = [a for a in _ancestors(node) if a.type in CONDITIONS]
    return any(not _mentions_key(parsed, c.child_by_field_name("condition")) for c in conditions) or len(conditions) > 1


def boot_raises(ctx: AuditContext) -> Iterator[tuple[ParsedSource, Node]]:
    for parsed in ctx.ruby_sources("config"):
        for node, _ in key_raises(parsed):
            if method_name(parsed, node) in RAISES and _at_load_time(node) and not _guarded(parsed, node):
                yield parsed, node


def _catches(index: RescueIndex, parsed: ParsedSource, node: Node, raised: str) -> bool:
    leaf = raised.lstrip(":").rsplit("::", 1)[-1]
    for rescue in index.coverage(parsed, node).rescues:
        if not rescue.classes:
            return True
        for klass in rescue.classes:
            if klass.startswith(SPLAT):
                return True
            name = klass.lstrip(":").rsplit("::", 1)[-1]
            if name in CATCH_ALL or name == leaf or (leaf == "KeyError" and name == "IndexError"):
                return True
    return False


def request_raises(ctx: AuditContext) -> Iterator[tuple[ParsedSource, Node]]:
    index = rescue_index(ctx)
    if not any(index.coverage(s.parsed, s.node).rescues for s in send_sites(ctx)):
        return  # nothing is rescued at all: errors.no_rescue already says so
    checks = [(p, n, k) for p in ctx.ruby_sources("app") + ctx.ruby_sources("lib") for n, k in key_raises(p)]
    for parsed, node, raised in checks:
        if not _catches(index, parsed, node, raised):
            yield parsed, node


def eager_config_errors(ctx: AuditContext) -> Iterator[tuple[ParsedSource, Node]]:
    seen: set[tuple[str, int]] = set()
    for parsed, node in [*boot_raises(ctx), *request_raises(ctx)]:
        if (parsed.rel, node.start_byte) not in seen:
            seen.add((parsed.rel, node.start_byte))
            yield parsed, node
