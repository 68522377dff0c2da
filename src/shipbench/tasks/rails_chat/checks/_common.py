"""Syntax helpers shared by the rails-chat checks: calls, definitions, where the LLM is used.

Invariants: helpers are pure functions of parsed trees; they never read files themselves (they go
through `AuditContext.parsed`), and they recognise Ruby forms generally (receivers, parens or not,
`do` or braces), never specific fixture names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from shipbench.audit.checks import AuditContext
from shipbench.audit.ruby.parse import Node, ParsedSource, enclosing, of_type

LLM_CONSTANT = "RubyLLM"
SEND_METHODS = frozenset({"ask", "say", "complete"})
ENTRY_METHODS = frozenset({"chat"})


@dataclass(frozen=True)
class CallSite:
    parsed: ParsedSource
    node: Node  # the `call` node

    @property
    def method(self) -> str:
        return method_name(self.parsed, self.node)

    @property
    def receiver(self) -> str:
        recv = self.node.child_by_field_name("receiver")
        return self.parsed.text(recv) if recv is not None else ""

    @property
    def line(self) -> int:
        return self.node.start_point[0] + 1


def method_name(parsed: ParsedSource, call: Node) -> str:
    name = call.child_by_field_name("method")
    return parsed.text(name) if name is not None else ""


def calls(parsed: ParsedSource, *names: str) -> Iterator[CallSite]:
    """Every method call (with or without receiver/parens) whose name is one of `names` (all if none).

    Bare identifiers that tree-sitter cannot tell from local variables (`ask` alone) are not calls.
    """
    wanted = set(names)
    for node in of_type(parsed.root, "call"):
        site = CallSite(parsed, node)
        if not wanted or site.method in wanted:
            yield site
    # `foo arg` without receiver parses as (call method: ...) too; `foo` alone is an identifier.


def constant_refs(parsed: ParsedSource, root_name: str) -> Iterator[Node]:
    """Top-most constant nodes naming `root_name` or `root_name::X...` (`::RubyLLM` included)."""
    for node in of_type(parsed.root, "constant"):
        if parsed.text(node) != root_name:
            continue
        parent = node.parent
        # climb scope_resolution chains: RubyLLM::Chat -> the whole chain
        top = node
        while parent is not None and parent.type == "scope_resolution":
            top = parent
            parent = parent.parent
        yield top


def references_llm(parsed: ParsedSource) -> bool:
    return any(True for _ in constant_refs(parsed, LLM_CONSTANT))


def enclosing_method(node: Node) -> Node | None:
    return enclosing(node, "method", "singleton_method")


def enclosing_class(node: Node) -> Node | None:
    return enclosing(node, "class", "module")


def def_name(parsed: ParsedSource, method: Node) -> str:
    name = method.child_by_field_name("name")
    return parsed.text(name) if name is not None else ""


def class_name(parsed: ParsedSource, klass: Node) -> str:
    name = klass.child_by_field_name("name")
    return parsed.text(name) if name is not None else ""


def llm_entry_calls(parsed: ParsedSource) -> list[CallSite]:
    """`RubyLLM.chat(...)`, `RubyLLM::Chat.new(...)`, `RubyLLM.context{}.chat`, `::RubyLLM.chat`."""
    found: list[CallSite] = []
    for site in calls(parsed):
        recv = site.receiver.lstrip(":")
        if (site.method == "chat" and (recv == LLM_CONSTANT or recv.startswith(LLM_CONSTANT + ".context"))) or (
            site.method == "new" and recv == f"{LLM_CONSTANT}::Chat"
        ):
            found.append(site)
    return found


def app_ruby(ctx: AuditContext) -> list[ParsedSource]:
    """The app's own Ruby (app/, lib/, config/), tests excluded."""
    return ctx.ruby_sources("app") + ctx.ruby_sources("lib") + ctx.ruby_sources("config")


def llm_sources(ctx: AuditContext) -> list[ParsedSource]:
    """App Ruby files that mention the RubyLLM constant."""
    return [p for p in app_ruby(ctx) if references_llm(p)]


def is_controller(parsed: ParsedSource) -> bool:
    return "/controllers/" in f"/{parsed.rel}" and parsed.rel.endswith("_controller.rb")


# ---------------------------------------------------------------- literals, arguments, writes
# (appended for the deliverables/architecture/production checks; pure syntax, no Rails knowledge)


def words(text: str) -> frozenset[str]:
    """A set of names written as whitespace-separated words."""
    return frozenset(text.split())


STATEMENT_PARENTS = words("body_statement program class module then else begin do_block block_body")
COLLECTION_CLASSES = frozenset(
    {"Hash", "Array", "Set", "Concurrent::Map", "Concurrent::Hash", "Concurrent::Array", "Concurrent::Set"}
)
PAREN_TYPES = ("parenthesized_statements", "parenthesized_expression")
MUTATING_METHODS = words(
    """
    push append prepend unshift insert concat store merge! update delete delete_if reject! select!
    keep_if clear replace shift pop []= add compute_if_absent put_if_absent fetch_or_store
    transform_values! compact! slice!
    """
)


