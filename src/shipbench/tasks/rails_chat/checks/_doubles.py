"""Test doubles standing in for the LLM: fakes, stubs and mocks (Minitest, mocha, RSpec), WebMock
and VCR, how a fake reaches the code under test, and doubles that make the LLM fail.

Invariants: pure functions of a test's scope (see `_testsyntax`); a fake is a class the tests define
(or a `Minitest::Mock`, `double`, `Struct`...) or a variable bound to one; a stub counts only when it
names RubyLLM, an app class on the LLM path, or an LLM method (`:chat`, `:ask`...).
"""

from __future__ import annotations

from shipbench.audit.ruby.parse import Node, ParsedSource, of_type
from shipbench.tasks.rails_chat.checks._common import LLM_CONSTANT, method_name
from shipbench.tasks.rails_chat.checks._llmpath import LlmPath
from shipbench.tasks.rails_chat.checks._testsyntax import Scoped, TestSuite, nodes_in, words

STUB_CALLS = words(
    """
    stub stubs expects any_instance stub_any_instance allow allow_any_instance_of
    expect_any_instance_of receive receive_messages receive_message_chain stub_const
    """
)
LLM_METHODS = frozenset({"chat", "ask", "say", "complete", "with_instructions", "add_message", "with_model"})
DOUBLE_FACTORIES = frozenset(
    {"double", "instance_double", "class_double", "object_double", "spy", "instance_spy", "mock", "stub"}
)
NEW_DOUBLES = frozenset({"Minitest::Mock", "MiniTest::Mock", "Object", "OpenStruct", "Class", "Struct"})
INJECTION_KEYS = ("client", "llm", "chat", "factory", "provider", "adapter", "backend", "api", "model")
RAISING_STUBS = frozenset({"raises", "and_raise", "to_raise", "to_timeout"})


def fake_vars(suite: TestSuite, scope: list[Scoped]) -> set[str]:
    """Variables, ivars and `let` names bound to a fake in this scope (two passes for `a = b`)."""
    names: set[str] = set()
    for _ in range(2):
        for parsed, node in nodes_in(scope, "assignment", "call"):
            bound, value = _binding(parsed, node)
            if bound and value is not None and _is_fake(suite, parsed, value, names):
                names.add(bound)
    return names


def _binding(parsed: ParsedSource, node: Node) -> tuple[str, Node | None]:
    if node.type == "assignment":
        left = node.child_by_field_name("left")
        if left is not None and left.type in ("identifier", "instance_variable"):
            return parsed.text(left), node.child_by_field_name("right")
        return "", None
    if method_name(parsed, node) in ("let", "let!", "subject") and node.child_by_field_name("receiver") is None:
        args = node.child_by_field_name("arguments")
        block = node.child_by_field_name("block")
        if args is not None and args.named_children and block is not None:
            return parsed.text(args.named_children[0]).lstrip(":"), block
    return "", None


def _is_fake(suite: TestSuite, parsed: ParsedSource, node: Node, fake_vars: set[str]) -> bool:
    """Does `node` build or name a test double?"""
    for n in of_type(node, "constant", "scope_resolution", "call", "identifier", "instance_variable"):
        text = parsed.text(n)
        if n.type in ("identifier", "instance_variable") and text in fake_vars:
            return True
        if n.type == "constant" and text in suite.fake_classes:
            return True
        if n.type == "call":
            recv = n.child_by_field_name("receiver")
            name = method_name(parsed, n)
            if recv is None and name in DOUBLE_FACTORIES:
                return True
            if recv is not None and name == "new" and parsed.text(recv).lstrip(":") in NEW_DOUBLES:
                return True
    return False


def replaces_llm(suite: TestSuite, path: LlmPath, scope: list[Scoped], fakes: set[str]) -> bool:
    for parsed, node in nodes_in(scope, "call", "assignment", "simple_symbol", "hash_key_symbol"):
        if node.type in ("simple_symbol", "hash_key_symbol"):
            if parsed.text(node).strip(":") == "vcr":
                return True
        elif node.type == "assignment":
            if _injects_by_assignment(suite, parsed, node, fakes):
                return True
        elif node.type == "call" and _replacing_call(suite, path, parsed, node, fakes):
            return True
    return False


def _replacing_call(suite: TestSuite, path: LlmPath, parsed: ParsedSource, node: Node, fakes: set[str]) -> bool:
    name = method_name(parsed, node)
    recv = node.child_by_field_name("receiver")
    recv_text = parsed.text(recv).lstrip(":") if recv is not None else ""
    if name == "stub_request" or (recv_text == "VCR" and name in ("use_cassette", "insert_cassette")):
        return True
    if name in STUB_CALLS or (name == "expect" and recv is not None):
        return _mentions_llm(path, parsed, node)
    if recv is not None and (path.names_class(recv_text) or recv_text == "described_class"):
        args = node.child_by_field_name("arguments")
        return args is not None and _passes_fake(suite, parsed, args, fakes)
    return False


def _mentions_llm(path: LlmPath, parsed: ParsedSource, node: Node) -> bool:
    for n in of_type(node, "constant", "scope_resolution", "simple_symbol", "hash_key_symbol"):
        text = parsed.text(n).lstrip(":")
        if n.type in ("simple_symbol", "hash_key_symbol"):
            if text.rstrip(":") in LLM_METHODS:
                return True
        elif text.startswith(LLM_CONSTANT) or path.names_class(text):
            return True
    return False


