"""Could a test ever fail? Assertions of Minitest, minitest/spec, RSpec and mocha, and which of them
only look at literals, constants or introspection (`respond_to?`, `defined?`, `blank?` on literals).

Invariants: a test is classified from its own body and the helpers it calls; an assertion with a
block, or one that checks implicit state (`assert_response`, `assert_difference`, mocha `expects`,
`mock.verify`), is never trivial; a `rescue` swallows only when its handler can neither fail nor
record anything (empty, `assert true`, `pass`, `skip`, logging).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shipbench.audit.ruby.parse import Node, ParsedSource, of_type
from shipbench.tasks.rails_chat.checks._common import method_name
from shipbench.tasks.rails_chat.checks._testsyntax import (
    Scoped,
    TestCase,
    TestSuite,
    body_scope,
    is_skipped,
    nodes_in,
    words,
)

Verdict = Literal["rescue_swallow", "no_assertion", "trivial_only", "real", "skipped"]
THEATER: frozenset[Verdict] = frozenset({"rescue_swallow", "no_assertion", "trivial_only"})

ASSERT_PREFIXES = ("assert", "refute", "must_", "wont_")
ASSERT_NAMES = frozenset(
    {"expect", "expects", "verify", "flunk", "is_expected", "should", "should_not", "expect_any_instance_of"}
)
VALUE_ASSERTIONS = words(
    """
    assert refute assert_not assert_equal refute_equal assert_not_equal assert_nil refute_nil
    assert_not_nil assert_kind_of refute_kind_of assert_instance_of assert_respond_to
    refute_respond_to assert_includes refute_includes assert_not_includes assert_match refute_match
    assert_no_match assert_same assert_empty refute_empty assert_not_empty assert_predicate
    assert_operator assert_in_delta assert_true assert_false assert_blank assert_present expect
    should should_not
    """
)
SPEC_WRAPPERS = frozenset({"_", "value", "expect"})
RSPEC_TO = frozenset({"to", "not_to", "to_not"})
INTROSPECTION = words(
    """
    respond_to? method_defined? public_method_defined? instance_methods public_instance_methods
    instance_method const_defined? ancestors is_a? kind_of? instance_of? superclass constants
    const_get
    """
)
GUARDS = words(
    """
    blank? present? nil? empty? frozen? include? to_s to_sym to_i length size name freeze new strip
    downcase upcase keys first last count
    """
)
LITERALS = words(
    """
    integer float simple_symbol delimited_symbol hash_key_symbol true false nil regex rational
    complex character string_content escape_sequence constant self comment
    """
)
COMPOSITES = words(
    """
    string array hash pair parenthesized_statements binary range interpolation scope_resolution
    argument_list block_body body_statement string_array symbol_array bare_string bare_symbol
    block_argument
    """
)
FAILING_CALLS = frozenset({"flunk", "fail", "raise"})
LOGGING = frozenset({"puts", "p", "pp", "print", "warn", "debug", "info", "error", "log", "skip", "pass"})


@dataclass(frozen=True)
class Classified:
    case: TestCase
    verdict: Verdict
    where: int  # line of the evidence (the test, or the swallowing `rescue`)


def is_assertion(parsed: ParsedSource, node: Node) -> bool:
    name = method_name(parsed, node) if node.type == "call" else parsed.text(node)
    return name.startswith(ASSERT_PREFIXES) or name in ASSERT_NAMES


def assertions(scope: list[Scoped]) -> list[Scoped]:
    found: list[Scoped] = []
    for parsed, node in nodes_in(scope, "call", "identifier"):
        if node.type == "identifier" and node.parent is not None and node.parent.type == "call":
            continue  # a method name or receiver already seen as part of its call
        if is_assertion(parsed, node):
            found.append((parsed, node))
    return found


def trivial_expr(parsed: ParsedSource, node: Node | None) -> bool:
    """True when `node` is built only from literals, constants and introspection of them."""
    if node is None or node.type in LITERALS:
        return True
    if node.type == "unary":
        op = node.child_by_field_name("operator")
        if op is not None and parsed.text(op) == "defined?":
            return True
        return trivial_expr(parsed, node.child_by_field_name("operand"))
    if node.type in COMPOSITES:
        return all(trivial_expr(parsed, c) for c in node.named_children)
    if node.type == "call":
        return _trivial_call(parsed, node)
    return False


def _trivial_call(parsed: ParsedSource, node: Node) -> bool:
    name = method_name(parsed, node)
    if name == "respond_to?":
        return True  # introspection proves nothing about behaviour, whatever the receiver
    if name not in INTROSPECTION and name not in GUARDS:
        return False
    recv = node.child_by_field_name("receiver")
    if recv is None or node.child_by_field_name("block") is not None:
        return False
    return trivial_expr(parsed, recv) and trivial_expr(parsed, node.child_by_field_name("arguments"))


def _operands(parsed: ParsedSource, node: Node) -> list[Node | None]:
    """What a value assertion looks at: its arguments, the spec receiver, the RSpec matcher's args."""
    if node.type != "call":
        return []
    out: list[Node | None] = [node.child_by_field_name("arguments")]
    name = method_name(parsed, node)
    recv = node.child_by_field_name("receiver")
    if recv is not None and (name.startswith(("must_", "wont_")) or name.startswith("should")):
        inner = recv
        if recv.type == "call" and method_name(parsed, recv) in SPEC_WRAPPERS:
            inner = recv.child_by_field_name("arguments") or recv
        out.append(inner)
    parent = node.parent
    if name == "expect" and parent is not None and parent.type == "call" and method_name(parsed, parent) in RSPEC_TO:
        for matcher in _named(parent.child_by_field_name("arguments")):
            out.append(matcher.child_by_field_name("arguments") if matcher.type == "call" else None)
    return out


