"""A method that sends a user turn to the LLM only on some branch, and on another answers an empty
value (`""`, `nil`) without raising or telling anyone: the user's turn silently gets no reply.

Invariants: judged per method that contains a chat send, in app code; the empty answer must be what
the method returns (last expression, or `return` of it) and not in a rescue clause (those are the
error checks' business); an early return guarded by a test of blank/empty input is a legitimate guard.
"""

from __future__ import annotations

from collections.abc import Iterator

from shipbench.audit.checks import AuditContext
from shipbench.audit.models import Evidence
from shipbench.audit.ruby.parse import Node, ParsedSource, enclosing, of_type
from shipbench.tasks.rails_chat.checks._common import method_name
from shipbench.tasks.rails_chat.checks._core_path import in_rescue
from shipbench.tasks.rails_chat.checks._llm_flow import project_flows

BLANK_TESTS = frozenset({"blank?", "empty?", "nil?", "present?", "strip", "squish", "zero?"})
CONDITIONALS = ("if", "unless", "if_modifier", "unless_modifier", "conditional", "case", "when")


def _empty_literal(parsed: ParsedSource, node: Node) -> bool:
    if node.type == "nil":
        return True
    return node.type == "string" and parsed.text(node) in ('""', "''")


def _returned(node: Node, method: Node) -> bool:
    """`node` is what `method` returns: a `return` of it, or its last statement."""
    parent = node.parent
    if parent is not None and parent.type == "argument_list" and parent.parent is not None:
        parent = parent.parent
    if parent is not None and parent.type == "return":
        return True
    body = node.parent
    if body is None or body.type != "body_statement" or body.parent != method:
        return False
    named = [c for c in body.named_children if c.type not in ("comment", "rescue", "ensure", "else")]
    return bool(named) and named[-1] == node


def _blank_guard(parsed: ParsedSource, node: Node) -> bool:
    guard = enclosing(node, *CONDITIONALS)
    if guard is None:
        return False
    cond = guard.child_by_field_name("condition")
    return cond is not None and any(method_name(parsed, c) in BLANK_TESTS for c in of_type(cond, "call"))


def _conditional(node: Node, method: Node) -> bool:
    current = node.parent
    while current is not None and current != method:
        if current.type in CONDITIONALS:
            return True
        current = current.parent
    return False


def silent_replies(ctx: AuditContext) -> Iterator[tuple[ParsedSource, Node, Node]]:
    """(file, method, empty literal) for each method that answers a turn with a silent empty value."""
    for flow in project_flows(ctx):
        parsed = flow.parsed
        methods = {id(m): m for s in flow.sends if (m := enclosing(s.node, "method", "singleton_method"))}
        for method in methods.values():
            sends = [s for s in flow.sends if method.start_byte <= s.node.start_byte < method.end_byte]
            if not any(_conditional(s.node, method) for s in sends):
                continue
            for node in of_type(method, "string", "nil"):
                if not _empty_literal(parsed, node) or in_rescue(node) or not _returned(node, method):
                    continue
                if _blank_guard(parsed, node):
                    continue
                yield parsed, method, node


def silent_empty_replies(ctx: AuditContext) -> Iterator[Evidence]:
    for parsed, _, node in silent_replies(ctx):
        yield ctx.at(parsed, node)
