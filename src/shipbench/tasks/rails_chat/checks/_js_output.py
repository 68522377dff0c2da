"""JavaScript HTML sinks for the rails-chat XSS check: innerHTML/outerHTML writes, insertAdjacentHTML,
document.write.

Invariants: a sink fed only fixed strings (literals, template strings without `${}`, or whose every
substitution goes through an escape/sanitize function) is safe; anything else reaching a sink (a
variable, a response field, a template with raw substitutions) is reported once per sink node.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from shipbench.audit.ruby.parse import Node, ParsedSource, of_type

HTML_PROPERTIES = frozenset({"innerHTML", "outerHTML"})
HTML_METHODS = {"insertAdjacentHTML": 1, "write": 0, "writeln": 0}  # method -> index of the HTML argument
_ESCAPER_RE = re.compile(r"escape|sanitize|purify|encode", re.IGNORECASE)


def _callee_name(parsed: ParsedSource, call: Node) -> str:
    func = call.child_by_field_name("function")
    if func is None:
        return ""
    if func.type == "member_expression":
        prop = func.child_by_field_name("property")
        return parsed.text(prop) if prop is not None else ""
    return parsed.text(func)


def is_fixed_html(parsed: ParsedSource, node: Node) -> bool:
    """True when the value written to a sink cannot carry data from a response or a user."""
    while node.type == "parenthesized_expression" and node.named_child_count == 1:
        node = node.named_children[0]
    if node.type in ("string", "number", "null", "undefined", "true", "false"):
        return True
    if node.type == "template_string":
        subs = [c for c in node.named_children if c.type == "template_substitution"]
        return all(s.named_child_count and is_fixed_html(parsed, s.named_children[0]) for s in subs)
    if node.type == "binary_expression":
        left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
        return (
            left is not None
            and right is not None
            and is_fixed_html(parsed, left)
            and is_fixed_html(parsed, right)
        )
    if node.type == "call_expression":
        return bool(_ESCAPER_RE.search(_callee_name(parsed, node)))
    return False


def _property_sinks(parsed: ParsedSource) -> Iterator[tuple[Node, str]]:
    for node in of_type(parsed.root, "assignment_expression", "augmented_assignment_expression"):
        left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
        if left is None or right is None or left.type != "member_expression":
            continue
        prop = left.child_by_field_name("property")
        name = parsed.text(prop) if prop is not None else ""
        if name in HTML_PROPERTIES and not is_fixed_html(parsed, right):
            yield node, f"{name} is assigned non-constant HTML ({_clip(parsed.text(right))})"


def _method_sinks(parsed: ParsedSource) -> Iterator[tuple[Node, str]]:
    for node in of_type(parsed.root, "call_expression"):
        name = _callee_name(parsed, node)
        if name not in HTML_METHODS:
            continue
        func = node.child_by_field_name("function")
        if name != "insertAdjacentHTML" and (func is None or not parsed.text(func).startswith("document.")):
            continue
        args_node = node.child_by_field_name("arguments")
        args = [a for a in args_node.named_children if a.type != "comment"] if args_node is not None else []
        index = HTML_METHODS[name]
        if len(args) > index and not is_fixed_html(parsed, args[index]):
            yield node, f"{name}() is given non-constant HTML ({_clip(parsed.text(args[index]))})"


def unsafe_js_sinks(parsed: ParsedSource) -> Iterator[tuple[Node, str]]:
    """(node, message) for each HTML sink in a JS file fed a value that is not fixed markup."""
    yield from _property_sinks(parsed)
    yield from _method_sinks(parsed)


def _clip(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
