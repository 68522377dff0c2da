"""Where a ruby_llm reply (the RubyLLM::Message an ask/complete returns) is read as an OpenAI JSON
payload: `reply.dig("choices", ...)`, `reply["choices"]`, `reply.to_h[:choices]`, `reply.fetch("choices")`.

Invariants: the value is followed from the send through local and instance variables of the same
method (and ivars of the same file); `reply.raw...` (the provider's HTTP response, which does carry
`choices`) is not a misreading; the key is matched as a string or symbol literal, never by variable names.
"""

from __future__ import annotations

from collections.abc import Iterator

from shipbench.audit.ruby.parse import Node, ParsedSource, enclosing, of_type
from shipbench.tasks.rails_chat.checks._common import call_arguments, method_name
from shipbench.tasks.rails_chat.checks._llm_flow import FileFlow

PAYLOAD_KEYS = frozenset({"choices"})
DIGGERS = frozenset({"dig", "fetch", "[]"})
CHAIN = frozenset(
    {"to_h", "to_hash", "as_json", "with_indifferent_access", "deep_symbolize_keys", "deep_stringify_keys"}
)


def _key(parsed: ParsedSource, node: Node | None) -> str:
    if node is None:
        return ""
    return parsed.text(node).strip(":").strip("\"'")


def _digs_payload(parsed: ParsedSource, value: Node) -> Node | None:
    """The access reading a payload key on `value` (through to_h-like conversions), if any."""
    parent = value.parent
    if parent is None:
        return None
    if parent.type == "call" and parent.child_by_field_name("receiver") == value:
        name = method_name(parsed, parent)
        if name in CHAIN:
            return _digs_payload(parsed, parent)
        args = call_arguments(parent)
        if name in DIGGERS and args and _key(parsed, args[0]) in PAYLOAD_KEYS:
            return parent
        return None
    if parent.type == "element_reference" and parent.child_by_field_name("object") == value:
        keys = [c for c in parent.named_children if c != value]
        return parent if keys and _key(parsed, keys[0]) in PAYLOAD_KEYS else None
    return None


def _holder(send: Node) -> Node | None:
    """The variable a send's result is assigned to (`reply = chat.ask(x)`), if it is."""
    parent = send.parent
    if parent is None or parent.type not in ("assignment", "operator_assignment"):
        return None
    left = parent.child_by_field_name("left")
    if parent.child_by_field_name("right") != send or left is None:
        return None
    return left if left.type in ("identifier", "instance_variable") else None


def payload_reads(flow: FileFlow) -> Iterator[Node]:
    parsed = flow.parsed
    for send in flow.sends:
        direct = _digs_payload(parsed, send.node)
        if direct is not None:
            yield direct
            continue
        left = _holder(send.node)
        if left is None:
            continue
        name = parsed.text(left)
        scope = (
            parsed.root
            if left.type == "instance_variable"
            else (enclosing(send.node, "method", "singleton_method", "do_block", "block") or parsed.root)
        )
        for ref in of_type(scope, left.type):
            if ref.start_byte <= left.start_byte or parsed.text(ref) != name:
                continue
            found = _digs_payload(parsed, ref)
            if found is not None:
                yield found