def _named(node: Node | None) -> list[Node]:
    return list(node.named_children) if node is not None else []


def trivial_assertion(parsed: ParsedSource, node: Node) -> bool:
    name = method_name(parsed, node) if node.type == "call" else parsed.text(node)
    if name in ("assert_respond_to", "refute_respond_to"):
        return True
    if not (name in VALUE_ASSERTIONS or name.startswith(("must_", "wont_"))):
        return False
    if node.type == "call" and node.child_by_field_name("block") is not None:
        return False
    if name.startswith(("must_", "wont_")) and node.type == "call":
        recv = node.child_by_field_name("receiver")
        if recv is not None and recv.type == "call" and recv.child_by_field_name("block") is not None:
            return False  # `_ { code }.must_raise X` runs code
    return all(trivial_expr(parsed, n) for n in _operands(parsed, node))


def swallowing_rescue(parsed: ParsedSource, body: Node) -> Node | None:
    """The first `rescue` clause in the test body whose handler can never fail the test (unless the
    protected code fails on its own when nothing is raised: the `flunk "expected an error"` idiom)."""
    for node in of_type(body, "rescue"):
        if not node.is_named:  # the `rescue` keyword token inside the clause
            continue
        handler = node.child_by_field_name("body")
        if handler is not None and not all(_harmless(parsed, s) for s in handler.named_children):
            continue
        if not _protected_fails(parsed, node):
            return node
    return None


def _protected_fails(parsed: ParsedSource, rescue: Node) -> bool:
    parent = rescue.parent
    if parent is None:
        return False
    for sibling in parent.named_children:
        if sibling.start_byte >= rescue.start_byte:
            break
        for n in of_type(sibling, "call", "identifier"):
            name = method_name(parsed, n) if n.type == "call" else parsed.text(n)
            if name in FAILING_CALLS:
                return True
    return False


def _harmless(parsed: ParsedSource, stmt: Node) -> bool:
    if stmt.type in LITERALS or stmt.type == "comment":
        return True
    if stmt.type == "identifier":
        return parsed.text(stmt) in LOGGING
    if stmt.type != "call":
        return False
    if is_assertion(parsed, stmt):
        return trivial_assertion(parsed, stmt)
    return method_name(parsed, stmt) in LOGGING


def classify(suite: TestSuite, case: TestCase) -> Classified:
    if is_skipped(case):
        return Classified(case, "skipped", case.line)
    if case.body is not None:
        rescue = swallowing_rescue(case.parsed, case.body)
        if rescue is not None:
            return Classified(case, "rescue_swallow", rescue.start_point[0] + 1)
    found = assertions(body_scope(suite, case))
    if not found:
        return Classified(case, "no_assertion", case.line)
    if all(trivial_assertion(p, n) for p, n in found):
        return Classified(case, "trivial_only", case.line)
    return Classified(case, "real", case.line)