def _passes_fake(suite: TestSuite, parsed: ParsedSource, args: Node, fakes: set[str]) -> bool:
    for arg in args.named_children:
        value = arg.child_by_field_name("value") if arg.type == "pair" else arg
        if value is None:
            continue
        if value.type in ("lambda", "block_argument") and arg.type == "pair":
            key = arg.child_by_field_name("key")
            if key is not None and any(k in parsed.text(key).lower() for k in INJECTION_KEYS):
                return True
        if _is_fake(suite, parsed, value, fakes):
            return True
    return False


def _injects_by_assignment(suite: TestSuite, parsed: ParsedSource, node: Node, fakes: set[str]) -> bool:
    """`ChatService.client = FakeClient.new`, `Rails.configuration.x.llm = fake`."""
    left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
    if left is None or right is None or left.type != "call":
        return False
    return _is_fake(suite, parsed, right, fakes)


# ---------------------------------------------------------------- failure of the LLM


def fails_llm(suite: TestSuite, scope: list[Scoped]) -> bool:
    for parsed, node in nodes_in(scope, "call", "constant"):
        if node.type == "constant":
            if _raising_fake_used(suite, parsed, node):
                return True
            continue
        name = method_name(parsed, node)
        if name in RAISING_STUBS or (name == "to_return" and _error_status(parsed, node)):
            return True
        if name in ("raise", "fail") and node.child_by_field_name("receiver") is None and _nested(node, scope):
            return True
    return False


def _nested(node: Node, scope: list[Scoped]) -> bool:
    """Inside a lambda, block or def below a scope root (a double's behaviour, not the test's own)."""
    roots = {(r.start_byte, r.end_byte) for _, r in scope}
    parent = node.parent
    while parent is not None and (parent.start_byte, parent.end_byte) not in roots:
        if parent.type in ("lambda", "block", "do_block", "method", "singleton_method"):
            return True
        parent = parent.parent
    return False


def _error_status(parsed: ParsedSource, call: Node) -> bool:
    args = call.child_by_field_name("arguments")
    for pair in of_type(args, "pair") if args is not None else []:
        key, value = pair.child_by_field_name("key"), pair.child_by_field_name("value")
        if key is None or value is None or parsed.text(key).strip(":") != "status":
            continue
        digits = "".join(ch for ch in parsed.text(value) if ch.isdigit())[:3]
        if digits and int(digits) >= 400:
            return True
    return False


def _raising_fake_used(suite: TestSuite, parsed: ParsedSource, const: Node) -> bool:
    """A fake class that raises, used in a raising mode: one of its raises is unconditional, or it is
    guarded by state the constructor sets and this construction passes a value for (`error: X`, `true`)."""
    found = suite.fake_classes.get(parsed.text(const))
    if found is None:
        return False
    fake_parsed, klass = found
    raises = [c for c in of_type(klass, "call") if method_name(fake_parsed, c) in ("raise", "fail")]
    if not raises:
        return False
    if any(_guard_of(r) is None for r in raises):
        return True
    guarded = {v for r in raises if (g := _guard_of(r)) is not None for v in _ivars(fake_parsed, g)}
    slots = _constructor_slots(fake_parsed, klass, guarded)
    call = const.parent
    if call is None or call.type != "call" or not slots:
        return False
    args = call.child_by_field_name("arguments")
    for index, arg in enumerate(list(args.named_children) if args is not None else []):
        if arg.type == "pair":
            key, value = arg.child_by_field_name("key"), arg.child_by_field_name("value")
            name = parsed.text(key).strip(":") if key is not None else ""
            if name in slots and value is not None and value.type not in ("nil", "false"):
                return True
        elif index in slots and arg.type not in ("nil", "false"):
            return True
    return False


def _guard_of(raise_call: Node) -> Node | None:
    """The condition deciding whether a raise runs (None when it runs whenever its method does)."""
    current = raise_call.parent
    while current is not None and current.type not in ("method", "singleton_method", "lambda", "class"):
        if current.type in ("if", "unless", "if_modifier", "unless_modifier", "conditional", "case", "when"):
            return current.child_by_field_name("condition") or current
        current = current.parent
    return None


def _ivars(parsed: ParsedSource, node: Node) -> set[str]:
    return {parsed.text(n) for n in of_type(node, "instance_variable")}


def _constructor_slots(parsed: ParsedSource, klass: Node, ivars: set[str]) -> set[str | int]:
    """Keyword names and positional indexes of `initialize` parameters that set one of `ivars`."""
    slots: set[str | int] = set()
    for method in of_type(klass, "method"):
        name = method.child_by_field_name("name")
        params = method.child_by_field_name("parameters")
        if name is None or parsed.text(name) != "initialize" or params is None:
            continue
        assigned = {
            parsed.text(right)
            for a in of_type(method, "assignment")
            if (left := a.child_by_field_name("left")) is not None
            and parsed.text(left) in ivars
            and (right := a.child_by_field_name("right")) is not None
        }
        for index, param in enumerate(params.named_children):
            ident = param.child_by_field_name("name") if param.type != "identifier" else param
            pname = parsed.text(ident) if ident is not None else ""
            if pname and (pname in assigned or f"@{pname}" in ivars):
                slots.add(pname if param.type in ("keyword_parameter",) else index)
    return slots
