"""A method that sends a user turn to the LLM and on some path answers an empty value (`""`, `nil`)
without raising or telling anyone: the user's turn silently gets no reply. Three shapes: the send
runs only on some branch and another returns empty; the reply itself is tested for blank and an empty
value returned instead of a message; a rescue of the send returns empty with nothing for the user.

Invariants: judged per method that contains a chat send, in app code; the empty answer must be what
the method returns (last expression, or `return` of it); an early return guarded by a test of blank
input (a condition that does not read the reply) is a legitimate guard; a rescue that raises, renders
or flashes tells the user.
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


def _reads_reply(parsed: ParsedSource, cond: Node, method: Node, sends: list[Node]) -> bool:
    """The guard tests the reply: it contains a send, or a local assigned from one."""
    if any(cond.start_byte <= s.start_byte < cond.end_byte for s in sends):
        return True
    holders = set()
    for assign in of_type(method, "assignment"):
        left, right = assign.child_by_field_name("left"), assign.child_by_field_name("right")
        if (
            left is not None
            and right is not None
            and any(right.start_byte <= s.start_byte < right.end_byte for s in sends)
        ):
            holders.add(parsed.text(left))
    return any(parsed.text(i) in holders for i in of_type(cond, "identifier", "instance_variable"))


def _blank_reply_guard(parsed: ParsedSource, node: Node, method: Node, sends: list[Node]) -> bool:
    guard = enclosing(node, *CONDITIONALS)
    if guard is None:
        return False
    cond = guard.child_by_field_name("condition")
    return cond is not None and _reads_reply(parsed, cond, method, sends)


TELLS_USER = frozenset({"raise", "fail", "render", "redirect_to", "flash", "respond_to", "head"})


def _quiet_rescue(parsed: ParsedSource, node: Node) -> bool:
    """`node` is returned by a rescue clause that neither raises nor renders nor flashes."""
    rescue = enclosing(node, "rescue")
    if rescue is None:
        return False
    body = rescue.child_by_field_name("body")
    names = {method_name(parsed, c) for c in of_type(body, "call")} if body is not None else set()
    return not names & TELLS_USER and not any(n.startswith("broadcast") for n in names)


def _rescue_returned(node: Node, method: Node) -> bool:
    """`node` is the last statement of a rescue clause of `method` (the method's value after a failure)."""
    rescue = enclosing(node, "rescue")
    if rescue is None or enclosing(rescue, "method", "singleton_method") != method:
        return False
    body = rescue.child_by_field_name("body")
    named = [c for c in body.named_children if c.type != "comment"] if body is not None else []
    return bool(named) and named[-1] == node


def silent_replies(ctx: AuditContext) -> Iterator[tuple[ParsedSource, Node, Node]]:
    """(file, method, empty literal) for each method that answers a turn with a silent empty value."""
    for flow in project_flows(ctx):
        parsed = flow.parsed
        methods = {id(m): m for s in flow.sends if (m := enclosing(s.node, "method", "singleton_method"))}
        for method in methods.values():
            sends = [s.node for s in flow.sends if method.start_byte <= s.node.start_byte < method.end_byte]
            branchy = any(_conditional(s, method) for s in sends)
            for node in of_type(method, "string", "nil"):
                if not _empty_literal(parsed, node):
                    continue
                if in_rescue(node):
                    if _rescue_returned(node, method) and _quiet_rescue(parsed, node):
                        yield parsed, method, node
                    continue
                if not _returned(node, method):
                    continue
                if _blank_reply_guard(parsed, node, method, sends) or (branchy and not _blank_guard(parsed, node)):
                    yield parsed, method, node


def silent_empty_replies(ctx: AuditContext) -> Iterator[Evidence]:
    for parsed, _, node in silent_replies(ctx):
        yield ctx.at(parsed, node)
