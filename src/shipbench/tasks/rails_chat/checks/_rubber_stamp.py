"""Tests that pass against a defect the audit already found: the double accepts what the real library
rejects, the assertion locks in the silent empty reply, or the mock sits on a branch that never runs.

Invariants: only tests that reach the LLM path with the LLM replaced count; a double "stands in for"
method M when a stub/mock names `:M` or a fake class the test uses defines `def M`; a fake accepts
rejected arguments when its M takes `*`, `**`, `...` or keywords, a stub accepts anything. Decided
from the syntax of the tests and the defects' call sites, never from test or method names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from shipbench.audit.ruby.parse import Node, ParsedSource, of_type
from shipbench.tasks.rails_chat.checks._common import call_arguments, def_name, method_name
from shipbench.tasks.rails_chat.checks._testsyntax import Scoped, TestSuite, nodes_in, words

NAMING_STUBS = words("stub stubs expects expect receive allow_message_expectations define_singleton_method stub_method")
LOOSE_PARAMS = frozenset({"splat_parameter", "hash_splat_parameter", "forward_parameter", "keyword_parameter"})
EMPTY_MATCHERS = words("be_empty be_nil be_blank")
EMPTY_ASSERTS = words("assert_empty assert_nil assert_blank must_be_empty must_be_nil")
EQUALITY = words("assert_equal must_equal eq eql equal")
EMPTY_PREDICATES = words("empty? nil? blank?")


@dataclass(frozen=True)
class Double:
    parsed: ParsedSource
    node: Node  # the stub call or the fake's `def`
    method: str
    accepts_any: bool  # a stub, or a fake method with *, **, ... or keywords


def doubles_in(suite: TestSuite, scope: list[Scoped]) -> Iterator[Double]:
    """Stubs and mocks naming a method, and the methods of fake classes the scope uses."""
    used: set[str] = set()
    for parsed, node in nodes_in(scope, "call", "constant", "method"):
        if node.type == "constant":
            used.add(parsed.text(node))
        elif node.type == "method":
            yield _fake_def(parsed, node)  # `Class.new do def ask(...)` / `define_method` bodies in the test
        elif method_name(parsed, node) in NAMING_STUBS:
            args = call_arguments(node)
            if args and args[0].type == "simple_symbol":
                yield Double(parsed, node, parsed.text(args[0]).lstrip(":"), True)
            elif args and args[0].type == "hash":  # stubs(ask: reply, add_message: nil)
                for pair in (c for c in args[0].named_children if c.type == "pair"):
                    key = pair.child_by_field_name("key")
                    if key is not None:
                        yield Double(parsed, node, parsed.text(key).strip(":"), True)
    for name in sorted(used & set(suite.fake_classes)):
        parsed, klass = suite.fake_classes[name]
        for method in of_type(klass, "method"):
            yield _fake_def(parsed, method)


def _fake_def(parsed: ParsedSource, method: Node) -> Double:
    params = method.child_by_field_name("parameters")
    kinds = {p.type for p in params.named_children} if params is not None else set()
    return Double(parsed, method, def_name(parsed, method), bool(kinds & LOOSE_PARAMS))


def _literal_empty(parsed: ParsedSource, node: Node | None) -> bool:
    if node is None:
        return False
    if node.type == "nil":
        return True
    return node.type in ("string", "array", "hash") and parsed.text(node) in ('""', "''", "[]", "{}")


def empty_lock_ins(scope: list[Scoped]) -> Iterator[Scoped]:
    """Assertions that the value under test is empty or nil: `assert_equal "", x`, `expect(x).to be_empty`..."""
    for parsed, node in nodes_in(scope, "call", "identifier"):
        if node.type == "identifier":  # `expect(x).to be_empty`: a bare matcher
            if parsed.text(node) in EMPTY_MATCHERS and node.parent is not None and node.parent.type == "argument_list":
                yield parsed, node
            continue
        name = method_name(parsed, node)
        args = call_arguments(node)
        if (
            name in EMPTY_ASSERTS
            or name in EMPTY_MATCHERS
            or (name in EQUALITY and args and _literal_empty(parsed, args[0]))
        ):
            yield parsed, node
        elif name in ("assert", "assert_predicate") and args:
            probe = args[0]
            if (probe.type == "call" and method_name(parsed, probe) in EMPTY_PREDICATES) or (
                name == "assert_predicate" and len(args) > 1 and parsed.text(args[1]).lstrip(":") in EMPTY_PREDICATES
            ):
                yield parsed, node


def _subject(parsed: ParsedSource, assertion: Node) -> Node | None:
    """The value an assertion looks at: `x` in `assert_equal "", x`, `expect(x).to ...`, `x.must_be_empty`."""
    name = method_name(parsed, assertion) if assertion.type == "call" else parsed.text(assertion)
    args = call_arguments(assertion) if assertion.type == "call" else []
    if name in ("assert_equal", "must_equal") and len(args) > 1:
        return args[1] if name == "assert_equal" else assertion.child_by_field_name("receiver")
    if name.startswith("must_"):
        return assertion.child_by_field_name("receiver")
    if name in EMPTY_MATCHERS or name in ("eq", "eql", "equal"):
        to = assertion.parent.parent if assertion.parent is not None else None  # argument_list -> `to` call
        expect = to.child_by_field_name("receiver") if to is not None and to.type == "call" else None
        inner = call_arguments(expect) if expect is not None and expect.type == "call" else []
        return inner[0] if inner else None
    return args[0] if args else None


def _calls_any(parsed: ParsedSource, node: Node | None, names: set[str], scope: list[Scoped]) -> bool:
    """`node` calls one of `names`, or is a variable the scope assigns from such a call."""
    if node is None:
        return False
    if any(method_name(parsed, c) in names for c in of_type(node, "call")):
        return True
    if node.type in ("identifier", "instance_variable"):
        var = parsed.text(node)
        for p, assign in nodes_in(scope, "assignment"):
            left, right = assign.child_by_field_name("left"), assign.child_by_field_name("right")
            assigned = left is not None and p.text(left) == var and right is not None
            if assigned and right is not None and any(method_name(p, c) in names for c in of_type(right, "call")):
                return True
    return False


def locks_in_empty(scope: list[Scoped], silent_methods: set[str]) -> Iterator[Scoped]:
    """Assertions that the value a silently-empty method returns is empty."""
    for parsed, node in empty_lock_ins(scope):
        if _calls_any(parsed, _subject(parsed, node), silent_methods, scope):
            yield parsed, node


TEST_ENV = ("Rails.env.test?", 'Rails.env == "test"', "Rails.env == 'test'", 'Rails.env.eql?("test")')
BRANCHES = ("if", "unless", "if_modifier", "unless_modifier", "conditional", "elsif")


def test_only_branches(sources: list[ParsedSource], sends: list[tuple[str, int]]) -> Iterator[Scoped]:
    """App conditionals on the test environment around an LLM send: under test the app takes another
    branch, so no test can exercise the production call, whatever it stubs."""
    for parsed in sources:
        for node in of_type(parsed.root, *BRANCHES):
            cond = node.child_by_field_name("condition")
            if cond is None or not any(t in parsed.text(cond) for t in TEST_ENV):
                continue
            if any(rel == parsed.rel and node.start_byte <= b < node.end_byte for rel, b in sends):
                yield parsed, cond