def unwrap(node: Node) -> Node:
    """The expression inside redundant parentheses: `((x))` -> `x`."""
    while node.type in PAREN_TYPES and node.named_child_count == 1:
        node = node.named_children[0]
    return node


def is_plain_string(node: Node) -> bool:
    """A string/heredoc/symbol literal with no interpolation: its value is fixed at parse time."""
    node = unwrap(node)
    if node.type in ("string", "heredoc_body", "simple_symbol", "delimited_symbol", "bare_string"):
        return not any(c.type == "interpolation" for c in node.children)
    if node.type == "chained_string":
        return all(is_plain_string(c) for c in node.named_children)
    return False


def call_arguments(call: Node) -> list[Node]:
    """Positional and keyword argument nodes of a call, in order (block arguments excluded)."""
    args = call.child_by_field_name("arguments")
    if args is None:
        return []
    return [c for c in args.named_children if c.type != "block_argument"]


def keyword_arguments(parsed: ParsedSource, call: Node) -> dict[str, Node]:
    """`name: value` and `:name => value` pairs of a call (also inside an explicit trailing hash)."""
    found: dict[str, Node] = {}
    pairs: list[Node] = []
    for arg in call_arguments(call):
        if arg.type == "pair":
            pairs.append(arg)
        elif arg.type == "hash":
            pairs.extend(c for c in arg.named_children if c.type == "pair")
    for pair in pairs:
        key, value = pair.child_by_field_name("key"), pair.child_by_field_name("value")
        if key is not None and value is not None:
            found[parsed.text(key).strip(":").rstrip(":").strip("\"'")] = value
    return found


def bare_statements(parsed: ParsedSource, *names: str) -> Iterator[Node]:
    """Receiver-less, argument-less calls written as bare words (`skip_forgery_protection`).

    tree-sitter parses these as identifiers; one standing alone as a statement is a method call.
    """
    wanted = set(names)
    for node in of_type(parsed.root, "identifier"):
        parent = node.parent
        if parsed.text(node) in wanted and parent is not None and parent.type in STATEMENT_PARENTS:
            yield node


def is_collection_constructor(parsed: ParsedSource, node: Node) -> bool:
    """`{}`, `[]`, `Hash.new`, `Set.new`, `Concurrent::Map.new`...: a fresh mutable collection.

    A trailing `.freeze` makes it immutable, so it is not one.
    """
    node = unwrap(node)
    if node.type in ("hash", "array"):
        return True
    if node.type == "call" and method_name(parsed, node) == "new":
        recv = node.child_by_field_name("receiver")
        return recv is not None and parsed.text(recv).lstrip(":") in COLLECTION_CLASSES
    return False


@dataclass(frozen=True)
class Write:
    """A place where a storage location is written: `target` is the variable/constant written.

    kind is "assign" (`x = ...`, `x ||= ...`) or "mutate" (`x[k] = v`, `x << v`, `x.push(v)`).
    """

    parsed: ParsedSource
    site: Node
    target: Node
    kind: str
    value: Node | None = None


def writes(parsed: ParsedSource) -> Iterator[Write]:
    """Every assignment to, and in-place mutation of, a variable or constant in `parsed`."""
    for node in of_type(parsed.root, "assignment", "operator_assignment", "binary", "call"):
        if node.type in ("assignment", "operator_assignment"):
            left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
            if left is None:
                continue
            if left.type == "element_reference":
                obj = left.child_by_field_name("object")
                if obj is not None:
                    yield Write(parsed, node, obj, "mutate", right)
            elif left.type != "call":
                yield Write(parsed, node, left, "assign", right)
        elif node.type == "binary":
            op = node.child_by_field_name("operator")
            left = node.child_by_field_name("left")
            if op is not None and parsed.text(op) == "<<" and left is not None:
                yield Write(parsed, node, left, "mutate")
        elif node.type == "call" and method_name(parsed, node) in MUTATING_METHODS:
            recv = node.child_by_field_name("receiver")
            if recv is not None:
                yield Write(parsed, node, recv, "mutate")


LOG_CALLS = frozenset({"logger", "log", "puts", "warn", "print", "p", "report", "notify", "capture_exception"})


def in_logging(parsed: ParsedSource, node: Node, top: Node) -> bool:
    """`node` sits inside a logging call (`Rails.logger.error(...)`, `warn(...)`), searching up to and
    including `top`: what is logged is for the operator, not shown to the user."""
    current: Node | None = node
    while current is not None and current != top.parent:
        if current.type == "call":
            recv = current.child_by_field_name("receiver")
            if method_name(parsed, current) in LOG_CALLS or (recv is not None and "logger" in parsed.text(recv)):
                return True
        current = current.parent
    return False
