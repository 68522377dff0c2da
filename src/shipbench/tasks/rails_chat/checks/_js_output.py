"""JavaScript HTML sinks for the rails-chat XSS check: innerHTML/outerHTML writes, insertAdjacentHTML,
document.write.

Invariants: a sink fed only fixed strings (literals, template strings without `${}`, or whose every
substitution goes through an escape/sanitize function) is safe; anything else reaching a sink (a
variable, a response field, a template with raw substitutions) is reported once per sink node.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from shipbench.audit.ruby.parse import Node, ParsedSource, of_type

HTML_PROPERTIES = frozenset({"innerHTML", "outerHTML"})
HTML_METHODS = {"insertAdjacentHTML": 1, "write": 0, "writeln": 0}  # method -> index of the HTML argument
_ESCAPER_RE = re.compile(r"escape|sanitize|purify|encode", re.IGNORECASE)


@dataclass(frozen=True)
class HtmlSink:
    """One place where text is written into the DOM as HTML."""

    node: Node  # the assignment or the call
    label: str  # innerHTML | outerHTML | insertAdjacentHTML | write | writeln
    value: Node | None  # the HTML written (None when the call lacks that argument)


def js_callee(parsed: ParsedSource, call: Node) -> tuple[str, str]:
    """`(object_text, name)` of a call_expression: `fetch(..)` -> ('', 'fetch'), `a.b.c()` -> ('a.b', 'c')."""
    func = call.child_by_field_name("function")
    if func is None:
        return "", ""
    if func.type == "member_expression":
        obj = func.child_by_field_name("object")
        prop = func.child_by_field_name("property")
        return (parsed.text(obj) if obj else "", parsed.text(prop) if prop else "")
    return "", parsed.text(func)


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
        return left is not None and right is not None and is_fixed_html(parsed, left) and is_fixed_html(parsed, right)
    if node.type == "call_expression":
        return bool(_ESCAPER_RE.search(js_callee(parsed, node)[1]))
    return False


def html_sinks(parsed: ParsedSource) -> list[HtmlSink]:
    """Every HTML sink of a JS tree, in document order: `x.innerHTML =`/`+=`, `x.outerHTML =`,
    `x.insertAdjacentHTML(pos, html)`, `document.write(html)`/`writeln`."""
    sinks: list[HtmlSink] = []
    for node in of_type(parsed.root, "assignment_expression", "augmented_assignment_expression"):
        left = node.child_by_field_name("left")
        prop = left.child_by_field_name("property") if left is not None and left.type == "member_expression" else None
        if prop is not None and parsed.text(prop) in HTML_PROPERTIES:
            sinks.append(HtmlSink(node, parsed.text(prop), node.child_by_field_name("right")))
    for node in of_type(parsed.root, "call_expression"):
        obj, name = js_callee(parsed, node)
        if name not in HTML_METHODS or (name != "insertAdjacentHTML" and not f"{obj}.".startswith("document.")):
            continue
        args_node = node.child_by_field_name("arguments")
        args = [a for a in args_node.named_children if a.type != "comment"] if args_node is not None else []
        index = HTML_METHODS[name]
        sinks.append(HtmlSink(node, name, args[index] if len(args) > index else None))
    return sorted(sinks, key=lambda s: s.node.start_byte)


def unsafe_js_sinks(parsed: ParsedSource) -> Iterator[tuple[Node, str]]:
    """(node, message) for each HTML sink in a JS file fed a value that is not fixed markup."""
    for sink in html_sinks(parsed):
        if sink.value is None or is_fixed_html(parsed, sink.value):
            continue
        if sink.label in HTML_PROPERTIES:
            yield sink.node, f"{sink.label} is assigned non-constant HTML ({_clip(parsed.text(sink.value))})"
        else:
            yield sink.node, f"{sink.label}() is given non-constant HTML ({_clip(parsed.text(sink.value))})"


def _clip(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
